//! `manage_existing`, `unmanage_volume` and `get_manageable_volumes`. Manage renames an existing image of the
//! pool to `volume-<id>` and records its size and lineage; unmanage drops the row and
//! leaves the image. Resume after a crash finishes a manage whose rename happened
//! (otherwise the source is untouched and it fails), and finishes an unmanage.

use cinder_common::ops::{volume, ClaimKey, Operation, Outcome};
use cinder_common::status::VolumeStatus;
use cinder_db::{Ending, VolumeChanges};
use cinder_rpc::messages::{ManageExisting, ManageableVolume};
use cinder_rpc::RemoteError;

use crate::manager::{ManagerError, Ran, VolumeManager};
use crate::recovery::{settle, Reconciled, Resumed};
use cinder_drivers::{Created, DriverError, VolumeDriver};

/// Managing an existing image.
pub const MANAGE: &Operation<VolumeStatus> = &volume::MANAGE;
/// Unmanaging a volume.
pub const UNMANAGE: &Operation<VolumeStatus> = &volume::UNMANAGE;

pub(crate) async fn manage<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: ClaimKey,
    r: &ManageExisting,
) -> Result<Ran, ManagerError> {
    if m.volume_in(&r.volume_id, MANAGE.busy).await?.is_none() {
        m.release(&key).await?;
        return Ok(Ran::Ok);
    }
    m.executing(&key).await?;
    // An image that already is another volume's storage stays that volume's.
    let taken = match m.driver.volume_id_of(&r.source_name) {
        Some(other) if other != r.volume_id => match m.db.volume(&other).await {
            Ok(_) => true,
            Err(cinder_db::Error::NotFound { .. }) => false,
            Err(e) => return Err(e.into()),
        },
        _ => false,
    };
    let result = if taken {
        Err(DriverError::invalid(format!(
            "image {} belongs to a volume already",
            r.source_name
        )))
    } else {
        m.driver.manage_existing(&r.volume_id, &r.source_name).await
    };
    match result {
        Ok((size_gib, created)) => {
            end_manage(m, &key, size_gib, created).await?;
            Ok(Ran::Ok)
        }
        Err(e) => {
            tracing::error!(volume_id = %r.volume_id, image = %r.source_name, error = %e, "manage failed");
            m.finish_or_release(&key, &Ending::volume(MANAGE, &r.volume_id, Outcome::Failed))
                .await?;
            Ok(Ran::Failed)
        }
    }
}

/// Every image of the pool, with whether managing it is safe: not when it already is a
/// volume (`cinder_id`), when another client has it open, or when it is a deleted
/// volume's image waiting for its clones (Cinder's reasons, in Cinder's order).
pub(crate) async fn manageable<D: VolumeDriver>(
    m: &VolumeManager<D>,
) -> Result<Vec<ManageableVolume>, RemoteError> {
    let images = m
        .driver
        .pool_images()
        .await
        .map_err(|e| super::connection::remote(&e))?;
    let live =
        m.db.live_volume_ids()
            .await
            .map_err(|e| super::connection::db_unavailable(&e))?;
    Ok(images
        .into_iter()
        .map(|i| {
            let cinder_id = m
                .driver
                .volume_id_of(&i.name)
                .filter(|id| live.contains(id));
            let reason = if cinder_id.is_some() {
                Some("already managed")
            } else if i.in_use {
                Some("volume in use")
            } else if i.name.ends_with(".deleted") {
                Some("volume marked as deleted")
            } else {
                None
            };
            ManageableVolume {
                safe_to_manage: reason.is_none(),
                reason_not_safe: reason.map(str::to_string),
                cinder_id,
                size_gib: i.size_gib,
                name: i.name,
            }
        })
        .collect())
}

/// A managed image's row: its size, location and lineage, `available`.
async fn end_manage<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: &ClaimKey,
    size_gib: u64,
    created: Created,
) -> Result<bool, ManagerError> {
    let changes = VolumeChanges {
        host: Some(m.pool_host()),
        provider_location: Some(created.provider_location),
        rbd_parent: Some(created.rbd_parent),
        clone_depth: Some(created.clone_depth as i32),
        size_gib: Some(size_gib as i32),
        launched_at: true,
        ..Default::default()
    };
    let ending = Ending::volume(MANAGE, &key.id, Outcome::Done).with(changes);
    let done = m.finish_or_release(key, &ending).await?;
    if done {
        tracing::info!(volume_id = %key.id, size_gib, "existing image managed");
    }
    Ok(done)
}

pub(crate) async fn unmanage<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: ClaimKey,
) -> Result<Ran, ManagerError> {
    m.executing(&key).await?;
    // The image stays as it is; the row goes.
    if m.finish_or_release(&key, &Ending::volume(UNMANAGE, &key.id, Outcome::Done))
        .await?
    {
        tracing::info!(volume_id = %key.id, "volume unmanaged; its image stays");
    }
    Ok(Ran::Ok)
}

/// An interrupted manage: renamed already, it is finished; not renamed, the source is
/// untouched and it fails.
pub(crate) async fn resume_manage<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: &ClaimKey,
    report: &mut Reconciled,
) -> Result<Resumed, ManagerError> {
    if m.volume_in(&key.id, MANAGE.busy).await?.is_none() {
        m.release(key).await?;
        return Ok(Resumed::Done);
    }
    if m.driver.volume_exists(&key.id).await? {
        let name = format!("volume-{}", key.id);
        match m.driver.manage_existing(&key.id, &name).await {
            Ok((size, created)) => {
                if end_manage(m, key, size, created).await? {
                    report.finished_others.push(key.id.clone());
                }
                return Ok(Resumed::Done);
            }
            Err(e) if e.is_busy() => return Ok(Resumed::Busy),
            Err(e) => {
                tracing::error!(volume_id = %key.id, error = %e, "resumed manage failed")
            }
        }
    }
    let ending = Ending::volume(MANAGE, &key.id, Outcome::Failed);
    settle(m, key, &ending, &mut report.failed_others).await
}

/// An interrupted unmanage: finished (nothing was done to the image).
pub(crate) async fn resume_unmanage<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: &ClaimKey,
    report: &mut Reconciled,
) -> Result<Resumed, ManagerError> {
    let ending = Ending::volume(UNMANAGE, &key.id, Outcome::Done);
    settle(m, key, &ending, &mut report.finished_others).await
}
