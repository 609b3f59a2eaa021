//! The claim protocol, for every service that works on resources: mark the work busy
//! in this process, claim it in the `workers` table (waiting a while for another
//! operation's claim to go), acknowledge the delivery, and let the work finish (final
//! status and release in one transaction, `Db::finish`) or release its claim. Work
//! that ends in an error keeps its claim and is handed to [`crate::Recovery`].

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use cinder_common::ops::ClaimKey;
use cinder_db::{Db, Ending};
use cinder_rpc::{Incoming, RpcError, Topic};
use tokio::sync::mpsc;

/// How long a request waits for another operation's claim on its resource to go (the
/// API sends the next operation once the status is final, which is when the claim is
/// released) before it is dead-lettered as a conflicting request.
pub const CLAIM_WAIT: Duration = Duration::from_secs(10);

/// How long a request that could not be claimed because the database is unavailable
/// waits before it goes back to its queue.
pub const REQUEUE_PAUSE: Duration = Duration::from_secs(1);

/// What stopped a claim.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The database failed (the delivery went back to the queue).
    #[error(transparent)]
    Db(#[from] cinder_db::Error),
    /// The broker failed (ack, reject, requeue).
    #[error(transparent)]
    Rpc(#[from] RpcError),
}

/// How finishing went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// The final status is written and the claim released, together.
    Done,
    /// The resource was no longer busy with the operation (reset, failed, deleted
    /// meanwhile, `found` says where it is; `None`: gone): nothing changed but the
    /// release of the claim.
    MovedOn {
        /// Its status now, if it still exists.
        found: Option<String>,
    },
}

impl Finished {
    /// Whether the final status was written.
    pub fn done(&self) -> bool {
        matches!(self, Finished::Done)
    }
}

/// Where a claim got to.
pub enum Claim<'a> {
    /// Claimed and acknowledged: run the work (busy in this process until dropped).
    Run(Busy<'a>),
    /// A duplicate delivery of work running here: acknowledged and dropped.
    Duplicate,
    /// Another operation held the resource too long: dead-lettered.
    Rejected,
}

/// The claims with work running in this process.
#[derive(Default)]
pub struct BusySet(Mutex<HashSet<ClaimKey>>);

impl BusySet {
    /// Marks `key` busy; false when it already was (a duplicate delivery).
    pub fn enter(&self, key: &ClaimKey) -> bool {
        self.0
            .lock()
            .map(|mut s| s.insert(key.clone()))
            .unwrap_or(false)
    }

    /// Marks `key` no longer busy.
    pub fn leave(&self, key: &ClaimKey) {
        if let Ok(mut s) = self.0.lock() {
            s.remove(key);
        }
    }
}

/// Busy in this process until dropped.
pub struct Busy<'a> {
    set: &'a BusySet,
    key: &'a ClaimKey,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.set.leave(self.key);
    }
}

/// One service's claims.
pub struct Claims {
    db: Db,
    service_id: i32,
    busy: BusySet,
    later: mpsc::UnboundedSender<ClaimKey>,
    pub(crate) later_rx: Mutex<Option<mpsc::UnboundedReceiver<ClaimKey>>>,
}

impl Claims {
    /// The claims of service row `service_id`.
    pub fn new(db: Db, service_id: i32) -> Self {
        let (later, rx) = mpsc::unbounded_channel();
        Claims {
            db,
            service_id,
            busy: BusySet::default(),
            later,
            later_rx: Mutex::new(Some(rx)),
        }
    }

