//! The volume service: one service per enabled backend (`host@backend`), RPC from AMQP
//! routed to the RBD driver, heartbeat and capacity reports to the database.
//!
//! Per backend: one Ceph connection (a wrong pool or key fails at start), a service row
//! with a heartbeat that never waits on librbd, a capacity report from one `df` plus the
//! database, and the RPC consumer on `cinder-volume.<host>@<backend>` feeding the
//! [`manager::VolumeManager`]. Start-up reconciliation, reconnection and metrics arrive
//! with the rest of the volume-service issue.
#![warn(missing_docs)]

use std::collections::BTreeMap;

pub mod drivers;
pub mod manager;
pub mod metrics;
pub mod serve;
pub mod workers;

use anyhow::{bail, Context};
use std::sync::Arc;
use std::time::Duration;

use cinder_common::service::{CommonSettings, ServiceConfig};
use cinder_common::shutdown::CancellationToken;
use cinder_db::ServiceRegistration;
use cinder_rpc::{RpcServer, RpcVersion};
use drivers::rbd::RbdVolumeDriver;
use manager::VolumeManager;
use rbd_driver::{RbdConfig, RbdDriver};
use serde::Deserialize;
use tokio::sync::watch;
use workers::heartbeat::Heartbeat;

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
    /// Requests a backend works on at once (also the RPC prefetch). Default 32.
    #[serde(default = "default_concurrency")]
    pub max_concurrent_operations: usize,
    /// Seconds running requests get to finish at shutdown. Default 30.
    #[serde(default = "default_grace")]
    pub shutdown_grace_secs: u64,
    /// `address:port` serving Prometheus metrics on `GET /metrics`; empty (the
    /// default) serves none.
    #[serde(default)]
    pub metrics_listen: String,
}

impl VolumeSettings {
    fn defaults() -> Self {
        VolumeSettings {
            enabled_backends: default_backends(),
            backend_stats_polling_interval: default_stats_interval(),
            max_concurrent_operations: default_concurrency(),
            shutdown_grace_secs: default_grace(),
            metrics_listen: String::new(),
        }
    }
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
    let db = cinder_db::Db::connect_checked(settings.common.database.connection.expose())
        .await
        .context("checking the database")?;
    let backends = if backends.is_empty() {
        settings.volume.enabled_backends.clone()
    } else {
        backends
    };
    let settings = Arc::new(settings);
    let metrics = Arc::new(metrics::Metrics::default());
    if !settings.volume.metrics_listen.is_empty() {
        let listener = tokio::net::TcpListener::bind(&settings.volume.metrics_listen)
            .await
            .with_context(|| {
                format!("cannot serve metrics on {}", settings.volume.metrics_listen)
            })?;
        tracing::info!(address = %settings.volume.metrics_listen, "serving Prometheus metrics on /metrics");
        tokio::spawn(metrics::serve_metrics(
            listener,
            metrics.clone(),
            shutdown.clone(),
        ));
    }
    let mut running = Vec::new();
    for name in &backends {
        if !settings.volume.enabled_backends.contains(name) {
            bail!("backend {name} is not in [volume] enabled_backends");
        }
        // Every backend connects and checks its pool before any starts serving.
        running.push(
            start_backend(
                settings.clone(),
                name.clone(),
                db.clone(),
                metrics.clone(),
                shutdown.clone(),
            )
            .await?,
        );
    }
    for r in running {
        r.await.context("backend task")?;
    }
    Ok(())
}

