//! Recovery: work this service (or a cluster peer that is down) claimed and did not
//! finish is carried to its end or failed cleanly, each by its own operation's resume
//! (`crate::ops`); images in the pool that no volume row knows are reported, never
//! deleted.
//!
//! An image the killed predecessor still had open keeps its watch until the OSDs time
//! it out (`osd_client_watch_timeout`, 30 s by default), and Ceph refuses to remove a
//! watched image. Such work keeps its claim and is retried in the background while the
//! service serves (duplicates of it are dropped meanwhile), until [`RESUME_BUSY_FOR`]
//! has passed; then it fails with its operation's failure status. Work that ended in an
//! error while the service ran is handed to the same background retry.

use std::sync::Arc;
use std::time::Duration;

use cinder_common::ops::{self, ClaimKey, Outcome, ResourceKind};
use cinder_db::Ending;

use crate::drivers::VolumeDriver;
use crate::manager::{ManagerError, VolumeManager};

/// What reconciliation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Interrupted creates now in `error`, their half-made images removed.
    pub failed_creates: Vec<String>,
    /// Interrupted deletes carried to their end.
    pub resumed_deletes: Vec<String>,
    /// Other interrupted work failed cleanly (extends, reverts, retypes, manages not
    /// yet renamed).
    pub failed_others: Vec<String>,
    /// Other interrupted work carried to its end (manages already renamed, unmanages).
    pub finished_others: Vec<String>,
    /// Interrupted work whose image the previous process still had open, retried in the
    /// background until Ceph drops the dead watch.
    pub waiting: Vec<String>,
    /// Images in the pool that no volume row knows: reported, never deleted.
    pub unknown_images: Vec<String>,
}

/// How long recovery retries work on an image the killed predecessor still watches:
/// twice Ceph's default `osd_client_watch_timeout`.
pub const RESUME_BUSY_FOR: Duration = Duration::from_secs(60);

/// Where resuming one claim got to.
pub(crate) enum Resumed {
    /// Finished or failed cleanly: the claim is gone.
    Done,
    /// Ceph refused: the image is still watched (by a dead predecessor); the claim stays.
    Busy,
}

/// Ends interrupted work with `ending` (its claim released with it); when the resource
/// moved, its id goes to `into` (a list of the report).
pub(crate) async fn settle<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: &ClaimKey,
    ending: &Ending,
    into: &mut Vec<String>,
) -> Result<Resumed, ManagerError> {
    if m.finish_or_release(key, ending).await? {
        into.push(key.id.clone());
    }
    Ok(Resumed::Done)
}

