//! An in-memory driver for protocol tests (the `test-support` feature): volumes,
//! snapshots and foreign images in maps; every call counted per operation and
//! resource, so a test counts executions instead of inferring them; failures injected
//! per operation; a hold that keeps an operation waiting until released; and images
//! marked busy, as a dead predecessor's watch leaves them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use cinder_common::capabilities::Capacity;
use tokio::sync::Semaphore;

use crate::{
    Capabilities, Connection, CreateSource, Created, DriverError, DriverErrorKind, Lanes,
    PoolImage, TrashSweep, VolumeDriver, Work,
};

/// The fake backend.
#[derive(Default)]
pub struct FakeDriver {
    state: Mutex<State>,
    calls: Mutex<HashMap<(&'static str, String), u64>>,
    failing: Mutex<HashMap<&'static str, DriverErrorKind>>,
    holds: Mutex<HashMap<&'static str, Arc<Semaphore>>>,
}

#[derive(Default)]
struct State {
    /// Volume id → size in GiB.
    volumes: BTreeMap<String, u64>,
    /// (volume id, snapshot id).
    snapshots: BTreeSet<(String, String)>,
    /// Images of the pool that are not volumes (name → size in GiB).
    foreign: BTreeMap<String, u64>,
    /// Volumes another client still has open.
    busy: BTreeSet<String>,
}

fn image_name(volume_id: &str) -> String {
    format!("volume-{volume_id}")
}

fn not_found(what: &str) -> DriverError {
    DriverError::new(DriverErrorKind::NotFound, format!("{what} not found"))
}

impl FakeDriver {
    /// An empty backend.
    pub fn new() -> Self {
        FakeDriver::default()
    }

    /// How many times `op` (a [`VolumeDriver`] method name) ran for `id`.
    pub fn calls(&self, op: &str, id: &str) -> u64 {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|((o, i), _)| *o == op && i == id)
            .map(|(_, n)| *n)
            .sum()
    }

    /// Makes every call of `op` fail with `kind` (`None`: succeed again).
    pub fn fail(&self, op: &'static str, kind: Option<DriverErrorKind>) {
        let mut f = self.failing.lock().unwrap();
        match kind {
            Some(k) => f.insert(op, k),
            None => f.remove(op),
        };
    }

    /// Holds every call of `op` (after it is counted) until [`FakeDriver::release`].
    pub fn hold(&self, op: &'static str) {
        self.holds
            .lock()
            .unwrap()
            .insert(op, Arc::new(Semaphore::new(0)));
    }

    /// Lets the held calls of `op` go on, and later ones run at once.
    pub fn release(&self, op: &'static str) {
        if let Some(s) = self.holds.lock().unwrap().remove(op) {
            s.add_permits(Semaphore::MAX_PERMITS / 2);
        }
    }

    /// Marks volume `id`'s storage open by another client (`None`: no longer).
    pub fn set_busy(&self, id: &str, busy: bool) {
        let mut st = self.state.lock().unwrap();
        if busy {
            st.busy.insert(id.to_string());
        } else {
            st.busy.remove(id);
        }
    }

    /// Adds a volume's storage as a half-made create (or an earlier process) left it.
    pub fn add_volume(&self, id: &str, size_gib: u64) {
        self.state
            .lock()
            .unwrap()
            .volumes
            .insert(id.to_string(), size_gib);
    }

    /// Adds a snapshot of volume `volume_id`.
    pub fn add_snapshot(&self, volume_id: &str, snapshot_id: &str) {
        self.state
            .lock()
            .unwrap()
            .snapshots
            .insert((volume_id.to_string(), snapshot_id.to_string()));
    }

    /// Adds an image that is no volume (for manage).
    pub fn add_foreign_image(&self, name: &str, size_gib: u64) {
        self.state
            .lock()
            .unwrap()
            .foreign
            .insert(name.to_string(), size_gib);
    }

    /// The size of volume `id`'s storage, if it exists.
    pub fn volume_size(&self, id: &str) -> Option<u64> {
        self.state.lock().unwrap().volumes.get(id).copied()
    }

