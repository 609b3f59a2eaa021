//! A volume's data from a Glance image that could not be cloned: downloaded while the
//! volume reads `downloading`. Raw images stream straight into the RBD image through
//! the driver (bounded: a few MiB in flight, no temporary copy); other formats need
//! random access, so the image is kept in `image_conversion_dir` as Glance stores it
//! while `qemu-img` converts it into the volume, and removed afterwards.

use cinder_common::temp::TempPath;
use cinder_drivers::VolumeDriver;
use cinder_rpc::messages::ImageSource;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::manager::VolumeManager;

/// Bytes gathered from the download before they go to the driver.
const BATCH: usize = 1 << 20;
/// Batches in flight between the download and the driver.
const DEPTH: usize = 4;

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DownloadError {
    /// Glance failed or is not configured.
    #[error("image service: {0}")]
    Glance(#[from] cinder_glance::Error),
    /// The driver could not write or convert the data.
    #[error("{0}")]
    Driver(#[from] cinder_drivers::DriverError),
    /// The temporary file.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The data is not what the image says.
    #[error("{0}")]
    Data(String),
}

/// The download's progress: on the metrics while it runs, and in the log at each
/// quarter.
struct Progress<'a> {
    volume_id: &'a str,
    total: Option<u64>,
    done: u64,
    said: u64,
    shown: crate::metrics::Downloading<'a>,
}

impl Progress<'_> {
    fn add(&mut self, n: usize) {
        self.done += n as u64;
        self.shown
            .progress
            .done
            .store(self.done, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.total.filter(|t| *t > 0) {
            let quarter = self.done * 4 / t;
            if quarter > self.said {
                self.said = quarter;
                tracing::info!(
                    volume_id = self.volume_id,
                    done = self.done,
                    total = t,
                    percent = (self.done * 100 / t).min(100),
                    "downloading the image"
                );
            }
        }
    }
}

/// Downloads `image` into volume `volume_id` (new and blank), showing Glance the
/// caller's `token`.
pub(crate) async fn download<D: VolumeDriver>(
    m: &VolumeManager<D>,
    token: Option<&str>,
    volume_id: &str,
    image: &ImageSource,
) -> Result<(), DownloadError> {
    let glance = m
        .glance
        .as_ref()
        .ok_or(cinder_glance::Error::NotConfigured)?;
    let mut dl = glance.download(token, &image.id).await?;
    let total = image.size.or(dl.length);
    let mut progress = Progress {
        volume_id,
        total,
        done: 0,
        said: 0,
        shown: m.metrics.downloading(volume_id, total),
    };
    let format = image.disk_format.as_deref().unwrap_or("raw");
    if format == "raw" {
        let (tx, rx) = mpsc::channel::<Vec<u8>>(DEPTH);
        let write = m.driver.import_raw(volume_id, rx);
        let feed = async {
            let mut batch = Vec::with_capacity(BATCH);
            while let Some(chunk) = dl.chunk().await? {
                progress.add(chunk.len());
                batch.extend_from_slice(&chunk);
                if batch.len() >= BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    if tx.send(full).await.is_err() {
                        // The writer stopped: its error says why.
                        return Ok::<u64, DownloadError>(progress.done);
                    }
                }
            }
            if !batch.is_empty() {
                let _ = tx.send(batch).await;
            }
            drop(tx);
            Ok(progress.done)
        };
        let (written, fed) = tokio::join!(write, feed);
        let fed = fed?;
        let written = written?;
        if written != fed {
            return Err(DownloadError::Data(format!(
                "{fed} bytes downloaded, {written} written"
            )));
        }
        check_size(image, fed)?;
        return Ok(());
    }
    tokio::fs::create_dir_all(&m.conversion_dir).await?;
    let path = m
        .conversion_dir
        .join(format!("image-{}-volume-{volume_id}.{format}", image.id));
    let temp = TempPath::new(&path);
    let mut file = tokio::fs::File::create(&path).await?;
    while let Some(chunk) = dl.chunk().await? {
        progress.add(chunk.len());
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    drop(file);
    check_size(image, progress.done)?;
    m.driver
        .convert_into(volume_id, temp.path(), format)
        .await?;
    Ok(())
}

fn check_size(image: &ImageSource, got: u64) -> Result<(), DownloadError> {
    match image.size {
        Some(want) if want != got => Err(DownloadError::Data(format!(
            "image {} is {want} bytes, {got} arrived",
            image.id
        ))),
        _ => Ok(()),
    }
}

/// An image operation on volume `key.id` (upload, re-image) that a crash interrupted:
/// its conversion files go, and the volume ends as the operation's failure says.
pub(crate) async fn resume_failed<D: VolumeDriver>(
    m: &VolumeManager<D>,
    op: &'static cinder_common::ops::Operation<cinder_common::status::VolumeStatus>,
    key: &cinder_common::ops::ClaimKey,
    report: &mut crate::recovery::Reconciled,
) -> Result<crate::recovery::Resumed, crate::manager::ManagerError> {
    remove_leftovers(m, &key.id).await;
    let ending = cinder_db::Ending::volume(op, &key.id, cinder_common::ops::Outcome::Failed);
    crate::recovery::settle(m, key, &ending, &mut report.failed_others).await
}

/// Whether `name`, a file in `image_conversion_dir`, is one a download into
/// (`image-<image>-volume-<id>.<fmt>`, and its `.raw` beside) or an upload from
/// (`volume-<id>-image-<image>.<fmt>`) volume `volume_id` made.
fn is_leftover_of(name: &str, volume_id: &str) -> bool {
    let mine = format!("volume-{volume_id}");
    name.starts_with(&format!("{mine}-image-"))
        || (name.starts_with("image-")
            && name
                .rsplit_once('.')
                .is_some_and(|(stem, _)| stem.ends_with(&format!("-{mine}"))))
}

/// Removes what an interrupted download into, or upload from, volume `volume_id` left in
/// `image_conversion_dir` (the process that wrote it was killed: no guard ran). Only
/// this volume's files: other services may share the directory.
pub(crate) async fn remove_leftovers<D: VolumeDriver>(m: &VolumeManager<D>, volume_id: &str) {
    let Ok(mut dir) = tokio::fs::read_dir(&m.conversion_dir).await else {
        return;
    };
    while let Ok(Some(e)) = dir.next_entry().await {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_leftover_of(name, volume_id) {
            match tokio::fs::remove_file(e.path()).await {
                Ok(()) => {
                    tracing::info!(volume_id, file = %e.path().display(), "removed an interrupted conversion's file")
                }
                Err(err) => {
                    tracing::warn!(volume_id, file = %e.path().display(), error = %err, "cannot remove an interrupted conversion's file")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_leftover_of;

    #[test]
    fn only_the_interrupted_volumes_conversion_files_are_leftovers() {
        let v = "0b7c6c7e-1d7e-4a43-9a4e-6f1f3d7c2b10";
        let other = "5e2d1f4a-2c41-4c35-8f5b-0d8a3b1e9c77";
        let img = "c8a1f5d2-9e7b-4f6a-8c3d-2b1a0e9f8d76";
        for mine in [
            format!("image-{img}-volume-{v}.qcow2"),
            format!("image-{img}-volume-{v}.raw"),
            format!("volume-{v}-image-{img}.qcow2"),
            format!("volume-{v}-image-{img}.raw"),
        ] {
            assert!(is_leftover_of(&mine, v), "{mine}");
        }
        for theirs in [
            format!("image-{img}-volume-{other}.qcow2"),
            format!("volume-{other}-image-{img}.raw"),
            format!("volume-{v}.raw"),
            "systemd-private-x".to_string(),
        ] {
            assert!(!is_leftover_of(&theirs, v), "{theirs}");
        }
    }
}
