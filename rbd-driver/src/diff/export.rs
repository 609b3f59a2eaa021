//! Writes a diff v1 stream from an open image, as `rbd export-diff` does, with up to
//! `window` reads in flight and records emitted in extent order.

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
    /// `w` records and their data bytes.
    pub write_records: u64,
    /// Data bytes in `w` records.
    pub data_bytes: u64,
    /// `z` records.
    pub zero_records: u64,
}

struct Pending {
    // Declared before `buf`: dropping a pending read waits for it before the buffer goes.
    completion: Option<Completion>,
    buf: Vec<u8>,
    offset: u64,
    length: u64,
}

struct Exporter<'a> {
    image: &'a Image<'a>,
    queue: VecDeque<Pending>,
    window: usize,
    size: u64,
    ctl: &'a OpCtl,
    emit: &'a mut dyn FnMut(Vec<u8>) -> Result<()>,
    stats: ExportStats,
}

impl Exporter<'_> {
    fn out(&mut self, v: Vec<u8>) -> Result<()> {
        self.stats.stream_bytes += v.len() as u64;
        (self.emit)(v)
    }

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
        // Emit in order: whatever is done at the front, and the front anyway when the
        // window is full.
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
        match data {
            Some(buf) => {
                self.stats.write_records += 1;
                self.stats.data_bytes += p.length;
                self.out(encode_extent(true, p.offset, p.length))?;
                self.out(buf)?;
            }
            None => {
                self.stats.zero_records += 1;
                self.out(encode_extent(false, p.offset, p.length))?;
            }
        }
        self.ctl.report(p.offset + p.length, self.size);
        Ok(())
    }
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
    let size = image.stat()?.size;
    let mut ex = Exporter {
        image,
        queue: VecDeque::new(),
        window: window.max(1),
        size,
        ctl,
        emit,
        stats: ExportStats::default(),
    };
    ex.out(encode_header(from, to, size))?;
    let mut failure: Option<Error> = None;
    let iterate = {
        let ex = &mut ex;
        let failure = &mut failure;
        let mut cb = |offset: u64, length: u64, exists: bool| -> libc::c_int {
            match ex.push(offset, length, exists) {
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
    while let Some(p) = ex.queue.pop_front() {
        ex.finish(p)?;
    }
    ex.out(END_RECORD.to_vec())?;
    Ok(ex.stats)
}