    /// Whether snapshot `snapshot_id` of `volume_id` exists.
    pub fn has_snapshot(&self, volume_id: &str, snapshot_id: &str) -> bool {
        self.state
            .lock()
            .unwrap()
            .snapshots
            .contains(&(volume_id.to_string(), snapshot_id.to_string()))
    }

    /// Counts a call, waits while `op` is held, and fails it when `op` is failing.
    async fn enter(&self, op: &'static str, id: &str) -> Result<(), DriverError> {
        *self
            .calls
            .lock()
            .unwrap()
            .entry((op, id.to_string()))
            .or_default() += 1;
        let hold = self.holds.lock().unwrap().get(op).cloned();
        if let Some(h) = hold {
            if let Ok(p) = h.acquire().await {
                p.forget();
            }
        }
        match self.failing.lock().unwrap().get(op) {
            Some(kind) => Err(DriverError::new(*kind, format!("{op} failed (injected)"))),
            None => Ok(()),
        }
    }

    fn created(volume_id: &str, depth: u32) -> Created {
        Created {
            provider_location: format!("fake/{}", image_name(volume_id)),
            rbd_parent: (depth > 0).then(|| "fake/parent@snap".to_string()),
            clone_depth: depth,
        }
    }
}

impl VolumeDriver for FakeDriver {
    fn create_work(&self, source: &CreateSource) -> Work {
        match source {
            CreateSource::Blank => Work::Short,
            _ => Work::Long,
        }
    }

    async fn create_volume(
        &self,
        volume_id: &str,
        size_gib: u64,
        source: &CreateSource,
    ) -> Result<Created, DriverError> {
        self.enter("create_volume", volume_id).await?;
        let mut st = self.state.lock().unwrap();
        let depth = match source {
            CreateSource::Blank => 0,
            CreateSource::Snapshot {
                volume_id: v,
                snapshot_id: s,
                depth,
            } => {
                if !st.snapshots.contains(&(v.clone(), s.clone())) {
                    return Err(not_found(&format!("snapshot {s}")));
                }
                depth + 1
            }
            CreateSource::Volume { volume_id: v } => {
                if !st.volumes.contains_key(v) {
                    return Err(not_found(&format!("volume {v}")));
                }
                1
            }
            CreateSource::Image { .. } => 1,
        };
        match st.volumes.get(volume_id) {
            Some(size) if *size != size_gib => {
                return Err(DriverError::new(
                    DriverErrorKind::AlreadyExists,
                    format!("volume {volume_id} exists with {size} GiB"),
                ))
            }
            _ => {
                st.volumes.insert(volume_id.to_string(), size_gib);
            }
        }
        Ok(Self::created(volume_id, depth))
    }

    async fn delete_volume(&self, volume_id: &str) -> Result<(), DriverError> {
        self.enter("delete_volume", volume_id).await?;
        let mut st = self.state.lock().unwrap();
        if st.busy.contains(volume_id) {
            return Err(DriverError::new(DriverErrorKind::Busy, "watched"));
        }
        st.volumes.remove(volume_id);
        Ok(())
    }

    async fn create_snapshot(&self, volume_id: &str, snapshot_id: &str) -> Result<(), DriverError> {
        self.enter("create_snapshot", snapshot_id).await?;
        let mut st = self.state.lock().unwrap();
        if !st.volumes.contains_key(volume_id) {
            return Err(not_found(&format!("volume {volume_id}")));
        }
        st.snapshots
            .insert((volume_id.to_string(), snapshot_id.to_string()));
        Ok(())
    }

    async fn delete_snapshot(&self, volume_id: &str, snapshot_id: &str) -> Result<(), DriverError> {
        self.enter("delete_snapshot", snapshot_id).await?;
        self.state
            .lock()
            .unwrap()
            .snapshots
            .remove(&(volume_id.to_string(), snapshot_id.to_string()));
        Ok(())
    }

    async fn extend_volume(&self, volume_id: &str, new_size_gib: u64) -> Result<(), DriverError> {
        self.enter("extend_volume", volume_id).await?;
        let mut st = self.state.lock().unwrap();
        let size = st
            .volumes
            .get_mut(volume_id)
            .ok_or_else(|| not_found(&format!("volume {volume_id}")))?;
        if new_size_gib < *size {
            return Err(DriverError::invalid("cannot shrink"));
        }
        *size = new_size_gib;
        Ok(())
    }

