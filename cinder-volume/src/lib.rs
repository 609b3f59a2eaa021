//! The volume service: one service per enabled backend (`host@backend`), RPC from AMQP
//! routed to the RBD driver, heartbeat and capacity reports to the database.
//!
//! This is the entry point: it loads each enabled backend's configuration, connects its
//! driver to Ceph once (a wrong pool or key fails here) and reports the pool's capacity.
//! RPC, heartbeat and handlers arrive with the volume-service issue.
#![warn(missing_docs)]

use std::collections::BTreeMap;

pub mod workers;

use anyhow::{bail, Context};
use cinder_common::service::{CommonSettings, ServiceConfig};
use cinder_common::shutdown::CancellationToken;
use rbd_driver::{RbdConfig, RbdDriver};
use serde::Deserialize;

/// `[volume]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeSettings {
    /// Backends this host serves, each configured in `[backends.<name>]`. Default `["ceph"]`.
    #[serde(default = "default_backends")]
    pub enabled_backends: Vec<String>,
    /// Seconds between capacity reports. Default 60.
    #[serde(default = "default_stats_interval")]
    pub backend_stats_polling_interval: u64,
}

impl VolumeSettings {
    fn defaults() -> Self {
        VolumeSettings {
            enabled_backends: default_backends(),
            backend_stats_polling_interval: default_stats_interval(),
        }
    }
}

fn default_backends() -> Vec<String> {
    vec!["ceph".into()]
}
fn default_stats_interval() -> u64 {
    60
}

/// This binary's configuration.
#[derive(Debug, Deserialize)]
pub struct Settings {
    /// `[service]`, `[database]`, `[amqp]`, `[logging]`.
    #[serde(flatten)]
    pub common: CommonSettings,
    /// `[volume]`
    #[serde(default = "VolumeSettings::defaults")]
    pub volume: VolumeSettings,
    /// `[backends.<name>]`: `volume_driver = "rbd"` (the default) plus the driver's options.
    #[serde(default)]
    pub backends: BTreeMap<String, serde_json::Value>,
}

impl ServiceConfig for Settings {
    fn common(&self) -> &CommonSettings {
        &self.common
    }
}

/// Parses `cinder-volume`'s own arguments: `--backend NAME`, repeatable.
pub fn parse_backends(args: &[String]) -> anyhow::Result<Vec<String>> {
    let mut backends = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--backend" => backends.push(it.next().context("--backend needs a name")?.clone()),
            other => bail!("unknown argument {other} (see --help)"),
        }
    }
    Ok(backends)
}

impl Settings {
    /// The driver configuration of backend `name` (an absent section means all defaults).
    pub fn backend(&self, name: &str) -> anyhow::Result<RbdConfig> {
        let mut section = self
            .backends
            .get(name)
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        let obj = section
            .as_object_mut()
            .with_context(|| format!("[backends.{name}] must be a table"))?;
        match obj.remove("volume_driver") {
            None => {}
            Some(serde_json::Value::String(d)) if d == "rbd" => {}
            Some(other) => {
                bail!("[backends.{name}] volume_driver = {other}: only \"rbd\" is supported")
            }
        }
        let cfg: RbdConfig =
            serde_json::from_value(section).with_context(|| format!("in [backends.{name}]"))?;
        cfg.validate()
            .map_err(|e| anyhow::anyhow!("in [backends.{name}]: {e}"))?;
        Ok(cfg)
    }

    /// Checks every enabled backend's section.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.volume.enabled_backends.is_empty() {
            bail!("[volume] enabled_backends is empty");
        }
        for b in &self.volume.enabled_backends {
            self.backend(b)?;
        }
        Ok(())
    }
}

/// Runs the services of `backends` (all enabled ones when empty) until `shutdown`.
pub async fn run(
    settings: Settings,
    backends: Vec<String>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    settings.validate()?;
    let _db = cinder_db::Db::connect_checked(settings.common.database.connection.expose())
        .await
        .context("checking the database")?;
    let backends = if backends.is_empty() {
        settings.volume.enabled_backends.clone()
    } else {
        backends
    };
    let mut drivers = Vec::new();
    for name in &backends {
        if !settings.volume.enabled_backends.contains(name) {
            bail!("backend {name} is not in [volume] enabled_backends");
        }
        let cfg = settings.backend(name)?;
        let pool = cfg.rbd_pool.clone();
        let driver =
            tokio::time::timeout(std::time::Duration::from_secs(60), RbdDriver::connect(cfg))
                .await
                .with_context(|| format!("backend {name}: no answer from Ceph within 60 s"))?
                .with_context(|| format!("backend {name}: cannot use pool {pool}"))?;
        let usage = driver
            .pool_usage(&pool)
            .await
            .with_context(|| format!("backend {name}: df"))?;
        tracing::info!(
            service = %format!("{}@{name}", settings.common.service.host),
            fsid = driver.fsid(),
            pool = %pool,
            stored_bytes = usage.stored_bytes,
            max_avail_bytes = usage.max_avail_bytes,
            "backend connected (RPC and heartbeat arrive with the volume-service issue)"
        );
        drivers.push(driver);
    }
    shutdown.cancelled().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml: &str) -> anyhow::Result<Settings> {
        let path = std::env::temp_dir().join(format!(
            "cv-{}-{:?}.toml",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, toml)?;
        let r = cinder_common::config::load_with_env(Some(&path), []);
        let _ = std::fs::remove_file(&path);
        r
    }

    #[test]
    fn a_backend_without_a_section_takes_the_driver_defaults() {
        let s = settings("").unwrap();
        let b = s.backend("ceph").unwrap();
        assert_eq!(
            (
                b.rbd_pool.as_str(),
                b.rbd_max_clone_depth,
                b.rbd_store_chunk_size
            ),
            ("rbd", 5, 4)
        );
    }

    #[test]
    fn backend_typos_and_unknown_drivers_fail_at_start() {
        let s = settings("[backends.ceph]\nrbd_pol = \"x\"\n").unwrap();
        assert!(format!("{:#}", s.validate().unwrap_err()).contains("rbd_pol"));
        let s = settings("[backends.ceph]\nvolume_driver = \"lvm\"\n").unwrap();
        assert!(format!("{:#}", s.validate().unwrap_err()).contains("only \"rbd\""));
    }
}