impl<D: VolumeDriver> VolumeManager<D> {
    /// Start-up reconciliation, before serving: this service's claims, then the pool's
    /// images against the volume rows.
    pub async fn reconcile(self: &Arc<Self>) -> Result<Reconciled, ManagerError> {
        let mut report = Reconciled::default();
        let claims = self.db.claims_of_service(self.service_id).await?;
        self.take_over(claims, &mut report).await?;
        let known = self.db.live_volume_ids().await?;
        for name in self.driver.list_images().await? {
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

    /// Active-active: adopts the claims of peers of `cluster_name` that are down and
    /// carries their work to its end or fails it, as start-up reconciliation does for
    /// this service's own claims. Each claim moves with one conditional update, so of
    /// several live peers exactly one adopts it. Returns how many were adopted.
    pub async fn adopt_from_down_peers(
        self: &Arc<Self>,
        cluster_name: &str,
        down_time: Duration,
    ) -> Result<usize, ManagerError> {
        let claims = self
            .db
            .claims_of_down_peers(cluster_name, self.service_id, down_time)
            .await?;
        let mut adopted = Vec::new();
        for mut claim in claims {
            let Some(from) = claim.service_id else {
                continue;
            };
            if self.db.adopt_claim(claim.id, from, self.service_id).await? {
                tracing::warn!(resource = %claim.resource_id, operation = %claim.operation, dead_peer = from, "adopted the unfinished work of a peer that is down");
                claim.service_id = Some(self.service_id);
                adopted.push(claim);
            }
        }
        let n = adopted.len();
        self.take_over(adopted, &mut Reconciled::default()).await?;
        Ok(n)
    }

    /// Carries `claims` (this service's) to their end or fails them, each marked busy
    /// meanwhile; work Ceph refuses while a dead process still watches its image is
    /// handed to the background retry.
    async fn take_over(
        self: &Arc<Self>,
        claims: Vec<cinder_db::entity::workers::Model>,
        report: &mut Reconciled,
    ) -> Result<(), ManagerError> {
        let mut waiting = Vec::new();
        for claim in claims {
            let Some(key) =
                ClaimKey::parse(&claim.resource_type, &claim.resource_id, &claim.operation)
            else {
                tracing::warn!(kind = %claim.resource_type, operation = %claim.operation, resource = %claim.resource_id, "claim of an operation this build does not know; removing it");
                self.db.drop_claim_row(claim.id).await?;
                continue;
            };
            self.busy.enter(&key);
            let resumed = self.resume(&key, report).await;
            match resumed {
                Ok(Resumed::Done) => self.busy.leave(&key),
                Ok(Resumed::Busy) => {
                    tracing::warn!(claim = %key, "image still watched by a dead process; retrying in the background");
                    report.waiting.push(key.id.clone());
                    waiting.push(key);
                }
                Err(e) => {
                    self.busy.leave(&key);
                    return Err(e);
                }
            }
        }
        if !waiting.is_empty() {
            let me = self.clone();
            tokio::spawn(async move { me.resume_in_background(waiting).await });
        }
        Ok(())
    }

    /// Hands claims whose work ended in an error to the background retry.
    pub(crate) fn recover_later(self: &Arc<Self>, keys: Vec<ClaimKey>) {
        for key in &keys {
            self.busy.enter(key);
        }
        let me = self.clone();
        tokio::spawn(async move { me.resume_in_background(keys).await });
    }

    /// The resume of the operation holding `key`.
    async fn resume(
        &self,
        key: &ClaimKey,
        report: &mut Reconciled,
    ) -> Result<Resumed, ManagerError> {
        use crate::ops as o;
        let op = key.operation;
        match key.resource {
            ResourceKind::Volume if op == o::create::OP.name => {
                o::create::resume(self, key, report).await
            }
            ResourceKind::Volume if op == o::delete::OP.name => {
                o::delete::resume(self, key, report).await
            }
            ResourceKind::Volume if op == o::extend::OP.name => {
                o::extend::resume(self, key, report).await
            }
            ResourceKind::Volume if op == o::revert::OP.name => {
                o::revert::resume(self, key, report).await
            }
            ResourceKind::Volume if op == o::retype::OP.name => {
                o::retype::resume(self, key, report).await
            }
            ResourceKind::Volume if op == o::manage::MANAGE.name => {
                o::manage::resume_manage(self, key, report).await
            }
            ResourceKind::Volume if op == o::manage::UNMANAGE.name => {
                o::manage::resume_unmanage(self, key, report).await
            }
            ResourceKind::Snapshot if op == o::snapshot::CREATE.name => {
                o::snapshot::resume_create(self, key, report).await
            }
            ResourceKind::Snapshot if op == o::snapshot::DELETE.name => {
                o::snapshot::resume_delete(self, key, report).await
            }
            _ => {
                // Another service's kind of work (a backup, say): its operation's
                // failure status, so nothing stays busy.
                self.give_up(key).await?;
                Ok(Resumed::Done)
            }
        }
    }

    /// Retries claims until each is done, the deadline passes (then it fails with its
    /// operation's failure status) or the service stops (the claims stay for the next
    /// start).
    async fn resume_in_background(self: Arc<Self>, mut waiting: Vec<ClaimKey>) {
        let deadline = tokio::time::Instant::now() + RESUME_BUSY_FOR;
        while !waiting.is_empty() {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
            let give_up = tokio::time::Instant::now() >= deadline;
            let mut still = Vec::new();
            for key in waiting {
                let mut report = Reconciled::default();
                let outcome = match self.resume(&key, &mut report).await {
                    Ok(Resumed::Busy) | Err(_) if give_up => self.give_up(&key).await,
                    Ok(Resumed::Busy) => {
                        still.push(key);
                        continue;
                    }
                    Ok(Resumed::Done) => Ok(()),
                    Err(e) => {
                        tracing::warn!(claim = %key, error = %e, "resuming the work failed; trying again");
                        still.push(key);
                        continue;
                    }
                };
                match outcome {
                    Ok(()) => {
                        self.busy.leave(&key);
                        tracing::info!(claim = %key, ?report, "interrupted work settled")
                    }
                    Err(e) => {
                        self.busy.leave(&key);
                        tracing::error!(claim = %key, error = %e, "interrupted work could not be settled; its claim stays for the next start")
                    }
                }
            }
            waiting = still;
        }
    }

    /// Work that cannot be carried on: its operation's failure status, and the claim
    /// goes.
    async fn give_up(&self, key: &ClaimKey) -> Result<(), ManagerError> {
        tracing::error!(claim = %key, "giving up on the work after {RESUME_BUSY_FOR:?}");
        let ending = match key.resource {
            ResourceKind::Volume => ops::volume::ALL
                .iter()
                .find(|o| o.name == key.operation)
                .map(|op| Ending::volume(op, &key.id, Outcome::Failed)),
            ResourceKind::Snapshot => ops::snapshot::ALL
                .iter()
                .find(|o| o.name == key.operation)
                .map(|op| Ending::snapshot(op, &key.id, Outcome::Failed)),
            ResourceKind::Backup => ops::backup::ALL
                .iter()
                .find(|o| o.name == key.operation)
                .map(|op| Ending::backup(op, &key.id, Outcome::Failed)),
        };
        match ending {
            Some(ending) => {
                self.finish_or_release(key, &ending).await?;
            }
            None => self.release(key).await?,
        }
        Ok(())
    }
}
