//! `executions` (generated from the migration's column list; keep them in step).

use sea_orm::entity::prelude::*;

/// One row of `executions`: how many times `operation`'s work began on a resource.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "executions")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub resource_type: String,
    #[sea_orm(
        primary_key,
        auto_increment = false,
        column_type = "String(StringLen::N(36))"
    )]
    pub resource_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub operation: String,
    pub runs: i32,
    #[sea_orm(nullable)]
    pub service_id: Option<i32>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

/// No relations are declared: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
