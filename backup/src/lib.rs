//! The backup service: full and incremental backups streamed as RBD diffs into a backup
//! pool (this cluster or another), and restores.
//!
//! Today it connects to the backup cluster (a wrong conf, user or pool fails at start),
//! registers its `cinder-backup` service row and heartbeats like the other services, so
//! it shows in os-services. The queue `cinder-backup.<host>`, the backup topic and the
//! operations arrive with the rest of the backup issue; the streams themselves are
//! `rbd_driver::RbdDriver::send_diff`.
#![warn(missing_docs)]

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
    let service = &settings.common.service;
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
    tracing::info!(
        host = %service.host,
        fsid = cluster.fsid(),
        pool = %b.backup_ceph_pool,
        "cinder-backup started (registered and heartbeating; backup operations arrive with their issue)"
    );
    shutdown.cancelled().await;
    registered.stopped().await;
    Ok(())
}
