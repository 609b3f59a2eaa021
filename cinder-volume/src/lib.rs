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
//! - [`settings`]: this binary's configuration.
//! - [`workers`]: capacity report, trash sweep; [`metrics`]: Prometheus text.
//!
//! Registration, heartbeat, consuming with reconnect, the claim protocol and the
//! recovery engine come from `cinder-service`; the driver interface and the RBD adapter
//! from `cinder-drivers`.
//!
//! # Invariants
//! - The heartbeat never waits on librbd: every librbd call runs on the driver's pool.
//! - A status changes only through `Db::begin` / `Db::finish`; a final status and the
//!   release of its claim are one transaction.
#![warn(missing_docs)]

pub mod manager;
pub mod metrics;
pub mod ops;
pub mod recovery;
pub mod settings;
pub mod workers;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use cinder_common::shutdown::CancellationToken;
use cinder_db::ServiceRegistration;
use cinder_drivers::rbd::RbdVolumeDriver;
use cinder_drivers::VolumeDriver;
use cinder_rpc::messages::VolumeTopic;
use cinder_service::{Claims, Intake, Recovery};
use manager::VolumeManager;
use rbd_driver::RbdDriver;
use tokio::sync::watch;

pub use settings::{parse_backends, Settings, VolumeSettings};

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

/// Connects one backend, registers its service row, reconciles, and returns the task
/// serving it.
async fn start_backend(
    settings: Arc<Settings>,
    name: String,
    db: cinder_db::Db,
    metrics: Arc<metrics::Metrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let cfg = settings.backend(&name)?;
    let (pool, long_threads) = (cfg.rbd.rbd_pool.clone(), cfg.rbd.long_op_threads);
    let rbd = tokio::time::timeout(Duration::from_secs(60), RbdDriver::connect(cfg.rbd))
        .await
        .with_context(|| format!("backend {name}: no answer from Ceph within 60 s"))?
        .with_context(|| format!("backend {name}: cannot use pool {pool}"))?;
    let (service, volume) = (&settings.common.service, &settings.volume);
    let glance = cinder_glance::Glance::from_settings(&settings.glance)?;
    let host = format!("{}@{name}", service.host);
    let cluster = (!volume.cluster.is_empty()).then(|| format!("{}@{name}", volume.cluster));
    let mut queues = vec![cinder_rpc::topology::volume_queue(&service.host, &name)];
    if cluster.is_some() {
        queues.push(cinder_rpc::topology::volume_cluster_queue(
            &volume.cluster,
            &name,
        ));
    }
    let intake = Intake::new(
        settings.common.amqp.transport_url.expose(),
        volume.max_concurrent_operations,
        shutdown.clone(),
    );
    let mut servers = Vec::new();
    for queue in queues {
        let server = intake.bind::<VolumeTopic>(&queue).await;
        servers.push((
            queue.clone(),
            server.with_context(|| format!("backend {name}: cannot consume {queue}"))?,
        ));
    }

    // Long librbd work is cancelled only after consuming and the heartbeat stopped.
    let long_work = CancellationToken::new();
    let fsid = rbd.fsid().to_string();
    let driver = Arc::new(RbdVolumeDriver::new(rbd, cfg.cinder, long_work.clone()));
    let (caps_tx, caps_rx) = watch::channel(None);
    let registration = ServiceRegistration {
        host: host.clone(),
        binary: "cinder-volume".into(),
        topic: "cinder-volume".into(),
        availability_zone: service.storage_availability_zone.clone(),
        cluster_name: cluster.clone(),
    };
    let interval = Duration::from_secs(service.report_interval);
    let registered = cinder_service::register(
        &db,
        &registration,
        interval,
        caps_rx.clone(),
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("registering {host}"))?;
    // Weak: the cluster connection closes with the backend, not with the metrics.
    let lanes = Arc::downgrade(&driver);
    metrics.add_backend(
        &host,
        metrics::BackendProbe {
            heartbeat: registered.heartbeat.clone(),
            lanes: Box::new(move || lanes.upgrade().and_then(|d| d.lanes())),
            capabilities: caps_rx,
            broker: Box::new(intake.broker_probe()),
            report_interval: interval,
        },
    );
    let workers = workers::start(&db, &driver, &host, volume, caps_tx, &shutdown);
    let claims = Arc::new(Claims::new(db, registered.row.id));
    let budgets = manager::LongBudgets {
        accepted: volume.max_long_operations,
        running: long_threads * 2,
    };
    let manager = Arc::new(
        VolumeManager::new(
            claims.clone(),
            driver,
            host.clone(),
            metrics,
            budgets,
            shutdown.clone(),
        )
        .with_scheduler(
            settings.common.amqp.transport_url.expose(),
            &settings.common.amqp.scheduler_topic,
        )
        .with_images(
            glance.clone(),
            &volume.image_conversion_dir,
            &settings.glance.rbd_store_pool,
        ),
    );
    let recovery = Recovery::start(
        manager.clone(),
        claims,
        recovery::RESUME_BUSY_FOR,
        shutdown.clone(),
    );
    let report = recovery::reconcile(&manager, &recovery)
        .await
        .map_err(|e| anyhow::anyhow!("backend {name}: reconciliation failed: {e}"))?;
    tracing::info!(service = %host, ?report, "start-up reconciliation done");
    manager
        .metrics
        .set_unknown_images(&host, &report.unknown_images);
    let down_time = Duration::from_secs(service.down_time());
    let janitor =
        cluster.map(|c| tokio::spawn(adopt_forever(recovery, c, down_time, shutdown.clone())));
    tracing::info!(service = %host, fsid, pool = %pool, "backend serving");
    let grace = Duration::from_secs(volume.shutdown_grace_secs);
    Ok(tokio::spawn(async move {
        // Shutdown: no new work; running work gets the grace period, then long librbd
        // work is cancelled through the driver; then the connections close.
        intake
            .serve(manager.clone(), servers, grace, || long_work.cancel())
            .await;
        long_work.cancel();
        for task in janitor.into_iter().chain(workers) {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a backend task failed");
            }
        }
        registered.stopped().await;
        close_on_a_blocking_thread(manager).await;
        tracing::info!(service = %host, "backend stopped");
    }))
}