    /// The service row.
    pub fn service_id(&self) -> i32 {
        self.service_id
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The work running in this process.
    pub fn busy(&self) -> &BusySet {
        &self.busy
    }

    /// Claims `key` for the work `req` asks for, and acknowledges the delivery.
    pub async fn claim<'a, T: Topic>(
        &'a self,
        req: &Incoming<T>,
        key: &'a ClaimKey,
    ) -> Result<Claim<'a>, ClaimError> {
        if !self.busy.enter(key) {
            // That handler owns the work (and a crash leaves its claim for recovery).
            tracing::warn!(claim = %key, "duplicate delivery of work in progress; acknowledged and dropped");
            req.ack().await?;
            return Ok(Claim::Duplicate);
        }
        let busy = Busy {
            set: &self.busy,
            key,
        };
        let mut pause = Duration::from_millis(50);
        let waited = tokio::time::Instant::now();
        loop {
            match self.db.claim(key, self.service_id).await {
                Ok(_) => break,
                Err(cinder_db::Error::Conflict { found, .. }) if waited.elapsed() < CLAIM_WAIT => {
                    tracing::debug!(claim = %key, holder = %found, "resource claimed by another operation; waiting");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Err(cinder_db::Error::Conflict { found, .. }) => {
                    // Still held: a conflicting request upstream. Keep the message
                    // (dead-letter) rather than drop or spin on it.
                    tracing::error!(claim = %key, holder = %found, "resource busy with another operation; rejecting the request");
                    drop(busy);
                    req.reject().await?;
                    return Ok(Claim::Rejected);
                }
                Err(e) => {
                    // Leave the message for a later try (out of the busy set first, or
                    // its redelivery would be dropped as a duplicate); through a
                    // database outage, not at once, or it would come straight back.
                    tracing::error!(claim = %key, error = %e, "cannot claim the work; returning the message");
                    drop(busy);
                    if e.is_unavailable() {
                        tokio::time::sleep(REQUEUE_PAUSE).await;
                    }
                    req.requeue().await?;
                    return Err(e.into());
                }
            }
        }
        if let Err(e) = req.ack().await {
            // The work is durably claimed: it runs. The broker redelivers the message;
            // a copy here is dropped as a duplicate, a copy on a cluster peer waits for
            // this claim and then finds the work done.
            tracing::warn!(claim = %key, error = %e, "cannot acknowledge claimed work; running it anyway");
        }
        Ok(Claim::Run(busy))
    }

    /// Counts the beginning of `claim`'s work (`Db::count_execution`): call it once the
    /// resource is found still busy with the operation, right before the work itself.
    pub async fn executing(&self, claim: &ClaimKey) -> Result<(), cinder_db::Error> {
        cinder_db::through_outage("count the execution", || {
            self.db.count_execution(claim, self.service_id)
        })
        .await
    }

    /// Finishes the work of `claim` (`Db::finish`). When the resource is no longer busy
    /// with the operation (reset, failed, deleted meanwhile), releases the claim instead.
    /// A claim this service no longer holds (a peer adopted it, judging this service
    /// down) is the peer's: [`cinder_db::Error::ClaimNotHeld`].
    pub async fn finish(
        &self,
        claim: &ClaimKey,
        ending: &Ending,
    ) -> Result<Finished, cinder_db::Error> {
        // The work is done: its end waits out a database outage rather than send the
        // work to recovery, which would run it again.
        let finished = cinder_db::through_outage("finish", || {
            self.db.finish(Some((claim, self.service_id)), ending)
        })
        .await;
        let found = match finished {
            Ok(()) => return Ok(Finished::Done),
            Err(cinder_db::Error::Conflict { found, .. }) => Some(found),
            Err(cinder_db::Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        tracing::warn!(claim = %claim, ?found, "the resource moved on; the work ends without a status change");
        self.release(claim).await?;
        Ok(Finished::MovedOn { found })
    }

    /// Releases this service's claim whose work changed no status (it found nothing to
    /// do).
    pub async fn release(&self, claim: &ClaimKey) -> Result<(), cinder_db::Error> {
        cinder_db::through_outage("release", || self.db.release(claim, self.service_id)).await
    }

    /// Hands work that ended in an error, its claim kept, to recovery; it stays busy in
    /// this process throughout, so a redelivery meanwhile is dropped.
    pub fn recover_later(&self, busy: Busy<'_>) {
        let key = busy.key.clone();
        // Busy from here on until recovery settles it.
        std::mem::forget(busy);
        if self.later.send(key.clone()).is_err() {
            // No recovery runs (shutting down): the claim stays for the next start.
            self.busy.leave(&key);
        }
    }
}
