//! `snapshots` (generated from the migration's column list; keep them in step).

use cinder_common::status::SnapshotStatus;
use sea_orm::entity::prelude::*;

/// One row of `snapshots`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "snapshots")]
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
    pub project_id: String,
    pub user_id: String,
    #[sea_orm(nullable)]
    pub display_name: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub display_description: Option<String>,
    pub status: SnapshotStatus,
    #[sea_orm(nullable)]
    pub progress: Option<String>,
    pub volume_size: i32,
    #[sea_orm(column_type = "Text", nullable)]
    pub provider_location: Option<String>,
    #[sea_orm(nullable)]
    pub provider_id: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(36))", nullable)]
    pub encryption_key_id: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(36))", nullable)]
    pub volume_type_id: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(36))", nullable)]
    pub group_snapshot_id: Option<String>,
    pub use_quota: bool,
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
