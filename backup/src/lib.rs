//! The backup service: full and incremental backups streamed as RBD diffs, and restore.
//! This is the entry point; backups arrive with their own issue.
#![warn(missing_docs)]

use cinder_common::service::{CommonSettings, ServiceConfig};
use cinder_common::shutdown::CancellationToken;
use serde::Deserialize;

/// This binary's configuration: the shared sections.
#[derive(Debug, Deserialize)]
pub struct Settings {
    /// `[service]`, `[database]`, `[amqp]`, `[logging]`.
    #[serde(flatten)]
    pub common: CommonSettings,
}

impl ServiceConfig for Settings {
    fn common(&self) -> &CommonSettings {
        &self.common
    }
}

/// Runs until `shutdown` is cancelled.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let _db = cinder_db::Db::connect_checked(settings.common.database.connection.expose()).await?;
    tracing::info!(host = %settings.common.service.host, "cinder-backup started (entry point only: backups arrive with their own issue)");
    shutdown.cancelled().await;
    Ok(())
}
