//! A volume's data from a Glance image that could not be cloned: downloaded while the
//! volume reads `downloading`. Raw images stream straight into the RBD image through
//! the driver (bounded: a few MiB in flight, no temporary copy); other formats need
//! random access, so the image is kept in `image_conversion_dir` as Glance stores it
//! while `qemu-img` converts it into the volume, and removed afterwards.

use std::path::PathBuf;

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

/// Removes the temporary file when the conversion ends, however it ends.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Logs the download's progress at each quarter.
struct Progress<'a> {
    volume_id: &'a str,
    total: Option<u64>,
    done: u64,
    said: u64,
}

impl Progress<'_> {
    fn add(&mut self, n: usize) {
        self.done += n as u64;
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

/// Downloads `image` into volume `volume_id` (new and blank).
pub(crate) async fn download<D: VolumeDriver>(
    m: &VolumeManager<D>,
    volume_id: &str,
    image: &ImageSource,
) -> Result<(), DownloadError> {
    let glance = m
        .glance
        .as_ref()
        .ok_or(cinder_glance::Error::NotConfigured)?;
    let mut dl = glance.download(None, &image.id).await?;
    let mut progress = Progress {
        volume_id,
        total: image.size.or(dl.length),
        done: 0,
        said: 0,
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
    let temp = TempFile(path.clone());
    let mut file = tokio::fs::File::create(&path).await?;
    while let Some(chunk) = dl.chunk().await? {
        progress.add(chunk.len());
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    drop(file);
    check_size(image, progress.done)?;
    m.driver.convert_into(volume_id, &temp.0, format).await?;
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
