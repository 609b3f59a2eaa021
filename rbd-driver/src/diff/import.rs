//! Applies a diff v1 stream to an open image with `rbd import-diff`'s semantics: the
//! start snapshot must exist, the end snapshot must not, `s` resizes, `w` writes (zero
//! runs of 4 KiB as write-zeroes, which keeps the target sparse), `z` writes zeroes, and
//! the end snapshot is created only once everything is written.
//!
//! Unlike `rbd import-diff`, a failure (a malformed or truncated stream, a failed write,
//! cancellation) leaves the target as it was. Before the first change the importer
//! picks the cheapest exact undo:
//! - the target is at the stream's start snapshot, unchanged since (the normal
//!   incremental): roll back to that snapshot;
//! - the target holds no data at all (a full stream into a new image): discard what
//!   was written and restore the size;
//! - otherwise: a guard snapshot taken now, rolled back to and removed. This is the
//!   only case that costs extra while importing (writes under a new snapshot).

use std::collections::VecDeque;
use std::io::Read;
use std::rc::Rc;

use super::{DiffError, DiffReader, Record};
use crate::ctl::OpCtl;
use crate::error::{Error, Result};
use crate::rbd::{Completion, Image};

/// Largest piece of a `w` record read and written at once.
const PIECE: usize = 4 << 20;
/// Zero runs of this size (aligned within a piece) become write-zeroes.
const SPARSE_SIZE: usize = 4096;
/// Prefix of the guard snapshot taken for the duration of an import.
pub const GUARD_SNAP_PREFIX: &str = "cinder-import-guard.";

/// What an import applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportStats {
    /// The end snapshot created, if the stream named one.
    pub to_snap: Option<String>,
    /// The image size after the import.
    pub size: u64,
    /// Bytes written as data.
    pub data_bytes: u64,
    /// Bytes written as zeroes (from `z` records and zero runs in `w` data).
    pub zeroed_bytes: u64,
}

struct InFlight {
    // Declared first: dropping waits for the write before the buffer reference goes.
    completion: Completion,
    _buf: Option<Rc<Vec<u8>>>,
}

/// Writes data to an image with up to `window` writes in flight.
pub(crate) struct Applier<'a> {
    image: &'a Image<'a>,
    queue: VecDeque<InFlight>,
    window: usize,
}

impl<'a> Applier<'a> {
    pub(crate) fn new(image: &'a Image<'a>, window: usize) -> Self {
        Applier {
            image,
            queue: VecDeque::new(),
            window: window.max(1),
        }
    }

    /// Waits for every write in flight; the first failure is the result.
    pub(crate) fn drain(&mut self) -> Result<()> {
        self.reap(0)
    }

    /// Writes `buf` at `offset`: runs of zero `SPARSE_SIZE` blocks as write-zeroes (which
    /// keeps the target sparse), the rest as data. Returns (data bytes, zeroed bytes).
    pub(crate) fn write_data(&mut self, offset: u64, buf: Vec<u8>) -> Result<(u64, u64)> {
        let buf = Rc::new(buf);
        let (mut data, mut zeroed) = (0, 0);
        for (range, zero) in runs(&buf) {
            let len = range.len() as u64;
            if zero {
                self.zero(offset + range.start as u64, len)?;
                zeroed += len;
            } else {
                self.write(offset + range.start as u64, &buf, range)?;
                data += len;
            }
        }
        Ok((data, zeroed))
    }

    /// Writes the non-zero `SPARSE_SIZE` blocks of `buf` at `offset` and skips the
    /// zero ones (the target reads zeroes there already: a new image). Returns the
    /// data bytes written.
    pub(crate) fn write_nonzero(&mut self, offset: u64, buf: Vec<u8>) -> Result<u64> {
        let buf = Rc::new(buf);
        let mut data = 0;
        for (range, zero) in runs(&buf) {
            if !zero {
                data += range.len() as u64;
                self.write(offset + range.start as u64, &buf, range)?;
            }
        }
        Ok(data)
    }

    fn reap(&mut self, keep: usize) -> Result<()> {
        while self.queue.len() > keep {
            let mut f = self.queue.pop_front().expect("non-empty");
            let r = f.completion.wait();
            if r < 0 {
                return Err(Error::rbd(
                    "rbd_aio_write2",
                    self.image.target(),
                    -(r as i32),
                ));
            }
        }
        Ok(())
    }

    fn write(
        &mut self,
        offset: u64,
        buf: &Rc<Vec<u8>>,
        range: std::ops::Range<usize>,
    ) -> Result<()> {
        self.reap(self.window - 1)?;
        let mut c = Completion::new()?;
        self.image.aio_write(offset, &buf[range], &mut c)?;
        self.queue.push_back(InFlight {
            completion: c,
            _buf: Some(buf.clone()),
        });
        Ok(())
    }

    fn zero(&mut self, offset: u64, length: u64) -> Result<()> {
        // Large zero ranges in 1 GiB steps.
        let mut done = 0;
        while done < length {
            let n = (length - done).min(1 << 30);
            self.reap(self.window - 1)?;
            let mut c = Completion::new()?;
            self.image.aio_write_zeroes(offset + done, n, &mut c)?;
            self.queue.push_back(InFlight {
                completion: c,
                _buf: None,
            });
            done += n;
        }
        Ok(())
    }
}

/// `buf` cut into maximal runs of `SPARSE_SIZE` blocks (the last may be shorter) that
/// are all zero or all not: (range, zero).
fn runs(buf: &[u8]) -> Vec<(std::ops::Range<usize>, bool)> {
    let n = buf.len();
    let mut out = Vec::new();
    let mut start = 0usize;
    while start < n {
        let zero = is_zero(&buf[start..(start + SPARSE_SIZE).min(n)]);
        let mut end = (start + SPARSE_SIZE).min(n);
        while end < n && is_zero(&buf[end..(end + SPARSE_SIZE).min(n)]) == zero {
            end = (end + SPARSE_SIZE).min(n);
        }
        out.push((start..end, zero));
        start = end;
    }
    out
}

