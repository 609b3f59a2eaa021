//! The scheduler: filters and weighers over the capabilities backends report in their
//! heartbeat rows. This is the entry point; scheduling arrives with its own issue.
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
    tracing::info!(host = %settings.service.host, "cinder-scheduler started (entry point only: scheduling arrives with its own issue)");
    shutdown.cancelled().await;
    Ok(())
}
