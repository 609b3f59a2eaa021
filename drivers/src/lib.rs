//! Volume drivers in Cinder's vocabulary: the interface the volume and backup services
//! drive ([`VolumeDriver`]), with its own error kinds and typed capabilities, the RBD
//! adapter over `rbd_driver::RbdDriver` ([`rbd`]) with its backend configuration, and,
//! behind the `test-support` feature, an in-memory fake for protocol tests.
//!
//! # Invariants
//! - Only the volume and backup services depend on this crate: the scheduler and the
//!   API never link librbd.
//! - Nothing here knows the database, AMQP or HTTP; the services map
//!   [`DriverErrorKind`] to their own errors and wire kinds.
#![warn(missing_docs)]

mod error;
pub mod rbd;
mod types;

#[cfg(feature = "test-support")]
pub mod fake;

pub use error::{DriverError, DriverErrorKind};
pub use types::{
    Capabilities, Connection, CreateSource, Created, Lanes, PoolImage, TrashSweep, Work,
};

use std::future::Future;

/// The volume id an image name stands for (`volume-<uuid>`, Cinder's
/// `volume_name_template`), if it is one.
pub fn volume_id_of(image_name: &str) -> Option<String> {
    image_name
        .strip_prefix("volume-")
        .filter(|id| id.len() == 36)
        .map(str::to_string)
}