/// How to put the target back if the import fails after changing it.
enum Undo {
    /// Nothing changed yet.
    Nothing,
    /// Roll back to a snapshot, and remove it afterwards if it is our guard.
    Rollback { snap: String, guard: bool },
    /// The target had no data: discard `[0, end)` and resize back to `size`.
    Discard { size: u64, end: u64 },
}

impl Undo {
    /// Decides, before the first change, how that change would be undone.
    fn plan(image: &Image<'_>, from: Option<&str>) -> Result<Undo> {
        let size = image.stat()?.size;
        if let Some(f) = from {
            let at_from = image
                .snapshots()?
                .into_iter()
                .any(|s| s.name == f && s.size == size);
            if at_from && !image.has_changes(Some(f))? {
                return Ok(Undo::Rollback {
                    snap: f.to_string(),
                    guard: false,
                });
            }
        } else if !image.has_changes(None)? {
            return Ok(Undo::Discard { size, end: 0 });
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let snap = format!("{GUARD_SNAP_PREFIX}{}.{nanos}", std::process::id());
        image.snap_create(&snap)?;
        Ok(Undo::Rollback { snap, guard: true })
    }

    /// Records that `[.., end)` was written (for the discard undo).
    fn wrote_to(&mut self, end: u64) {
        if let Undo::Discard { end: e, .. } = self {
            *e = (*e).max(end);
        }
    }

    /// Puts the target back. Not cancellable: the image must end consistent.
    fn undo(&self, image: &Image<'_>) -> Result<()> {
        let ctl = OpCtl::new();
        match self {
            Undo::Nothing => Ok(()),
            Undo::Rollback { snap, guard } => {
                image.snap_rollback(snap, &ctl)?;
                if *guard {
                    image.snap_remove(snap, &ctl)?;
                }
                Ok(())
            }
            Undo::Discard { size, end } => {
                image.discard(0, (*end).min(image.stat()?.size))?;
                image.resize(*size, true, &ctl)
            }
        }
    }

    /// Drops what `plan` created, after success.
    fn finish(&self, image: &Image<'_>) -> Result<()> {
        match self {
            Undo::Rollback { snap, guard: true } => image.snap_remove(snap, &OpCtl::new()),
            _ => Ok(()),
        }
    }
}

/// Applies the stream from `reader` to `image` (open read-write at HEAD).
pub(crate) fn import_diff<R: Read>(
    image: &Image<'_>,
    reader: &mut DiffReader<R>,
    window: usize,
    ctl: &OpCtl,
) -> Result<ImportStats> {
    let mut undo = Undo::Nothing;
    match apply(image, reader, window, ctl, &mut undo) {
        Ok(stats) => {
            undo.finish(image)?;
            Ok(stats)
        }
        Err(e) => {
            undo.undo(image)?;
            Err(e)
        }
    }
}

fn apply<R: Read>(
    image: &Image<'_>,
    reader: &mut DiffReader<R>,
    window: usize,
    ctl: &OpCtl,
    undo: &mut Undo,
) -> Result<ImportStats> {
    let mut stats = ImportStats {
        size: image.stat()?.size,
        ..Default::default()
    };
    let mut applier = Applier {
        image,
        queue: VecDeque::new(),
        window: window.max(1),
    };
    let mut from: Option<String> = None;
    let prepare = |undo: &mut Undo, from: &Option<String>| -> Result<()> {
        if matches!(undo, Undo::Nothing) {
            *undo = Undo::plan(image, from.as_deref())?;
        }
        Ok(())
    };
    let outcome = (|| -> Result<()> {
        loop {
            if ctl.is_cancelled() {
                return Err(Error::Cancelled);
            }
            match reader.next_record()? {
                Record::FromSnap(s) => {
                    if !image.snap_exists(&s)? {
                        return Err(DiffError::FromSnapMissing(s).into());
                    }
                    from = Some(s);
                }
                Record::ToSnap(s) => {
                    if image.snap_exists(&s)? {
                        return Err(DiffError::ToSnapExists(s).into());
                    }
                    stats.to_snap = Some(s);
                }
                Record::Size(size) => {
                    if size != stats.size {
                        prepare(undo, &from)?;
                        image.resize(size, true, ctl)?;
                        stats.size = size;
                    }
                }
                Record::Write { offset, length } => {
                    prepare(undo, &from)?;
                    undo.wrote_to(offset + length);
                    let mut done = 0u64;
                    while done < length {
                        let n = (length - done).min(PIECE as u64) as usize;
                        let mut buf = vec![0u8; n];
                        reader.read_data(&mut buf)?;
                        let base = offset + done;
                        let (data, zeroed) = applier.write_data(base, buf)?;
                        stats.data_bytes += data;
                        stats.zeroed_bytes += zeroed;
                        done += n as u64;
                        ctl.report(base + n as u64, stats.size);
                    }
                }
                Record::Zero { offset, length } => {
                    prepare(undo, &from)?;
                    undo.wrote_to(offset + length);
                    applier.zero(offset, length)?;
                    stats.zeroed_bytes += length;
                    ctl.report(offset + length, stats.size);
                }
                Record::End => return Ok(()),
            }
        }
    })();
    // Every write must have landed (or failed) before we snapshot or roll back.
    let drained = applier.drain();
    outcome?;
    drained?;
    image.flush()?;
    if let Some(to) = &stats.to_snap {
        image.snap_create(to)?;
    }
    Ok(stats)
}

fn is_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}
