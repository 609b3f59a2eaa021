//! Image data into a new volume: raw bytes streamed through the driver's long lane, or
//! a file of another format converted to a sparse raw file by `qemu-img` (a separate
//! process the runtime only awaits) and streamed in the same way. And volumes out to
//! images: their bytes as of a temporary snapshot, or (Glance's pool in this cluster)
//! a flattened copy with a protected `snap`, Nova's direct snapshot.

use std::path::Path;

use cinder_common::temp::TempPath;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::process::Command;

use rbd_driver::{CloneOptions, ImageSpec, OpCtl, RemoveMode};

use super::RbdVolumeDriver;
use crate::DriverError;

/// What `qemu-img info` says of a file.
#[derive(Debug, serde::Deserialize)]
struct QemuInfo {
    format: String,
    #[serde(rename = "virtual-size")]
    virtual_size: u64,
    #[serde(rename = "backing-filename", default)]
    backing_filename: Option<String>,
    #[serde(rename = "format-specific", default)]
    format_specific: Option<serde_json::Value>,
}

/// qemu-img's name for Glance's disk format `format` (Cinder's `fixup_disk_format`:
/// Glance says `vhd` and `ploop` where qemu-img says `vpc` and `parallels`).
fn qemu_format(format: &str) -> &str {
    match format {
        "vhd" => "vpc",
        "ploop" => "parallels",
        other => other,
    }
}

/// Bytes read from the converted file at once.
const PIECE: usize = 4 << 20;

/// Zero runs of this size become holes in a raw file written from a volume.
const BLOCK: usize = 4096;

fn other(what: impl std::fmt::Display, e: impl std::fmt::Display) -> DriverError {
    DriverError::new(crate::DriverErrorKind::Other, format!("{what}: {e}"))
}

