//! Plain data the driver speaks: image and snapshot specs, and what Ceph reports about
//! them. Nothing here knows about OpenStack.

use std::fmt;

/// `pool/image`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageSpec {
    /// Pool name.
    pub pool: String,
    /// Image name.
    pub name: String,
}

impl ImageSpec {
    /// `pool/name`.
    pub fn new(pool: impl Into<String>, name: impl Into<String>) -> Self {
        ImageSpec {
            pool: pool.into(),
            name: name.into(),
        }
    }

    /// The snapshot `snap` of this image.
    pub fn snap(&self, snap: impl Into<String>) -> SnapSpec {
        SnapSpec {
            image: self.clone(),
            snap: snap.into(),
        }
    }
}

impl fmt::Display for ImageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.pool, self.name)
    }
}

/// `pool/image@snap`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SnapSpec {
    /// The image.
    pub image: ImageSpec,
    /// Snapshot name.
    pub snap: String,
}

impl fmt::Display for SnapSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.image, self.snap)
    }
}

/// How to create an image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// Size in bytes.
    pub size: u64,
    /// Object size as a power of two; `None` takes the backend's `rbd_store_chunk_size`.
    pub order: Option<u8>,
    /// Feature bits; `None` takes `rbd_default_features` from ceph.conf.
    pub features: Option<u64>,
    /// A separate (e.g. erasure-coded) pool for the data objects.
    pub data_pool: Option<String>,
}

/// How to clone a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloneOptions {
    /// Feature bits; `None` takes `rbd_default_features`.
    pub features: Option<u64>,
    /// Object size order; `None` keeps the parent's.
    pub order: Option<u8>,
    /// Data pool for the clone.
    pub data_pool: Option<String>,
}

/// An image's size and use, as [`crate::RbdDriver::image_use`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    /// Size in bytes.
    pub size: u64,
    /// Clients other than this driver that have the image open.
    pub watchers: usize,
}

/// What `stat` and friends report about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Image id (stable across renames and trash moves).
    pub id: String,
    /// Size in bytes (of the snapshot when opened at one).
    pub size: u64,
    /// Object size in bytes.
    pub object_size: u64,
    /// log2 of the object size.
    pub order: u8,
    /// Feature bits.
    pub features: u64,
    /// Operation feature bits (clone-v2 parent/child, ...).
    pub op_features: u64,
    /// The clone parent, if any.
    pub parent: Option<ParentInfo>,
    /// Number of snapshots in every namespace.
    pub snapshot_count: usize,
}

/// Where a clone comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentInfo {
    /// Parent pool.
    pub pool: String,
    /// Parent image name.
    pub image: String,
    /// Parent image id.
    pub image_id: String,
    /// Parent snapshot name (for a trashed snapshot, its trash name).
    pub snap: String,
    /// Parent snapshot id.
    pub snap_id: u64,
    /// Whether the parent image is in the trash.
    pub in_trash: bool,
}

/// A clone of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildInfo {
    /// Child pool.
    pub pool: String,
    /// Child image name.
    pub image: String,
    /// Child image id.
    pub image_id: String,
    /// Whether the child is in the trash.
    pub in_trash: bool,
}

/// A snapshot's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapNamespace {
    /// A user snapshot.
    User,
    /// Part of a group snapshot.
    Group,
    /// Removed while clones still depend on it (clone v2); keeps its original name here.
    Trash {
        /// The name it had before removal.
        original_name: String,
    },
    /// A mirroring snapshot.
    Mirror,
    /// A namespace this driver does not know.
    Other(i32),
}

/// One snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapInfo {
    /// Snapshot id.
    pub id: u64,
    /// Name (for trashed snapshots the generated trash name).
    pub name: String,
    /// Image size at the snapshot.
    pub size: u64,
    /// Namespace.
    pub namespace: SnapNamespace,
    /// Protected (clone v1).
    pub protected: bool,
}

/// A client watching an image (it has the image open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watcher {
    /// Client address.
    pub addr: String,
    /// Client global id (`client.<id>`).
    pub id: i64,
    /// Watch cookie.
    pub cookie: u64,
}

/// An image in a pool's listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    /// Image id.
    pub id: String,
    /// Image name.
    pub name: String,
}

/// An image in a pool's trash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrashEntry {
    /// Image id (what purge takes).
    pub id: String,
    /// Name it had.
    pub name: String,
    /// When it was moved (unix seconds).
    pub deletion_time: i64,
    /// When it may be purged (unix seconds).
    pub deferment_end_time: i64,
}

/// One changed extent from `diff_iterate2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiffExtent {
    /// Byte offset.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// Data exists (false: the range reads as zeroes / was discarded).
    pub exists: bool,
}

/// How `remove_image` disposes of the image after moving it to the trash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveMode {
    /// Purge now, in-process, with progress and cancel.
    PurgeNow,
    /// Queue the purge with the mgr (`rbd task add trash remove`); survives our restarts.
    QueuePurge,
    /// Only move to the trash; a periodic purge deals with it.
    TrashOnly,
}

/// What `remove_image` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveOutcome {
    /// There was no such image (nor a trash entry of that name): nothing to do.
    AlreadyGone,
    /// The image is gone for good.
    Purged,
    /// The image is in the trash; its purge is queued with the mgr.
    PurgeQueued {
        /// Trash id.
        trash_id: String,
        /// The mgr task id.
        task_id: String,
    },
    /// The image is in the trash and stays there: `TrashOnly`, or a purge that must wait
    /// for clones of its (trashed) snapshots to go.
    Trashed {
        /// Trash id.
        trash_id: String,
    },
}

/// Usage of one pool from `ceph df`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Logical bytes stored in the pool.
    pub stored_bytes: u64,
    /// Bytes the pool can still take (replica-aware).
    pub max_avail_bytes: u64,
    /// Raw bytes used (all replicas).
    pub used_bytes: u64,
    /// Objects in the pool.
    pub objects: u64,
    /// Pool quota in bytes (0: none), from `osd pool get-quota`.
    pub quota_max_bytes: u64,
    /// Pool quota in objects (0: none).
    pub quota_max_objects: u64,
}

/// A monitor address for clients (`host`, `port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonAddr {
    /// Host (IP literal as the monmap has it).
    pub host: String,
    /// Port.
    pub port: u16,
}

/// A clone's place in its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    /// Parents above it: 0 for a flat image.
    pub depth: u32,
    /// Its direct parent.
    pub parent: Option<ParentInfo>,
}
