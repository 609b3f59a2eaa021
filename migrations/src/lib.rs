//! Database schema migrations (sea-orm-migration), close to Cinder's model so operators
//! recognise it. Applied only by `cinder-manage db sync`; services refuse to start while
//! any is pending.
//!
//! Rules: a shipped migration is never edited; changes are additive (expand, then
//! contract in a later release) so services of two versions can share a database during
//! a rolling upgrade. Migration files are `mYYYYMMDD_NNNNNN_<verb>_<noun>.rs`.
//! The last migration's name is `cinder_db::SCHEMA_VERSION`; a test keeps them equal.

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_create_schema;
mod m20261203_000001_seed_default_type;
mod m20261204_000001_create_default_volume_types;
mod m20261205_000001_add_backup_progress;
mod m20261206_000001_create_volume_glance_metadata;
mod m20261207_000001_create_executions;

pub use m20261203_000001_seed_default_type::DEFAULT_TYPE_ID;

/// All migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_create_schema::Migration),
            Box::new(m20261203_000001_seed_default_type::Migration),
            Box::new(m20261204_000001_create_default_volume_types::Migration),
            Box::new(m20261205_000001_add_backup_progress::Migration),
            Box::new(m20261206_000001_create_volume_glance_metadata::Migration),
            Box::new(m20261207_000001_create_executions::Migration),
        ]
    }
}

/// The name of the newest migration.
pub fn latest() -> String {
    Migrator::migrations()
        .last()
        .map(|m| m.name().to_string())
        .unwrap_or_default()
}
