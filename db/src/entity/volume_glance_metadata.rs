//! `volume_glance_metadata` (generated from the migration's column list; keep them in step).

use sea_orm::entity::prelude::*;

/// One row of `volume_glance_metadata`: of a volume or of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "volume_glance_metadata")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(column_type = "String(StringLen::N(36))", nullable)]
    pub volume_id: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(36))", nullable)]
    pub snapshot_id: Option<String>,
    pub key: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub value: Option<String>,
    pub created_at: DateTime,
    #[sea_orm(nullable)]
    pub updated_at: Option<DateTime>,
    #[sea_orm(nullable)]
    pub deleted_at: Option<DateTime>,
    pub deleted: bool,
}

/// No relations are declared: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
