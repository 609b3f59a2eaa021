//! Backup streams: an image's changes up to one of its snapshots, exported on this
//! driver's long lane and imported on another driver's long lane (the same cluster or
//! another), in process through a bounded channel; no subprocess, no file, memory
//! bounded by the read window and the channel whatever the image size. On the way the
//! content digest of the end point is computed ([`crate::diff::ContentDigest`]), and a
//! restore refuses to end a stream whose data does not match the digest recorded at
//! backup time.

use tokio::sync::mpsc;
use tracing::instrument;

use super::diff::{ChannelReader, CHANNEL_DEPTH};
use super::RbdDriver;
use crate::ctl::OpCtl;
use crate::diff::{
    self, encode_extent, encode_header, ContentDigest, DiffReader, ExportStats, Extent, FullDigest,
    ImportStats, TouchedBlocks, DIGEST_BLOCK, END_RECORD,
};
use crate::error::{Error, Result};
use crate::pool::Lane;
use crate::rbd::{Image, Open};
use crate::types::ImageSpec;

/// What [`RbdDriver::send_diff`] computes of the end point's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digesting {
    /// The digest of the whole content, from the stream's data (a full stream).
    Full,
    /// The digest of the end point from the start point's (`from_snap`), updated with
    /// the blocks the stream changes: their content at both points is read again.
    Since(ContentDigest),
    /// As `Full`, and the stream is not ended (the importer rolls back) unless the
    /// content has this digest: a restore.
    Expect(ContentDigest),
}

/// What a [`RbdDriver::send_diff`] moved and found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendStats {
    /// The exporting side.
    pub export: ExportStats,
    /// The importing side.
    pub import: ImportStats,
    /// The digest of the end point's content.
    pub digest: ContentDigest,
    /// 4 KiB blocks an incremental stream changed (0 for full streams).
    pub touched_blocks: u64,
}

/// The sending half of a stream, running on the exporter's thread.
struct Sender {
    tx: mpsc::Sender<Vec<u8>>,
    stats: ExportStats,
}

/// The zero and non-zero runs of `buf` (at `offset`), in 4 KiB blocks aligned to the
/// image: `(start, end, is_data)` within `buf`.
fn runs(offset: u64, buf: &[u8]) -> Vec<(usize, usize, bool)> {
    let mut out: Vec<(usize, usize, bool)> = Vec::new();
    let mut at = 0usize;
    while at < buf.len() {
        let block_end = ((offset + at as u64) / DIGEST_BLOCK + 1) * DIGEST_BLOCK;
        let end = ((block_end - offset) as usize).min(buf.len());
        let data = buf[at..end].iter().any(|b| *b != 0);
        match out.last_mut() {
            Some(last) if last.2 == data => last.1 = end,
            _ => out.push((at, end, data)),
        }
        at = end;
    }
    out
}

impl Sender {
    /// A data extent: its zero blocks go as zero records (an object written after the
    /// start point is reported whole by librbd, and reads as zeroes where nothing was
    /// written), the rest as data.
    fn data(&mut self, offset: u64, buf: Vec<u8>) -> Result<()> {
        let parts = runs(offset, &buf);
        if let [(_, _, true)] = parts[..] {
            self.stats.write_records += 1;
            self.stats.data_bytes += buf.len() as u64;
            self.send(encode_extent(true, offset, buf.len() as u64))?;
            return self.send(buf);
        }
        for (a, b, data) in parts {
            let (off, len) = (offset + a as u64, (b - a) as u64);
            if data {
                self.stats.write_records += 1;
                self.stats.data_bytes += len;
                self.send(encode_extent(true, off, len))?;
                self.send(buf[a..b].to_vec())?;
            } else {
                self.zero(off, len)?;
            }
        }
        Ok(())
    }

    /// A zero extent.
    fn zero(&mut self, offset: u64, length: u64) -> Result<()> {
        self.stats.zero_records += 1;
        self.send(encode_extent(false, offset, length))
    }

    fn send(&mut self, chunk: Vec<u8>) -> Result<()> {
        self.stats.stream_bytes += chunk.len() as u64;
        self.tx
            .blocking_send(chunk)
            .map_err(|_| Error::Io(std::io::ErrorKind::BrokenPipe.into()))
    }
}

