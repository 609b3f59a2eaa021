//! The backup service: full and incremental backups streamed as RBD diffs into a backup
//! pool (this cluster or another), and restores.
//!
//! It connects to the backup cluster (a wrong conf, user or pool fails at start),
//! registers its `cinder-backup` service row and heartbeats like the other services,
//! settles the work a crash interrupted, and serves the backup topic on
//! `cinder-backup.<host>`. It reaches the volumes' clusters through the same
//! `[backends.<name>]` sections the volume services read.
//!
//! # Layout
//! - [`chain`]: the chain record of a backup (`service_metadata`) and the names.
//! - [`manager`]: the requests, their claims, cancellation.
//! - [`ops`]: create, delete, restore, and their resume after a crash.
#![warn(missing_docs)]

pub mod chain;
pub mod manager;
pub mod ops;

use std::collections::BTreeMap;
use std::sync::Arc;

use std::time::Duration;

use anyhow::Context;
use cinder_common::service::{CommonSettings, ServiceConfig};
use cinder_common::shutdown::CancellationToken;
use cinder_db::ServiceRegistration;
use rbd_driver::{RbdConfig, RbdDriver};
use serde::Deserialize;
use tokio::sync::watch;

/// This binary's configuration: the shared sections and `[backup]`.
#[derive(Debug, Deserialize)]
pub struct Settings {
    /// `[service]`, `[database]`, `[amqp]`, `[logging]`.
    #[serde(flatten)]
    pub common: CommonSettings,
    /// `[backup]`
    #[serde(default = "BackupSettings::defaults")]
    pub backup: BackupSettings,
    /// `[backends.<name>]`: where the volumes of each backend live (the volume
    /// services' sections).
    #[serde(default)]
    pub backends: BTreeMap<String, serde_json::Value>,
}

impl ServiceConfig for Settings {
    fn common(&self) -> &CommonSettings {
        &self.common
    }
}

/// `[backup]`: where backups go, with Cinder's option names and defaults
/// (`backup_ceph_*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSettings {
    /// The backup cluster's ceph.conf (it may be another cluster than the volumes').
    #[serde(default = "default_conf")]
    pub backup_ceph_conf: String,
    /// The cephx user of the backup cluster (without `client.`).
    #[serde(default = "default_user")]
    pub backup_ceph_user: String,
    /// The pool of the base images.
    #[serde(default = "default_pool")]
    pub backup_ceph_pool: String,
    /// Threads streaming backups and restores at once (the driver's long lane).
    #[serde(default = "default_streams")]
    pub max_concurrent_streams: usize,
    /// How long a restore to a new volume waits for the volume to be created, seconds.
    #[serde(default = "default_volume_wait")]
    pub restore_volume_wait_secs: u64,
    /// Seconds running streams get at shutdown before they are cancelled.
    #[serde(default = "default_grace")]
    pub shutdown_grace_secs: u64,
}

fn default_volume_wait() -> u64 {
    600
}

fn default_grace() -> u64 {
    10
}

fn default_conf() -> String {
    "/etc/ceph/ceph.conf".into()
}

fn default_user() -> String {
    "cinder-backup".into()
}

fn default_pool() -> String {
    "backups".into()
}

fn default_streams() -> usize {
    2
}

impl BackupSettings {
    /// Every default.
    pub fn defaults() -> Self {
        BackupSettings {
            backup_ceph_conf: default_conf(),
            backup_ceph_user: default_user(),
            backup_ceph_pool: default_pool(),
            max_concurrent_streams: default_streams(),
            restore_volume_wait_secs: default_volume_wait(),
            shutdown_grace_secs: default_grace(),
        }
    }

    /// The driver configuration of the backup cluster.
    pub fn rbd(&self) -> anyhow::Result<RbdConfig> {
        let cfg: RbdConfig = serde_json::from_value(serde_json::json!({
            "rbd_ceph_conf": self.backup_ceph_conf,
            "rbd_user": self.backup_ceph_user,
            "rbd_pool": self.backup_ceph_pool,
            "long_op_threads": self.max_concurrent_streams.max(1),
        }))
        .context("[backup]")?;
        cfg.validate()
            .map_err(|e| anyhow::anyhow!("[backup]: {e}"))?;
        Ok(cfg)
    }
}

/// Runs until `shutdown` is cancelled.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let db = cinder_db::Db::connect_checked(settings.common.database.connection.expose())
        .await
        .context("checking the database")?;
    let b = &settings.backup;
    let cluster = tokio::time::timeout(Duration::from_secs(60), RbdDriver::connect(b.rbd()?))
        .await
        .with_context(|| {
            format!(
                "the backup cluster of {} did not answer within 60 s",
                b.backup_ceph_conf
            )
        })?
        .with_context(|| {
            format!(
                "cannot use backup pool {} of {} as client.{}",
                b.backup_ceph_pool, b.backup_ceph_conf, b.backup_ceph_user
            )
        })?;
    for name in settings.backends.keys() {
        cinder_drivers::rbd::RbdBackendConfig::from_backends(&settings.backends, name)
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    let service = &settings.common.service;
    let amqp = settings.common.amqp.transport_url.expose();
    let registration = ServiceRegistration {
        host: service.host.clone(),
        binary: "cinder-backup".into(),
        topic: "cinder-backup".into(),
        availability_zone: service.storage_availability_zone.clone(),
        cluster_name: None,
    };
    let (_no_caps, caps) = watch::channel(None);
    let registered = cinder_service::register(
        &db,
        &registration,
        Duration::from_secs(service.report_interval),
        caps,
        shutdown.clone(),
    )
    .await
    .context("registering the backup service")?;
    let claims = Arc::new(cinder_service::Claims::new(db.clone(), registered.row.id));
    let manager = Arc::new(manager::BackupManager::new(
        db.clone(),
        claims.clone(),
        cluster.clone(),
        b.backup_ceph_pool.clone(),
        settings.backends.clone(),
        Duration::from_secs(b.restore_volume_wait_secs),
    ));
    // Work a crash interrupted is settled before new work is taken.
    let recovery = cinder_service::Recovery::start(
        manager.clone(),
        claims.clone(),
        Duration::from_secs(60),
        shutdown.clone(),
    );
    if let Err(e) = recovery.own_claims(&mut ()).await {
        tracing::error!(error = %e, "settling interrupted backup work failed; retrying in the background");
    }
    let queue = cinder_rpc::topology::backup_queue(&service.host);
    let intake = cinder_service::Intake::new(
        amqp,
        (b.max_concurrent_streams * 4).max(8),
        shutdown.clone(),
    );
    let server = intake
        .bind::<cinder_rpc::messages::BackupTopic>(&queue)
        .await
        .with_context(|| format!("cannot consume {queue}"))?;
    tracing::info!(
        host = %service.host,
        fsid = cluster.fsid(),
        pool = %b.backup_ceph_pool,
        %queue,
        "cinder-backup serving"
    );
    let m = manager.clone();
    intake
        .serve(
            manager.clone(),
            vec![(queue.clone(), server)],
            Duration::from_secs(b.shutdown_grace_secs),
            move || m.cancel_streams(),
        )
        .await;
    manager.close().await;
    registered.stopped().await;
    tracing::info!("cinder-backup stopped");
    Ok(())
}
