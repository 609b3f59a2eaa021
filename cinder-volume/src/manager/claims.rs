//! The claim protocol of a cast: mark the work busy in this process, claim it in the
//! `workers` table (waiting a while for another operation's claim to go), acknowledge
//! the delivery, run the work, which finishes (final status and release in one
//! transaction) or releases its claim. Work that ends in an error keeps its claim and
//! is handed to recovery, which carries it to its end or fails it cleanly.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cinder_common::ops::ClaimKey;
use cinder_rpc::messages::VolumeTopic;
use cinder_rpc::Incoming;

use super::{Admission, ManagerError, Ran, VolumeManager};
use crate::drivers::VolumeDriver;

/// How long a request waits for another operation's claim on its resource to go (the
/// API sends the next operation once the status is final, which is when the claim is
/// released) before it is dead-lettered as a conflicting request.
const CLAIM_WAIT: Duration = Duration::from_secs(10);

/// The claims with work running in this process.
#[derive(Default)]
pub(crate) struct BusySet(Mutex<HashSet<ClaimKey>>);

impl BusySet {
    /// Marks `key` busy; false when it already was (a duplicate delivery).
    pub(crate) fn enter(&self, key: &ClaimKey) -> bool {
        self.0
            .lock()
            .map(|mut s| s.insert(key.clone()))
            .unwrap_or(false)
    }

    /// Marks `key` no longer busy.
    pub(crate) fn leave(&self, key: &ClaimKey) {
        if let Ok(mut s) = self.0.lock() {
            s.remove(key);
        }
    }
}

/// Leaves the busy set when the work ends, however it ends.
struct Busy<'a> {
    set: &'a BusySet,
    key: &'a ClaimKey,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.set.leave(self.key);
    }
}

impl<D: VolumeDriver> VolumeManager<D> {
    /// Claim, ack, work (which finishes or releases the claim).
    pub(crate) async fn claimed<F, Fut>(
        self: &Arc<Self>,
        req: &Incoming<VolumeTopic>,
        adm: &Admission,
        key: ClaimKey,
        work: F,
    ) -> Result<Ran, ManagerError>
    where
        F: FnOnce(ClaimKey) -> Fut,
        Fut: Future<Output = Result<Ran, ManagerError>>,
    {
        if !self.busy.enter(&key) {
            // A duplicate delivery of work already running here: that handler owns it
            // (and a crash leaves its claim for reconciliation), so this copy is done.
            tracing::warn!(claim = %key, "duplicate delivery of work in progress; acknowledged and dropped");
            req.ack().await?;
            return Ok(Ran::Ok);
        }
        let busy = Busy {
            set: &self.busy,
            key: &key,
        };
        let mut pause = Duration::from_millis(50);
        let waited = tokio::time::Instant::now();
        loop {
            match self.db.claim(&key, self.service_id).await {
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
                    return Ok(Ran::Failed);
                }
                Err(e) => {
                    // The claim could not be written: leave the message for a later
                    // try (out of the busy set first, or its redelivery is dropped).
                    tracing::error!(claim = %key, error = %e, "cannot claim the work; returning the message");
                    drop(busy);
                    req.requeue().await?;
                    return Err(e.into());
                }
            }
        }
        req.ack().await?;
        adm.acknowledged();
        let _running = match adm.is_long() {
            true => self.long_running.clone().acquire_owned().await.ok(),
            false => None,
        };
        let outcome = work(key.clone()).await;
        drop(busy);
        if let Err(e) = &outcome {
            // The claim stays: recovery carries the work to its end or fails it.
            tracing::error!(claim = %key, error = %e, "work ended in an error; recovery takes it over");
            self.recover_later(vec![key]);
        }
        outcome
    }
}
