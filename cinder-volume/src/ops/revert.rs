//! `revert_to_snapshot`: the volume rolls back to its snapshot (long: every object is
//! copied back) and grows back to its own size. As Cinder: on failure the volume's
//! content is unknown (`error`) and the snapshot, which was only read, is `available`.
//! Resume after a crash fails it the same way.

use cinder_common::ops::{snapshot, volume, ClaimKey, Operation, Outcome};
use cinder_common::status::{SnapshotStatus, VolumeStatus};
use cinder_db::Ending;
use cinder_rpc::messages::RevertToSnapshot;

use crate::manager::{ManagerError, Ran, VolumeManager};
use crate::recovery::{settle, Reconciled, Resumed};
use cinder_drivers::VolumeDriver;

/// The volume's operation.
pub const OP: &Operation<VolumeStatus> = &volume::REVERT;
/// The snapshot's side of it.
pub const SNAPSHOT: &Operation<SnapshotStatus> = &snapshot::RESTORE;

pub(crate) async fn run<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: ClaimKey,
    r: &RevertToSnapshot,
) -> Result<Ran, ManagerError> {
    let Some(volume) = m.volume_in(&r.volume_id, OP.busy).await? else {
        m.release(&key).await?;
        return Ok(Ran::Ok);
    };
    m.executing(&key).await?;
    let reverted = m
        .driver
        .revert_to_snapshot(&r.volume_id, &r.snapshot_id, volume.size as u64)
        .await;
    let (outcome, ran) = super::outcome(&reverted, &key);
    if reverted.is_ok() {
        tracing::info!(volume_id = %r.volume_id, snapshot_id = %r.snapshot_id, "volume reverted");
    }
    let ending = Ending::volume(OP, &r.volume_id, outcome).and_if_busy(Ending::snapshot(
        SNAPSHOT,
        &r.snapshot_id,
        outcome,
    ));
    m.finish_or_release(&key, &ending).await?;
    Ok(ran)
}

/// An interrupted revert: half rolled back, so the content is unknown; the snapshot
/// restoring it goes back to `available`.
pub(crate) async fn resume<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: &ClaimKey,
    report: &mut Reconciled,
) -> Result<Resumed, ManagerError> {
    let restoring = m.db.snapshots_of(&key.id, SNAPSHOT.busy).await?;
    let mut ending = Ending::volume(OP, &key.id, Outcome::Failed);
    for snap in &restoring {
        ending = ending.and_if_busy(Ending::snapshot(SNAPSHOT, &snap.id, Outcome::Failed));
    }
    let resumed = settle(m, key, &ending, &mut report.failed_others).await?;
    // The volume moved on (an admin reset it): its snapshots still go back on their own.
    for snap in &restoring {
        let ending = Ending::snapshot(SNAPSHOT, &snap.id, Outcome::Failed);
        match m.db.finish(None, &ending).await {
            Ok(()) | Err(cinder_db::Error::Conflict { .. } | cinder_db::Error::NotFound { .. }) => {
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(resumed)
}