    async fn revert_to_snapshot(
        &self,
        volume_id: &str,
        snapshot_id: &str,
        _size_gib: u64,
    ) -> Result<(), DriverError> {
        self.enter("revert_to_snapshot", volume_id).await?;
        if !self.has_snapshot(volume_id, snapshot_id) {
            return Err(not_found(&format!("snapshot {snapshot_id}")));
        }
        Ok(())
    }

    async fn manage_existing(
        &self,
        volume_id: &str,
        source_name: &str,
    ) -> Result<(u64, Created), DriverError> {
        self.enter("manage_existing", volume_id).await?;
        let mut st = self.state.lock().unwrap();
        if let Some(size) = st.foreign.remove(source_name) {
            st.volumes.insert(volume_id.to_string(), size);
        }
        match st.volumes.get(volume_id) {
            Some(size) => Ok((*size, Self::created(volume_id, 0))),
            None => Err(not_found(&format!("image {source_name}"))),
        }
    }

    async fn volume_exists(&self, volume_id: &str) -> Result<bool, DriverError> {
        Ok(self.volume_size(volume_id).is_some())
    }

    async fn initialize_connection(
        &self,
        volume_id: &str,
        _connector: &serde_json::Value,
    ) -> Result<Connection, DriverError> {
        self.enter("initialize_connection", volume_id).await?;
        if self.volume_size(volume_id).is_none() {
            return Err(not_found(&format!("volume {volume_id}")));
        }
        Ok(Connection {
            driver_volume_type: "fake".into(),
            data: serde_json::json!({ "name": image_name(volume_id) }),
        })
    }

    fn volume_backend_name(&self) -> String {
        "fake".into()
    }

    async fn get_volume_stats(&self, provisioned_gib: i64) -> Result<Capabilities, DriverError> {
        self.enter("get_volume_stats", "").await?;
        Ok(Capabilities {
            volume_backend_name: self.volume_backend_name(),
            vendor_name: "Open Source".into(),
            driver_version: "fake".into(),
            storage_protocol: "fake".into(),
            total_capacity_gb: Capacity::Gib(100.0),
            free_capacity_gb: Capacity::Gib(100.0),
            provisioned_capacity_gb: provisioned_gib as f64,
            allocated_capacity_gb: provisioned_gib as f64,
            multiattach: true,
            thin_provisioning_support: true,
            location_info: "fake".into(),
            backend_state: "up".into(),
            ..Capabilities::default()
        })
    }

    async fn volume_in_use(&self, volume_id: &str) -> Result<bool, DriverError> {
        Ok(self.state.lock().unwrap().busy.contains(volume_id))
    }

    async fn cleanup_failed_create(&self, volume_id: &str) -> Result<(), DriverError> {
        self.enter("cleanup_failed_create", volume_id).await?;
        let mut st = self.state.lock().unwrap();
        if st.busy.contains(volume_id) {
            return Err(DriverError::new(DriverErrorKind::Busy, "watched"));
        }
        st.volumes.remove(volume_id);
        Ok(())
    }

    async fn sweep_trash(&self) -> Result<TrashSweep, DriverError> {
        Ok(TrashSweep::default())
    }

    async fn list_images(&self) -> Result<Vec<String>, DriverError> {
        let st = self.state.lock().unwrap();
        Ok(st
            .volumes
            .keys()
            .map(|v| image_name(v))
            .chain(st.foreign.keys().cloned())
            .collect())
    }

    async fn pool_images(&self) -> Result<Vec<PoolImage>, DriverError> {
        let st = self.state.lock().unwrap();
        let volumes = st.volumes.iter().map(|(v, size)| PoolImage {
            name: image_name(v),
            size_gib: *size,
            in_use: st.busy.contains(v),
        });
        let foreign = st.foreign.iter().map(|(name, size)| PoolImage {
            name: name.clone(),
            size_gib: *size,
            in_use: false,
        });
        Ok(volumes.chain(foreign).collect())
    }

    fn volume_id_of(&self, image_name: &str) -> Option<String> {
        crate::volume_id_of(image_name)
    }

    fn lanes(&self) -> Option<Lanes> {
        None
    }
}