async fn run(cmd: &mut Command, what: &str) -> Result<Vec<u8>, DriverError> {
    let out = cmd
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| DriverError::new(crate::DriverErrorKind::Other, format!("{what}: {e}")))?;
    if !out.status.success() {
        return Err(DriverError::new(
            crate::DriverErrorKind::Other,
            format!(
                "{what} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(out.stdout)
}

impl RbdVolumeDriver {
    pub(super) async fn import_raw_data(
        &self,
        volume_id: &str,
        data: tokio::sync::mpsc::Receiver<Vec<u8>>,
    ) -> Result<u64, DriverError> {
        let spec = self.volume_image(volume_id);
        let stats = self.background.import_raw(&spec, data, &self.ctl()).await?;
        tracing::info!(
            volume_id,
            bytes = stats.bytes,
            data_bytes = stats.data_bytes,
            "image data written"
        );
        Ok(stats.bytes)
    }

    pub(super) async fn convert_file(
        &self,
        volume_id: &str,
        path: &Path,
        format: &str,
    ) -> Result<(), DriverError> {
        // The file must be what the image says it is, stand alone (no backing or data
        // file another image could point anywhere), and fit the volume.
        // Probed, not told: a file that is not what the image claims is refused.
        let info = run(
            Command::new("qemu-img")
                .args(["info", "--output=json"])
                .arg(path),
            "qemu-img info",
        )
        .await?;
        let info: QemuInfo = serde_json::from_slice(&info)
            .map_err(|e| DriverError::invalid(format!("qemu-img info: {e}")))?;
        let qformat = qemu_format(format);
        if info.format != qformat {
            return Err(DriverError::invalid(format!(
                "the image data is {}, not {format}",
                info.format
            )));
        }
        let data_file = info
            .format_specific
            .as_ref()
            .and_then(|f| f.pointer("/data/data-file"))
            .is_some();
        if info.backing_filename.is_some() || data_file {
            return Err(DriverError::invalid(
                "the image has a backing or data file: refused",
            ));
        }
        // A VMDK descriptor may name extents anywhere on this host: only the
        // self-contained kinds (Cinder's rule).
        if format == "vmdk" {
            let kind = info
                .format_specific
                .as_ref()
                .and_then(|f| f.pointer("/data/create-type"))
                .and_then(|k| k.as_str())
                .unwrap_or_default();
            if !matches!(kind, "monolithicSparse" | "streamOptimized") {
                return Err(DriverError::invalid(format!(
                    "a vmdk of create-type {kind:?} is refused (monolithicSparse or streamOptimized only)"
                )));
            }
        }
        let spec = self.volume_image(volume_id);
        let size = self.background.image_info(&spec).await?.size;
        if info.virtual_size > size {
            return Err(DriverError::invalid(format!(
                "the image's virtual size {} does not fit the volume ({size} bytes)",
                info.virtual_size
            )));
        }
        // To raw beside it (sparse: holes cost no space), then streamed in like a raw
        // download. qemu-img's own rbd driver would skip the second copy, but Debian
        // ships it in a separate module package that must match qemu-img's version
        // exactly.
        let raw = TempPath::new(path.with_extension("raw"));
        run(
            Command::new("qemu-img")
                .args(["convert", "-f", qformat, "-O", "raw"])
                .arg(path)
                .arg(raw.path()),
            "qemu-img convert",
        )
        .await?;
        let mut file = tokio::fs::File::open(raw.path())
            .await
            .map_err(|e| other(raw.path().display(), e))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let write = self.import_raw_data(volume_id, rx);
        let feed = async {
            use tokio::io::AsyncReadExt;
            loop {
                let mut buf = vec![0u8; PIECE];
                let mut filled = 0;
                while filled < PIECE {
                    let n = file.read(&mut buf[filled..]).await?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    break;
                }
                buf.truncate(filled);
                if tx.send(buf).await.is_err() {
                    break;
                }
            }
            // The end of the stream for the importer.
            drop(tx);
            Ok::<(), std::io::Error>(())
        };
        let (written, fed) = tokio::join!(write, feed);
        fed.map_err(|e| other(raw.path().display(), e))?;
        let written = written?;
        if written != info.virtual_size {
            return Err(DriverError::new(
                crate::DriverErrorKind::Other,
                format!(
                    "{written} bytes converted, the image holds {}",
                    info.virtual_size
                ),
            ));
        }
        tracing::info!(
            volume_id,
            format,
            virtual_size = info.virtual_size,
            "image converted into the volume"
        );
        Ok(())
    }
}

impl RbdVolumeDriver {
    pub(super) async fn export_volume_data(
        &self,
        volume_id: &str,
        point_in_time: bool,
        data: tokio::sync::mpsc::Sender<Vec<u8>>,
    ) -> Result<u64, DriverError> {
        let d = &self.background;
        let spec = self.volume_image(volume_id);
        if !point_in_time {
            return Ok(d.export_raw(&spec, None, data, &self.ctl()).await?);
        }
        let temp = spec.snap(format!("upload-{}", uuid_like()));
        d.create_snapshot(&temp).await?;
        let sent = d
            .export_raw(&spec, Some(&temp.snap), data, &self.ctl())
            .await;
        if let Err(e) = d.remove_snapshot(&temp, &OpCtl::new()).await {
            tracing::warn!(snapshot = %temp, error = %e, "cannot remove the upload's snapshot");
        }
        Ok(sent?)
    }

    pub(super) async fn export_volume_file(
        &self,
        volume_id: &str,
        point_in_time: bool,
        format: &str,
        path: &Path,
    ) -> Result<u64, DriverError> {
        // The raw bytes into a sparse file (the target itself when raw), then qemu-img.
        let out = TempPath::new(path);
        let raw = (format != "raw").then(|| TempPath::new(path.with_extension("raw")));
        let raw_path = raw.as_ref().map_or(path, |r| r.path());
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let read = self.export_volume_data(volume_id, point_in_time, tx);
        let write = async {
            // Owned here: a failed write drops the receiver, which stops the reader.
            let mut f = tokio::fs::File::create(raw_path).await?;
            let mut pos = 0u64;
            while let Some(piece) = rx.recv().await {
                for (at, block) in piece.chunks(BLOCK).enumerate() {
                    if block.iter().any(|b| *b != 0) {
                        f.seek(std::io::SeekFrom::Start(pos + (at * BLOCK) as u64))
                            .await?;
                        f.write_all(block).await?;
                    }
                }
                pos += piece.len() as u64;
            }
            drop(rx);
            f.set_len(pos).await?;
            f.flush().await?;
            Ok::<u64, std::io::Error>(pos)
        };
        let (sent, written) = tokio::join!(read, write);
        // The writer's error first: a full disk stops the reader, whose error would only
        // say that its receiver went away.
        let written = written.map_err(|e| other(raw_path.display(), e))?;
        let sent = sent?;
        if sent != written {
            return Err(other(
                raw_path.display(),
                format!("{sent} bytes read, {written} written"),
            ));
        }
        if raw.is_some() {
            run(
                Command::new("qemu-img")
                    .args(["convert", "-f", "raw", "-O", qemu_format(format)])
                    .arg(raw_path)
                    .arg(path),
                "qemu-img convert",
            )
            .await?;
        }
        out.keep();
        Ok(sent)
    }

    pub(super) async fn publish(
        &self,
        volume_id: &str,
        pool: &str,
        name: &str,
    ) -> Result<String, DriverError> {
        let made = self.publish_steps(volume_id, pool, name).await;
        if made.is_err() {
            if let Err(e) = self.unpublish(pool, name).await {
                tracing::warn!(pool, name, error = %e, "cannot remove a half-made image copy");
            }
        }
        made
    }

    async fn publish_steps(
        &self,
        volume_id: &str,
        pool: &str,
        name: &str,
    ) -> Result<String, DriverError> {
        let d = &self.background;
        let spec = self.volume_image(volume_id);
        let temp = spec.snap(format!("image-{name}"));
        let target = ImageSpec::new(pool, name);
        d.create_snapshot(&temp).await?;
        let copied = async {
            d.clone_image(&temp, &target, &CloneOptions::default())
                .await?;
            d.flatten(&target, &self.ctl()).await?;
            Ok::<(), rbd_driver::Error>(())
        }
        .await;
        // Flattened (or failed): the temporary snapshot has no clone left.
        if let Err(e) = d.remove_snapshot(&temp, &OpCtl::new()).await {
            tracing::warn!(snapshot = %temp, error = %e, "cannot remove the copy's snapshot");
        }
        copied?;
        let snap = target.snap("snap");
        d.create_snapshot(&snap).await?;
        d.protect_snapshot(&snap).await?;
        Ok(format!("rbd://{}/{pool}/{name}/snap", d.fsid()))
    }

    pub(super) async fn unpublish(&self, pool: &str, name: &str) -> Result<(), DriverError> {
        let d = &self.background;
        let target = ImageSpec::new(pool, name);
        let snap = target.snap("snap");
        match d.unprotect_snapshot(&snap).await {
            Ok(()) => {}
            Err(e) if e.kind() == rbd_driver::ErrorKind::NotFound => {}
            Err(e) if e.kind() == rbd_driver::ErrorKind::InvalidInput => {}
            Err(e) => return Err(e.into()),
        }
        match d.remove_snapshot(&snap, &OpCtl::new()).await {
            Ok(()) => {}
            Err(e) if e.kind() == rbd_driver::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        d.remove_image(&target, RemoveMode::PurgeNow, &OpCtl::new())
            .await?;
        Ok(())
    }
}

/// A fresh name suffix.
fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{n:x}")
}

#[cfg(test)]
mod tests {
    use super::qemu_format;

    #[test]
    fn glances_disk_formats_get_qemu_imgs_names() {
        assert_eq!(qemu_format("vhd"), "vpc");
        assert_eq!(qemu_format("ploop"), "parallels");
        for same in ["raw", "qcow2", "vmdk", "vdi", "vhdx"] {
            assert_eq!(qemu_format(same), same);
        }
    }
}
