//! The volume topic: what the API and the scheduler ask of a volume service
//! (`cinder-volume.<host>@<backend>`).
//!
//! # Version history
//! - 1.0: create_volume, delete_volume, create_snapshot, delete_snapshot, extend_volume,
//!   initialize_connection, terminate_connection, get_capabilities.
//! - 1.1: revert_to_snapshot, retype, manage_existing, unmanage_volume.
//! - 1.2: create_volume carries the scheduler's request (`schedule`), so a create that
//!   fails on this backend can go back to the scheduler for another.
//! - 1.3: get_manageable_volumes.
//! - 1.4: create_volume carries the Glance image (`image`): cloned when one of its
//!   locations is in this cluster, downloaded otherwise.
//! - 1.5: copy_volume_to_image, reimage.

use serde::{Deserialize, Serialize};

use super::{RpcVersion, Topic};

/// The volume topic.
#[derive(Debug, Clone, Copy)]
pub struct VolumeTopic;

impl Topic for VolumeTopic {
    type Request = VolumeRequest;
    const NAME: &'static str = "volume";
    const VERSION: RpcVersion = RpcVersion { major: 1, minor: 5 };

    fn version_of(request: &VolumeRequest) -> RpcVersion {
        use VolumeRequest as R;
        let minor = match request {
            R::CreateVolume(c) if c.image.is_some() => 4,
            R::CreateVolume(c) if c.schedule.is_some() => 2,
            R::CreateVolume(_)
            | R::DeleteVolume(_)
            | R::CreateSnapshot(_)
            | R::DeleteSnapshot(_)
            | R::ExtendVolume(_)
            | R::InitializeConnection(_)
            | R::TerminateConnection(_)
            | R::GetCapabilities(_) => 0,
            R::RevertToSnapshot(_) | R::Retype(_) | R::ManageExisting(_) | R::UnmanageVolume(_) => {
                1
            }
            R::GetManageableVolumes(_) => 3,
            R::CopyVolumeToImage(_) | R::Reimage(_) => 5,
        };
        RpcVersion { major: 1, minor }
    }
}

topic! {
    /// The volume topic's requests.
    VolumeTopic => VolumeRequest {
        /// Create the volume's image (blank, or from a snapshot, volume or image location).
        cast "create_volume" CreateVolume,
        /// Delete the volume's image.
        cast "delete_volume" DeleteVolume,
        /// Snapshot a volume.
        cast "create_snapshot" CreateSnapshot,
        /// Delete a snapshot.
        cast "delete_snapshot" DeleteSnapshot,
        /// Grow a volume.
        cast "extend_volume" ExtendVolume,
        /// Connection info for a hypervisor.
        call "initialize_connection" InitializeConnection -> ConnectionInfo,
        /// A hypervisor disconnected.
        call "terminate_connection" TerminateConnection -> (),
        /// The backend's capabilities.
        call "get_capabilities" GetCapabilities -> serde_json::Value,
        /// Roll a volume back to one of its snapshots (1.1).
        cast "revert_to_snapshot" RevertToSnapshot,
        /// Change a volume's type without moving it (1.1).
        cast "retype" Retype,
        /// Bring an existing image under management as a volume (1.1).
        cast "manage_existing" ManageExisting,
        /// Release a volume from management, leaving its image (1.1).
        cast "unmanage_volume" UnmanageVolume,
        /// The pool's images, each with whether it may be managed (1.3).
        call "get_manageable_volumes" GetManageableVolumes -> Vec<ManageableVolume>,
        /// Upload the volume's data into a queued Glance image (1.5).
        cast "copy_volume_to_image" CopyVolumeToImage,
        /// Replace the volume's data by an image's (1.5).
        cast "reimage" Reimage,
    }
}

