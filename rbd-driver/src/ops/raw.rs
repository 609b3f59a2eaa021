//! Raw image data in and out: a volume filled from a byte stream (a Glance image being
//! downloaded), written in pieces with a window of writes in flight and without its
//! zero blocks (the target is new: it reads zeroes there already); and an image read
//! out as one byte stream (a volume uploaded to Glance), its unallocated extents as
//! zeroes without reading them.

use std::io::Read;

use tokio::sync::mpsc;
use tracing::instrument;

use super::diff::ChannelReader;
use super::RbdDriver;
use crate::ctl::OpCtl;
use crate::diff::{read_changes, Applier, Extent};
use crate::error::{Error, Result};
use crate::pool::Lane;
use crate::rbd::{Image, Open};
use crate::types::ImageSpec;

/// Bytes gathered before a piece is written.
const PIECE: usize = 4 << 20;

/// What a raw import wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawImportStats {
    /// Bytes of the stream.
    pub bytes: u64,
    /// Bytes written as data (the rest were zero blocks, skipped).
    pub data_bytes: u64,
}

impl RbdDriver {
    /// Writes the bytes arriving on `rx`, from offset 0, into `spec`, a new image (zero
    /// blocks are skipped). A stream longer than the image fails
    /// ([`Error::InvalidArgument`]) before anything past its end is written. Progress
    /// goes to `ctl` against the image size; cancellation stops at the next piece.
    #[instrument(skip_all, fields(pool = %spec.pool, image = %spec.name))]
    pub async fn import_raw(
        &self,
        spec: &ImageSpec,
        rx: mpsc::Receiver<Vec<u8>>,
        ctl: &OpCtl,
    ) -> Result<RawImportStats> {
        let spec = spec.clone();
        let window = self.inner.config.rbd_concurrent_management_ops;
        self.run(Lane::Long, ctl, move |conn, ctl| {
            let io = conn.io(&spec.pool)?;
            let img = Image::open(&io, Open::Name(&spec.name))?;
            let size = img.stat()?.size;
            let mut reader = ChannelReader {
                rx,
                cur: Vec::new(),
                pos: 0,
            };
            let mut applier = Applier::new(&img, window);
            let mut stats = RawImportStats::default();
            loop {
                if ctl.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                let mut piece = vec![0u8; PIECE];
                let mut filled = 0;
                while filled < PIECE {
                    let n = reader.read(&mut piece[filled..])?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    break;
                }
                piece.truncate(filled);
                if stats.bytes + filled as u64 > size {
                    return Err(Error::InvalidArgument(format!(
                        "the data is larger than {}/{} ({size} bytes)",
                        spec.pool, spec.name
                    )));
                }
                stats.data_bytes += applier.write_nonzero(stats.bytes, piece)?;
                stats.bytes += filled as u64;
                ctl.report(stats.bytes, size);
            }
            applier.drain()?;
            Ok(stats)
        })
        .await
    }

    /// Sends the bytes of `spec` (at `snap`, or its head) to `tx`, in order, in pieces
    /// of at most 4 MiB: data extents as read, the rest as zeroes (not read). Returns
    /// the bytes sent (the image size). A closed receiver ends it with
    /// [`Error::Cancelled`]; progress goes to `ctl` against the size.
    #[instrument(skip_all, fields(pool = %spec.pool, image = %spec.name))]
    pub async fn export_raw(
        &self,
        spec: &ImageSpec,
        snap: Option<&str>,
        tx: mpsc::Sender<Vec<u8>>,
        ctl: &OpCtl,
    ) -> Result<u64> {
        let (spec, snap) = (spec.clone(), snap.map(str::to_string));
        let window = self.inner.config.rbd_concurrent_management_ops;
        self.run(Lane::Long, ctl, move |conn, ctl| {
            let io = conn.io(&spec.pool)?;
            let img = Image::open(&io, Open::NameReadOnly(&spec.name, snap.as_deref()))?;
            let size = img.stat()?.size;
            let mut pos = 0u64;
            // Waits for room without blocking past a cancellation (a receiver that
            // stopped reading but lives on must not hold this thread).
            let send = |mut buf: Vec<u8>| -> Result<()> {
                loop {
                    match tx.try_send(buf) {
                        Ok(()) => return Ok(()),
                        Err(mpsc::error::TrySendError::Closed(_)) => return Err(Error::Cancelled),
                        Err(mpsc::error::TrySendError::Full(b)) => {
                            if ctl.is_cancelled() {
                                return Err(Error::Cancelled);
                            }
                            buf = b;
                            std::thread::sleep(std::time::Duration::from_millis(5));
                        }
                    }
                }
            };
            let zeroes = |pos: &mut u64, to: u64| -> Result<()> {
                while *pos < to {
                    let n = (to - *pos).min(PIECE as u64);
                    send(vec![0u8; n as usize])?;
                    *pos += n;
                }
                Ok(())
            };
            read_changes(&img, None, false, window, ctl, &mut |e: Extent| {
                let mut at = pos;
                zeroes(&mut at, e.offset)?;
                match e.data {
                    Some(buf) => {
                        for piece in buf.chunks(PIECE) {
                            send(piece.to_vec())?;
                        }
                        at = e.offset + e.length;
                    }
                    None => zeroes(&mut at, e.offset + e.length)?,
                }
                pos = at;
                ctl.report(pos, size);
                Ok(())
            })?;
            zeroes(&mut pos, size)?;
            Ok(size)
        })
        .await
    }
}
