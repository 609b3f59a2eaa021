//! `backups` (generated from the migration's column list; keep them in step).

use cinder_common::status::BackupStatus;
use sea_orm::entity::prelude::*;

/// One row of `backups`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "backups")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(
        primary_key,
        auto_increment = false,
        column_type = "String(StringLen::N(36))"
    )]
    pub id: String,
    #[sea_orm(column_type = "String(StringLen::N(36))")]
    pub volume_id: String,
    #[sea_orm(column_type = "String(StringLen::N(36))", nullable)]
    pub snapshot_id: Option<String>,
    pub project_id: String,
    pub user_id: String,
    #[sea_orm(nullable)]
    pub host: Option<String>,
    #[sea_orm(nullable)]
    pub availability_zone: Option<String>,
    #[sea_orm(nullable)]
    pub display_name: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub display_description: Option<String>,
    #[sea_orm(nullable)]
    pub container: Option<String>,
    pub status: BackupStatus,
    #[sea_orm(column_type = "Text", nullable)]
    pub fail_reason: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub service_metadata: Option<String>,
    #[sea_orm(nullable)]
    pub service: Option<String>,
    pub size: i32,
    #[sea_orm(nullable)]
    pub object_count: Option<i32>,
    #[sea_orm(column_type = "String(StringLen::N(36))", nullable)]
    pub parent_id: Option<String>,
    pub num_dependent_backups: i32,
    #[sea_orm(nullable)]
    pub data_timestamp: Option<DateTime>,
    #[sea_orm(column_type = "String(StringLen::N(36))", nullable)]
    pub restore_volume_id: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(36))", nullable)]
    pub temp_volume_id: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(36))", nullable)]
    pub temp_snapshot_id: Option<String>,
    pub is_incremental: bool,
    #[sea_orm(column_type = "String(StringLen::N(36))", nullable)]
    pub encryption_key_id: Option<String>,
    #[sea_orm(nullable)]
    pub progress: Option<String>,
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
