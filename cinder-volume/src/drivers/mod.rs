//! The driver interface, in Cinder's vocabulary. The volume service owns it; the RBD
//! adapter implements it over `rbd_driver::RbdDriver`, which knows nothing of Cinder.

pub mod rbd;

use std::future::Future;

/// Where a new volume's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateSource {
    /// Blank.
    Blank,
    /// A snapshot of a volume.
    Snapshot {
        /// The snapshot's volume.
        volume_id: String,
        /// The snapshot.
        snapshot_id: String,
    },
    /// Another volume.
    Volume {
        /// The source volume.
        volume_id: String,
    },
    /// A Glance image stored in RBD (`rbd://fsid/pool/image/snap`).
    Image {
        /// The image location.
        location: String,
    },
}

/// What the row records about a created volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// `pool/image`.
    pub provider_location: String,
    /// `pool/image@snap` of the clone parent, if it stayed a clone.
    pub rbd_parent: Option<String>,
    /// Parents above it.
    pub clone_depth: u32,
}

/// What one sweep of the trash did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrashSweep {
    /// Volume images purged.
    pub purged: usize,
    /// Volume images that must wait (clones of their snapshots remain, or in use).
    pub waiting: usize,
}

/// Why a driver operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// Ceph said no.
    #[error(transparent)]
    Driver(#[from] rbd_driver::Error),
    /// The image location cannot be cloned by this backend (other cluster, bad URL).
    #[error("image location {0} is not cloneable here")]
    NotCloneable(String),
    /// The request is invalid for the volume (e.g. shrinking).
    #[error("{0}")]
    Invalid(String),
}

/// A volume backend, as the manager drives it.
pub trait VolumeDriver: Send + Sync + 'static {
    /// Creates the volume's storage from `source`, `size_gib` large (idempotent).
    fn create_volume(
        &self,
        volume_id: &str,
        size_gib: u64,
        source: &CreateSource,
    ) -> impl Future<Output = Result<Created, VolumeError>> + Send;

    /// Deletes the volume's storage (idempotent; clones of it do not block).
    fn delete_volume(
        &self,
        volume_id: &str,
    ) -> impl Future<Output = Result<(), VolumeError>> + Send;

    /// Snapshots a volume (idempotent).
    fn create_snapshot(
        &self,
        volume_id: &str,
        snapshot_id: &str,
    ) -> impl Future<Output = Result<(), VolumeError>> + Send;

    /// Deletes a snapshot (idempotent; clones of it do not block).
    fn delete_snapshot(
        &self,
        volume_id: &str,
        snapshot_id: &str,
    ) -> impl Future<Output = Result<(), VolumeError>> + Send;

    /// Grows a volume.
    fn extend_volume(
        &self,
        volume_id: &str,
        new_size_gib: u64,
    ) -> impl Future<Output = Result<(), VolumeError>> + Send;

    /// Rolls the volume back to its snapshot, then grows it back to `size_gib` if the
    /// snapshot was taken when it was smaller (long: copies every object).
    fn revert_to_snapshot(
        &self,
        volume_id: &str,
        snapshot_id: &str,
        size_gib: u64,
    ) -> impl Future<Output = Result<(), VolumeError>> + Send;

    /// Takes the existing image `source_name` of the backend's pool as the storage of
    /// volume `volume_id` (renaming it to the volume's name) and returns its size in
    /// GiB, rounded up. Idempotent: a retry after the rename finds the volume's image.
    fn manage_existing(
        &self,
        volume_id: &str,
        source_name: &str,
    ) -> impl Future<Output = Result<(u64, Created), VolumeError>> + Send;

    /// Whether the volume's storage exists.
    fn volume_exists(
        &self,
        volume_id: &str,
    ) -> impl Future<Output = Result<bool, VolumeError>> + Send;

    /// Nova's connection info for the volume.
    fn initialize_connection(
        &self,
        volume_id: &str,
        connector: &serde_json::Value,
    ) -> impl Future<Output = Result<cinder_rpc::messages::ConnectionInfo, VolumeError>> + Send;

    /// Capacity and capabilities for the scheduler; `provisioned_gib` comes from the
    /// database.
    fn get_volume_stats(
        &self,
        provisioned_gib: i64,
    ) -> impl Future<Output = Result<serde_json::Value, VolumeError>> + Send;

    /// Removes whatever a failed create left (idempotent; `Busy` while another client,
    /// such as a killed predecessor's dead watch, still has the image open).
    fn cleanup_failed_create(
        &self,
        volume_id: &str,
    ) -> impl Future<Output = Result<(), VolumeError>> + Send;

    /// Purges the volume images waiting in the trash whose deferment has passed (those
    /// whose queued purge failed, or that waited for their clones); images that still
    /// cannot go are counted and left. Entries that are not volumes are left alone.
    fn sweep_trash(&self) -> impl Future<Output = Result<TrashSweep, VolumeError>> + Send;

    /// Names of every image in the backend's pool (one listing; no per-image opens).
    fn list_images(&self) -> impl Future<Output = Result<Vec<String>, VolumeError>> + Send;

    /// The volume id an image name stands for (`volume-<id>`), if it is one of ours.
    fn volume_id_of(&self, image_name: &str) -> Option<String>;
}

impl VolumeError {
    /// Whether Ceph refused because another client (such as a killed predecessor's
    /// dead watch) still has the image open: worth trying again later.
    pub fn is_busy(&self) -> bool {
        matches!(self, VolumeError::Driver(d) if d.kind() == rbd_driver::ErrorKind::Busy)
    }

    /// The kind a caller sees over RPC.
    pub fn remote_kind(&self) -> cinder_rpc::messages::RemoteErrorKind {
        use cinder_rpc::messages::RemoteErrorKind as R;
        use rbd_driver::ErrorKind as K;
        match self {
            VolumeError::Driver(d) => match d.kind() {
                K::NotFound => R::NotFound,
                K::Busy | K::HasDependents => R::Busy,
                K::InvalidInput | K::AlreadyExists => R::InvalidInput,
                K::Unavailable | K::TimedOut => R::Unavailable,
                K::Cancelled | K::Other => R::Internal,
            },
            VolumeError::NotCloneable(_) | VolumeError::Invalid(_) => R::InvalidInput,
        }
    }
}
