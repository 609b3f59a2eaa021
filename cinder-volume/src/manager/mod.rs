//! The volume manager: routes each RPC request to its operation (`crate::ops`, one
//! file per operation holding its run and its resume after a crash) and holds what they
//! share: the database, the driver, the budgets and the claim protocol.
//!
//! For casts the order is always: claim the work in the `workers` table (durable), ack
//! the delivery, do the work, then finish: the final status, the columns the work
//! produced and the release of the claim, in one transaction (`Db::finish`). A crash
//! before the claim means redelivery (handled idempotently: a claim the service
//! already holds is found again); a crash after it is found by start-up reconciliation
//! (`crate::recovery`). Calls reply, then ack.

mod budget;
mod error;

use std::future::Future;
use std::sync::Arc;

use cinder_common::ops::ClaimKey;
use cinder_common::shutdown::CancellationToken;
use cinder_db::{Db, Ending};
use cinder_drivers::{CreateSource, VolumeDriver, Work};
use cinder_rpc::messages::{Method, VolumeRequest, VolumeTopic};
use cinder_rpc::{Incoming, RemoteError};
use cinder_service::{Claim, Claims, Finished, Handler};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::ops;

pub(crate) use budget::Admission;
pub use budget::LongBudgets;
pub use error::ManagerError;

/// How a handled request went, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// Did what it was asked (or found it already done).
    Ok,
    /// The operation failed; its resource took the failure status.
    Failed,
}

/// Handles the requests of one backend.
pub struct VolumeManager<D> {
    pub(crate) db: Db,
    pub(crate) driver: Arc<D>,
    /// `host@backend`.
    pub(crate) host: String,
    /// The claim protocol (and the work running in this process).
    pub(crate) claims: Arc<Claims>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// The long budget: requests that may run long librbd work accepted at once.
    long: Arc<Semaphore>,
    /// Long requests running at once (the rest of the accepted ones wait here, holding
    /// their claims): twice the driver's long lane, so that their short steps come a
    /// few at a time instead of all at once into the short lane.
    long_running: Arc<Semaphore>,
    /// Shutdown: requests still waiting for a long slot go back to the queue.
    stop: CancellationToken,
    /// Where creates that failed here go back for another backend (`None`: a failed
    /// create is final).
    pub(crate) scheduler: Option<(cinder_rpc::Caster, String)>,
    /// The image service (`None`: not configured; images that cannot be cloned fail).
    pub(crate) glance: Option<cinder_glance::Glance>,
    /// Where non-raw images wait while `qemu-img` converts them.
    pub(crate) conversion_dir: std::path::PathBuf,
    /// Glance's RBD pool, where raw uploads go as copies when Glance takes them.
    pub(crate) glance_pool: String,
    /// When our cephx user was last refused in Glance's pool: uploads skip the direct
    /// path for a while after (each attempt costs a snapshot).
    pub(crate) direct_refused: std::sync::Mutex<Option<std::time::Instant>>,
    /// Set once start-up reconciliation is done: long resumes (a create run again)
    /// wait for it, in the background, so they never hold up serving.
    pub(crate) reconciled: std::sync::atomic::AtomicBool,
}

impl<D: VolumeDriver> Handler<VolumeTopic> for VolumeManager<D> {
    async fn handle(self: Arc<Self>, req: Incoming<VolumeTopic>, intake: OwnedSemaphorePermit) {
        self.serve(req, intake).await
    }
}

