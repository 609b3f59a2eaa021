//! `cinder-volume`'s configuration: the shared sections, `[volume]`, and one
//! `[backends.<name>]` section per backend.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use cinder_common::service::{CommonSettings, ServiceConfig};
use cinder_drivers::rbd::RbdBackendConfig;
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
    /// Requests a backend takes in at once: the short budget, and the RPC prefetch.
    /// Default 32.
    #[serde(default = "default_concurrency")]
    pub max_concurrent_operations: usize,
    /// Requests that may run long librbd work (creates from a snapshot, volume or
    /// image, which may flatten; reverts) a backend accepts at once: claimed and
    /// acknowledged, running or waiting for the driver's long lane (`long_op_threads`
    /// throttles the librbd work itself). Once acknowledged they leave the short budget
    /// to short work. Only when more than this many long requests are queued do further
    /// ones wait on short slots. Default 64.
    #[serde(default = "default_long")]
    pub max_long_operations: usize,
    /// Seconds running requests get to finish at shutdown. Default 30.
    #[serde(default = "default_grace")]
    pub shutdown_grace_secs: u64,
    /// `address:port` serving Prometheus metrics on `GET /metrics`; empty (the
    /// default) serves none.
    #[serde(default)]
    pub metrics_listen: String,
    /// Seconds between sweeps of the pool's trash for volume images whose queued purge
    /// fell through; 0 turns the sweep off. Default 3600.
    #[serde(default = "default_trash_interval")]
    pub trash_purge_interval: u64,
    /// Cinder's `cluster`: services with the same cluster name serve each backend
    /// active-active. Each also consumes `cinder-volume.<cluster>@<backend>.cluster`,
    /// registers `cluster_name = <cluster>@<backend>`, and adopts the unfinished work
    /// of peers that are down. Empty (the default): no cluster.
    #[serde(default)]
    pub cluster: String,
    /// Where an image of a format other than raw is kept while `qemu-img` converts it
    /// into a volume (Cinder's `image_conversion_dir`). Default
    /// `/var/lib/cinder-rs/conversion`.
    #[serde(default = "default_conversion_dir")]
    pub image_conversion_dir: String,
}

impl VolumeSettings {
    fn defaults() -> Self {
        VolumeSettings {
            enabled_backends: default_backends(),
            backend_stats_polling_interval: default_stats_interval(),
            max_concurrent_operations: default_concurrency(),
            max_long_operations: default_long(),
            shutdown_grace_secs: default_grace(),
            metrics_listen: String::new(),
            cluster: String::new(),
            trash_purge_interval: default_trash_interval(),
            image_conversion_dir: default_conversion_dir(),
        }
    }
}

fn default_conversion_dir() -> String {
    "/var/lib/cinder-rs/conversion".into()
}
fn default_backends() -> Vec<String> {
    vec!["ceph".into()]
}
fn default_stats_interval() -> u64 {
    60
}
fn default_concurrency() -> usize {
    32
}
fn default_trash_interval() -> u64 {
    3600
}
fn default_long() -> usize {
    64
}
fn default_grace() -> u64 {
    30
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
    /// `[glance]`: where images are downloaded from (volumes made from images that
    /// cannot be cloned) and uploaded to.
    #[serde(default)]
    pub glance: cinder_common::settings::GlanceSettings,
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
    /// The configuration of backend `name` (an absent section means all defaults).
    pub fn backend(&self, name: &str) -> anyhow::Result<RbdBackendConfig> {
        RbdBackendConfig::from_backends(&self.backends, name).map_err(|e| anyhow::anyhow!(e))
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
                b.rbd.rbd_pool.as_str(),
                b.cinder.rbd_max_clone_depth,
                b.rbd.rbd_store_chunk_size
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
