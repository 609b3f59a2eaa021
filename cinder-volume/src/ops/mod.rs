//! The volume service's operations, one module each, holding both the run of the
//! operation and its resume after a crash. Each takes its statuses from the operations
//! table (`cinder_common::ops`) and ends through `Db::finish`.

pub mod connection;
pub mod create;
pub mod delete;
pub mod extend;
pub(crate) mod image;
pub mod manage;
pub mod reimage;
pub mod retype;
pub mod revert;
pub mod snapshot;
pub mod upload;

use cinder_common::ops::{ClaimKey, Outcome};
use cinder_drivers::DriverError;

use crate::manager::Ran;

/// How the driver's part of the work of `claim` went: done, or failed (logged here,
/// once), for the operation's ending and the metrics.
pub(crate) fn outcome(done: &Result<(), DriverError>, claim: &ClaimKey) -> (Outcome, Ran) {
    match done {
        Ok(()) => (Outcome::Done, Ran::Ok),
        Err(e) => {
            tracing::error!(claim = %claim, error = %e, "the driver failed; the operation fails");
            (Outcome::Failed, Ran::Failed)
        }
    }
}

/// Leaves user message (`action`, `detail`) about volume `volume_id` of `project` for
/// request `request_id`; one that cannot be recorded is logged.
pub(crate) async fn tell_user<D: cinder_drivers::VolumeDriver>(
    m: &crate::manager::VolumeManager<D>,
    project: String,
    request_id: String,
    volume_id: &str,
    action: cinder_common::messages::Action,
    detail: cinder_common::messages::Detail,
) {
    let msg = cinder_db::NewMessage::volume_error(project, request_id, volume_id, action, detail);
    if let Err(e) = m.db.create_message(&msg).await {
        tracing::warn!(volume_id, error = %e, "cannot record the user message");
    }
}
