//! `reimage` (`os-reimage`, 3.68): the volume, `downloading`, is emptied and takes the
//! image's data (downloaded as for a create: streamed raw, or converted), then the
//! image's metadata; it goes back to the status it had (Nova re-images a `reserved`
//! volume of a server), or to `error` with a user message.

use cinder_common::messages;
use cinder_common::ops::{volume, ClaimKey, Operation, Outcome};
use cinder_common::settings::Secret;
use cinder_common::status::VolumeStatus;
use cinder_db::{Ending, ImageMetadataOf};
use cinder_drivers::VolumeDriver;
use cinder_rpc::messages::Reimage;

use crate::manager::{ManagerError, Ran, VolumeManager};
use crate::recovery::{Reconciled, Resumed};

/// The operation.
pub const OP: &Operation<VolumeStatus> = &volume::REIMAGE;

pub(crate) async fn run<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: ClaimKey,
    x: &Reimage,
    (request_id, token): (String, Option<Secret>),
) -> Result<Ran, ManagerError> {
    let Some(row) = m.volume_in(&x.volume_id, OP.busy).await? else {
        m.release(&key).await?;
        return Ok(Ran::Ok);
    };
    m.executing(&key).await?;
    let done = async {
        m.driver
            .empty_volume(&x.volume_id)
            .await
            .map_err(|e| e.to_string())?;
        crate::ops::image::download(
            m,
            token.as_ref().map(Secret::expose),
            &x.volume_id,
            &x.image,
        )
        .await
        .map_err(|e| e.to_string())?;
        m.db.replace_image_metadata(ImageMetadataOf::Volume(&x.volume_id), &x.image_metadata)
            .await
            .map_err(|e| e.to_string())?;
        m.db.set_bootable(&x.volume_id, true)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    let outcome = match &done {
        Ok(()) => {
            tracing::info!(volume_id = %x.volume_id, image_id = %x.image.id, "volume re-imaged");
            Outcome::Done
        }
        Err(e) => {
            tracing::error!(volume_id = %x.volume_id, image_id = %x.image.id, error = %e, "re-image failed");
            super::tell_user(
                m,
                row.project_id.clone(),
                request_id,
                &x.volume_id,
                messages::REIMAGE_VOLUME,
                messages::UNKNOWN_ERROR,
            )
            .await;
            Outcome::Failed
        }
    };
    m.finish_or_release(&key, &Ending::volume(OP, &x.volume_id, outcome))
        .await?;
    Ok(if done.is_ok() { Ran::Ok } else { Ran::Failed })
}

/// An interrupted re-image: its data is half old, half new: `error`.
pub(crate) async fn resume<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: &ClaimKey,
    report: &mut Reconciled,
) -> Result<Resumed, ManagerError> {
    super::image::resume_failed(m, OP, key, report).await
}
