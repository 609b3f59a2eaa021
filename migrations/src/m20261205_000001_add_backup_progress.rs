//! `backups.progress`: how far a running backup or restore is ("42%"), written by the
//! backup service as the stream goes and shown by the API. Additive: a service of the
//! previous release neither reads nor writes it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261205_000001_add_backup_progress"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("backups"))
                    .add_column(string_len_null(Alias::new("progress"), 255))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("backups"))
                    .drop_column(Alias::new("progress"))
                    .to_owned(),
            )
            .await
    }
}
