//! What drivers take and give.

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
        /// Parents above the snapshot's volume, as its row records them (the clone is one
        /// deeper); a stale row only ever records more than there are.
        depth: u32,
    },
    /// Another volume.
    Volume {
        /// The source volume.
        volume_id: String,
    },
    /// A Glance image stored in RBD: the first of `locations`
    /// (`rbd://fsid/pool/image/snap`) that is in this cluster and opens is cloned;
    /// none: [`crate::DriverErrorKind::NotCloneable`].
    Image {
        /// The image's locations, in Glance's order (raw images only).
        locations: Vec<String>,
    },
}

/// Whether work may run long (and so takes the service's long budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Metadata work: a create, a clone that stays a clone.
    Short,
    /// May copy data: a flatten, a copy, a rollback.
    Long,
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

/// How a hypervisor connects to a volume (Nova's `connection_info`).
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    /// `rbd`.
    pub driver_volume_type: String,
    /// Driver data (`name`, `hosts`, `ports`, `auth_username`, `secret_uuid`, ...).
    pub data: serde_json::Value,
}

/// A backend's capacity and capabilities: the shared report type.
pub use cinder_common::capabilities::Capabilities;

/// A driver's worker lanes right now, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lanes {
    /// Calls running on the short lane.
    pub short_running: u64,
    /// Calls waiting for the short lane.
    pub short_waiting: u64,
    /// Calls running on the long lane.
    pub long_running: u64,
    /// Calls waiting for the long lane.
    pub long_waiting: u64,
}

/// An image of the backend's pool, for the manageable-volumes listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolImage {
    /// Its name.
    pub name: String,
    /// Its size in GiB, rounded up.
    pub size_gib: u64,
    /// Whether another client has it open (a hypervisor, a process using it).
    pub in_use: bool,
}
