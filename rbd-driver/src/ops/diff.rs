//! Diff extents, export-diff and import-diff. Streams cross between the async caller and
//! the blocking pool through bounded channels of byte chunks, so neither side ever holds
//! more than a few objects' worth of data.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::instrument;

use super::RbdDriver;
use crate::ctl::OpCtl;
use crate::diff::{self, DiffReader, ExportStats, ImportStats};
use crate::error::{Error, Result};
use crate::pool::Lane;
use crate::rbd::{Image, Open};
use crate::types::{DiffExtent, ImageSpec};

/// Chunks in flight between the pool and the async side.
pub(super) const CHANNEL_DEPTH: usize = 8;
/// Size of the chunks read from an async source.
const READ_CHUNK: usize = 1 << 20;

/// `std::io::Read` over chunks arriving from the async side.
pub(super) struct ChannelReader {
    pub(super) rx: mpsc::Receiver<Vec<u8>>,
    pub(super) cur: Vec<u8>,
    pub(super) pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl RbdDriver {
    /// Changed extents of `spec` at `snap` (or HEAD) since `from_snap` (or since
    /// creation), including the parent's data, as `rbd diff` lists them.
    #[instrument(skip_all, fields(pool = %spec.pool, image = %spec.name))]
    pub async fn diff_extents(
        &self,
        spec: &ImageSpec,
        snap: Option<&str>,
        from_snap: Option<&str>,
        whole_object: bool,
        ctl: &OpCtl,
    ) -> Result<Vec<DiffExtent>> {
        let (spec, snap, from) = (
            spec.clone(),
            snap.map(str::to_string),
            from_snap.map(str::to_string),
        );
        self.run(Lane::Long, ctl, move |inner, ctl| {
            let io = inner.io(&spec.pool)?;
            let img = Image::open(&io, Open::NameReadOnly(&spec.name, snap.as_deref()))?;
            let size = img.stat()?.size;
            let mut out = Vec::new();
            let mut cb = |offset, length, exists| {
                if ctl.is_cancelled() {
                    return -libc::ECANCELED;
                }
                out.push(DiffExtent {
                    offset,
                    length,
                    exists,
                });
                0
            };
            img.diff_iterate(from.as_deref(), size, whole_object, &mut cb)?;
            Ok(out)
        })
        .await
    }

    /// Writes the diff of `spec` between `from_snap` (or the beginning) and `to_snap` (or
    /// HEAD) to `sink` as an `rbd diff v1` stream, exactly as `rbd export-diff` writes it.
    /// Returns the sink (flushed) and what was written.
    #[instrument(skip_all, fields(pool = %spec.pool, image = %spec.name, from = from_snap, to = to_snap))]
    pub async fn export_diff<W>(
        &self,
        spec: &ImageSpec,
        from_snap: Option<&str>,
        to_snap: Option<&str>,
        mut sink: W,
        ctl: &OpCtl,
    ) -> Result<(W, ExportStats)>
    where
        W: AsyncWrite + Unpin + Send,
    {
        let (spec, from, to) = (
            spec.clone(),
            from_snap.map(str::to_string),
            to_snap.map(str::to_string),
        );
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(CHANNEL_DEPTH);
        let window = self.inner.config.rbd_concurrent_management_ops;
        let job = self.run(Lane::Long, ctl, move |inner, ctl| {
            let io = inner.io(&spec.pool)?;
            let img = Image::open(&io, Open::NameReadOnly(&spec.name, to.as_deref()))?;
            let mut emit = |chunk: Vec<u8>| {
                tx.blocking_send(chunk)
                    .map_err(|_| Error::Io(std::io::ErrorKind::BrokenPipe.into()))
            };
            diff::export_diff(
                &img,
                from.as_deref(),
                to.as_deref(),
                false,
                window,
                ctl,
                &mut emit,
            )
        });
        let writer = async move {
            while let Some(chunk) = rx.recv().await {
                sink.write_all(&chunk).await?;
            }
            sink.flush().await?;
            Ok::<W, std::io::Error>(sink)
        };
        let (job, writer) = tokio::join!(job, writer);
        match (job, writer) {
            (Ok(stats), Ok(sink)) => Ok((sink, stats)),
            // The sink failing is the root cause of the job's broken pipe.
            (_, Err(e)) => Err(Error::Io(e)),
            (Err(e), _) => Err(e),
        }
    }

    /// [`Self::export_diff`] into a new file at `path`, written on the pool thread as
    /// `rbd export-diff` writes its file (no async hop per chunk). The file must not
    /// exist; a failed export removes it.
    #[instrument(skip_all, fields(pool = %spec.pool, image = %spec.name, from = from_snap, to = to_snap, path = %path.display()))]
    pub async fn export_diff_to_file(
        &self,
        spec: &ImageSpec,
        from_snap: Option<&str>,
        to_snap: Option<&str>,
        path: &Path,
        ctl: &OpCtl,
    ) -> Result<ExportStats> {
        let (spec, from, to, path) = (
            spec.clone(),
            from_snap.map(str::to_string),
            to_snap.map(str::to_string),
            path.to_path_buf(),
        );
        let window = self.inner.config.rbd_concurrent_management_ops;
        self.run(Lane::Long, ctl, move |inner, ctl| {
            let io = inner.io(&spec.pool)?;
            let img = Image::open(&io, Open::NameReadOnly(&spec.name, to.as_deref()))?;
            let file = std::fs::File::create_new(&path)?;
            let mut out = BufWriter::with_capacity(1 << 20, file);
            let mut emit = |chunk: Vec<u8>| out.write_all(&chunk).map_err(Error::Io);
            let r = diff::export_diff(
                &img,
                from.as_deref(),
                to.as_deref(),
                false,
                window,
                ctl,
                &mut emit,
            )
            .and_then(|stats| out.flush().map(|_| stats).map_err(Error::Io));
            if r.is_err() {
                let _ = std::fs::remove_file(&path);
            }
            r
        })
        .await
    }

    /// [`Self::import_diff`] from the file at `path`, read on the pool thread.
    #[instrument(skip_all, fields(pool = %spec.pool, image = %spec.name, path = %path.display()))]
    pub async fn import_diff_from_file(
        &self,
        spec: &ImageSpec,
        path: &Path,
        ctl: &OpCtl,
    ) -> Result<ImportStats> {
        let (spec, path) = (spec.clone(), path.to_path_buf());
        let window = self.inner.config.rbd_concurrent_management_ops;
        self.run(Lane::Long, ctl, move |inner, ctl| {
            let io = inner.io(&spec.pool)?;
            let img = Image::open(&io, Open::Name(&spec.name))?;
            let file = std::fs::File::open(&path)?;
            let mut reader = DiffReader::new(BufReader::with_capacity(1 << 20, file));
            diff::import_diff(&img, &mut reader, window, ctl)
        })
        .await
    }

    /// Applies an `rbd diff v1` stream (from `rbd export-diff` or [`Self::export_diff`])
    /// to `spec` with `rbd import-diff`'s semantics. On any error the image is left as it
    /// was, without the end snapshot.
    #[instrument(skip_all, fields(pool = %spec.pool, image = %spec.name))]
    pub async fn import_diff<R>(
        &self,
        spec: &ImageSpec,
        mut source: R,
        ctl: &OpCtl,
    ) -> Result<ImportStats>
    where
        R: AsyncRead + Unpin + Send,
    {
        let spec = spec.clone();
        let (tx, rx) = mpsc::channel::<Vec<u8>>(CHANNEL_DEPTH);
        let window = self.inner.config.rbd_concurrent_management_ops;
        let job = self.run(Lane::Long, ctl, move |inner, ctl| {
            let io = inner.io(&spec.pool)?;
            let img = Image::open(&io, Open::Name(&spec.name))?;
            let mut reader = DiffReader::new(ChannelReader {
                rx,
                cur: Vec::new(),
                pos: 0,
            });
            diff::import_diff(&img, &mut reader, window, ctl)
        });
        let cancel = ctl.cancel.clone();
        let feeder = async move {
            loop {
                let mut buf = vec![0u8; READ_CHUNK];
                let n = tokio::select! {
                    // Dropping the sender ends the stream for the importer, which then
                    // rolls back; a stalled source cannot hold it.
                    _ = cancel.cancelled() => return Ok(()),
                    n = source.read(&mut buf) => n?,
                };
                if n == 0 {
                    return Ok::<(), std::io::Error>(());
                }
                buf.truncate(n);
                if tx.send(buf).await.is_err() {
                    // The importer stopped early (it rejected the stream); its error tells why.
                    return Ok(());
                }
            }
        };
        let (job, fed) = tokio::join!(job, feeder);
        match (job, fed) {
            (Ok(stats), Ok(())) => Ok(stats),
            (Err(_), _) if ctl.cancel.is_cancelled() => Err(Error::Cancelled),
            (Err(e), Ok(())) => Err(e),
            // A source error truncates the stream: the importer rolled back; report the cause.
            (_, Err(e)) => Err(Error::Io(e)),
        }
    }
}
