//! Recovery, for every service that claims work: claims this service (or a cluster peer
//! that is down) holds and did not finish are carried to their end or failed cleanly,
//! each by the service's own resume of its operation ([`Recover`]).
//!
//! Work the storage refuses for now ([`Resumed::Busy`]: an image a killed predecessor
//! still watches) keeps its claim and is retried in the background while the service
//! serves (duplicates of it are dropped meanwhile) until the deadline passes; then it
//! fails with its operation's failure status from the operations table. Work whose
//! handler ended in an error ([`crate::Claims::recover_later`]) is retried the same way.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cinder_common::ops::{self, ClaimKey, Outcome, ResourceKind};
use cinder_common::shutdown::CancellationToken;
use cinder_db::Ending;

use crate::claims::Claims;

/// Where resuming one claim got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    /// Finished or failed cleanly: the claim is gone.
    Done,
    /// The storage refused for now; the claim stays and is retried.
    Busy,
    /// Long work to carry on in the background rather than now (a re-run at start-up,
    /// which must not hold up serving); the claim stays and is retried without a
    /// deadline.
    Later,
    /// Not an operation of this service: it fails with its operation's failure status.
    NotMine,
}

/// A service's resume of its operations.
pub trait Recover: Send + Sync + 'static {
    /// What a resume reports (a service's reconciliation summary).
    type Report: Default + fmt::Debug + Send;
    /// Why a resume could not run.
    type Error: fmt::Display + From<cinder_db::Error> + Send;

    /// Carries the interrupted work of `key` to its end or fails it.
    fn resume(
        &self,
        key: &ClaimKey,
        report: &mut Self::Report,
    ) -> impl Future<Output = Result<Resumed, Self::Error>> + Send;
}

/// The recovery of one service.
pub struct Recovery<R: Recover> {
    inner: Arc<Inner<R>>,
}

