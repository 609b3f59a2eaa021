//! The volume manager: turns each RPC request into driver work and final statuses.
//!
//! For casts the order is always: claim the work in the `workers` table (durable), ack
//! the delivery, do the work, set the final status with a conditional update, release
//! the claim. A crash before the claim means redelivery (handled idempotently: a claim
//! the service already holds is found again); a crash after it is found by start-up
//! reconciliation. Calls reply, then ack.

use std::sync::Arc;
use std::time::Duration;

use cinder_common::shutdown::CancellationToken;
use cinder_common::status::{SnapshotStatus, VolumeStatus};
use cinder_db::{Db, VolumeChanges};
use cinder_rpc::messages::{RemoteErrorKind, VolumeRequest};
use cinder_rpc::{Incoming, RemoteError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::drivers::{CreateSource, VolumeDriver, VolumeError};

/// What start-up reconciliation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Interrupted creates now in `error`, their half-made images removed.
    pub failed_creates: Vec<String>,
    /// Interrupted deletes carried to their end.
    pub resumed_deletes: Vec<String>,
    /// Other interrupted work failed cleanly (reverts, manages not yet renamed).
    pub failed_others: Vec<String>,
    /// Other interrupted work carried to its end (manages already renamed, unmanages).
    pub finished_others: Vec<String>,
    /// Interrupted work whose image the previous process still had open, retried in the
    /// background until Ceph drops the dead watch.
    pub waiting: Vec<String>,
    /// Images in the pool no volume row knows: reported, never deleted.
    pub unknown_images: Vec<String>,
}

/// How long start-up reconciliation retries work on an image the killed predecessor
/// still watches: twice Ceph's default `osd_client_watch_timeout`.
pub const RESUME_BUSY_FOR: Duration = Duration::from_secs(60);

/// Where resuming one interrupted claim got to.
enum Resumed {
    /// Finished or failed cleanly: the claim can go.
    Done,
    /// Ceph refused: the image is still watched (by the dead predecessor).
    Busy,
}

fn busy_key(claim: &cinder_db::entity::workers::Model) -> BusyKey {
    (
        claim.resource_type.clone(),
        claim.resource_id.clone(),
        claim.operation.clone(),
    )
}

fn is_busy(e: &VolumeError) -> bool {
    matches!(e, VolumeError::Driver(d) if d.kind() == rbd_driver::ErrorKind::Busy)
}

/// Handles the requests of one backend.
pub struct VolumeManager<D> {
    db: Db,
    driver: Arc<D>,
    service_id: i32,
    /// `host@backend`.
    host: String,
    /// Resources with work running in this process (the claim table guards across
    /// processes; this catches duplicate deliveries within one).
    busy: std::sync::Mutex<std::collections::HashSet<BusyKey>>,
    metrics: Arc<crate::metrics::Metrics>,
    /// The long budget: requests that may run long librbd work (flatten, copy,
    /// rollback) accepted at once.
    long: Arc<Semaphore>,
    /// Long requests running at once (the rest of the accepted ones wait here, holding
    /// their claims): twice the driver's long lane, so that their short steps (clone,
    /// stat, parent lookups) come a few at a time instead of all at once into the short
    /// lane that connection info and blank creates use.
    long_running: Arc<Semaphore>,
    /// Shutdown: requests still waiting for a long slot go back to the queue.
    stop: CancellationToken,
}

/// How much long work a manager takes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongBudgets {
    /// Long requests accepted at once (claimed and acknowledged, or about to be).
    pub accepted: usize,
    /// Long requests running at once; the other accepted ones wait, claimed.
    pub running: usize,
}

/// Whether a request may run long librbd work (flatten, copy, rollback) and so takes
/// the long budget. Everything else is metadata work on the short budget.
pub fn is_long(body: &VolumeRequest) -> bool {
    match body {
        VolumeRequest::CreateVolume(c) => {
            c.snapshot_id.is_some() || c.source_volid.is_some() || c.image_location.is_some()
        }
        VolumeRequest::RevertToSnapshot(_) => true,
        _ => false,
    }
}

/// The budget a request holds. Every request enters on an intake permit (the short
/// budget, which is also the prefetch). Long work first takes a long permit, while its
/// delivery is still unacknowledged, and gives its intake permit back once the claim is
/// written and the delivery acknowledged: long work queued behind the driver's long
/// lane never holds the slots that short work needs.
struct Admission {
    intake: std::sync::Mutex<Option<OwnedSemaphorePermit>>,
    long: Option<OwnedSemaphorePermit>,
}

