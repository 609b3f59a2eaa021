//! `VolumeDriver` for Ceph RBD: names (`volume-<id>`, `snapshot-<id>`), clone chains with
//! a soft and a hard depth limit, deletes through the trash, Nova's `rbd` connection info
//! and capacity from one `df`.
//!
//! Clone depth counts every parent kind (snapshots of volumes, volumes, Glance images,
//! images in the trash). Past `rbd_max_clone_depth` (hard) the new volume is flattened
//! before it becomes available; past the soft limit (one less) a flatten is queued with
//! the mgr and the create succeeds at once.

mod clone;
mod config;
mod image_data;

pub use config::{CinderOptions, RbdBackendConfig};

use cinder_common::capabilities::Capacity;
use rbd_driver::{ImageSpec, OpCtl, RbdConfig, RbdDriver, RemoveMode, RemoveOutcome};

use crate::{
    Capabilities, Connection, CreateSource, Created, DriverError, Lanes, PoolImage, TrashSweep,
    VolumeDriver, Work,
};

const GIB: u64 = 1 << 30;

/// The RBD backend.
#[derive(Clone, Debug)]
pub struct RbdVolumeDriver {
    driver: RbdDriver,
    /// The same driver over the long lane's connection, for every call of long requests
    /// (creates that may flatten, reverts): see [`RbdDriver::background`].
    background: RbdDriver,
    /// The volume service's policy for this backend.
    policy: CinderOptions,
    /// Cancels long work (in-process flattens) at shutdown.
    cancel: rbd_driver::CancellationToken,
}

impl RbdVolumeDriver {
    /// Wraps a connected driver with the backend's `policy`; `cancel` stops long work
    /// at shutdown.
    pub fn new(
        driver: RbdDriver,
        policy: CinderOptions,
        cancel: rbd_driver::CancellationToken,
    ) -> Self {
        RbdVolumeDriver {
            background: driver.background(),
            driver,
            policy,
            cancel,
        }
    }

    /// The connected driver (for its pool's statistics and tests).
    pub fn rbd(&self) -> &RbdDriver {
        &self.driver
    }

    fn config(&self) -> &RbdConfig {
        self.driver.config()
    }

    /// `volume-<id>` in the backend's pool.
    pub fn volume_image(&self, volume_id: &str) -> ImageSpec {
        ImageSpec::new(&self.config().rbd_pool, format!("volume-{volume_id}"))
    }

    fn ctl(&self) -> OpCtl {
        OpCtl::with_cancel(self.cancel.child_token())
    }

    async fn grow_to(&self, spec: &ImageSpec, size_gib: u64) -> Result<(), DriverError> {
        let size = self.background.image_info(spec).await?.size;
        if size_gib * GIB > size {
            self.background
                .resize(spec, size_gib * GIB, false, &self.ctl())
                .await?;
        }
        Ok(())
    }
}

/// A snapshot a backup took of the volume (`backup.<backup id>.snap.<time>`).
/// A snapshot an upload to an image takes for its read (`upload-<tag>`) or its copy
/// (`image-<image id>`), left behind when the service died mid-upload.
fn is_upload_snap(name: &str) -> bool {
    name.starts_with("upload-") || name.starts_with("image-")
}

fn is_backup_snap(name: &str) -> bool {
    name.strip_prefix("backup.")
        .and_then(|r| r.split_once(".snap."))
        .is_some_and(|(id, ts)| !id.is_empty() && !ts.is_empty())
}

/// What the row records of `spec`, `depth` parents deep (asking `driver` for the parent).
async fn created(driver: &RbdDriver, spec: &ImageSpec, depth: u32) -> Result<Created, DriverError> {
    let parent = if depth > 0 {
        driver.parent(spec).await?
    } else {
        None
    };
    Ok(Created {
        provider_location: spec.to_string(),
        rbd_parent: parent.map(|p| format!("{}/{}@{}", p.pool, p.image, p.snap)),
        clone_depth: depth,
    })
}

