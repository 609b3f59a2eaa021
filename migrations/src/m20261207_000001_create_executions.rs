//! `executions`: how many times each operation's work began on each resource, counted
//! by the service that runs it once its claim is held and the resource is still busy
//! with the operation, before the driver is called. A redelivered or duplicated request
//! that finds the work done is not counted; a resume after a crash that repeats the work
//! is. It is how an operator (and the tests) see that a volume was made once. Our own
//! table (Cinder has none); additive: a service of the previous release never writes it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000001_create_executions"
    }
}

const TABLE: &str = "executions";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new(TABLE))
                    .col(string_len(Alias::new("resource_type"), 40))
                    .col(string_len(Alias::new("resource_id"), 36))
                    .col(string_len(Alias::new("operation"), 40))
                    .col(integer(Alias::new("runs")))
                    .col(integer_null(Alias::new("service_id")))
                    .col(date_time(Alias::new("created_at")))
                    .col(date_time(Alias::new("updated_at")))
                    .primary_key(
                        Index::create()
                            .col(Alias::new("resource_type"))
                            .col(Alias::new("resource_id"))
                            .col(Alias::new("operation")),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new(TABLE)).to_owned())
            .await
    }
}