/// Reads `[offset, offset + buf.len())` of `img`, zeroes past `size`.
fn read_clamped(img: &Image<'_>, size: u64, offset: u64, buf: &mut [u8]) -> Result<()> {
    buf.fill(0);
    if offset < size {
        let n = ((size - offset) as usize).min(buf.len());
        let mut done = 0;
        while done < n {
            let r = img.read(offset + done as u64, &mut buf[done..n])?;
            if r == 0 {
                break;
            }
            done += r;
        }
    }
    Ok(())
}

/// `parent` (the digest at `old`) moved to the digest at `new` over the `touched`
/// blocks: each one's content at both points is read and swapped in the sum.
fn digest_since(
    parent: ContentDigest,
    old: &Image<'_>,
    new: &Image<'_>,
    mut touched: TouchedBlocks,
    ctl: &OpCtl,
) -> Result<ContentDigest> {
    const CHUNK_BLOCKS: u64 = 1024; // 4 MiB per read
    let (old_size, new_size) = (old.stat()?.size, new.stat()?.size);
    if parent.size != old_size {
        return Err(Error::DigestMismatch {
            target: old.target().to_string(),
            expected: parent.to_string(),
            actual: format!("an image of {old_size} bytes"),
        });
    }
    if old_size != new_size {
        // The blocks between the two ends change length (or vanish, or appear).
        let from = old_size.min(new_size) / DIGEST_BLOCK * DIGEST_BLOCK;
        touched.extent(from, old_size.max(new_size) - from);
        touched.normalize();
    }
    let mut d = parent;
    d.size = new_size;
    let block_len =
        |size: u64, i: u64| size.saturating_sub(i * DIGEST_BLOCK).min(DIGEST_BLOCK) as usize;
    let mut before = vec![0u8; (CHUNK_BLOCKS * DIGEST_BLOCK) as usize];
    let mut after = vec![0u8; (CHUNK_BLOCKS * DIGEST_BLOCK) as usize];
    for &(first, last) in &touched.0 {
        let mut i = first;
        while i <= last {
            if ctl.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let n = (last - i + 1).min(CHUNK_BLOCKS);
            let len = (n * DIGEST_BLOCK) as usize;
            read_clamped(old, old_size, i * DIGEST_BLOCK, &mut before[..len])?;
            read_clamped(new, new_size, i * DIGEST_BLOCK, &mut after[..len])?;
            for k in 0..n {
                let at = (k * DIGEST_BLOCK) as usize;
                let b = i + k;
                d.remove_block(b, &before[at..at + block_len(old_size, b)]);
                d.add_block(b, &after[at..at + block_len(new_size, b)]);
            }
            i += n;
        }
    }
    Ok(d)
}