/// Drops the backend's last handles, and with them its cluster connections, on a
/// blocking thread the caller waits for: `rados_shutdown` joins librados' threads and
/// waits for the monitors, which must not hold a runtime worker, and must end before
/// the process does (a detached shutdown raced the process's exit). Recovery's tasks
/// let go of the manager as they see the shutdown; they get a few seconds.
async fn close_on_a_blocking_thread(manager: Arc<VolumeManager<RbdVolumeDriver>>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while Arc::strong_count(&manager) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if Arc::strong_count(&manager) > 1 {
        tracing::warn!("the backend is still referenced at shutdown; its connection closes with the last reference");
    }
    if let Err(e) = tokio::task::spawn_blocking(move || drop(manager)).await {
        tracing::error!(error = %e, "closing the cluster connection failed");
    }
}

/// Active-active: every `down_time`, adopts the work of cluster peers that are down.
async fn adopt_forever(
    recovery: Recovery<VolumeManager<RbdVolumeDriver>>,
    cluster: String,
    down_time: Duration,
    shutdown: CancellationToken,
) {
    tracing::info!(cluster = %cluster, "active-active cluster member");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(down_time) => {}
        }
        match recovery.adopt_from_down_peers(&cluster, down_time).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(cluster = %cluster, adopted = n, "adopted the work of peers that are down")
            }
            Err(e) => {
                tracing::error!(cluster = %cluster, error = %e, "cannot adopt the work of peers that are down")
            }
        }
    }
}