/// Connects one backend, registers its service row, and returns the task serving it.
async fn start_backend(
    settings: Arc<Settings>,
    name: String,
    db: cinder_db::Db,
    metrics: Arc<metrics::Metrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let cfg = settings.backend(&name)?;
    let pool = cfg.rbd_pool.clone();
    let driver = tokio::time::timeout(Duration::from_secs(60), RbdDriver::connect(cfg))
        .await
        .with_context(|| format!("backend {name}: no answer from Ceph within 60 s"))?
        .with_context(|| format!("backend {name}: cannot use pool {pool}"))?;
    let service = &settings.common.service;
    let host = format!("{}@{name}", service.host);
    let row = db
        .register_service(&ServiceRegistration {
            host: host.clone(),
            binary: "cinder-volume".into(),
            topic: "cinder-volume".into(),
            availability_zone: service.storage_availability_zone.clone(),
            cluster_name: None,
        })
        .await
        .with_context(|| format!("registering {host}"))?;
    let queue = cinder_rpc::topology::volume_queue(&service.host, &name);
    let concurrency = settings.volume.max_concurrent_operations;
    let amqp = settings.common.amqp.transport_url.expose().to_string();
    let server = RpcServer::bind(&amqp, &queue, concurrency as u16, RpcVersion::VOLUME)
        .await
        .with_context(|| format!("backend {name}: cannot consume {queue}"))?;
    tracing::info!(service = %host, fsid = driver.fsid(), pool = %pool, queue = %queue, "backend serving");

    // Long librbd work is cancelled only after consuming and the heartbeat stopped.
    let long_work = CancellationToken::new();
    let rbd = driver.clone();
    let driver = Arc::new(RbdVolumeDriver::new(driver, long_work.clone()));
    let (caps_tx, caps_rx) = watch::channel(None);
    let heartbeat = Heartbeat::new(
        db.clone(),
        row.id,
        Duration::from_secs(service.report_interval),
        caps_rx.clone(),
    );
    metrics.add_backend(
        &host,
        metrics::BackendProbe {
            heartbeat: heartbeat.stats(),
            driver: rbd,
            capabilities: caps_rx,
        },
    );
    let beat = tokio::spawn(heartbeat.run(shutdown.clone()));
    let stats = tokio::spawn(workers::stats::report_stats(
        db.clone(),
        driver.clone(),
        host.clone(),
        Duration::from_secs(settings.volume.backend_stats_polling_interval),
        caps_tx,
        shutdown.clone(),
    ));
    let manager = Arc::new(VolumeManager::new(
        db,
        driver,
        row.id,
        host.clone(),
        metrics,
    ));
    let report = manager
        .reconcile()
        .await
        .map_err(|e| anyhow::anyhow!("backend {name}: reconciliation failed: {e}"))?;
    tracing::info!(
        service = %host,
        failed_creates = report.failed_creates.len(),
        resumed_deletes = report.resumed_deletes.len(),
        unknown_images = report.unknown_images.len(),
        "start-up reconciliation done"
    );
    let grace = Duration::from_secs(settings.volume.shutdown_grace_secs);
    Ok(tokio::spawn(async move {
        let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let tracker = tokio_util::task::TaskTracker::new();
        let mut server = Some(server);
        let mut backoff = Duration::from_millis(200);
        while let Some(current) = server.as_mut() {
            match serve::serve(&manager, current, &permits, &tracker, &shutdown).await {
                serve::Ended::Shutdown => break,
                serve::Ended::ConsumerLost => {
                    server = None;
                    // Reconnect with backoff; the heartbeat and running work go on meanwhile.
                    while server.is_none() && !shutdown.is_cancelled() {
                        tracing::warn!(queue = %queue, retry_in = ?backoff, "broker connection lost; reconnecting");
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        match RpcServer::bind(&amqp, &queue, concurrency as u16, RpcVersion::VOLUME)
                            .await
                        {
                            Ok(s) => {
                                tracing::info!(queue = %queue, "reconnected to the broker");
                                server = Some(s);
                                backoff = Duration::from_millis(200);
                            }
                            Err(e) => {
                                tracing::warn!(queue = %queue, error = %e, "reconnect failed");
                                backoff = (backoff * 2).min(Duration::from_secs(10));
                            }
                        }
                    }
                }
            }
        }
        // Shutdown: no new work; running work gets the grace period, then long librbd
        // work is cancelled through the driver; then the connection closes, returning
        // prefetched, unclaimed deliveries to the queue.
        tracker.close();
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(
                ?grace,
                "requests still running after the grace period; cancelling long work"
            );
            long_work.cancel();
            tracker.wait().await;
        }
        long_work.cancel();
        drop(server);
        let _ = beat.await;
        let _ = stats.await;
        tracing::info!(service = %host, "backend stopped");
    }))
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
