//! The `__DEFAULT__` volume type, which Cinder creates with its schema: a volume
//! created without a type (and with no `default_volume_type` configured) gets it.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000001_seed_default_type"
    }
}

/// The id of `__DEFAULT__` (fixed, so every database names the same type).
pub const DEFAULT_TYPE_ID: &str = "4b6aa7e4-5b7d-4d5b-9f1e-6a0f1c0e0d3a";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let insert = Query::insert()
            .into_table(Alias::new("volume_types"))
            .columns([
                Alias::new("id"),
                Alias::new("name"),
                Alias::new("description"),
                Alias::new("is_public"),
                Alias::new("created_at"),
                Alias::new("deleted"),
            ])
            .values_panic([
                DEFAULT_TYPE_ID.into(),
                "__DEFAULT__".into(),
                "Default Volume Type".into(),
                true.into(),
                Expr::current_timestamp(),
                false.into(),
            ])
            .to_owned();
        manager.exec_stmt(insert).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let delete = Query::delete()
            .from_table(Alias::new("volume_types"))
            .and_where(Expr::col(Alias::new("id")).eq(DEFAULT_TYPE_ID))
            .to_owned();
        manager.exec_stmt(delete).await
    }
}
