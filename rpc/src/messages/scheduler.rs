//! The scheduler topic: what the API asks of the scheduler (`cinder-scheduler`, one
//! queue all schedulers share), and what a volume service sends back when a create
//! failed on it and may be tried elsewhere.
//!
//! # Version history
//! - 1.0: create_volume, get_pools.
//! - 1.1: create_volume carries the Glance image a volume is made from (`image`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{RpcVersion, Topic};

/// The scheduler topic.
#[derive(Debug, Clone, Copy)]
pub struct SchedulerTopic;

impl Topic for SchedulerTopic {
    type Request = SchedulerRequest;
    const NAME: &'static str = "scheduler";
    const VERSION: RpcVersion = RpcVersion { major: 1, minor: 1 };

    fn version_of(request: &SchedulerRequest) -> RpcVersion {
        let minor = match request {
            SchedulerRequest::ScheduleCreateVolume(c) if c.image.is_some() => 1,
            _ => 0,
        };
        RpcVersion { major: 1, minor }
    }
}

topic! {
    /// The scheduler topic's requests.
    SchedulerTopic => SchedulerRequest {
        /// Place a new volume (status `creating`, no host yet) and cast its create to
        /// the chosen backend.
        cast "create_volume" ScheduleCreateVolume,
        /// The pools the scheduler sees (`GET /scheduler-stats/get_pools`).
        call "get_pools" GetPools -> Vec<Pool>,
    }
}

/// The volume type a create asks for, as the scheduler needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VolumeTypeSpec {
    /// Type id.
    pub id: String,
    /// Type name.
    pub name: String,
    /// Its extra specs (matched against capabilities; `volume_backend_name` pins a
    /// backend).
    #[serde(default)]
    pub extra_specs: BTreeMap<String, String>,
}

/// `OS-SCH-HNT:scheduler_hints`: volume ids the new volume should share a backend
/// with, or avoid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SchedulerHints {
    /// Place with these volumes.
    #[serde(default)]
    pub same_host: Option<Vec<String>>,
    /// Place away from these volumes.
    #[serde(default)]
    pub different_host: Option<Vec<String>>,
}

/// Earlier attempts of one create (Cinder's `filter_properties['retry']`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Retry {
    /// Attempts made so far.
    pub num_attempts: u32,
    /// Pools (`host@backend#pool`) the attempts went to, in order.
    pub backends: Vec<String>,
    /// Why the last attempt failed.
    #[serde(default)]
    pub exc: Option<String>,
}

/// `create_volume` on the scheduler topic: the request spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleCreateVolume {
    /// Volume id.
    pub volume_id: String,
    /// Size in GiB.
    pub size_gib: u64,
    /// The volume type, if any.
    #[serde(default)]
    pub volume_type: Option<VolumeTypeSpec>,
    /// The availability zone asked for (`None`: any).
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// Clone from this snapshot (the create stays on its volume's backend).
    #[serde(default)]
    pub snapshot_id: Option<String>,
    /// Clone from this volume (the create stays on its backend).
    #[serde(default)]
    pub source_volid: Option<String>,
    /// Clone from this image location (`rbd://fsid/pool/image/snap`).
    #[serde(default)]
    pub image_location: Option<String>,
    /// The Glance image the volume is made from (1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Box<ImageSource>>,
    /// Scheduler hints.
    #[serde(default)]
    pub scheduler_hints: SchedulerHints,
    /// Earlier attempts (empty on the first).
    #[serde(default)]
    pub retry: Retry,
}

/// A Glance image a volume is made from, as the API found it: enough to clone it where
/// it lives in RBD, or to download it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSource {
    /// Image id.
    pub id: String,
    /// `raw`, `qcow2`, ... (only `raw` is cloned).
    #[serde(default)]
    pub disk_format: Option<String>,
    /// `bare`, ...
    #[serde(default)]
    pub container_format: Option<String>,
    /// Bytes stored.
    #[serde(default)]
    pub size: Option<u64>,
    /// Its locations in Glance's order (`direct_url` last when not among them): the
    /// first `rbd://fsid/pool/image/snap` of the backend's cluster is cloned.
    #[serde(default)]
    pub locations: Vec<String>,
}

impl ImageSource {
    /// The Ceph cluster ids (fsids) of its `rbd://` locations, in order.
    pub fn rbd_fsids(&self) -> Vec<&str> {
        self.locations
            .iter()
            .filter_map(|l| l.strip_prefix("rbd://"))
            .filter_map(|l| l.split('/').next())
            .filter(|f| !f.is_empty())
            .collect()
    }
}

/// `get_pools`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GetPools {
    /// Include each pool's capabilities.
    #[serde(default)]
    pub detail: bool,
    /// Only the pool of this name.
    #[serde(default)]
    pub name: Option<String>,
    /// Only pools whose capabilities match this type's extra specs.
    #[serde(default)]
    pub volume_type: Option<VolumeTypeSpec>,
}

/// One pool as `get_pools` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    /// `host@backend#pool`.
    pub name: String,
    /// The capabilities as reported (with `detail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<serde_json::Value>,
}