/// A volume backend, as the volume service drives it.
pub trait VolumeDriver: Send + Sync + 'static {
    /// Whether creating from `source` may run long work (a flatten after a clone, a
    /// copy), and so takes the service's long budget.
    fn create_work(&self, source: &CreateSource) -> Work;

    /// Creates the volume's storage from `source`, `size_gib` large (idempotent).
    fn create_volume(
        &self,
        volume_id: &str,
        size_gib: u64,
        source: &CreateSource,
    ) -> impl Future<Output = Result<Created, DriverError>> + Send;

    /// Deletes the volume's storage (idempotent; clones of it do not block).
    fn delete_volume(
        &self,
        volume_id: &str,
    ) -> impl Future<Output = Result<(), DriverError>> + Send;

    /// Snapshots a volume (idempotent).
    fn create_snapshot(
        &self,
        volume_id: &str,
        snapshot_id: &str,
    ) -> impl Future<Output = Result<(), DriverError>> + Send;

    /// Deletes a snapshot (idempotent; clones of it do not block).
    fn delete_snapshot(
        &self,
        volume_id: &str,
        snapshot_id: &str,
    ) -> impl Future<Output = Result<(), DriverError>> + Send;

    /// Grows a volume.
    fn extend_volume(
        &self,
        volume_id: &str,
        new_size_gib: u64,
    ) -> impl Future<Output = Result<(), DriverError>> + Send;

    /// Rolls the volume back to its snapshot, then grows it back to `size_gib` if the
    /// snapshot was taken when it was smaller (long: copies every object).
    fn revert_to_snapshot(
        &self,
        volume_id: &str,
        snapshot_id: &str,
        size_gib: u64,
    ) -> impl Future<Output = Result<(), DriverError>> + Send;

    /// Takes the existing image `source_name` of the backend's pool as the storage of
    /// volume `volume_id` (renaming it to the volume's name) and returns its size in
    /// GiB, rounded up. Idempotent: a retry after the rename finds the volume's image.
    fn manage_existing(
        &self,
        volume_id: &str,
        source_name: &str,
    ) -> impl Future<Output = Result<(u64, Created), DriverError>> + Send;

    /// Whether the volume's storage exists.
    fn volume_exists(
        &self,
        volume_id: &str,
    ) -> impl Future<Output = Result<bool, DriverError>> + Send;

    /// The hypervisor's connection info for the volume.
    fn initialize_connection(
        &self,
        volume_id: &str,
        connector: &serde_json::Value,
    ) -> impl Future<Output = Result<Connection, DriverError>> + Send;

    /// Capacity and capabilities for the scheduler; `provisioned_gib` comes from the
    /// database.
    fn get_volume_stats(
        &self,
        provisioned_gib: i64,
    ) -> impl Future<Output = Result<Capabilities, DriverError>> + Send;

    /// Fills volume `volume_id`, new and blank, with the raw bytes arriving on `data`
    /// (a Glance image being downloaded); returns the bytes written. Fails when the
    /// data is larger than the volume.
    fn import_raw(
        &self,
        volume_id: &str,
        data: tokio::sync::mpsc::Receiver<Vec<u8>>,
    ) -> impl Future<Output = Result<u64, DriverError>> + Send {
        let _ = (volume_id, data);
        async { Err(DriverError::invalid("this driver cannot copy image data")) }
    }

    /// Converts the image file at `path`, of `format` (`qcow2`, `vmdk`, ...), into
    /// volume `volume_id`, new and blank.
    fn convert_into(
        &self,
        volume_id: &str,
        path: &std::path::Path,
        format: &str,
    ) -> impl Future<Output = Result<(), DriverError>> + Send {
        let _ = (volume_id, path, format);
        async {
            Err(DriverError::invalid(
                "this driver cannot convert image data",
            ))
        }
    }

    /// Empties volume `volume_id` at its size: it reads zeroes after (its snapshots
    /// keep their data; a clone no longer shows its parent's).
    fn empty_volume(
        &self,
        volume_id: &str,
    ) -> impl Future<Output = Result<(), DriverError>> + Send {
        let _ = volume_id;
        async { Err(DriverError::invalid("this driver cannot empty a volume")) }
    }

    /// Sends volume `volume_id`'s bytes to `data` in order; returns the bytes sent.
    /// `point_in_time`: as of a temporary snapshot taken now (one point in time while a
    /// server may write it); otherwise the volume as it is (nobody writes it).
    fn export_volume(
        &self,
        volume_id: &str,
        point_in_time: bool,
        data: tokio::sync::mpsc::Sender<Vec<u8>>,
    ) -> impl Future<Output = Result<u64, DriverError>> + Send {
        let _ = (volume_id, point_in_time, data);
        async {
            Err(DriverError::invalid(
                "this driver cannot read volume data out",
            ))
        }
    }

    /// Writes volume `volume_id`'s bytes (`point_in_time` as for
    /// [`VolumeDriver::export_volume`]) to a new file at `path` in `format` (`raw`,
    /// `qcow2`, ...); returns the volume's size in bytes. Anything written beside `path`
    /// on the way is removed, and so is `path` when it fails.
    fn export_volume_as(
        &self,
        volume_id: &str,
        point_in_time: bool,
        format: &str,
        path: &std::path::Path,
    ) -> impl Future<Output = Result<u64, DriverError>> + Send {
        let _ = (volume_id, point_in_time, format, path);
        async {
            Err(DriverError::invalid(
                "this driver cannot convert volume data",
            ))
        }
    }

    /// Nova's direct snapshot of a volume: a flattened copy `pool/name` with a
    /// protected snapshot `snap`, in this cluster; returns its location
    /// (`rbd://fsid/pool/name/snap`). Anything made is removed when it fails.
    fn copy_to_image_pool(
        &self,
        volume_id: &str,
        pool: &str,
        name: &str,
    ) -> impl Future<Output = Result<String, DriverError>> + Send {
        let _ = (volume_id, pool, name);
        async {
            Err(DriverError::invalid(
                "this driver cannot copy volumes to images",
            ))
        }
    }

    /// Removes what [`VolumeDriver::copy_to_image_pool`] made (idempotent).
    fn remove_image_copy(
        &self,
        pool: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), DriverError>> + Send {
        let _ = (pool, name);
        async { Ok(()) }
    }

    /// Removes whatever a failed create left (idempotent; `Busy` while another client,
    /// such as a killed predecessor's dead watch, still has the image open).
    fn cleanup_failed_create(
        &self,
        volume_id: &str,
    ) -> impl Future<Output = Result<(), DriverError>> + Send;

    /// Whether another client has the volume's image open: a VM, or a killed
    /// predecessor's watch that Ceph has not dropped yet (a missing image is not open).
    fn volume_in_use(
        &self,
        volume_id: &str,
    ) -> impl Future<Output = Result<bool, DriverError>> + Send;

    /// Purges the volume images waiting in the trash whose deferment has passed;
    /// images that still cannot go are counted and left. Entries that are not volumes
    /// are left alone.
    fn sweep_trash(&self) -> impl Future<Output = Result<TrashSweep, DriverError>> + Send;

    /// Names of every image in the backend's pool (one listing; no per-image opens).
    fn list_images(&self) -> impl Future<Output = Result<Vec<String>, DriverError>> + Send;

    /// Every image of the backend's pool with its size and whether it is open
    /// elsewhere (one open per image); images that go meanwhile are left out.
    fn pool_images(&self) -> impl Future<Output = Result<Vec<PoolImage>, DriverError>> + Send;

    /// The volume id an image name stands for (`volume-<id>`), if it is one of ours.
    fn volume_id_of(&self, image_name: &str) -> Option<String>;

    /// The driver's worker lanes, for metrics (`None`: it has none).
    fn lanes(&self) -> Option<Lanes>;

    /// The backend's `volume_backend_name`, which is also its one pool's name
    /// (`host@backend#pool`).
    fn volume_backend_name(&self) -> String;
}
