//! The wire types. Pure serde, no AMQP.
//!
//! # Version history (volume topic)
//! - 1.0: create_volume, delete_volume, create_snapshot, delete_snapshot, extend_volume,
//!   initialize_connection, terminate_connection, get_capabilities.
//! - 1.1: revert_to_snapshot, retype, manage_existing, unmanage_volume.
//!
//! Compatibility: a minor bump adds methods or fields (`#[serde(default)]`); a service
//! accepts any minor of its major. A major bump is refused with `UnsupportedVersion`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// `major.minor` of an RPC API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RpcVersion {
    /// Incompatible changes.
    pub major: u16,
    /// Compatible additions.
    pub minor: u16,
}

impl RpcVersion {
    /// The volume topic's current version.
    pub const VOLUME: RpcVersion = RpcVersion { major: 1, minor: 1 };

    /// Whether a service speaking `self` can handle a message of `other`.
    pub fn accepts(self, other: RpcVersion) -> bool {
        self.major == other.major && other.minor <= self.minor
    }
}

impl std::fmt::Display for RpcVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl From<RpcVersion> for String {
    fn from(v: RpcVersion) -> String {
        v.to_string()
    }
}

impl TryFrom<String> for RpcVersion {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let (a, b) = s
            .split_once('.')
            .ok_or_else(|| format!("bad version {s:?}"))?;
        Ok(RpcVersion {
            major: a.parse().map_err(|_| format!("bad version {s:?}"))?,
            minor: b.parse().map_err(|_| format!("bad version {s:?}"))?,
        })
    }
}

/// Who asked: carried with every message, as oslo's context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RequestContext {
    /// Project of the caller.
    pub project_id: Option<String>,
    /// User of the caller.
    pub user_id: Option<String>,
    /// Whether the caller is an admin.
    #[serde(default)]
    pub is_admin: bool,
}

/// Every message: version, request id (`req-<uuid>`, carried into spans), caller, body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// API version of the body.
    pub version: RpcVersion,
    /// OpenStack request id.
    pub request_id: String,
    /// The caller.
    pub context: RequestContext,
    /// The request.
    pub body: T,
}

impl<T> Envelope<T> {
    /// A new envelope with a fresh request id.
    pub fn new(version: RpcVersion, context: RequestContext, body: T) -> Self {
        Envelope {
            version,
            request_id: format!("req-{}", uuid::Uuid::new_v4()),
            context,
            body,
        }
    }
}

/// What went wrong on the other side, with a kind that survives the hop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct RemoteError {
    /// The class of failure.
    pub kind: RemoteErrorKind,
    /// User-safe text (never internal detail).
    pub message: String,
    /// Whether trying again later may succeed.
    pub retryable: bool,
}

/// Classes of remote failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteErrorKind {
    /// No such resource.
    NotFound,
    /// The resource is not in a status that allows this.
    InvalidState,
    /// Busy (in use, watchers, dependants).
    Busy,
    /// Bad request arguments.
    InvalidInput,
    /// The message's version is not understood.
    UnsupportedVersion,
    /// The backend is down or unreachable.
    Unavailable,
    /// Anything else.
    Internal,
}

/// A call's reply on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply<T> {
    /// Success.
    Ok(T),
    /// Failure.
    Err(RemoteError),
}

/// Fire-and-forget requests.
pub trait Cast: Into<VolumeRequest> {}

/// Requests with a typed reply.
pub trait Call: Into<VolumeRequest> {
    /// The reply.
    type Reply: Serialize + DeserializeOwned + Send + 'static;
}

/// The volume topic's requests (`{"method": ..., "args": ...}` on the wire).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "args", rename_all = "snake_case")]
pub enum VolumeRequest {
    /// Create the volume's image (blank, or from a snapshot, volume or image location).
    CreateVolume(CreateVolume),
    /// Delete the volume's image.
    DeleteVolume(DeleteVolume),
    /// Snapshot a volume.
    CreateSnapshot(SnapshotRef),
    /// Delete a snapshot.
    DeleteSnapshot(SnapshotRef),
    /// Grow a volume.
    ExtendVolume(ExtendVolume),
    /// Connection info for a hypervisor.
    InitializeConnection(InitializeConnection),
    /// A hypervisor disconnected.
    TerminateConnection(InitializeConnection),
    /// The backend's capabilities.
    GetCapabilities(GetCapabilities),
    /// Roll a volume back to one of its snapshots (1.1).
    RevertToSnapshot(SnapshotRef),
    /// Change a volume's type without moving it (1.1).
    Retype(Retype),
    /// Bring an existing image under management as a volume (1.1).
    ManageExisting(ManageExisting),
    /// Release a volume from management, leaving its image (1.1).
    UnmanageVolume(DeleteVolume),
}

/// `retype`: to a type this backend serves, so the data stays where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retype {
    /// Volume id.
    pub volume_id: String,
    /// The new volume type (`None`: no type).
    pub new_type_id: Option<String>,
    /// The status to return to (`available` or `in-use`).
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
}

/// `delete_volume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteVolume {
    /// Volume id.
    pub volume_id: String,
}

/// A snapshot of a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
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

/// `initialize_connection` / `terminate_connection`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitializeConnection {
    /// Volume id.
    pub volume_id: String,
    /// The connector the hypervisor sent (host, initiator, ...), passed through.
    pub connector: serde_json::Value,
}

/// `get_capabilities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GetCapabilities {}

/// What `initialize_connection` returns (Nova's `connection_info`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    /// `rbd`.
    pub driver_volume_type: String,
    /// Driver data (`name`, `hosts`, `ports`, `auth_username`, `secret_uuid`, ...).
    pub data: serde_json::Value,
}

macro_rules! request {
    (cast $t:ty => $v:ident) => {
        impl From<$t> for VolumeRequest {
            fn from(r: $t) -> Self {
                VolumeRequest::$v(r)
            }
        }
        impl Cast for $t {}
    };
}

request!(cast CreateVolume => CreateVolume);
request!(cast DeleteVolume => DeleteVolume);
request!(cast ExtendVolume => ExtendVolume);
request!(cast Retype => Retype);
request!(cast ManageExisting => ManageExisting);

impl From<InitializeConnection> for VolumeRequest {
    fn from(r: InitializeConnection) -> Self {
        VolumeRequest::InitializeConnection(r)
    }
}
impl Call for InitializeConnection {
    type Reply = ConnectionInfo;
}

impl From<GetCapabilities> for VolumeRequest {
    fn from(r: GetCapabilities) -> Self {
        VolumeRequest::GetCapabilities(r)
    }
}
impl Call for GetCapabilities {
    type Reply = serde_json::Value;
}

#[cfg(test)]
mod tests;
