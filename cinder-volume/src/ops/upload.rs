//! `copy_volume_to_image` (`os-volume_upload_image`): the volume is `uploading`, the
//! Glance image `queued` (the API made it). Two paths:
//! - **direct** (raw and bare, Glance's pool in this cluster): a flattened copy of the
//!   volume in Glance's pool with a protected `snap`, registered by location, as Nova's
//!   direct snapshot does; volumes made from the image are clones again. Glance
//!   decides: a location outside its store is refused, and the copy goes.
//! - **data**: the volume's bytes streamed to Glance (as of a temporary snapshot when
//!   the upload was forced from `in-use`; as they are when it came from `available`,
//!   which no attachment may take while `uploading`: Cinder's RBD driver reads the live
//!   volume in both cases); other formats are converted by `qemu-img` from a sparse raw
//!   file in `image_conversion_dir` first.
//!
//! After a direct copy fails for a reason that will not pass by itself (Glance's pool
//! refuses our cephx user, EPERM; Glance refuses the location, 400 or 403) the direct
//! path is not tried again for ten minutes: each attempt costs a snapshot and, when
//! Glance refuses, a whole copy.
//!
//! Either way the volume goes back to the status it had; a failure also leaves a user
//! message and deletes the half-made image while it is still `queued` or `saving`.

use cinder_common::messages;
use cinder_common::ops::{volume, ClaimKey, Operation, Outcome};
use cinder_common::settings::Secret;
use cinder_common::status::VolumeStatus;
use cinder_common::temp::TempPath;
use cinder_db::Ending;
use cinder_drivers::{DriverErrorKind, VolumeDriver};
use cinder_glance::Glance;
use cinder_rpc::messages::CopyVolumeToImage;
use tokio::sync::mpsc;

use crate::manager::{ManagerError, Ran, VolumeManager};
use crate::recovery::{Reconciled, Resumed};

/// The operation.
pub const OP: &Operation<VolumeStatus> = &volume::UPLOAD;

/// Pieces in flight between the driver and the upload.
const DEPTH: usize = 4;
/// How long uploads skip the direct path after our user was refused in Glance's pool
/// (an operator may grant the caps meanwhile).
const DIRECT_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// Which way the data went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// A copy in Glance's pool, registered by location.
    Direct,
    /// The bytes, uploaded.
    Data,
}

pub(crate) async fn run<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: ClaimKey,
    u: &CopyVolumeToImage,
    (request_id, token): (String, Option<Secret>),
) -> Result<Ran, ManagerError> {
    let token = token.as_ref().map(Secret::expose);
    let Some(row) = m.volume_in(&u.volume_id, OP.busy).await? else {
        m.release(&key).await?;
        return Ok(Ran::Ok);
    };
    m.executing(&key).await?;
    // An upload from `available` reads the volume as it is (no attachment may take it
    // while `uploading`); one forced from `in-use` reads a snapshot taken now.
    let point_in_time = row.previous_status != Some(VolumeStatus::Available);
    let done = upload(m, token, u, row.size, point_in_time).await;
    let outcome = match &done {
        Ok(path) => {
            tracing::info!(volume_id = %u.volume_id, image_id = %u.image_id, path = ?path, "volume uploaded to the image");
            Outcome::Done
        }
        Err(e) => {
            tracing::error!(volume_id = %u.volume_id, image_id = %u.image_id, error = %e, "upload to the image failed");
            super::tell_user(
                m,
                row.project_id.clone(),
                request_id,
                &u.volume_id,
                messages::COPY_VOLUME_TO_IMAGE,
                messages::FAILED_TO_UPLOAD_VOLUME,
            )
            .await;
            if let Some(g) = &m.glance {
                discard_image(g, token, &u.image_id).await;
            }
            Outcome::Failed
        }
    };
    m.finish_or_release(&key, &Ending::volume(OP, &u.volume_id, outcome))
        .await?;
    Ok(if outcome == Outcome::Done {
        Ran::Ok
    } else {
        Ran::Failed
    })
}

/// Deletes a half-made image while it is still `queued` or `saving` (Cinder's rule:
/// an image that became active is someone's now).
async fn discard_image(g: &Glance, token: Option<&str>, id: &str) {
    match g.image(token, id).await {
        Ok(i) if matches!(i.status(), "queued" | "saving") => {
            if let Err(e) = g.delete(token, id).await {
                tracing::error!(image_id = id, error = %e, "cannot delete the half-made image: it stays in Glance until someone deletes it");
            }
        }
        Ok(_) | Err(cinder_glance::Error::NotFound(_)) => {}
        // An expired token, say: the image stays, named here for whoever cleans up.
        Err(e) => {
            tracing::error!(image_id = id, error = %e, "cannot read the half-made image: it may stay in Glance until someone deletes it")
        }
    }
}

