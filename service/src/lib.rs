//! What every service binary builds on (the volume service today; the scheduler and
//! backup services next): registration and a heartbeat that never waits on the work,
//! consuming a topic's queues with reconnect, the task tracker and its grace period at
//! shutdown, the claim protocol with typed keys, and recovery of claimed work after a
//! crash through the service's own resume.
//!
//! # Layout
//! - [`register`] / [`heartbeat`]: the `services` row and its heartbeat.
//! - [`consume`]: [`Intake`] (budget, tracker, reconnect, drain) and [`Handler`].
//! - [`claims`]: [`Claims`], the claim protocol and `finish`/`release`.
//! - [`recovery`]: [`Recovery`] over a service's [`Recover`].
//!
//! # Invariants
//! - A delivery is acknowledged only once its work is durably claimed.
//! - A status changes only through `Db::begin` / `Db::finish`; a final status and the
//!   release of its claim are one transaction.
#![warn(missing_docs)]

pub mod claims;
pub mod consume;
pub mod heartbeat;
pub mod recovery;

use std::sync::Arc;
use std::time::Duration;

use cinder_common::shutdown::CancellationToken;
use cinder_db::{Db, ServiceRegistration};
use tokio::sync::watch;

pub use claims::{Busy, BusySet, Claim, ClaimError, Claims, Finished, REQUEUE_PAUSE};
pub use consume::{Handler, Intake};
pub use heartbeat::{Heartbeat, HeartbeatStats};
pub use recovery::{Recover, Recovery, Resumed};

/// A registered service and its running heartbeat.
pub struct Registered {
    /// The `services` row.
    pub row: cinder_db::entity::services::Model,
    /// The heartbeat's own measurements.
    pub heartbeat: Arc<HeartbeatStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Registered {
    /// Waits for the heartbeat to stop (it stops at shutdown).
    pub async fn stopped(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the heartbeat task failed");
        }
    }
}

/// Registers (or finds) the service row of `reg` and starts its heartbeat: every
/// `report_interval`, with the latest `capabilities`, until `shutdown`.
pub async fn register(
    db: &Db,
    reg: &ServiceRegistration,
    report_interval: Duration,
    capabilities: watch::Receiver<Option<serde_json::Value>>,
    shutdown: CancellationToken,
) -> Result<Registered, cinder_db::Error> {
    let row = db.register_service(reg).await?;
    let beat = Heartbeat::new(db.clone(), row.id, report_interval, capabilities);
    let heartbeat = beat.stats();
    let task = tokio::spawn(beat.run(shutdown));
    Ok(Registered {
        row,
        heartbeat,
        task,
    })
}
