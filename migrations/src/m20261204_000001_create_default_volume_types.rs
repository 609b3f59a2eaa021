//! `default_volume_types` (3.62): a project's own default volume type, one row per
//! project, hard-deleted when unset, as Cinder's table of the same name.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000001_create_default_volume_types"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("default_volume_types"))
                    .col(string_len(Alias::new("project_id"), 255).primary_key())
                    .col(string_len(Alias::new("volume_type_id"), 36))
                    .col(date_time(Alias::new("created_at")))
                    .col(date_time_null(Alias::new("updated_at")))
                    .col(date_time_null(Alias::new("deleted_at")))
                    .col(boolean(Alias::new("deleted")).default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_default_volume_types_type")
                    .table(Alias::new("default_volume_types"))
                    .col(Alias::new("volume_type_id"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("default_volume_types"))
                    .to_owned(),
            )
            .await
    }
}
