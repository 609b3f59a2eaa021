//! `volume_attachment` (generated from the migration's column list; keep them in step).

use cinder_common::status::AttachStatus;
use sea_orm::entity::prelude::*;

/// One row of `volume_attachment`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "volume_attachment")]
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
    #[sea_orm(nullable)]
    pub attached_host: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(36))", nullable)]
    pub instance_uuid: Option<String>,
    #[sea_orm(nullable)]
    pub mountpoint: Option<String>,
    #[sea_orm(nullable)]
    pub attach_time: Option<DateTime>,
    #[sea_orm(nullable)]
    pub detach_time: Option<DateTime>,
    #[sea_orm(nullable)]
    pub attach_mode: Option<String>,
    pub attach_status: AttachStatus,
    #[sea_orm(column_type = "Text", nullable)]
    pub connection_info: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub connector: Option<String>,
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
