//! `retype` to a type of the same backend: RBD keeps the data where it is, so only the
//! row changes; the volume goes back to the status it had. Resume after a crash does
//! the same without the new type (nothing was done to the data).

use cinder_common::ops::{volume, ClaimKey, Operation, Outcome};
use cinder_common::status::VolumeStatus;
use cinder_db::{Ending, VolumeChanges};
use cinder_rpc::messages::Retype;

use crate::manager::{ManagerError, Ran, VolumeManager};
use crate::recovery::{settle, Reconciled, Resumed};
use cinder_drivers::VolumeDriver;

/// The operation.
pub const OP: &Operation<VolumeStatus> = &volume::RETYPE;

pub(crate) async fn run<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: ClaimKey,
    r: &Retype,
) -> Result<Ran, ManagerError> {
    m.executing(&key).await?;
    let changes = VolumeChanges {
        volume_type_id: Some(r.new_type_id.clone()),
        ..Default::default()
    };
    let ending = Ending::volume(OP, &r.volume_id, Outcome::Done).with(changes);
    m.finish_or_release(&key, &ending).await?;
    Ok(Ran::Ok)
}

/// An interrupted retype: back to where it was, with its old type.
pub(crate) async fn resume<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: &ClaimKey,
    report: &mut Reconciled,
) -> Result<Resumed, ManagerError> {
    let ending = Ending::volume(OP, &key.id, Outcome::Failed);
    settle(m, key, &ending, &mut report.failed_others).await
}