impl Admission {
    /// The delivery is acknowledged: long work frees its intake slot.
    fn acknowledged(&self) {
        if self.long.is_some() {
            if let Ok(mut intake) = self.intake.lock() {
                intake.take();
            }
        }
    }
}

/// Resource type, resource id, operation.
type BusyKey = (String, String, String);

/// How long a request waits for another operation's claim on its resource to go (the
/// API sends the next operation once the status is final, which is just before the
/// claim is released) before it is dead-lettered as a conflicting request.
const CLAIM_WAIT: Duration = Duration::from_secs(10);

/// Removes a resource from the busy set when its work ends, however it ends.
struct BusyGuard<'a> {
    set: &'a std::sync::Mutex<std::collections::HashSet<BusyKey>>,
    key: BusyKey,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.set.lock() {
            s.remove(&self.key);
        }
    }
}

fn remote(kind: RemoteErrorKind, message: impl Into<String>) -> RemoteError {
    RemoteError {
        kind,
        message: message.into(),
        retryable: false,
    }
}

fn remote_from_driver(e: &VolumeError) -> RemoteError {
    use rbd_driver::ErrorKind as K;
    match e {
        VolumeError::Driver(d) => {
            let kind = match d.kind() {
                K::NotFound => RemoteErrorKind::NotFound,
                K::Busy | K::HasDependents => RemoteErrorKind::Busy,
                K::InvalidInput | K::AlreadyExists => RemoteErrorKind::InvalidInput,
                K::Unavailable | K::TimedOut => RemoteErrorKind::Unavailable,
                K::Cancelled | K::Other => RemoteErrorKind::Internal,
            };
            RemoteError {
                kind,
                message: e.to_string(),
                retryable: matches!(kind, RemoteErrorKind::Unavailable),
            }
        }
        VolumeError::NotCloneable(_) | VolumeError::Invalid(_) => {
            remote(RemoteErrorKind::InvalidInput, e.to_string())
        }
    }
}

impl<D: VolumeDriver> VolumeManager<D> {
    /// A manager for the service row `service_id` serving `host` (`host@backend`)
    /// within the long-work `budgets`.
    pub fn new(
        db: Db,
        driver: Arc<D>,
        service_id: i32,
        host: String,
        metrics: Arc<crate::metrics::Metrics>,
        budgets: LongBudgets,
        stop: CancellationToken,
    ) -> Self {
        VolumeManager {
            db,
            driver,
            service_id,
            host,
            busy: Default::default(),
            metrics,
            long: Arc::new(Semaphore::new(budgets.accepted.max(1))),
            long_running: Arc::new(Semaphore::new(budgets.running.max(1))),
            stop,
        }
    }

