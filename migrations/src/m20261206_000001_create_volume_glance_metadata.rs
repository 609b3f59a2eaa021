//! `volume_glance_metadata` (Cinder's table): the properties of the Glance image a volume
//! was made from (`image_id`, `image_name`, formats, sizes and the image's own
//! properties), shown as `volume_image_metadata` and read by Nova for volume-backed
//! servers. A row belongs to a volume or to a snapshot (copied from its volume, and on to
//! the volumes made from it). Additive: a service of the previous release never reads it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000001_create_volume_glance_metadata"
    }
}

const TABLE: &str = "volume_glance_metadata";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new(TABLE))
                    .col(pk_auto(Alias::new("id")))
                    .col(string_len_null(Alias::new("volume_id"), 36))
                    .col(string_len_null(Alias::new("snapshot_id"), 36))
                    .col(string(Alias::new("key")))
                    .col(text_null(Alias::new("value")))
                    .col(date_time(Alias::new("created_at")))
                    .col(date_time_null(Alias::new("updated_at")))
                    .col(date_time_null(Alias::new("deleted_at")))
                    .col(boolean(Alias::new("deleted")).default(false))
                    .to_owned(),
            )
            .await?;
        for col in ["volume_id", "snapshot_id"] {
            manager
                .create_index(
                    Index::create()
                        .name(format!("ix_{TABLE}_{col}"))
                        .table(Alias::new(TABLE))
                        .col(Alias::new(col))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new(TABLE)).to_owned())
            .await
    }
}
