//! `create_snapshot` and `delete_snapshot`. Resume after a crash fails an interrupted
//! create (removing what it made) and carries an interrupted delete to its end.

use cinder_common::ops::{snapshot, ClaimKey, Operation, Outcome};
use cinder_common::status::SnapshotStatus;
use cinder_db::Ending;
use cinder_rpc::messages::{CreateSnapshot, DeleteSnapshot};

use crate::manager::{ManagerError, Ran, VolumeManager};
use crate::recovery::{settle, Reconciled, Resumed};
use cinder_drivers::{DriverError, VolumeDriver};

/// Creating a snapshot.
pub const CREATE: &Operation<SnapshotStatus> = &snapshot::CREATE;
/// Deleting a snapshot.
pub const DELETE: &Operation<SnapshotStatus> = &snapshot::DELETE;

pub(crate) async fn create<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: ClaimKey,
    s: &CreateSnapshot,
) -> Result<Ran, ManagerError> {
    // A redelivery after the snapshot ended (or went): nothing to make.
    if m.snapshot_in(&s.snapshot_id, CREATE.busy).await?.is_none() {
        m.release(&key).await?;
        return Ok(Ran::Ok);
    }
    m.executing(&key).await?;
    let done = m.driver.create_snapshot(&s.volume_id, &s.snapshot_id).await;
    end(m, key, CREATE, &s.snapshot_id, done).await
}

pub(crate) async fn delete<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: ClaimKey,
    s: &DeleteSnapshot,
) -> Result<Ran, ManagerError> {
    if m.snapshot_in(&s.snapshot_id, DELETE.busy).await?.is_none() {
        m.release(&key).await?;
        return Ok(Ran::Ok);
    }
    m.executing(&key).await?;
    let done = m.driver.delete_snapshot(&s.volume_id, &s.snapshot_id).await;
    end(m, key, DELETE, &s.snapshot_id, done).await
}

/// Ends `op` on snapshot `id` as the driver's work `done` went.
async fn end<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: ClaimKey,
    op: &'static Operation<SnapshotStatus>,
    id: &str,
    done: Result<(), DriverError>,
) -> Result<Ran, ManagerError> {
    let (outcome, ran) = super::outcome(&done, &key);
    m.finish_or_release(&key, &Ending::snapshot(op, id, outcome))
        .await?;
    Ok(ran)
}

/// An interrupted snapshot create: what it made goes, the snapshot to `error`.
pub(crate) async fn resume_create<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: &ClaimKey,
    report: &mut Reconciled,
) -> Result<Resumed, ManagerError> {
    let Some(snap) = m.snapshot_in(&key.id, CREATE.busy).await? else {
        m.release(key).await?;
        return Ok(Resumed::Done);
    };
    match m.driver.delete_snapshot(&snap.volume_id, &key.id).await {
        Err(e) if e.is_busy() => return Ok(Resumed::Busy),
        Err(e) => {
            tracing::error!(snapshot_id = %key.id, error = %e, "the snapshot of an interrupted create could not be removed")
        }
        Ok(()) => {}
    }
    let ending = Ending::snapshot(CREATE, &key.id, Outcome::Failed);
    settle(m, key, &ending, &mut report.failed_creates).await
}

/// An interrupted snapshot delete: carried to its end.
pub(crate) async fn resume_delete<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: &ClaimKey,
    report: &mut Reconciled,
) -> Result<Resumed, ManagerError> {
    let Some(snap) = m.snapshot_in(&key.id, DELETE.busy).await? else {
        m.release(key).await?;
        return Ok(Resumed::Done);
    };
    let outcome = match m.driver.delete_snapshot(&snap.volume_id, &key.id).await {
        Err(e) if e.is_busy() => return Ok(Resumed::Busy),
        Err(e) => {
            tracing::error!(snapshot_id = %key.id, error = %e, "resumed snapshot delete failed");
            Outcome::Failed
        }
        Ok(()) => Outcome::Done,
    };
    if m.finish_or_release(key, &Ending::snapshot(DELETE, &key.id, outcome))
        .await?
        && outcome == Outcome::Done
    {
        report.resumed_deletes.push(key.id.clone());
    }
    Ok(Resumed::Done)
}
