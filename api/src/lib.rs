//! The OpenStack Block Storage v3 API (HTTP, keystone and noauth). Only crate that knows
//! HTTP and OpenStack JSON. This is the entry point; the API arrives with its own issue.
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
    tracing::info!(host = %settings.common.service.host, "cinder-api started (entry point only: the v3 API arrives with its own issue)");
    shutdown.cancelled().await;
    Ok(())
}
