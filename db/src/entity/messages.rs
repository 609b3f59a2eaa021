//! `messages` (generated from the migration's column list; keep them in step).

use sea_orm::entity::prelude::*;

/// One row of `messages`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
#[allow(missing_docs)]
pub struct Model {
    #[sea_orm(
        primary_key,
        auto_increment = false,
        column_type = "String(StringLen::N(36))"
    )]
    pub id: String,
    pub project_id: String,
    pub request_id: String,
    pub resource_type: String,
    #[sea_orm(column_type = "String(StringLen::N(36))", nullable)]
    pub resource_uuid: Option<String>,
    pub event_id: String,
    pub message_level: String,
    #[sea_orm(nullable)]
    pub detail_id: Option<String>,
    #[sea_orm(nullable)]
    pub action_id: Option<String>,
    pub expires_at: DateTime,
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