impl<R: Recover> Clone for Recovery<R> {
    fn clone(&self) -> Self {
        Recovery {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<R> {
    recover: Arc<R>,
    claims: Arc<Claims>,
    stop: CancellationToken,
    busy_for: Duration,
}

impl<R: Recover> Recovery<R> {
    /// Recovery of the work of `claims` by `recover`, retrying refused work for
    /// `busy_for` before giving up, until `stop`. Starts taking the work that ends in
    /// an error while the service runs ([`Claims::recover_later`]).
    pub fn start(
        recover: Arc<R>,
        claims: Arc<Claims>,
        busy_for: Duration,
        stop: CancellationToken,
    ) -> Self {
        let later = claims.later_rx.lock().ok().and_then(|mut r| r.take());
        let me = Recovery {
            inner: Arc::new(Inner {
                recover,
                claims,
                stop,
                busy_for,
            }),
        };
        if let Some(mut rx) = later {
            let r = me.clone();
            tokio::spawn(async move {
                loop {
                    let key = tokio::select! {
                        _ = r.inner.stop.cancelled() => return,
                        k = rx.recv() => match k { Some(k) => k, None => return },
                    };
                    let again = r.clone();
                    tokio::spawn(async move { again.background(vec![key]).await });
                }
            });
        }
        me
    }

    /// Resumes every claim this service holds (start-up reconciliation). Returns the
    /// claims left to the background retry.
    pub async fn own_claims(&self, report: &mut R::Report) -> Result<Vec<ClaimKey>, R::Error> {
        let claims = &self.inner.claims;
        let rows = claims.db().claims_of_service(claims.service_id()).await?;
        self.take_over(rows, report).await
    }

    /// Active-active: adopts the claims of peers of `cluster_name` that are down and
    /// resumes them. Each claim moves with one conditional update, so of several live
    /// peers exactly one adopts it. Returns how many were adopted.
    pub async fn adopt_from_down_peers(
        &self,
        cluster_name: &str,
        down_time: Duration,
    ) -> Result<usize, R::Error> {
        let claims = &self.inner.claims;
        let me = claims.service_id();
        let rows = claims
            .db()
            .claims_of_down_peers(cluster_name, me, down_time)
            .await?;
        let mut adopted = Vec::new();
        for mut row in rows {
            let Some(from) = row.service_id else { continue };
            if claims.db().adopt_claim(row.id, from, me).await? {
                tracing::warn!(resource = %row.resource_id, operation = %row.operation, dead_peer = from, "adopted the unfinished work of a peer that is down");
                row.service_id = Some(me);
                adopted.push(row);
            }
        }
        let n = adopted.len();
        self.take_over(adopted, &mut R::Report::default()).await?;
        Ok(n)
    }

    /// Resumes `rows` (claims of this service), each busy meanwhile; refused or failed
    /// ones go to the background retry and are returned.
    async fn take_over(
        &self,
        rows: Vec<cinder_db::entity::workers::Model>,
        report: &mut R::Report,
    ) -> Result<Vec<ClaimKey>, R::Error> {
        let claims = &self.inner.claims;
        let mut waiting = Vec::new();
        for row in rows {
            let Some(key) = ClaimKey::parse(&row.resource_type, &row.resource_id, &row.operation)
            else {
                tracing::warn!(kind = %row.resource_type, operation = %row.operation, resource = %row.resource_id, "claim of an operation this build does not know; removing it");
                claims.db().drop_claim_row(row.id).await?;
                continue;
            };
            if !claims.busy().enter(&key) {
                // A handler here already has it (a delivery that waited for the claim
                // the dead peer held): that handler carries it on.
                continue;
            }
            match self.resume(&key, report).await {
                Ok(Resumed::Busy) => {
                    tracing::warn!(claim = %key, "the storage is still in use (a dead process's watch?); retrying in the background");
                    waiting.push(key);
                }
                Ok(Resumed::Later) => {
                    tracing::info!(claim = %key, "carried on in the background");
                    waiting.push(key);
                }
                Ok(_) => claims.busy().leave(&key),
                Err(e) => {
                    // One claim must not stop the others (nor the service): it is
                    // retried with the refused ones.
                    tracing::error!(claim = %key, error = %e, "resuming the work failed; retrying in the background");
                    waiting.push(key);
                }
            }
        }
        if !waiting.is_empty() {
            let me = self.clone();
            let keys = waiting.clone();
            tokio::spawn(async move { me.background(keys).await });
        }
        Ok(waiting)
    }

    /// One resume, giving up at once on work that is not this service's.
    async fn resume(&self, key: &ClaimKey, report: &mut R::Report) -> Result<Resumed, R::Error> {
        match self.inner.recover.resume(key, report).await? {
            Resumed::NotMine => {
                self.give_up(key).await?;
                Ok(Resumed::Done)
            }
            r => Ok(r),
        }
    }

    /// Retries claims until each is settled, the deadline passes (then it fails with
    /// its operation's failure status) or the service stops (the claims stay for the
    /// next start).
    async fn background(self, mut waiting: Vec<ClaimKey>) {
        let claims = &self.inner.claims;
        let deadline = tokio::time::Instant::now() + self.inner.busy_for;
        while !waiting.is_empty() {
            tokio::select! {
                _ = self.inner.stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
            let give_up = tokio::time::Instant::now() >= deadline;
            let mut still = Vec::new();
            for key in waiting {
                let mut report = R::Report::default();
                let outcome = match self.resume(&key, &mut report).await {
                    Ok(Resumed::Busy) | Err(_) if give_up => self.give_up(&key).await,
                    Ok(Resumed::Busy | Resumed::Later) => {
                        still.push(key);
                        continue;
                    }
                    Ok(_) => Ok(()),
                    Err(e) => {
                        tracing::warn!(claim = %key, error = %e, "resuming the work failed; trying again");
                        still.push(key);
                        continue;
                    }
                };
                claims.busy().leave(&key);
                match outcome {
                    Ok(()) => tracing::info!(claim = %key, ?report, "interrupted work settled"),
                    Err(e) => {
                        tracing::error!(claim = %key, error = %e, "interrupted work could not be settled; its claim stays for the next start")
                    }
                }
            }
            waiting = still;
        }
    }

    /// Work that cannot be carried on: its operation's failure status, and the claim
    /// goes.
    async fn give_up(&self, key: &ClaimKey) -> Result<(), R::Error> {
        tracing::error!(claim = %key, "giving up on the work");
        let claims = &self.inner.claims;
        match failed(key) {
            Some(ending) => {
                claims.finish(key, &ending).await?;
            }
            None => claims.release(key).await?,
        }
        Ok(())
    }
}

/// The failure ending of the operation holding `key`, from the operations table.
fn failed(key: &ClaimKey) -> Option<Ending> {
    let id = &key.id;
    match key.resource {
        ResourceKind::Volume => ops::volume::ALL
            .iter()
            .find(|o| o.name == key.operation)
            .map(|op| Ending::volume(op, id, Outcome::Failed)),
        ResourceKind::Snapshot => ops::snapshot::ALL
            .iter()
            .find(|o| o.name == key.operation)
            .map(|op| Ending::snapshot(op, id, Outcome::Failed)),
        ResourceKind::Backup => ops::backup::ALL
            .iter()
            .find(|o| o.name == key.operation)
            .map(|op| Ending::backup(op, id, Outcome::Failed)),
    }
}
