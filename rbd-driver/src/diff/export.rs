//! Reads an image's changes in extent order with up to `window` reads in flight, and
//! writes them as a diff v1 stream exactly as `rbd export-diff` does: one record per
//! `diff_iterate2` extent; a read that is all zeroes becomes a `z` record.

use std::collections::VecDeque;

use super::{encode_extent, encode_header, END_RECORD};
use crate::ctl::OpCtl;
use crate::error::{Error, Result};
use crate::rbd::{Completion, Image};

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Bytes of the stream.
    pub stream_bytes: u64,
    /// `w` records.
    pub write_records: u64,
    /// Data bytes in `w` records.
    pub data_bytes: u64,
    /// `z` records.
    pub zero_records: u64,
}

/// One changed extent, in order: its data, or `None` where it reads as zeroes.
pub(crate) struct Extent {
    pub(crate) offset: u64,
    pub(crate) length: u64,
    pub(crate) data: Option<Vec<u8>>,
}

struct Pending {
    // Declared before `buf`: dropping a pending read waits for it before the buffer goes.
    completion: Option<Completion>,
    buf: Vec<u8>,
    offset: u64,
    length: u64,
}

struct Reader<'a> {
    image: &'a Image<'a>,
    queue: VecDeque<Pending>,
    window: usize,
    size: u64,
    ctl: &'a OpCtl,
    sink: &'a mut dyn FnMut(Extent) -> Result<()>,
}

impl Reader<'_> {
    fn push(&mut self, offset: u64, length: u64, exists: bool) -> Result<()> {
        if self.ctl.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let mut p = Pending {
            completion: None,
            buf: Vec::new(),
            offset,
            length,
        };
        if exists {
            p.buf = vec![0u8; length as usize];
            let mut c = Completion::new()?;
            self.image.aio_read(offset, &mut p.buf, &mut c)?;
            p.completion = Some(c);
        }
        self.queue.push_back(p);
        // Hand on in order: whatever is done at the front, and the front anyway when
        // the window is full.
        while let Some(front) = self.queue.front() {
            let done = front.completion.as_ref().is_none_or(|c| c.is_complete());
            if !done && self.queue.len() <= self.window {
                break;
            }
            let p = self.queue.pop_front().expect("front exists");
            self.finish(p)?;
        }
        Ok(())
    }

    fn finish(&mut self, mut p: Pending) -> Result<()> {
        let mut data = None;
        if let Some(c) = p.completion.as_mut() {
            let r = c.wait();
            if r < 0 {
                return Err(Error::rbd(
                    "rbd_aio_read2",
                    self.image.target(),
                    -(r as i32),
                ));
            }
            if !p.buf.iter().all(|&b| b == 0) {
                data = Some(std::mem::take(&mut p.buf));
            }
        }
        (self.sink)(Extent {
            offset: p.offset,
            length: p.length,
            data,
        })?;
        self.ctl.report(p.offset + p.length, self.size);
        Ok(())
    }
}

/// Hands every extent of `image` (open at the end point) changed since `from` (or
/// allocated at all, the parent's data included) to `sink`, in offset order.
pub(crate) fn read_changes(
    image: &Image<'_>,
    from: Option<&str>,
    whole_object: bool,
    window: usize,
    ctl: &OpCtl,
    sink: &mut dyn FnMut(Extent) -> Result<()>,
) -> Result<()> {
    let size = image.stat()?.size;
    let mut reader = Reader {
        image,
        queue: VecDeque::new(),
        window: window.max(1),
        size,
        ctl,
        sink,
    };
    let mut failure: Option<Error> = None;
    let iterate = {
        let reader = &mut reader;
        let failure = &mut failure;
        let mut cb = |offset: u64, length: u64, exists: bool| -> libc::c_int {
            match reader.push(offset, length, exists) {
                Ok(()) => 0,
                Err(e) => {
                    *failure = Some(e);
                    -libc::ECANCELED
                }
            }
        };
        image.diff_iterate(from, size, whole_object, &mut cb)
    };
    if let Some(e) = failure {
        return Err(e);
    }
    iterate?;
    while let Some(p) = reader.queue.pop_front() {
        reader.finish(p)?;
    }
    Ok(())
}

/// Exports the changes of `image` (open at the end point, HEAD or `to`) since `from`
/// (or everything) as a v1 stream handed to `emit` in pieces.
pub(crate) fn export_diff(
    image: &Image<'_>,
    from: Option<&str>,
    to: Option<&str>,
    whole_object: bool,
    window: usize,
    ctl: &OpCtl,
    emit: &mut dyn FnMut(Vec<u8>) -> Result<()>,
) -> Result<ExportStats> {
    let mut stats = ExportStats::default();
    let mut out = |v: Vec<u8>, stats: &mut ExportStats| {
        stats.stream_bytes += v.len() as u64;
        emit(v)
    };
    out(encode_header(from, to, image.stat()?.size), &mut stats)?;
    read_changes(
        image,
        from,
        whole_object,
        window,
        ctl,
        &mut |e: Extent| match e.data {
            Some(buf) => {
                stats.write_records += 1;
                stats.data_bytes += e.length;
                out(encode_extent(true, e.offset, e.length), &mut stats)?;
                out(buf, &mut stats)
            }
            None => {
                stats.zero_records += 1;
                out(encode_extent(false, e.offset, e.length), &mut stats)
            }
        },
    )?;
    out(END_RECORD.to_vec(), &mut stats)?;
    Ok(stats)
}
