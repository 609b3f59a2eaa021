//! `copy_volume_to_image` (`os-volume_upload_image`): the volume is `uploading`, the
//! Glance image `queued` (the API made it). Two paths:
//! - **direct** (raw and bare, Glance's pool in this cluster): a flattened copy of the
//!   volume in Glance's pool with a protected `snap`, registered by location, as Nova's
//!   direct snapshot does; volumes made from the image are clones again. Glance
//!   decides: a location outside its store is refused, and the copy goes.
//! - **data**: the volume's bytes (as of a temporary snapshot) streamed to Glance; other
//!   formats are converted by `qemu-img` from a sparse raw file in
//!   `image_conversion_dir` first.
//!
//! Either way the volume goes back to the status it had; a failure also leaves a user
//! message and deletes the half-made image while it is still `queued` or `saving`.

use std::path::PathBuf;

use cinder_common::messages;
use cinder_common::ops::{volume, ClaimKey, Operation, Outcome};
use cinder_common::status::VolumeStatus;
use cinder_db::Ending;
use cinder_drivers::VolumeDriver;
use cinder_glance::Glance;
use cinder_rpc::messages::CopyVolumeToImage;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::manager::{ManagerError, Ran, VolumeManager};
use crate::recovery::{settle, Reconciled, Resumed};

/// The operation.
pub const OP: &Operation<VolumeStatus> = &volume::UPLOAD;

/// Pieces in flight between the driver and the upload.
const DEPTH: usize = 4;
/// Zero runs of this size are holes in the temporary raw file.
const BLOCK: usize = 4096;

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
    request_id: String,
) -> Result<Ran, ManagerError> {
    let Some(row) = m.volume_in(&u.volume_id, OP.busy).await? else {
        m.release(&key).await?;
        return Ok(Ran::Ok);
    };
    let done = upload(m, u).await;
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
                discard_image(g, &u.image_id).await;
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
async fn discard_image(g: &Glance, id: &str) {
    match g.image(None, id).await {
        Ok(i) if matches!(i.status(), "queued" | "saving") => {
            if let Err(e) = g.delete(None, id).await {
                tracing::warn!(image_id = id, error = %e, "cannot delete the half-made image");
            }
        }
        Ok(_) | Err(cinder_glance::Error::NotFound(_)) => {}
        Err(e) => tracing::warn!(image_id = id, error = %e, "cannot read the half-made image"),
    }
}

async fn upload<D: VolumeDriver>(
    m: &VolumeManager<D>,
    u: &CopyVolumeToImage,
) -> Result<Path, String> {
    let g = m
        .glance
        .as_ref()
        .ok_or("no image service is configured ([glance] api_servers)")?;
    if u.disk_format == "raw" && u.container_format == "bare" {
        match direct(m, g, u).await {
            Ok(()) => return Ok(Path::Direct),
            Err(e) => {
                tracing::info!(volume_id = %u.volume_id, image_id = %u.image_id, reason = %e, "no direct copy; uploading the data")
            }
        }
    }
    data(m, g, u).await.map(|_| Path::Data)
}

/// The direct path: Glance's pool of this cluster gets a flattened copy, Glance its
/// location; a refused location removes the copy.
async fn direct<D: VolumeDriver>(
    m: &VolumeManager<D>,
    g: &Glance,
    u: &CopyVolumeToImage,
) -> Result<(), String> {
    let pool = &m.glance_pool;
    let location = m
        .driver
        .copy_to_image_pool(&u.volume_id, pool, &u.image_id)
        .await
        .map_err(|e| e.to_string())?;
    match g.add_location(None, &u.image_id, &location).await {
        Ok(()) => Ok(()),
        Err(e) => {
            if let Err(r) = m.driver.remove_image_copy(pool, &u.image_id).await {
                tracing::warn!(pool = %pool, image = %u.image_id, error = %r, "cannot remove the refused copy");
            }
            Err(format!("glance refused {location}: {e}"))
        }
    }
}

/// The data path.
async fn data<D: VolumeDriver>(
    m: &VolumeManager<D>,
    g: &Glance,
    u: &CopyVolumeToImage,
) -> Result<(), String> {
    let (tx, rx) = mpsc::channel::<Vec<u8>>(DEPTH);
    let read = m.driver.export_volume(&u.volume_id, tx);
    if u.disk_format == "raw" {
        // The volume's size: a stream that ends short fails the upload instead of
        // leaving a truncated image.
        let size = u64::try_from(
            m.db.volume(&u.volume_id)
                .await
                .map_err(|e| e.to_string())?
                .size,
        )
        .unwrap_or(0)
            << 30;
        let (read, sent) = tokio::join!(read, g.upload_chunks(None, &u.image_id, rx, size));
        read.map_err(|e| e.to_string())?;
        return sent.map_err(|e| e.to_string());
    }
    // Another format: the raw bytes into a sparse file, qemu-img into the format, the
    // file to Glance.
    tokio::fs::create_dir_all(&m.conversion_dir)
        .await
        .map_err(|e| format!("{}: {e}", m.conversion_dir.display()))?;
    let base = m
        .conversion_dir
        .join(format!("volume-{}-image-{}", u.volume_id, u.image_id));
    let raw = Removed(base.with_extension("raw"));
    let out = Removed(base.with_extension(&u.disk_format));
    let write = async {
        // Owned here: a failed write drops the receiver, which stops the reader.
        let mut rx = rx;
        let mut f = tokio::fs::File::create(&raw.0).await?;
        let mut pos = 0u64;
        while let Some(piece) = rx.recv().await {
            let mut at = 0;
            while at < piece.len() {
                let end = (at + BLOCK).min(piece.len());
                if piece[at..end].iter().any(|b| *b != 0) {
                    f.seek(std::io::SeekFrom::Start(pos + at as u64)).await?;
                    f.write_all(&piece[at..end]).await?;
                }
                at = end;
            }
            pos += piece.len() as u64;
        }
        f.set_len(pos).await?;
        f.flush().await?;
        Ok::<u64, std::io::Error>(pos)
    };
    let (read, written) = tokio::join!(read, write);
    let sent = read.map_err(|e| e.to_string())?;
    let written = written.map_err(|e| format!("{}: {e}", raw.0.display()))?;
    if sent != written {
        return Err(format!("{sent} bytes read, {written} written"));
    }
    let st = tokio::process::Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", &u.disk_format])
        .arg(&raw.0)
        .arg(&out.0)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("qemu-img: {e}"))?;
    if !st.status.success() {
        return Err(format!(
            "qemu-img convert to {} failed: {}",
            u.disk_format,
            String::from_utf8_lossy(&st.stderr).trim()
        ));
    }
    drop(raw);
    let file = tokio::fs::File::open(&out.0)
        .await
        .map_err(|e| format!("{}: {e}", out.0.display()))?;
    g.upload_file(None, &u.image_id, file)
        .await
        .map_err(|e| e.to_string())
}

/// A file removed when dropped.
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// An interrupted upload: back to the volume's previous status, the image left to
/// whoever looks (Cinder does not track it either).
pub(crate) async fn resume<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: &ClaimKey,
    report: &mut Reconciled,
) -> Result<Resumed, ManagerError> {
    let ending = Ending::volume(OP, &key.id, Outcome::Failed);
    settle(m, key, &ending, &mut report.failed_others).await
}