impl<D: VolumeDriver> VolumeManager<D> {
    /// A manager making `claims` for `host` (`host@backend`) within the long-work
    /// `budgets`.
    pub fn new(
        claims: Arc<Claims>,
        driver: Arc<D>,
        host: String,
        metrics: Arc<crate::metrics::Metrics>,
        budgets: LongBudgets,
        stop: CancellationToken,
    ) -> Self {
        VolumeManager {
            db: claims.db().clone(),
            driver,
            host,
            claims,
            metrics,
            long: Arc::new(Semaphore::new(budgets.accepted.max(1))),
            long_running: Arc::new(Semaphore::new(budgets.running.max(1))),
            stop,
            scheduler: None,
            glance: None,
            conversion_dir: std::env::temp_dir(),
            glance_pool: "images".into(),
            direct_refused: std::sync::Mutex::new(None),
            reconciled: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Images that cannot be cloned are downloaded from `glance`; non-raw ones wait
    /// in `conversion_dir` while they are converted.
    pub fn with_images(
        mut self,
        glance: Option<cinder_glance::Glance>,
        conversion_dir: impl Into<std::path::PathBuf>,
        glance_pool: &str,
    ) -> Self {
        self.glance = glance;
        self.conversion_dir = conversion_dir.into();
        self.glance_pool = glance_pool.to_string();
        self
    }

    /// Creates that fail here go back to the scheduler's `queue` through the broker at
    /// `amqp` when their request allows another attempt.
    pub fn with_scheduler(mut self, amqp: &str, queue: &str) -> Self {
        self.scheduler = Some((cinder_rpc::Caster::new(amqp), queue.to_string()));
        self
    }

    /// Handles one request to its end; `intake` is its slot of the short budget.
    pub async fn serve(self: &Arc<Self>, req: Incoming<VolumeTopic>, intake: OwnedSemaphorePermit) {
        let method = req.envelope.body.method();
        // A create's source is read once: it decides the budget and feeds the work.
        let source = match &req.envelope.body {
            VolumeRequest::CreateVolume(c) => Some(ops::create::source(self, c).await),
            _ => None,
        };
        let long = match (&req.envelope.body, &source) {
            (
                VolumeRequest::RevertToSnapshot(_)
                | VolumeRequest::CopyVolumeToImage(_)
                | VolumeRequest::Reimage(_),
                _,
            ) => true,
            (_, Some(Ok(s))) => self.driver.create_work(s) == Work::Long,
            // A create whose source cannot be read fails at once.
            _ => false,
        };
        let long = if long {
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => {
                    // Not claimed yet: the broker gives it to the next consumer.
                    if let Err(e) = req.requeue().await {
                        tracing::warn!(method, error = %e, "cannot return a request at shutdown; the broker redelivers it");
                    }
                    return;
                }
                p = self.long.clone().acquire_owned() => p.ok(),
            }
        } else {
            None
        };
        let admission = Admission::new(intake, long);
        let span = tracing::info_span!("rpc", request_id = %req.envelope.request_id, method, backend = %self.host);
        let _in_flight = self.metrics.start();
        let started = std::time::Instant::now();
        let outcome = self
            .dispatch(req, source, &admission)
            .instrument(span.clone())
            .await;
        let ok = match outcome {
            Ok(ran) => ran == Ran::Ok,
            Err(e) => {
                span.in_scope(|| tracing::error!(error = %e, "request handling failed"));
                false
            }
        };
        self.metrics
            .record(&self.host, method, ok, started.elapsed());
    }

    /// Routes a request to its operation (a create with its `source`, read already).
    async fn dispatch(
        self: &Arc<Self>,
        req: Incoming<VolumeTopic>,
        source: Option<Result<CreateSource, cinder_db::Error>>,
        adm: &Admission,
    ) -> Result<Ran, ManagerError> {
        use VolumeRequest as R;
        match req.envelope.body.clone() {
            R::CreateVolume(c) => {
                let source = match source {
                    Some(s) => s,
                    None => ops::create::source(self, &c).await,
                };
                ops::create::accept(self, &req, adm, c, source).await
            }
            R::DeleteVolume(d) => {
                let key = ops::delete::OP.claim(&d.volume_id);
                self.claimed(&req, adm, key, |k| ops::delete::run(self, k))
                    .await
            }
            R::ExtendVolume(x) => {
                let key = ops::extend::OP.claim(&x.volume_id);
                self.claimed(&req, adm, key, |k| ops::extend::run(self, k, &x))
                    .await
            }
            R::CreateSnapshot(s) => {
                let key = ops::snapshot::CREATE.claim(&s.snapshot_id);
                self.claimed(&req, adm, key, |k| ops::snapshot::create(self, k, &s))
                    .await
            }
            R::DeleteSnapshot(s) => {
                let key = ops::snapshot::DELETE.claim(&s.snapshot_id);
                self.claimed(&req, adm, key, |k| ops::snapshot::delete(self, k, &s))
                    .await
            }
            R::RevertToSnapshot(r) => {
                let key = ops::revert::OP.claim(&r.volume_id);
                self.claimed(&req, adm, key, |k| ops::revert::run(self, k, &r))
                    .await
            }
            R::Retype(r) => {
                let key = ops::retype::OP.claim(&r.volume_id);
                self.claimed(&req, adm, key, |k| ops::retype::run(self, k, &r))
                    .await
            }
            R::ManageExisting(m) => {
                let key = ops::manage::MANAGE.claim(&m.volume_id);
                self.claimed(&req, adm, key, |k| ops::manage::manage(self, k, &m))
                    .await
            }
            R::UnmanageVolume(u) => {
                let key = ops::manage::UNMANAGE.claim(&u.volume_id);
                self.claimed(&req, adm, key, |k| ops::manage::unmanage(self, k))
                    .await
            }
            R::InitializeConnection(c) => {
                let r = ops::connection::initialize(self, &c).await;
                self.answer(&req, r).await
            }
            R::TerminateConnection(_) => self.answer(&req, Ok(())).await,
            R::GetCapabilities(_) => {
                let r = ops::connection::capabilities(self).await;
                self.answer(&req, r).await
            }
            R::GetManageableVolumes(_) => {
                let r = ops::manage::manageable(self).await;
                self.answer(&req, r).await
            }
            R::Reimage(x) => {
                let key = ops::reimage::OP.claim(&x.volume_id);
                let asked = (
                    req.envelope.request_id.clone(),
                    req.envelope.context.auth_token.clone(),
                );
                self.claimed(&req, adm, key, |k| ops::reimage::run(self, k, &x, asked))
                    .await
            }
            R::CopyVolumeToImage(u) => {
                let key = ops::upload::OP.claim(&u.volume_id);
                let asked = (
                    req.envelope.request_id.clone(),
                    req.envelope.context.auth_token.clone(),
                );
                self.claimed(&req, adm, key, |k| ops::upload::run(self, k, &u, asked))
                    .await
            }
        }
    }

    /// Counts the beginning of `claim`'s work (the `executions` table): every
    /// operation calls it once it finds its resource still busy with it, right before
    /// the driver.
    pub(crate) async fn executing(&self, claim: &ClaimKey) -> Result<(), ManagerError> {
        Ok(self.claims.executing(claim).await?)
    }

    /// Releases a claim whose work changed no status (it found nothing to do).
    pub(crate) async fn release(&self, claim: &ClaimKey) -> Result<(), ManagerError> {
        Ok(self.claims.release(claim).await?)
    }

    /// Claim, ack, work (which finishes or releases the claim). Work that ends in an
    /// error keeps its claim and goes to recovery.
    pub(crate) async fn claimed<F, Fut>(
        &self,
        req: &Incoming<VolumeTopic>,
        adm: &Admission,
        key: ClaimKey,
        work: F,
    ) -> Result<Ran, ManagerError>
    where
        F: FnOnce(ClaimKey) -> Fut,
        Fut: Future<Output = Result<Ran, ManagerError>>,
    {
        let busy = match self.claims.claim(req, &key).await? {
            Claim::Run(busy) => busy,
            Claim::Duplicate => return Ok(Ran::Ok),
            Claim::Rejected => return Ok(Ran::Failed),
        };
        adm.acknowledged();
        let _running = match adm.is_long() {
            true => self.long_running.clone().acquire_owned().await.ok(),
            false => None,
        };
        let outcome = work(key.clone()).await;
        match &outcome {
            // A cluster peer adopted the claim (it judged this service down): the work
            // is the peer's now; recovering it here would run it twice.
            Err(ManagerError::Db(cinder_db::Error::ClaimNotHeld { .. })) => {
                tracing::warn!(claim = %key, "a cluster peer adopted this work; leaving it to the peer");
            }
            Err(e) => {
                tracing::error!(claim = %key, error = %e, "work ended in an error; recovery takes it over");
                self.claims.recover_later(busy);
            }
            Ok(_) => {}
        }
        outcome
    }

    /// `host@backend#pool`, the pool being the backend's `volume_backend_name` (Cinder's
    /// RBD driver reports one pool per backend).
    pub(crate) fn pool_host(&self) -> String {
        format!("{}#{}", self.host, self.driver.volume_backend_name())
    }

    async fn answer<R: serde::Serialize>(
        &self,
        req: &Incoming<VolumeTopic>,
        r: Result<R, RemoteError>,
    ) -> Result<Ran, ManagerError> {
        let ran = if r.is_ok() { Ran::Ok } else { Ran::Failed };
        req.reply(r).await?;
        req.ack().await?;
        Ok(ran)
    }
}

impl<D: VolumeDriver> VolumeManager<D> {
    /// Finishes the work: `ending`'s statuses and the release of `claim`, in one
    /// transaction (`Db::finish`). When the resource is no longer busy
    /// with the operation (reset, failed, deleted meanwhile), releases the claim
    /// instead and returns false.
    pub(crate) async fn finish_or_release(
        &self,
        claim: &ClaimKey,
        ending: &Ending,
    ) -> Result<bool, ManagerError> {
        Ok(self.claims.finish(claim, ending).await?.done())
    }

