//! What every service binary's `main` does: parse `--config`, load its settings, start
//! logging, abort on panic, build the runtime, and run until SIGTERM/SIGINT.

use std::future::Future;

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::settings::{AmqpSettings, DatabaseSettings, LoggingSettings, ServiceSettings};
use crate::shutdown::CancellationToken;

/// The sections every service reads; services embed it with `#[serde(flatten)]`.
#[derive(Debug, Deserialize)]
pub struct CommonSettings {
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

/// A service's settings.
pub trait ServiceConfig: DeserializeOwned {
    /// The shared sections.
    fn common(&self) -> &CommonSettings;
}

/// Runs a service binary: `run(settings, extra_args, shutdown)` until it returns.
pub fn main<S, F, Fut>(bin: &str, usage: &str, run: F) -> anyhow::Result<()>
where
    S: ServiceConfig,
    F: FnOnce(S, Vec<String>, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let args = crate::cli::from_env(bin, usage);
    let settings: S =
        crate::config::load(args.config.as_deref()).context("loading the configuration")?;
    crate::telemetry::init(&settings.common().logging);
    crate::shutdown::abort_on_panic();
    let service = &settings.common().service;
    if service.down_time() != service.service_down_time {
        tracing::warn!(
            service_down_time = service.service_down_time,
            report_interval = service.report_interval,
            in_force = service.down_time(),
            "service_down_time must be greater than report_interval; using 2.5 x report_interval"
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let shutdown = crate::shutdown::on_signal();
        run(settings, args.rest, shutdown).await
    })
}

/// For services that take no arguments beyond `--config`.
pub fn no_extra_args(bin: &str, rest: &[String]) -> anyhow::Result<()> {
    match rest.first() {
        Some(a) => anyhow::bail!("{bin}: unknown argument {a} (see --help)"),
        None => Ok(()),
    }
}
