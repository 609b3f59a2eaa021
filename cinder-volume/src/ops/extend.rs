//! `extend_volume`: the image grows, the row takes the new size and goes back to the
//! status it had. A failure (`error_extending`) gives back the gigabytes the API counted
//! for the growth, in the transaction that records it. Resume after a crash fails it
//! too: whether librbd's resize happened is not worth guessing at; the size in the row
//! stays the old one (the growth's quota stays counted then: the request, and with it
//! the new size, is not known to the resume).

use cinder_common::ops::{volume, ClaimKey, Operation, Outcome};
use cinder_common::status::VolumeStatus;
use cinder_db::{Ending, VolumeChanges};
use cinder_rpc::messages::ExtendVolume;

use crate::manager::{ManagerError, Ran, VolumeManager};
use crate::recovery::{settle, Reconciled, Resumed};
use cinder_drivers::VolumeDriver;

/// The operation.
pub const OP: &Operation<VolumeStatus> = &volume::EXTEND;

pub(crate) async fn run<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: ClaimKey,
    x: &ExtendVolume,
) -> Result<Ran, ManagerError> {
    m.executing(&key).await?;
    let done = m.driver.extend_volume(&x.volume_id, x.new_size_gib).await;
    let (outcome, ran) = super::outcome(&done, &key);
    let mut ending = Ending::volume(OP, &x.volume_id, outcome);
    if done.is_ok() {
        ending = ending.with(VolumeChanges {
            size_gib: Some(x.new_size_gib as i32),
            ..Default::default()
        });
    } else if outcome == Outcome::Failed {
        ending = ending.giving_back_growth(&x.volume_id, x.new_size_gib as i64);
    }
    m.finish_or_release(&key, &ending).await?;
    Ok(ran)
}

/// An interrupted extend: failed.
pub(crate) async fn resume<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: &ClaimKey,
    report: &mut Reconciled,
) -> Result<Resumed, ManagerError> {
    let ending = Ending::volume(OP, &key.id, Outcome::Failed);
    settle(m, key, &ending, &mut report.failed_others).await
}