    /// Handles one request to its end; `intake` is its slot of the short budget.
    pub async fn handle(&self, req: Incoming, intake: OwnedSemaphorePermit) {
        let long = if is_long(&req.envelope.body) {
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => {
                    // Not claimed yet: the broker gives it to the next consumer.
                    let _ = req.requeue().await;
                    return;
                }
                p = self.long.clone().acquire_owned() => p.ok(),
            }
        } else {
            None
        };
        let admission = Admission {
            intake: std::sync::Mutex::new(Some(intake)),
            long,
        };
        let env = &req.envelope;
        let method = serde_json::to_value(&env.body)
            .ok()
            .and_then(|v| v.get("method").and_then(|m| m.as_str()).map(str::to_string));
        let span = tracing::info_span!("rpc", request_id = %env.request_id, method = method.as_deref().unwrap_or("?"), backend = %self.host);
        let _in_flight = self.metrics.start();
        let started = std::time::Instant::now();
        let ok = self.dispatch(req, &admission).instrument(span).await;
        self.metrics.record(
            &self.host,
            method.as_deref().unwrap_or("unknown"),
            ok,
            started.elapsed(),
        );
    }

    /// Handles a request; false when it failed (for metrics).
    async fn dispatch(&self, req: Incoming, adm: &Admission) -> bool {
        let failed = std::sync::atomic::AtomicBool::new(false);
        let fail = || failed.store(true, std::sync::atomic::Ordering::Relaxed);
        let body = req.envelope.body.clone();
        let result = match body {
            VolumeRequest::CreateVolume(c) => {
                let source = match (&c.snapshot_id, &c.source_volid, &c.image_location) {
                    (Some(s), _, _) => match self.db.snapshot(s).await {
                        Ok(snap) => CreateSource::Snapshot { volume_id: snap.volume_id, snapshot_id: s.clone() },
                        Err(e) => {
                            self.fail_early(&req, &c.volume_id, VolumeStatus::Error, e.to_string()).await;
                            return false;
                        }
                    },
                    (None, Some(v), _) => CreateSource::Volume { volume_id: v.clone() },
                    (None, None, Some(l)) => CreateSource::Image { location: l.clone() },
                    _ => CreateSource::Blank,
                };
                self.claimed(&req, adm, "volume", &c.volume_id, "create_volume", async {
                    // A redelivery after reconciliation failed the create: nothing to build.
                    if self.volume_in(&c.volume_id, VolumeStatus::Creating, "create").await?.is_none() {
                        return Ok(());
                    }
                    match self.driver.create_volume(&c.volume_id, c.size_gib, &source).await {
                        Ok(created) => {
                            let changes = VolumeChanges {
                                host: Some(self.pool_host(&created.provider_location)),
                                provider_location: Some(created.provider_location),
                                rbd_parent: Some(created.rbd_parent),
                                clone_depth: Some(created.clone_depth as i32),
                                launched_at: true,
                                ..Default::default()
                            };
                            if let Err(e) = self.db.update_volume_if(&c.volume_id, &[VolumeStatus::Creating], VolumeStatus::Available, &changes).await {
                                // The row moved on meanwhile (reset, failed): no image may
                                // outlive the volume that wanted it.
                                if !matches!(&e, cinder_db::Error::Conflict { found, .. } if found == "available") {
                                    self.discard_half_made(&c.volume_id).await;
                                }
                                return Err(e);
                            }
                            tracing::info!(volume_id = %c.volume_id, "volume created");
                            Ok(())
                        }
                        Err(e) => {
                            tracing::error!(volume_id = %c.volume_id, error = %e, "create failed");
                            fail();
                            self.discard_half_made(&c.volume_id).await;
                            self.db.update_volume_status_if(&c.volume_id, &[VolumeStatus::Creating], VolumeStatus::Error).await?;
                            Ok(())
                        }
                    }
                })
                .await
            }
            VolumeRequest::DeleteVolume(d) => {
                self.claimed(&req, adm, "volume", &d.volume_id, "delete_volume", async {
                    if self.volume_in(&d.volume_id, VolumeStatus::Deleting, "delete").await?.is_none() {
                        return Ok(());
                    }
                    match self.driver.delete_volume(&d.volume_id).await {
                        Ok(()) => {
                            self.db.soft_delete_volume(&d.volume_id).await?;
                            tracing::info!(volume_id = %d.volume_id, "volume deleted");
                        }
                        Err(e) => {
                            tracing::error!(volume_id = %d.volume_id, error = %e, "delete failed");
                            fail();
                            self.db.update_volume_status_if(&d.volume_id, &[VolumeStatus::Deleting], VolumeStatus::ErrorDeleting).await?;
                        }
                    }
                    Ok(())
                })
                .await
            }
            VolumeRequest::ExtendVolume(x) => {
                self.claimed(&req, adm, "volume", &x.volume_id, "extend_volume", async {
                    match self.driver.extend_volume(&x.volume_id, x.new_size_gib).await {
                        Ok(()) => {
                            let changes = VolumeChanges { size_gib: Some(x.new_size_gib as i32), ..Default::default() };
                            self.db.update_volume_if(&x.volume_id, &[VolumeStatus::Extending], VolumeStatus::Available, &changes).await?;
                        }
                        Err(e) => {
                            tracing::error!(volume_id = %x.volume_id, error = %e, "extend failed");
                            fail();
                            self.db.update_volume_status_if(&x.volume_id, &[VolumeStatus::Extending], VolumeStatus::ErrorExtending).await?;
                        }
                    }
                    Ok(())
                })
                .await
            }
            VolumeRequest::CreateSnapshot(s) => {
                self.claimed(&req, adm, "snapshot", &s.snapshot_id, "create_snapshot", async {
                    let status = match self.driver.create_snapshot(&s.volume_id, &s.snapshot_id).await {
                        Ok(()) => SnapshotStatus::Available,
                        Err(e) => {
                            tracing::error!(snapshot_id = %s.snapshot_id, error = %e, "snapshot failed");
                            fail();
                            SnapshotStatus::Error
                        }
                    };
                    self.db.update_snapshot_status_if(&s.snapshot_id, &[SnapshotStatus::Creating], status).await?;
                    Ok(())
                })
                .await
            }
            VolumeRequest::DeleteSnapshot(s) => {
                self.claimed(&req, adm, "snapshot", &s.snapshot_id, "delete_snapshot", async {
                    match self.driver.delete_snapshot(&s.volume_id, &s.snapshot_id).await {
                        Ok(()) => self.db.soft_delete_snapshot(&s.snapshot_id).await?,
                        Err(e) => {
                            tracing::error!(snapshot_id = %s.snapshot_id, error = %e, "snapshot delete failed");
                            fail();
                            self.db.update_snapshot_status_if(&s.snapshot_id, &[SnapshotStatus::Deleting], SnapshotStatus::ErrorDeleting).await?;
                        }
                    }
                    Ok(())
                })
                .await
            }
            VolumeRequest::RevertToSnapshot(s) => {
                self.claimed(&req, adm, "volume", &s.volume_id, "revert_to_snapshot", async {
                    let Some(volume) = self.volume_in(&s.volume_id, VolumeStatus::Reverting, "revert").await? else {
                        return Ok(());
                    };
                    let (status, snap_status) = match self.driver.revert_to_snapshot(&s.volume_id, &s.snapshot_id, volume.size as u64).await {
                        Ok(()) => {
                            tracing::info!(volume_id = %s.volume_id, snapshot_id = %s.snapshot_id, "volume reverted");
                            (VolumeStatus::Available, SnapshotStatus::Available)
                        }
                        Err(e) => {
                            // As Cinder: the volume's content is now unknown (error), the
                            // snapshot is untouched (available).
                            tracing::error!(volume_id = %s.volume_id, snapshot_id = %s.snapshot_id, error = %e, "revert failed");
                            fail();
                            (VolumeStatus::Error, SnapshotStatus::Available)
                        }
                    };
                    self.end_revert(&s.volume_id, &s.snapshot_id, status, snap_status).await
                })
                .await
            }
            VolumeRequest::Retype(r) => {
                self.claimed(&req, adm, "volume", &r.volume_id, "retype", async {
                    // Same backend: RBD keeps the data where it is; only the row changes.
                    let back = match r.previous_status.parse::<VolumeStatus>() {
                        Ok(s @ (VolumeStatus::Available | VolumeStatus::InUse)) => s,
                        _ => VolumeStatus::Available,
                    };
                    let changes = VolumeChanges { volume_type_id: Some(r.new_type_id.clone()), ..Default::default() };
                    match self.db.update_volume_if(&r.volume_id, &[VolumeStatus::Retyping], back, &changes).await {
                        Err(cinder_db::Error::Conflict { found, .. }) => {
                            tracing::warn!(volume_id = %r.volume_id, status = %found, "retype for a volume not retyping; ignored");
                            Ok(())
                        }
                        other => other,
                    }
                })
                .await
            }
            VolumeRequest::ManageExisting(m) => {
                self.claimed(&req, adm, "volume", &m.volume_id, "manage_existing", async {
                    if self.volume_in(&m.volume_id, VolumeStatus::Managing, "manage").await?.is_none() {
                        return Ok(());
                    }
                    // An image that already is another volume's storage stays that volume's.
                    let taken = match self.driver.volume_id_of(&m.source_name) {
                        Some(other) if other != m.volume_id => self.db.volume(&other).await.is_ok(),
                        _ => false,
                    };
                    let result = if taken {
                        Err(VolumeError::Invalid(format!("image {} belongs to a volume already", m.source_name)))
                    } else {
                        self.driver.manage_existing(&m.volume_id, &m.source_name).await
                    };
                    match result {
                        Ok((size_gib, created)) => self.end_manage(&m.volume_id, size_gib, created).await,
                        Err(e) => {
                            tracing::error!(volume_id = %m.volume_id, image = %m.source_name, error = %e, "manage failed");
                            fail();
                            self.db.update_volume_status_if(&m.volume_id, &[VolumeStatus::Managing], VolumeStatus::ErrorManaging).await
                        }
                    }
                })
                .await
            }
            VolumeRequest::UnmanageVolume(u) => {
                self.claimed(&req, adm, "volume", &u.volume_id, "unmanage_volume", async {
                    // The image stays as it is; the row goes.
                    match self.db.soft_delete_volume_from(&u.volume_id, VolumeStatus::Unmanaging).await {
                        Ok(()) => {
                            tracing::info!(volume_id = %u.volume_id, "volume unmanaged; its image stays");
                            Ok(())
                        }
                        Err(cinder_db::Error::Conflict { found, .. }) => {
                            tracing::warn!(volume_id = %u.volume_id, status = %found, "unmanage for a volume not unmanaging; ignored");
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                })
                .await
            }
            VolumeRequest::InitializeConnection(c) => {
                let r = self.driver.initialize_connection(&c.volume_id, &c.connector).await.map_err(|e| remote_from_driver(&e));
                self.answer(&req, r).await
            }
            VolumeRequest::TerminateConnection(_) => self.answer(&req, Ok(())).await,
            VolumeRequest::GetCapabilities(_) => {
                let r = match self.db.provisioned_gib(&self.host).await {
                    Ok(p) => self.driver.get_volume_stats(p).await.map_err(|e| remote_from_driver(&e)),
                    Err(e) => Err(remote(RemoteErrorKind::Unavailable, format!("database: {e}"))),
                };
                self.answer(&req, r).await
            }
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, "request handling failed");
        }
        result.is_ok() && !failed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Start-up reconciliation, before serving: work this service claimed and did not
    /// finish is failed cleanly (creates, extends, snapshot creates, reverts) or carried
    /// to its end (deletes, manages, unmanages); images in the pool that no volume row
    /// knows are reported, never deleted.
    ///
    /// An image the killed predecessor still had open keeps its watch until the OSDs
    /// time it out (`osd_client_watch_timeout`, 30 s by default), and Ceph refuses to
    /// remove a watched image. Such work keeps its claim and is retried in the background
    /// while the service serves (duplicates of it are dropped meanwhile), until
    /// [`RESUME_BUSY_FOR`] has passed; then it fails (`error`, `error_deleting`).
    pub async fn reconcile(self: &Arc<Self>) -> Result<Reconciled, String> {
        let mut report = Reconciled::default();
        let claims = self
            .db
            .claims_of_service(self.service_id)
            .await
            .map_err(|e| e.to_string())?;
        self.take_over(claims, &mut report).await?;
        let known = self.db.live_volume_ids().await.map_err(|e| e.to_string())?;
        for name in self.driver.list_images().await.map_err(|e| e.to_string())? {
            if !self
                .driver
                .volume_id_of(&name)
                .is_some_and(|id| known.contains(&id))
            {
                tracing::warn!(image = %name, backend = %self.host, "image in the pool that no volume knows (left alone)");
                report.unknown_images.push(name);
            }
        }
        Ok(report)
    }

    /// Carries `claims` (this service's) to their end or fails them, each marked busy
    /// meanwhile; work Ceph refuses while a dead process still watches its image is
    /// handed to a background retry.
    async fn take_over(
        self: &Arc<Self>,
        claims: Vec<cinder_db::entity::workers::Model>,
        report: &mut Reconciled,
    ) -> Result<(), String> {
        let mut waiting = Vec::new();
        for claim in claims {
            let key = busy_key(&claim);
            if let Ok(mut busy) = self.busy.lock() {
                busy.insert(key.clone());
            }
            match self.resume(&claim, report).await? {
                Resumed::Done => self.settle_claim(&key).await?,
                Resumed::Busy => {
                    tracing::warn!(resource = %key.1, operation = %key.2, "image still watched by a dead process; retrying in the background");
                    report.waiting.push(key.1.clone());
                    waiting.push(claim);
                }
            }
        }
        if !waiting.is_empty() {
            let me = self.clone();
            tokio::spawn(async move { me.resume_in_background(waiting).await });
        }
        Ok(())
    }

    /// Active-active: adopts the claims of peers of `cluster_name` that are down and
    /// carries their work to its end or fails it, as start-up reconciliation does for
    /// this service's own claims. Each claim moves with one conditional update, so of
    /// several live peers exactly one adopts it. Returns how many were adopted.
    pub async fn adopt_from_down_peers(
        self: &Arc<Self>,
        cluster_name: &str,
        down_time: Duration,
    ) -> Result<usize, String> {
        let claims = self
            .db
            .claims_of_down_peers(cluster_name, self.service_id, down_time)
            .await
            .map_err(|e| e.to_string())?;
        let mut adopted = Vec::new();
        for mut claim in claims {
            let Some(from) = claim.service_id else {
                continue;
            };
            if self
                .db
                .adopt_claim(claim.id, from, self.service_id)
                .await
                .map_err(|e| e.to_string())?
            {
                tracing::warn!(resource = %claim.resource_id, operation = %claim.operation, dead_peer = from, "adopted the unfinished work of a peer that is down");
                claim.service_id = Some(self.service_id);
                adopted.push(claim);
            }
        }
        let n = adopted.len();
        self.take_over(adopted, &mut Reconciled::default()).await?;
        Ok(n)
    }

    /// Retries work whose image was still watched, until it is done, the deadline
    /// passes (then it fails cleanly) or the service stops (the claims stay for the next
    /// start).
    async fn resume_in_background(
        self: Arc<Self>,
        mut waiting: Vec<cinder_db::entity::workers::Model>,
    ) {
        let deadline = tokio::time::Instant::now() + RESUME_BUSY_FOR;
        while !waiting.is_empty() {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
            let give_up = tokio::time::Instant::now() >= deadline;
            let mut still = Vec::new();
            for claim in waiting {
                let key = busy_key(&claim);
                let mut report = Reconciled::default();
                let outcome = match self.resume(&claim, &mut report).await {
                    Ok(Resumed::Busy) if give_up => self.give_up(&claim).await,
                    Ok(Resumed::Busy) => {
                        still.push(claim);
                        continue;
                    }
                    Ok(Resumed::Done) => Ok(()),
                    Err(e) => Err(e),
                };
                match outcome.and(self.settle_claim(&key).await) {
                    Ok(()) => {
                        tracing::info!(resource = %key.1, operation = %claim.operation, ?report, "interrupted work settled")
                    }
                    Err(e) => {
                        tracing::error!(resource = %key.1, error = %e, "interrupted work could not be settled; its claim stays for the next start")
                    }
                }
            }
            waiting = still;
        }
    }

    /// Work still refused by Ceph at the deadline: its failure status.
    async fn give_up(&self, claim: &cinder_db::entity::workers::Model) -> Result<(), String> {
        let id = &claim.resource_id;
        tracing::error!(resource = %id, operation = %claim.operation, "image still in use after {RESUME_BUSY_FOR:?}; giving up");
        let (from, to) = match claim.operation.as_str() {
            "create_volume" => (VolumeStatus::Creating, VolumeStatus::Error),
            _ => (VolumeStatus::Deleting, VolumeStatus::ErrorDeleting),
        };
        match self.db.update_volume_status_if(id, &[from], to).await {
            Ok(()) | Err(cinder_db::Error::Conflict { .. } | cinder_db::Error::NotFound { .. }) => {
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Removes a failed create's image, logging when it cannot (the row in `error`
    /// still names it; deleting the volume removes it).
    async fn discard_half_made(&self, volume_id: &str) {
        if let Err(e) = self.driver.cleanup_failed_create(volume_id).await {
            tracing::warn!(volume_id, error = %e, "could not remove the image of a failed create");
        }
    }

    /// Releases a claim and its place in the busy set.
    async fn settle_claim(&self, key: &BusyKey) -> Result<(), String> {
        self.db
            .release_work(&key.0, &key.1)
            .await
            .map_err(|e| e.to_string())?;
        if let Ok(mut busy) = self.busy.lock() {
            busy.remove(key);
        }
        Ok(())
    }

    /// Carries one interrupted claim to its end or fails it cleanly.
    async fn resume(
        &self,
        claim: &cinder_db::entity::workers::Model,
        report: &mut Reconciled,
    ) -> Result<Resumed, String> {
        let id = claim.resource_id.clone();
        let done: Result<(), String> = match (
            claim.resource_type.as_str(),
            claim.operation.as_str(),
        ) {
            ("volume", "create_volume") => {
                if !matches!(self.db.volume(&id).await, Ok(v) if v.status == VolumeStatus::Creating.as_str())
                {
                    return Ok(Resumed::Done);
                }
                match self.driver.cleanup_failed_create(&id).await {
                    Err(e) if is_busy(&e) => return Ok(Resumed::Busy),
                    Err(e) => {
                        tracing::error!(volume_id = %id, error = %e, "the half-made image of an interrupted create could not be removed")
                    }
                    Ok(()) => {}
                }
                match self
                    .db
                    .update_volume_status_if(&id, &[VolumeStatus::Creating], VolumeStatus::Error)
                    .await
                {
                    Ok(()) => report.failed_creates.push(id.clone()),
                    Err(e) => {
                        tracing::info!(volume_id = %id, error = %e, "interrupted create had already ended")
                    }
                }
                Ok(())
            }
            ("volume", "delete_volume") => match self.db.volume(&id).await {
                Ok(v) if v.status == VolumeStatus::Deleting.as_str() => {
                    match self.driver.delete_volume(&id).await {
                        Err(e) if is_busy(&e) => return Ok(Resumed::Busy),
                        Ok(()) => {
                            report.resumed_deletes.push(id.clone());
                            self.db
                                .soft_delete_volume(&id)
                                .await
                                .map_err(|e| e.to_string())
                        }
                        Err(e) => {
                            tracing::error!(volume_id = %id, error = %e, "resumed delete failed");
                            self.db
                                .update_volume_status_if(
                                    &id,
                                    &[VolumeStatus::Deleting],
                                    VolumeStatus::ErrorDeleting,
                                )
                                .await
                                .map_err(|e| e.to_string())
                        }
                    }
                }
                _ => Ok(()),
            },
            ("volume", "extend_volume") => {
                let _ = self
                    .db
                    .update_volume_status_if(
                        &id,
                        &[VolumeStatus::Extending],
                        VolumeStatus::ErrorExtending,
                    )
                    .await;
                Ok(())
            }
            ("volume", "revert_to_snapshot") => {
                // Half rolled back: the content is unknown. The snapshot itself is
                // untouched; it was the one restoring.
                if self
                    .db
                    .update_volume_status_if(&id, &[VolumeStatus::Reverting], VolumeStatus::Error)
                    .await
                    .is_ok()
                {
                    report.failed_others.push(id.clone());
                }
                let _ = self.db.snapshots_restoring_to_available(&id).await;
                Ok(())
            }
            ("volume", "retype") => {
                // Nothing was done to the data: back to where it was.
                if let Ok(v) = self.db.volume(&id).await {
                    let back = match v.previous_status.as_deref().map(str::parse::<VolumeStatus>) {
                        Some(Ok(VolumeStatus::InUse)) => VolumeStatus::InUse,
                        _ => VolumeStatus::Available,
                    };
                    let _ = self
                        .db
                        .update_volume_status_if(&id, &[VolumeStatus::Retyping], back)
                        .await;
                }
                Ok(())
            }
            ("volume", "manage_existing") => {
                // Renamed already: finish it; not renamed: the source is untouched.
                if matches!(self.db.volume(&id).await, Ok(v) if v.status == VolumeStatus::Managing.as_str())
                {
                    let name = format!("volume-{id}");
                    match self.driver.volume_exists(&id).await {
                        Ok(true) => match self.driver.manage_existing(&id, &name).await {
                            Ok((size, created)) => {
                                let _ = self.end_manage(&id, size, created).await;
                                report.finished_others.push(id.clone());
                            }
                            Err(e) => {
                                tracing::error!(volume_id = %id, error = %e, "resumed manage failed")
                            }
                        },
                        _ => {
                            let _ = self
                                .db
                                .update_volume_status_if(
                                    &id,
                                    &[VolumeStatus::Managing],
                                    VolumeStatus::ErrorManaging,
                                )
                                .await;
                            report.failed_others.push(id.clone());
                        }
                    }
                }
                Ok(())
            }
            ("volume", "unmanage_volume") => {
                if self
                    .db
                    .soft_delete_volume_from(&id, VolumeStatus::Unmanaging)
                    .await
                    .is_ok()
                {
                    report.finished_others.push(id.clone());
                }
                Ok(())
            }
            ("snapshot", "create_snapshot") => {
                if let Ok(snap) = self.db.snapshot(&id).await {
                    if snap.status == SnapshotStatus::Creating.as_str() {
                        let _ = self.driver.delete_snapshot(&snap.volume_id, &id).await;
                        let _ = self
                            .db
                            .update_snapshot_status_if(
                                &id,
                                &[SnapshotStatus::Creating],
                                SnapshotStatus::Error,
                            )
                            .await;
                        report.failed_creates.push(id.clone());
                    }
                }
                Ok(())
            }
            ("snapshot", "delete_snapshot") => {
                if let Ok(snap) = self.db.snapshot(&id).await {
                    if snap.status == SnapshotStatus::Deleting.as_str()
                        && self
                            .driver
                            .delete_snapshot(&snap.volume_id, &id)
                            .await
                            .is_ok()
                    {
                        let _ = self.db.soft_delete_snapshot(&id).await;
                        report.resumed_deletes.push(id.clone());
                    }
                }
                Ok(())
            }
            (kind, op) => {
                tracing::warn!(kind, op, resource = %id, "unknown claim; releasing it");
                Ok(())
            }
        };
        done.map(|()| Resumed::Done)
    }

    /// Claim, ack, work, release.
    async fn claimed(
        &self,
        req: &Incoming,
        adm: &Admission,
        kind: &str,
        id: &str,
        operation: &str,
        work: impl std::future::Future<Output = Result<(), cinder_db::Error>>,
    ) -> Result<(), String> {
        let key = (kind.to_string(), id.to_string(), operation.to_string());
        let fresh = self
            .busy
            .lock()
            .map(|mut s| s.insert(key.clone()))
            .unwrap_or(false);
        if !fresh {
            // A duplicate delivery of work already running here: that handler owns it
            // (and a crash leaves its claim for reconciliation), so this copy is done.
            tracing::warn!(resource = %id, operation, "duplicate delivery of work in progress; acknowledged and dropped");
            return req.ack().await.map_err(|e| e.to_string());
        }
        let busy = BusyGuard {
            set: &self.busy,
            key,
        };
        let mut pause = Duration::from_millis(50);
        let waited = tokio::time::Instant::now();
        loop {
            match self
                .db
                .claim_work(kind, id, operation, self.service_id)
                .await
            {
                Ok(_) => break,
                Err(cinder_db::Error::Conflict { found, .. }) if waited.elapsed() < CLAIM_WAIT => {
                    tracing::debug!(resource = %id, holder = %found, "resource claimed by another operation; waiting");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Err(cinder_db::Error::Conflict { found, .. }) => {
                    // Still held: a conflicting request upstream. Keep the message
                    // (dead-letter) rather than drop or spin on it.
                    tracing::error!(resource = %id, holder = %found, "resource busy with another operation; rejecting the request");
                    drop(busy);
                    return req.reject().await.map_err(|e| e.to_string());
                }
                Err(e) => {
                    // The claim could not be written: leave the message for a later
                    // try (out of the busy set first, or its redelivery is dropped).
                    tracing::error!(resource = %id, error = %e, "cannot claim the work; returning the message");
                    drop(busy);
                    return req.requeue().await.map_err(|e| e.to_string());
                }
            }
        }
        req.ack().await.map_err(|e| e.to_string())?;
        adm.acknowledged();
        let _running = match adm.long {
            Some(_) => self.long_running.clone().acquire_owned().await.ok(),
            None => None,
        };
        let outcome = work.await;
        self.db
            .release_work(kind, id)
            .await
            .map_err(|e| e.to_string())?;
        outcome.map_err(|e| e.to_string())
    }

    /// The volume row if it is in `status`; `None`, logged, when the request no longer
    /// applies (a redelivery after the work ended, or a row already deleted).
    async fn volume_in(
        &self,
        id: &str,
        status: VolumeStatus,
        what: &str,
    ) -> Result<Option<cinder_db::entity::volumes::Model>, cinder_db::Error> {
        match self.db.volume(id).await {
            Ok(v) if v.status == status.as_str() => Ok(Some(v)),
            Ok(v) => {
                tracing::warn!(volume_id = id, status = %v.status, expected = %status, "{what} for a volume in another status; ignored");
                Ok(None)
            }
            Err(cinder_db::Error::NotFound { .. }) => {
                tracing::info!(volume_id = id, "{what} for a volume that is gone; ignored");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The final statuses of a revert: the volume's, then its restoring snapshot's.
    async fn end_revert(
        &self,
        volume_id: &str,
        snapshot_id: &str,
        status: VolumeStatus,
        snap_status: SnapshotStatus,
    ) -> Result<(), cinder_db::Error> {
        self.db
            .update_volume_status_if(volume_id, &[VolumeStatus::Reverting], status)
            .await?;
        match self
            .db
            .update_snapshot_status_if(snapshot_id, &[SnapshotStatus::Restoring], snap_status)
            .await
        {
            Err(cinder_db::Error::Conflict { .. }) => Ok(()),
            other => other,
        }
    }

    /// A managed image's row: its size, location and lineage, `available`.
    async fn end_manage(
        &self,
        volume_id: &str,
        size_gib: u64,
        created: crate::drivers::Created,
    ) -> Result<(), cinder_db::Error> {
        let changes = VolumeChanges {
            host: Some(self.pool_host(&created.provider_location)),
            provider_location: Some(created.provider_location),
            rbd_parent: Some(created.rbd_parent),
            clone_depth: Some(created.clone_depth as i32),
            size_gib: Some(size_gib as i32),
            launched_at: true,
            ..Default::default()
        };
        self.db
            .update_volume_if(
                volume_id,
                &[VolumeStatus::Managing],
                VolumeStatus::Available,
                &changes,
            )
            .await?;
        tracing::info!(volume_id, size_gib, "existing image managed");
        Ok(())
    }

    /// `host@backend#pool` for a `pool/image` location.
    fn pool_host(&self, provider_location: &str) -> String {
        format!(
            "{}#{}",
            self.host,
            provider_location.split('/').next().unwrap_or("")
        )
    }

    /// A request that fails before any claim: final status, then ack.
    async fn fail_early(&self, req: &Incoming, volume_id: &str, status: VolumeStatus, why: String) {
        tracing::error!(volume_id, error = %why, "request cannot be served");
        let _ = self
            .db
            .update_volume_status_if(volume_id, &[VolumeStatus::Creating], status)
            .await;
        let _ = req.ack().await;
    }

    async fn answer<R: serde::Serialize>(
        &self,
        req: &Incoming,
        r: Result<R, RemoteError>,
    ) -> Result<(), String> {
        req.reply(r).await.map_err(|e| e.to_string())?;
        req.ack().await.map_err(|e| e.to_string())
    }
}
