//! `default_volume_types` (from `m20261204_000001_create_default_volume_types`; keep them
//! in step).

use sea_orm::entity::prelude::*;

/// One row of `default_volume_types`: a project's own default type.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "default_volume_types")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub project_id: String,
    #[sea_orm(column_type = "String(StringLen::N(36))")]
    pub volume_type_id: String,
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
