//! The volume service: one service per enabled backend (`host@backend`), RPC from AMQP
//! routed to the driver, heartbeat and capacity reports to the database.
//!
//! # Layout
//! - [`run`] / `start_backend`: per backend, one Ceph connection (a wrong pool or key
//!   fails at start), the service row and its heartbeat, the capacity report, the trash
//!   sweep, start-up reconciliation, then the consumers of `cinder-volume.<host>@<backend>`
//!   (and the cluster's queue) feeding the [`manager::VolumeManager`].
//! - [`manager`]: budgets, the claim protocol, routing to [`ops`].
//! - [`ops`]: one module per operation, holding its run and its resume after a crash.
//! - [`recovery`]: start-up reconciliation, adoption of a dead cluster peer's work, the
//!   background retry of work Ceph refused.
//! - [`drivers`]: the driver interface and the RBD adapter.
//! - [`workers`]: heartbeat, capacity report, trash sweep; [`metrics`]: Prometheus text.
//!
//! # Invariants
//! - The heartbeat never waits on librbd: every librbd call runs on the driver's pool.
//! - A status changes only through `Db::begin` / `Db::finish`; a final status and the
//!   release of its claim are one transaction.
#![warn(missing_docs)]

use std::collections::BTreeMap;

pub mod drivers;
pub mod manager;
pub mod metrics;
pub mod ops;
pub mod recovery;
pub mod serve;
pub mod workers;

use anyhow::{bail, Context};
use std::sync::Arc;
use std::time::Duration;

use cinder_common::service::{CommonSettings, ServiceConfig};
use cinder_common::shutdown::CancellationToken;
use cinder_db::ServiceRegistration;
use cinder_rpc::messages::VolumeTopic;
use cinder_rpc::RpcServer;
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
    let long_threads = cfg.long_op_threads;
    let driver = tokio::time::timeout(Duration::from_secs(60), RbdDriver::connect(cfg))
        .await
        .with_context(|| format!("backend {name}: no answer from Ceph within 60 s"))?
        .with_context(|| format!("backend {name}: cannot use pool {pool}"))?;
    let service = &settings.common.service;
    let host = format!("{}@{name}", service.host);
    let cluster_name = (!settings.volume.cluster.is_empty())
        .then(|| format!("{}@{name}", settings.volume.cluster));
    let row = db
        .register_service(&ServiceRegistration {
            host: host.clone(),
            binary: "cinder-volume".into(),
            topic: "cinder-volume".into(),
            availability_zone: service.storage_availability_zone.clone(),
            cluster_name: cluster_name.clone(),
        })
        .await
        .with_context(|| format!("registering {host}"))?;
    let mut queues = vec![cinder_rpc::topology::volume_queue(&service.host, &name)];
    if let Some(cluster) = &cluster_name {
        queues.push(cinder_rpc::topology::volume_cluster_queue(
            &settings.volume.cluster,
            &name,
        ));
        tracing::info!(service = %host, cluster = %cluster, "active-active cluster member");
    }
    let concurrency = settings.volume.max_concurrent_operations;
    let amqp = settings.common.amqp.transport_url.expose().to_string();
    let mut servers = Vec::new();
    for queue in &queues {
        servers.push(
            RpcServer::<VolumeTopic>::bind(&amqp, queue, concurrency as u16)
                .await
                .with_context(|| format!("backend {name}: cannot consume {queue}"))?,
        );
    }
    let queue = queues.join(", ");
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
    let sweeper = (settings.volume.trash_purge_interval > 0).then(|| {
        tokio::spawn(workers::trash::sweep_trash(
            driver.clone(),
            host.clone(),
            Duration::from_secs(settings.volume.trash_purge_interval),
            shutdown.clone(),
        ))
    });
    let manager = Arc::new(VolumeManager::new(
        db,
        driver,
        row.id,
        host.clone(),
        metrics,
        manager::LongBudgets {
            accepted: settings.volume.max_long_operations,
            running: long_threads * 2,
        },
        shutdown.clone(),
    ));
    let report = manager
        .reconcile()
        .await
        .map_err(|e| anyhow::anyhow!("backend {name}: reconciliation failed: {e}"))?;
    tracing::info!(
        service = %host,
        failed_creates = report.failed_creates.len(),
        resumed_deletes = report.resumed_deletes.len(),
        failed_others = report.failed_others.len(),
        finished_others = report.finished_others.len(),
        unknown_images = report.unknown_images.len(),
        "start-up reconciliation done"
    );
    let grace = Duration::from_secs(settings.volume.shutdown_grace_secs);
    let janitor = cluster_name.map(|cluster| {
        let (manager, shutdown) = (manager.clone(), shutdown.clone());
        let down_time = Duration::from_secs(service.down_time());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(down_time) => {}
                }
                match manager.adopt_from_down_peers(&cluster, down_time).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(cluster = %cluster, adopted = n, "adopted the work of peers that are down"),
                    Err(e) => tracing::error!(cluster = %cluster, error = %e, "cannot adopt the work of peers that are down"),
                }
            }
        })
    });
    Ok(tokio::spawn(async move {
        let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let tracker = tokio_util::task::TaskTracker::new();
        let consumers: Vec<_> = queues
            .into_iter()
            .zip(servers)
            .map(|(queue, server)| {
                tokio::spawn(consume(
                    manager.clone(),
                    server,
                    amqp.clone(),
                    queue,
                    concurrency,
                    permits.clone(),
                    tracker.clone(),
                    shutdown.clone(),
                ))
            })
            .collect();
        let mut servers = Vec::new();
        for c in consumers {
            servers.push(c.await.expect("consumer task"));
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
        drop(servers);
        for j in janitor.into_iter().chain(sweeper) {
            let _ = j.await;
        }
        let _ = beat.await;
        let _ = stats.await;
        tracing::info!(service = %host, "backend stopped");
    }))
}

/// Consumes `queue` until shutdown, reconnecting with backoff when the broker goes
/// away (the heartbeat and running work go on meanwhile); returns the last server, so
/// the caller closes it only after running work ended.
#[allow(clippy::too_many_arguments)]
async fn consume(
    manager: Arc<VolumeManager<RbdVolumeDriver>>,
    server: RpcServer<VolumeTopic>,
    amqp: String,
    queue: String,
    concurrency: usize,
    permits: Arc<tokio::sync::Semaphore>,
    tracker: tokio_util::task::TaskTracker,
    shutdown: CancellationToken,
) -> Option<RpcServer<VolumeTopic>> {
    let mut server = Some(server);
    let mut backoff = Duration::from_millis(200);
    while let Some(current) = server.as_mut() {
        match serve::serve(&manager, current, &permits, &tracker, &shutdown).await {
            serve::Ended::Shutdown => break,
            serve::Ended::ConsumerLost => {
                server = None;
                while server.is_none() && !shutdown.is_cancelled() {
                    tracing::warn!(queue = %queue, retry_in = ?backoff, "broker connection lost; reconnecting");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    match RpcServer::<VolumeTopic>::bind(&amqp, &queue, concurrency as u16).await {
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
    server
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
