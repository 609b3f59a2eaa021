//! `services` (generated from the migration's column list; keep them in step).

use sea_orm::entity::prelude::*;

/// One row of `services`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "services")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(column_type = "String(StringLen::N(36))")]
    pub uuid: String,
    pub host: String,
    pub binary: String,
    pub topic: String,
    pub availability_zone: String,
    pub disabled: bool,
    #[sea_orm(nullable)]
    pub disabled_reason: Option<String>,
    pub report_count: i64,
    #[sea_orm(column_type = "Text", nullable)]
    pub capabilities: Option<String>,
    #[sea_orm(nullable)]
    pub cluster_name: Option<String>,
    #[sea_orm(nullable)]
    pub rpc_current_version: Option<String>,
    #[sea_orm(nullable)]
    pub object_current_version: Option<String>,
    #[sea_orm(nullable)]
    pub replication_status: Option<String>,
    #[sea_orm(nullable)]
    pub active_backend_id: Option<String>,
    pub frozen: bool,
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