/// `create_volume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateVolume {
    /// Volume id.
    pub volume_id: String,
    /// Size in GiB.
    pub size_gib: u64,
    /// Clone from this snapshot.
    #[serde(default)]
    pub snapshot_id: Option<String>,
    /// Clone from this volume.
    #[serde(default)]
    pub source_volid: Option<String>,
    /// Clone from this image location (`rbd://fsid/pool/image/snap`).
    #[serde(default)]
    pub image_location: Option<String>,
    /// The Glance image to make the volume from (1.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Box<super::ImageSource>>,
    /// The scheduler's request, with this attempt in its `retry` (1.2): when the
    /// create fails here, it goes back to the scheduler for another backend. `None`: a
    /// failure is final.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Box<super::ScheduleCreateVolume>>,
}

/// `copy_volume_to_image`: the volume is `uploading`, the Glance image `queued`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyVolumeToImage {
    /// Volume id.
    pub volume_id: String,
    /// The Glance image to fill.
    pub image_id: String,
    /// `raw`, `qcow2`, ...
    pub disk_format: String,
    /// `bare`, ...
    pub container_format: String,
}

/// `reimage`: the volume is `downloading`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reimage {
    /// Volume id.
    pub volume_id: String,
    /// The image whose data the volume takes.
    pub image: super::ImageSource,
    /// The image metadata the volume takes with it.
    pub image_metadata: std::collections::BTreeMap<String, String>,
}

/// `delete_volume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteVolume {
    /// Volume id.
    pub volume_id: String,
}

/// `create_snapshot`: the snapshot row exists (`creating`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSnapshot {
    /// Volume id.
    pub volume_id: String,
    /// Snapshot id.
    pub snapshot_id: String,
}

/// `delete_snapshot`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteSnapshot {
    /// Volume id.
    pub volume_id: String,
    /// Snapshot id.
    pub snapshot_id: String,
}

/// `extend_volume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendVolume {
    /// Volume id.
    pub volume_id: String,
    /// New size in GiB.
    pub new_size_gib: u64,
}

/// `initialize_connection`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitializeConnection {
    /// Volume id.
    pub volume_id: String,
    /// The connector the hypervisor sent (host, initiator, ...), passed through.
    pub connector: serde_json::Value,
}

/// `terminate_connection`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TerminateConnection {
    /// Volume id.
    pub volume_id: String,
    /// The connector the hypervisor sent.
    pub connector: serde_json::Value,
}

/// `get_capabilities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GetCapabilities {}

/// `get_manageable_volumes`: every image of the backend's pool; the caller sorts and
/// pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GetManageableVolumes {}

/// One image of the pool, as `get_manageable_volumes` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManageableVolume {
    /// The image's name (the `source-name` a manage request gives).
    pub name: String,
    /// Its size in GiB, rounded up.
    pub size_gib: u64,
    /// Whether managing it is safe.
    pub safe_to_manage: bool,
    /// Why not: `already managed`, `volume in use`, `volume marked as deleted`.
    #[serde(default)]
    pub reason_not_safe: Option<String>,
    /// The volume it already is.
    #[serde(default)]
    pub cinder_id: Option<String>,
}

/// `revert_to_snapshot`: the volume is `reverting`, the snapshot `restoring`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevertToSnapshot {
    /// Volume id.
    pub volume_id: String,
    /// Snapshot id.
    pub snapshot_id: String,
}

/// `retype`: to a type this backend serves, so the data stays where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retype {
    /// Volume id.
    pub volume_id: String,
    /// The new volume type (`None`: no type).
    pub new_type_id: Option<String>,
    /// The status the volume had (`available` or `in-use`). Informational: the volume
    /// returns to the `previous_status` its row recorded when the retype began.
    pub previous_status: String,
}

/// `manage_existing`: the volume row exists (`managing`); the image is named by
/// Cinder's `source-name` reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManageExisting {
    /// Volume id.
    pub volume_id: String,
    /// The existing image's name in the backend's pool.
    pub source_name: String,
}

/// `unmanage_volume`: the volume is `unmanaging`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmanageVolume {
    /// Volume id.
    pub volume_id: String,
}

/// What `initialize_connection` returns (Nova's `connection_info`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    /// `rbd`.
    pub driver_volume_type: String,
    /// Driver data (`name`, `hosts`, `ports`, `auth_username`, `secret_uuid`, ...).
    pub data: serde_json::Value,
}
