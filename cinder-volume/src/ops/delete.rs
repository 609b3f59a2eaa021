//! `delete_volume`: the image goes to the trash (its purge queued with the mgr), the
//! row is soft-deleted. Resume after a crash carries the delete to its end.

use cinder_common::ops::{volume, ClaimKey, Operation};
use cinder_common::status::VolumeStatus;
use cinder_db::Ending;

use crate::manager::{ManagerError, Ran, VolumeManager};
use crate::recovery::{Reconciled, Resumed};
use cinder_drivers::VolumeDriver;

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
    let done = m.driver.delete_volume(&key.id).await;
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
