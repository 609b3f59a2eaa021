//! `volumes` (generated from the migration's column list; keep them in step).

use cinder_common::status::{AttachStatus, VolumeStatus};
use sea_orm::entity::prelude::*;

/// One row of `volumes`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "volumes")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(
        primary_key,
        auto_increment = false,
        column_type = "String(StringLen::N(36))"
    )]
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    #[sea_orm(nullable)]
    pub display_name: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub display_description: Option<String>,
    pub size: i32,
    pub status: VolumeStatus,
    pub attach_status: AttachStatus,
    #[sea_orm(nullable)]
    pub availability_zone: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(36))", nullable)]
    pub volume_type_id: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(36))", nullable)]
    pub snapshot_id: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(36))", nullable)]
    pub source_volid: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(36))", nullable)]
    pub image_id: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(36))", nullable)]
    pub backup_id: Option<String>,
    #[sea_orm(nullable)]
    pub host: Option<String>,
    #[sea_orm(nullable)]
    pub cluster_name: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub provider_location: Option<String>,
    #[sea_orm(nullable)]
    pub provider_id: Option<String>,
    pub bootable: bool,
    pub multiattach: bool,
    #[sea_orm(column_type = "String(StringLen::N(36))", nullable)]
    pub encryption_key_id: Option<String>,
    #[sea_orm(nullable)]
    pub migration_status: Option<String>,
    #[sea_orm(nullable)]
    pub replication_status: Option<String>,
    #[sea_orm(nullable)]
    pub previous_status: Option<VolumeStatus>,
    pub use_quota: bool,
    #[sea_orm(column_type = "String(StringLen::N(36))", nullable)]
    pub group_id: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(36))", nullable)]
    pub service_uuid: Option<String>,
    pub shared_targets: bool,
    #[sea_orm(nullable)]
    pub scheduled_at: Option<DateTime>,
    #[sea_orm(nullable)]
    pub launched_at: Option<DateTime>,
    #[sea_orm(nullable)]
    pub terminated_at: Option<DateTime>,
    #[sea_orm(column_type = "Text", nullable)]
    pub rbd_parent: Option<String>,
    pub clone_depth: i32,
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
