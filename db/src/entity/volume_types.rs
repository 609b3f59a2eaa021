//! `volume_types` (generated from the migration's column list; keep them in step).

use sea_orm::entity::prelude::*;

/// One row of `volume_types`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "volume_types")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(
        primary_key,
        auto_increment = false,
        column_type = "String(StringLen::N(36))"
    )]
    pub id: String,
    pub name: String,
    #[sea_orm(nullable)]
    pub description: Option<String>,
    pub is_public: bool,
    #[sea_orm(column_type = "String(StringLen::N(36))", nullable)]
    pub qos_specs_id: Option<String>,
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