impl RbdDriver {
    /// Streams `src` as of its snapshot `at_snap`, the changes since `from_snap` (or
    /// everything), into `dst_spec` on `dst` (this cluster or another): `rbd export-diff
    /// | rbd import-diff` in process. With `end_name` the importer creates that snapshot
    /// on `dst_spec` (a backup's restore point); without it none (a restore). `f`
    /// (`from_snap`) must exist on `dst_spec` as it does for `rbd import-diff`.
    ///
    /// The stream's end record goes out only after the digest is known (and, for
    /// [`Digesting::Expect`], matches): any failure before it, on either side, leaves
    /// `dst_spec` without the end snapshot and at its old size.
    #[allow(clippy::too_many_arguments)]
    #[instrument(skip_all, fields(src = %src.name, at = at_snap, from = from_snap, dst = %dst_spec.name))]
    pub async fn send_diff(
        &self,
        src: &ImageSpec,
        at_snap: &str,
        from_snap: Option<&str>,
        end_name: Option<&str>,
        digesting: Digesting,
        dst: &RbdDriver,
        dst_spec: &ImageSpec,
        ctl: &OpCtl,
    ) -> Result<SendStats> {
        let (tx, rx) = mpsc::channel::<Vec<u8>>(CHANNEL_DEPTH);
        let (spec, at, from, end) = (
            src.clone(),
            at_snap.to_string(),
            from_snap.map(str::to_string),
            end_name.map(str::to_string),
        );
        let window = self.inner.config.rbd_concurrent_management_ops;
        let export = self.run(Lane::Long, ctl, move |conn, ctl| {
            let io = conn.io(&spec.pool)?;
            let img = Image::open(&io, Open::NameReadOnly(&spec.name, Some(&at)))?;
            let size = img.stat()?.size;
            let mut out = Sender {
                tx,
                stats: ExportStats::default(),
            };
            out.send(encode_header(from.as_deref(), end.as_deref(), size))?;
            let mut full = match digesting {
                Digesting::Full | Digesting::Expect(_) => Some(FullDigest::new(size)),
                Digesting::Since(_) => None,
            };
            let mut touched = TouchedBlocks::default();
            diff::read_changes(
                &img,
                from.as_deref(),
                false,
                window,
                ctl,
                &mut |e: Extent| {
                    touched.extent(e.offset, e.length);
                    match e.data {
                        Some(buf) => {
                            if let Some(f) = full.as_mut() {
                                f.data(e.offset, &buf);
                            }
                            out.data(e.offset, buf)
                        }
                        None => out.zero(e.offset, e.length),
                    }
                },
            )?;
            let (digest, touched_blocks) = match (digesting, full) {
                (Digesting::Since(parent), _) => {
                    let old = Image::open(&io, Open::NameReadOnly(&spec.name, from.as_deref()))?;
                    let n = touched.blocks();
                    (digest_since(parent, &old, &img, touched, ctl)?, n)
                }
                (Digesting::Expect(want), Some(f)) => {
                    let got = f.finish();
                    if got != want {
                        return Err(Error::DigestMismatch {
                            target: format!("{}/{}@{}", spec.pool, spec.name, at),
                            expected: want.to_string(),
                            actual: got.to_string(),
                        });
                    }
                    (got, 0)
                }
                (_, f) => (f.map(FullDigest::finish).unwrap_or_default(), 0),
            };
            out.send(END_RECORD.to_vec())?;
            Ok((out.stats, digest, touched_blocks))
        });
        let dst_spec = dst_spec.clone();
        let dst_window = dst.inner.config.rbd_concurrent_management_ops;
        let import = dst.run(Lane::Long, ctl, move |conn, ctl| {
            let io = conn.io(&dst_spec.pool)?;
            let img = Image::open(&io, Open::Name(&dst_spec.name))?;
            let mut reader = DiffReader::new(ChannelReader {
                rx,
                cur: Vec::new(),
                pos: 0,
            });
            diff::import_diff(&img, &mut reader, dst_window, ctl)
        });
        let (export, import) = tokio::join!(export, import);
        match (export, import) {
            (Ok((export, digest, touched_blocks)), Ok(import)) => Ok(SendStats {
                export,
                import,
                digest,
                touched_blocks,
            }),
            // The importer stopping closes the channel: its error is the cause.
            (Err(Error::Io(e)), Err(i)) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(i),
            (Err(e), _) => Err(e),
            (Ok(_), Err(i)) => Err(i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::runs;

    #[test]
    fn a_buffer_splits_into_aligned_zero_and_data_runs() {
        let mut buf = vec![0u8; 5 * 4096];
        buf[100] = 1; // first block (partial: the buffer starts 2 KiB into a block)
        buf[3 * 4096] = 7; // a block in the middle
        let r = runs(2048, &buf);
        // Blocks: [0,2048) data, [2048,6144) zero, [6144,10240) zero, [10240,14336) data
        // (holds 3*4096), [14336,18432) zero, [18432,20480) zero.
        assert_eq!(
            r,
            vec![
                (0, 2048, true),
                (2048, 10240, false),
                (10240, 14336, true),
                (14336, 20480, false)
            ]
        );
        assert_eq!(runs(0, &[1u8; 10]), vec![(0, 10, true)]);
        assert_eq!(runs(0, &[0u8; 10]), vec![(0, 10, false)]);
        assert!(runs(0, &[]).is_empty());
    }
}