async fn upload<D: VolumeDriver>(
    m: &VolumeManager<D>,
    token: Option<&str>,
    u: &CopyVolumeToImage,
    size_gib: i32,
    point_in_time: bool,
) -> Result<Path, String> {
    let g = m
        .glance
        .as_ref()
        .ok_or("no image service is configured ([glance] api_servers)")?;
    let refused_lately = m
        .direct_refused
        .lock()
        .ok()
        .and_then(|t| *t)
        .is_some_and(|t| t.elapsed() < DIRECT_RETRY_AFTER);
    if u.disk_format == "raw" && u.container_format == "bare" && !refused_lately {
        match direct(m, g, token, u).await {
            Ok(()) => return Ok(Path::Direct),
            Err(e) => {
                tracing::info!(volume_id = %u.volume_id, image_id = %u.image_id, reason = %e, "no direct copy; uploading the data")
            }
        }
    }
    data(m, g, token, u, size_gib, point_in_time)
        .await
        .map(|_| Path::Data)
}

/// The direct path: Glance's pool of this cluster gets a flattened copy, Glance its
/// location; a refused location removes the copy.
async fn direct<D: VolumeDriver>(
    m: &VolumeManager<D>,
    g: &Glance,
    token: Option<&str>,
    u: &CopyVolumeToImage,
) -> Result<(), String> {
    let pool = &m.glance_pool;
    let location = match m
        .driver
        .copy_to_image_pool(&u.volume_id, pool, &u.image_id)
        .await
    {
        Ok(l) => l,
        Err(e) => {
            if e.kind == DriverErrorKind::PermissionDenied {
                tracing::warn!(pool = %pool, error = %e, "our cephx user may not write Glance's pool: uploads send their data for the next {} s (grant `profile rbd pool={pool}` for direct copies)", DIRECT_RETRY_AFTER.as_secs());
                refuse_direct_for_a_while(m);
            }
            return Err(e.to_string());
        }
    };
    match g.add_location(token, &u.image_id, &location).await {
        Ok(()) => Ok(()),
        Err(e) => {
            if let Err(r) = m.driver.remove_image_copy(pool, &u.image_id).await {
                tracing::warn!(pool = %pool, image = %u.image_id, error = %r, "cannot remove the refused copy");
            }
            if matches!(
                e,
                cinder_glance::Error::Refused {
                    status: 400 | 403,
                    ..
                }
            ) {
                tracing::warn!(location = %location, error = %e, "Glance refuses locations in its pool from us (its policy, or `[glance] rbd_store_pool` is not its store's pool): uploads send their data for the next {} s", DIRECT_RETRY_AFTER.as_secs());
                refuse_direct_for_a_while(m);
            }
            Err(format!("glance refused {location}: {e}"))
        }
    }
}

/// Uploads skip the direct path for [`DIRECT_RETRY_AFTER`] from now.
fn refuse_direct_for_a_while<D: VolumeDriver>(m: &VolumeManager<D>) {
    if let Ok(mut t) = m.direct_refused.lock() {
        *t = Some(std::time::Instant::now());
    }
}

/// The data path.
async fn data<D: VolumeDriver>(
    m: &VolumeManager<D>,
    g: &Glance,
    token: Option<&str>,
    u: &CopyVolumeToImage,
    size_gib: i32,
    point_in_time: bool,
) -> Result<(), String> {
    if u.disk_format == "raw" {
        // The volume's size: a stream that ends short fails the upload instead of
        // leaving a truncated image.
        let size = u64::try_from(size_gib).unwrap_or(0) << 30;
        let (tx, rx) = mpsc::channel::<Vec<u8>>(DEPTH);
        let read = m.driver.export_volume(&u.volume_id, point_in_time, tx);
        let (read, sent) = tokio::join!(read, g.upload_chunks(token, &u.image_id, rx, size));
        read.map_err(|e| e.to_string())?;
        return sent.map_err(|e| e.to_string());
    }
    // Another format: the driver writes the volume as a file of that format (through a
    // sparse raw file), and the file goes to Glance.
    tokio::fs::create_dir_all(&m.conversion_dir)
        .await
        .map_err(|e| format!("{}: {e}", m.conversion_dir.display()))?;
    let out = TempPath::new(m.conversion_dir.join(format!(
        "volume-{}-image-{}.{}",
        u.volume_id, u.image_id, u.disk_format
    )));
    m.driver
        .export_volume_as(&u.volume_id, point_in_time, &u.disk_format, out.path())
        .await
        .map_err(|e| e.to_string())?;
    let file = tokio::fs::File::open(out.path())
        .await
        .map_err(|e| format!("{}: {e}", out.path().display()))?;
    g.upload_file(token, &u.image_id, file)
        .await
        .map_err(|e| e.to_string())
}

/// An interrupted upload: back to the volume's previous status, its conversion files
/// removed; the image is left to whoever looks (Cinder does not track it either).
pub(crate) async fn resume<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: &ClaimKey,
    report: &mut Reconciled,
) -> Result<Resumed, ManagerError> {
    super::image::resume_failed(m, OP, key, report).await
}