impl VolumeDriver for RbdVolumeDriver {
    fn create_work(&self, source: &CreateSource) -> Work {
        self.clone_work(source)
    }

    async fn create_volume(
        &self,
        volume_id: &str,
        size_gib: u64,
        source: &CreateSource,
    ) -> Result<Created, DriverError> {
        self.create(volume_id, size_gib, source).await
    }

    async fn delete_volume(&self, volume_id: &str) -> Result<(), DriverError> {
        let spec = self.volume_image(volume_id);
        // The source snapshots backups keep for the next incremental go with the
        // volume (as Cinder's RBD driver removes them): the backups themselves live in
        // the backup pool, and an image with snapshots is not removed. So do those an
        // upload killed midway left.
        match self.driver.list_snapshots(&spec).await {
            Ok(snaps) => {
                for s in snaps
                    .iter()
                    .filter(|s| is_backup_snap(&s.name) || is_upload_snap(&s.name))
                {
                    self.driver
                        .remove_snapshot(&spec.snap(&s.name), &OpCtl::new())
                        .await?;
                }
            }
            Err(e) if e.kind() == rbd_driver::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        // Into the trash at once (clones of its snapshots do not block), then the purge
        // is queued with the mgr, outside this handler and surviving our restarts.
        if let RemoveOutcome::Trashed { trash_id } = self
            .driver
            .remove_image(&spec, RemoveMode::TrashOnly, &OpCtl::new())
            .await?
        {
            if let Err(e) = self.driver.queue_trash_purge(&spec.pool, &trash_id).await {
                tracing::warn!(image = %spec, error = %e, "purge not queued with the mgr; the image waits in the trash");
            }
        }
        Ok(())
    }

    async fn create_snapshot(&self, volume_id: &str, snapshot_id: &str) -> Result<(), DriverError> {
        Ok(self
            .driver
            .create_snapshot(
                &self
                    .volume_image(volume_id)
                    .snap(format!("snapshot-{snapshot_id}")),
            )
            .await?)
    }

    async fn delete_snapshot(&self, volume_id: &str, snapshot_id: &str) -> Result<(), DriverError> {
        let snap = self
            .volume_image(volume_id)
            .snap(format!("snapshot-{snapshot_id}"));
        Ok(self.driver.remove_snapshot(&snap, &OpCtl::new()).await?)
    }

    async fn extend_volume(&self, volume_id: &str, new_size_gib: u64) -> Result<(), DriverError> {
        let spec = self.volume_image(volume_id);
        let size = self.driver.image_info(&spec).await?.size;
        if new_size_gib * GIB < size {
            return Err(DriverError::invalid(format!(
                "cannot shrink {spec} to {new_size_gib} GiB"
            )));
        }
        Ok(self
            .driver
            .resize(&spec, new_size_gib * GIB, false, &self.ctl())
            .await?)
    }

    async fn revert_to_snapshot(
        &self,
        volume_id: &str,
        snapshot_id: &str,
        size_gib: u64,
    ) -> Result<(), DriverError> {
        let spec = self.volume_image(volume_id);
        self.background
            .rollback_to_snapshot(&spec.snap(format!("snapshot-{snapshot_id}")), &self.ctl())
            .await?;
        // The rollback gives the image the snapshot's size; the volume keeps its own.
        self.grow_to(&spec, size_gib).await
    }

    async fn manage_existing(
        &self,
        volume_id: &str,
        source_name: &str,
    ) -> Result<(u64, Created), DriverError> {
        let spec = self.volume_image(volume_id);
        let source = ImageSpec::new(&self.config().rbd_pool, source_name);
        if source_name.is_empty() || source_name.contains('/') || source_name.contains('@') {
            return Err(DriverError::invalid(format!(
                "{source_name:?} is not an image name in pool {}",
                source.pool
            )));
        }
        if source_name != spec.name {
            self.driver.rename_image(&source, &spec.name).await?;
        }
        let size = self.driver.image_info(&spec).await?.size;
        let depth = self.driver.clone_depth(&spec).await?;
        Ok((
            size.div_ceil(GIB),
            created(&self.driver, &spec, depth).await?,
        ))
    }

    async fn volume_exists(&self, volume_id: &str) -> Result<bool, DriverError> {
        Ok(self.driver.exists(&self.volume_image(volume_id)).await?)
    }

    async fn initialize_connection(
        &self,
        volume_id: &str,
        _connector: &serde_json::Value,
    ) -> Result<Connection, DriverError> {
        // As Cinder's driver: built from the configuration and the (cached) monitor
        // addresses, without opening the image, so connection info never waits on OSDs
        // busy with long work. A missing image fails the hypervisor's attach, clearly.
        let spec = self.volume_image(volume_id);
        let mons = self.driver.mon_addrs().await?;
        let policy = &self.policy;
        let cfg = self.config();
        Ok(Connection {
            driver_volume_type: "rbd".into(),
            data: serde_json::json!({
                "name": spec.to_string(),
                "hosts": mons.iter().map(|m| m.host.clone()).collect::<Vec<_>>(),
                "ports": mons.iter().map(|m| m.port.to_string()).collect::<Vec<_>>(),
                "cluster_name": policy.rbd_cluster_name,
                "auth_enabled": cfg.rbd_user.is_some(),
                "auth_username": cfg.rbd_user,
                "secret_type": "ceph",
                "secret_uuid": policy.rbd_secret_uuid.clone().unwrap_or_else(|| self.driver.fsid().to_string()),
                "volume_id": volume_id,
                "discard": true,
            }),
        })
    }

    fn volume_backend_name(&self) -> String {
        self.policy
            .volume_backend_name
            .clone()
            .unwrap_or_else(|| "RBD".into())
    }

    async fn get_volume_stats(&self, provisioned_gib: i64) -> Result<Capabilities, DriverError> {
        let cfg = self.config();
        let u = self.driver.pool_usage(&cfg.rbd_pool).await?;
        let gib = |b: u64| (b as f64 / GIB as f64 * 100.0).round() / 100.0;
        let free = if u.quota_max_bytes > 0 {
            u.quota_max_bytes
                .saturating_sub(u.stored_bytes)
                .min(u.max_avail_bytes)
        } else {
            u.max_avail_bytes
        };
        let total = if u.quota_max_bytes > 0 {
            u.quota_max_bytes
        } else {
            u.stored_bytes + free
        };
        Ok(Capabilities {
            volume_backend_name: self.volume_backend_name(),
            vendor_name: "Open Source".into(),
            driver_version: env!("CARGO_PKG_VERSION").into(),
            storage_protocol: "ceph".into(),
            total_capacity_gb: Capacity::Gib(gib(total)),
            free_capacity_gb: Capacity::Gib(gib(free)),
            provisioned_capacity_gb: provisioned_gib as f64,
            allocated_capacity_gb: provisioned_gib as f64,
            reserved_percentage: self.policy.reserved_percentage,
            multiattach: true,
            thin_provisioning_support: true,
            thick_provisioning_support: false,
            max_over_subscription_ratio: self.policy.max_over_subscription_ratio,
            location_info: format!(
                "{}:{}:{}:{}:{}",
                self.policy.rbd_cluster_name,
                cfg.rbd_ceph_conf,
                self.driver.fsid(),
                cfg.rbd_user.as_deref().unwrap_or(""),
                cfg.rbd_pool
            ),
            backend_state: "up".into(),
            qos_support: false,
            timestamp: None,
        })
    }

    async fn sweep_trash(&self) -> Result<TrashSweep, DriverError> {
        let pool = &self.config().rbd_pool;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let mut sweep = TrashSweep::default();
        for entry in self.driver.trash_list(pool).await? {
            if self.volume_id_of(&entry.name).is_none() || entry.deferment_end_time > now {
                continue;
            }
            match self.driver.purge_trash(pool, &entry.id, &self.ctl()).await {
                Ok(()) => sweep.purged += 1,
                Err(e)
                    if matches!(
                        e.kind(),
                        rbd_driver::ErrorKind::HasDependents | rbd_driver::ErrorKind::Busy
                    ) =>
                {
                    sweep.waiting += 1
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(sweep)
    }

    async fn list_images(&self) -> Result<Vec<String>, DriverError> {
        Ok(self
            .driver
            .list_images(&self.config().rbd_pool)
            .await?
            .into_iter()
            .map(|e| e.name)
            .collect())
    }

    async fn pool_images(&self) -> Result<Vec<PoolImage>, DriverError> {
        let pool = &self.config().rbd_pool;
        let mut images = Vec::new();
        for entry in self.driver.list_images(pool).await? {
            match self
                .driver
                .image_use(&ImageSpec::new(pool, &entry.name))
                .await
            {
                Ok(u) => images.push(PoolImage {
                    size_gib: u.size.div_ceil(GIB),
                    in_use: u.watchers > 0,
                    name: entry.name,
                }),
                Err(e) if e.kind() == rbd_driver::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(images)
    }

    fn volume_id_of(&self, image_name: &str) -> Option<String> {
        crate::volume_id_of(image_name)
    }

    fn lanes(&self) -> Option<Lanes> {
        let s = self.driver.pool_stats();
        Some(Lanes {
            short_running: s.short.running as u64,
            short_waiting: s.short.waiting as u64,
            long_running: s.long.running as u64,
            long_waiting: s.long.waiting as u64,
        })
    }

    async fn import_raw(
        &self,
        volume_id: &str,
        data: tokio::sync::mpsc::Receiver<Vec<u8>>,
    ) -> Result<u64, DriverError> {
        self.import_raw_data(volume_id, data).await
    }

    async fn convert_into(
        &self,
        volume_id: &str,
        path: &std::path::Path,
        format: &str,
    ) -> Result<(), DriverError> {
        self.convert_file(volume_id, path, format).await
    }

    async fn empty_volume(&self, volume_id: &str) -> Result<(), DriverError> {
        let spec = self.volume_image(volume_id);
        let d = &self.background;
        let size = d.image_info(&spec).await?.size;
        d.resize(&spec, 0, true, &self.ctl()).await?;
        d.resize(&spec, size, false, &self.ctl()).await?;
        Ok(())
    }

    async fn export_volume(
        &self,
        volume_id: &str,
        point_in_time: bool,
        data: tokio::sync::mpsc::Sender<Vec<u8>>,
    ) -> Result<u64, DriverError> {
        self.export_volume_data(volume_id, point_in_time, data)
            .await
    }

    async fn export_volume_as(
        &self,
        volume_id: &str,
        point_in_time: bool,
        format: &str,
        path: &std::path::Path,
    ) -> Result<u64, DriverError> {
        self.export_volume_file(volume_id, point_in_time, format, path)
            .await
    }

    async fn copy_to_image_pool(
        &self,
        volume_id: &str,
        pool: &str,
        name: &str,
    ) -> Result<String, DriverError> {
        self.publish(volume_id, pool, name).await
    }

    async fn remove_image_copy(&self, pool: &str, name: &str) -> Result<(), DriverError> {
        self.unpublish(pool, name).await
    }

    async fn volume_in_use(&self, volume_id: &str) -> Result<bool, DriverError> {
        match self.driver.watchers(&self.volume_image(volume_id)).await {
            Ok(w) => Ok(!w.is_empty()),
            Err(e) if e.kind() == rbd_driver::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn cleanup_failed_create(&self, volume_id: &str) -> Result<(), DriverError> {
        let spec = self.volume_image(volume_id);
        self.driver
            .remove_image(&spec, RemoveMode::PurgeNow, &OpCtl::new())
            .await?;
        Ok(())
    }
}