    /// Finishes as [`VolumeManager::finish_or_release`], saying where a resource that
    /// moved on is now.
    pub(crate) async fn finish(
        &self,
        claim: &ClaimKey,
        ending: &Ending,
    ) -> Result<Finished, ManagerError> {
        Ok(self.claims.finish(claim, ending).await?)
    }

    /// Whether this service still holds `claim` (a cluster peer may have adopted it
    /// meanwhile): checked before recovery touches storage.
    pub(crate) async fn holds(&self, claim: &ClaimKey) -> Result<bool, ManagerError> {
        Ok(self
            .db
            .claim_on(claim.resource, &claim.id)
            .await?
            .is_some_and(|c| {
                c.service_id == Some(self.claims.service_id()) && c.operation == claim.operation
            }))
    }

    /// The volume row if it is in `status`; `None`, logged, when the request no longer
    /// applies (a redelivery after the work ended, or a row already deleted).
    pub(crate) async fn volume_in(
        &self,
        id: &str,
        status: cinder_common::status::VolumeStatus,
    ) -> Result<Option<cinder_db::entity::volumes::Model>, ManagerError> {
        self.volume_in_any(id, &[status]).await
    }

    /// The volume row if it is in one of `statuses` (as [`VolumeManager::volume_in`]).
    pub(crate) async fn volume_in_any(
        &self,
        id: &str,
        statuses: &[cinder_common::status::VolumeStatus],
    ) -> Result<Option<cinder_db::entity::volumes::Model>, ManagerError> {
        match self.db.volume(id).await {
            Ok(v) if statuses.contains(&v.status) => Ok(Some(v)),
            Ok(v) => {
                tracing::warn!(volume_id = id, status = %v.status, expected = ?statuses, "request for a volume in another status; ignored");
                Ok(None)
            }
            Err(cinder_db::Error::NotFound { .. }) => {
                tracing::info!(volume_id = id, "request for a volume that is gone; ignored");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The snapshot row if it is in `status` (as [`VolumeManager::volume_in`]).
    pub(crate) async fn snapshot_in(
        &self,
        id: &str,
        status: cinder_common::status::SnapshotStatus,
    ) -> Result<Option<cinder_db::entity::snapshots::Model>, ManagerError> {
        match self.db.snapshot(id).await {
            Ok(s) if s.status == status => Ok(Some(s)),
            Ok(s) => {
                tracing::warn!(snapshot_id = id, status = %s.status, expected = %status, "request for a snapshot in another status; ignored");
                Ok(None)
            }
            Err(cinder_db::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
