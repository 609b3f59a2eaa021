//! The backup service: full and incremental backups streamed as RBD diffs, and restore.
//! This is the entry point; backups arrive with their own issue.
#![warn(missing_docs)]

use cinder_common::settings::{AmqpSettings, DatabaseSettings, LoggingSettings, ServiceSettings};
use cinder_common::shutdown::CancellationToken;
use serde::Deserialize;

/// This binary's configuration: the shared sections it reads.
#[derive(Debug, Deserialize)]
pub struct Settings {
    /// `[service]`
    #[serde(default = "ServiceSettings::defaults")]
    pub service: ServiceSettings,
    /// `[database]`
    #[serde(default = "DatabaseSettings::defaults")]
    pub database: DatabaseSettings,
    /// `[amqp]`
    #[serde(default = "AmqpSettings::defaults")]
    pub amqp: AmqpSettings,
    /// `[logging]`
    #[serde(default = "LoggingSettings::defaults")]
    pub logging: LoggingSettings,
}

/// Runs until `shutdown` is cancelled.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    tracing::info!(host = %settings.service.host, "cinder-backup started (entry point only: backups arrive with their own issue)");
    shutdown.cancelled().await;
    Ok(())
}
