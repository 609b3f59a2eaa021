//! `delete_volume`: the snapshots a cascade marked `deleting` go, then the image goes to
//! the trash (its purge queued with the mgr), the row is soft-deleted. Resume after a crash carries the delete to its end.

use cinder_common::ops::{snapshot, volume, ClaimKey, Operation, Outcome};
use cinder_common::status::{SnapshotStatus, VolumeStatus};
use cinder_db::Ending;

use crate::manager::{ManagerError, Ran, VolumeManager};
use crate::recovery::{Reconciled, Resumed};
use cinder_drivers::{DriverError, VolumeDriver};

/// The operation.
pub const OP: &Operation<VolumeStatus> = &volume::DELETE;

pub(crate) async fn run<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: ClaimKey,
) -> Result<Ran, ManagerError> {
    match delete(m, &key).await? {
        Some(Ran::Ok) => {
            tracing::info!(volume_id = %key.id, "volume deleted");
            Ok(Ran::Ok)
        }
        Some(ran) => Ok(ran),
        None => Ok(Ran::Ok),
    }
}

/// Deletes and finishes; `None` when there was nothing to delete (claim released).
async fn delete<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: &ClaimKey,
) -> Result<Option<Ran>, ManagerError> {
    if m.volume_in(&key.id, OP.busy).await?.is_none() {
        m.release(key).await?;
        return Ok(None);
    }
    m.executing(key).await?;
    let done = match delete_marked_snapshots(m, &key.id).await? {
        Ok(()) => m.driver.delete_volume(&key.id).await,
        Err(e) => Err(e),
    };
    match done {
        // Watched (a dead predecessor's watch): recovery retries it.
        Err(e) if e.is_busy() => return Err(e.into()),
        _ => {}
    }
    let (outcome, ran) = super::outcome(&done, key);
    m.finish_or_release(key, &Ending::volume(OP, &key.id, outcome))
        .await?;
    Ok(Some(ran))
}

/// A cascade delete: the snapshots the API marked `deleting` with the volume go
/// first, each finished as it goes; the first failure fails the volume's delete.
async fn delete_marked_snapshots<D: VolumeDriver>(
    m: &VolumeManager<D>,
    volume_id: &str,
) -> Result<Result<(), DriverError>, ManagerError> {
    for s in
        m.db.snapshots_of(volume_id, SnapshotStatus::Deleting)
            .await?
    {
        let r = m.driver.delete_snapshot(volume_id, &s.id).await;
        match &r {
            Err(e) if e.is_busy() => return Err(r.unwrap_err().into()),
            _ => {}
        }
        let outcome = if r.is_ok() {
            Outcome::Done
        } else {
            Outcome::Failed
        };
        let ending = Ending::snapshot(&snapshot::DELETE, &s.id, outcome);
        match m.db.finish(None, &ending).await {
            // Its own delete request finished it meanwhile.
            Ok(()) | Err(cinder_db::Error::Conflict { .. } | cinder_db::Error::NotFound { .. }) => {
            }
            Err(e) => return Err(e.into()),
        }
        if let Err(e) = r {
            tracing::error!(volume_id, snapshot_id = %s.id, error = %e, "a cascade delete could not delete a snapshot");
            return Ok(Err(e));
        }
    }
    Ok(Ok(()))
}

/// An interrupted delete: carried to its end.
pub(crate) async fn resume<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: &ClaimKey,
    report: &mut Reconciled,
) -> Result<Resumed, ManagerError> {
    match delete(m, key).await {
        Err(ManagerError::Driver(e)) if e.is_busy() => Ok(Resumed::Busy),
        Err(e) => Err(e),
        Ok(Some(Ran::Ok)) => {
            report.resumed_deletes.push(key.id.clone());
            Ok(Resumed::Done)
        }
        Ok(_) => Ok(Resumed::Done),
    }
}
