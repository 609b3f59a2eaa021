//! `reservations` (generated from the migration's column list; keep them in step).

use sea_orm::entity::prelude::*;

/// One row of `reservations`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reservations")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(column_type = "String(StringLen::N(36))")]
    pub uuid: String,
    pub usage_id: i32,
    pub project_id: String,
    pub resource: String,
    pub delta: i32,
    pub expire: DateTime,
    #[sea_orm(nullable)]
    pub allocated_id: Option<i32>,
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
