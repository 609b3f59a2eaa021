//! A strict, streaming reader of diff v1 records over any `std::io::Read`.

use std::io::Read;

use super::*;

/// One record. After [`Record::Write`] the caller reads the data with
/// [`DiffReader::read_data`] (anything left unread is skipped by the next `next_record`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// `f`: the snapshot the diff starts from.
    FromSnap(String),
    /// `t`: the snapshot the diff ends at.
    ToSnap(String),
    /// `s`: the image size at the end point.
    Size(u64),
    /// `w`: `length` bytes of data at `offset` follow.
    Write {
        /// Byte offset in the image.
        offset: u64,
        /// Data length.
        length: u64,
    },
    /// `z`: `length` bytes at `offset` read as zeroes.
    Zero {
        /// Byte offset in the image.
        offset: u64,
        /// Length.
        length: u64,
    },
    /// `e`: the end; the stream had nothing after it.
    End,
}

/// Reads and validates records one at a time; holds no more than one record header.
pub struct DiffReader<R> {
    r: R,
    pos: u64,
    banner_read: bool,
    seen_from: bool,
    seen_to: bool,
    size: Option<u64>,
    in_data: bool,
    prev_end: u64,
    unread_data: u64,
    ended: bool,
}

impl<R: Read> DiffReader<R> {
    /// A reader at the start of a stream.
    pub fn new(r: R) -> Self {
        DiffReader {
            r,
            pos: 0,
            banner_read: false,
            seen_from: false,
            seen_to: false,
            size: None,
            in_data: false,
            prev_end: 0,
            unread_data: 0,
            ended: false,
        }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The size from the `s` record, once read.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    fn fill(&mut self, buf: &mut [u8], expected: &'static str) -> Result<(), crate::Error> {
        let mut done = 0;
        while done < buf.len() {
            match self.r.read(&mut buf[done..]) {
                Ok(0) => {
                    return Err(DiffError::Truncated {
                        at: self.pos + done as u64,
                        expected,
                    }
                    .into())
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, crate::Error> {
        let mut b = [0u8; 8];
        self.fill(&mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }

    fn name(&mut self, at: u64) -> Result<String, crate::Error> {
        let mut b = [0u8; 4];
        self.fill(&mut b, "snapshot name length")?;
        let len = u32::from_le_bytes(b);
        if len == 0 || len > MAX_NAME_LEN {
            return Err(DiffError::BadName {
                reason: format!("length {len}"),
                at,
            }
            .into());
        }
        let mut name = vec![0u8; len as usize];
        self.fill(&mut name, "snapshot name")?;
        String::from_utf8(name).map_err(|_| {
            DiffError::BadName {
                reason: "not UTF-8".into(),
                at,
            }
            .into()
        })
    }

    /// Reads the next record.
    pub fn next_record(&mut self) -> Result<Record, crate::Error> {
        if !self.banner_read {
            let mut b = [0u8; BANNER_V1.len()];
            self.fill(&mut b, "banner").map_err(|e| match e {
                crate::Error::Diff(DiffError::Truncated { .. }) => DiffError::BadBanner.into(),
                e => e,
            })?;
            if b != BANNER_V1 {
                return Err(DiffError::BadBanner.into());
            }
            self.banner_read = true;
        }
        if self.ended {
            return Ok(Record::End);
        }
        if self.unread_data > 0 {
            self.skip_data()?;
        }
        let at = self.pos;
        let mut tag = [0u8; 1];
        self.fill(&mut tag, "a record tag (the stream has no end record)")?;
        let tag = tag[0];
        let metadata = |this: &mut Self, seen: bool| -> Result<(), crate::Error> {
            if this.in_data {
                return Err(DiffError::MetadataAfterData {
                    tag: tag as char,
                    at,
                }
                .into());
            }
            if seen {
                return Err(DiffError::Duplicate {
                    tag: tag as char,
                    at,
                }
                .into());
            }
            Ok(())
        };
        match tag {
            TAG_FROM => {
                metadata(self, self.seen_from)?;
                self.seen_from = true;
                Ok(Record::FromSnap(self.name(at)?))
            }
            TAG_TO => {
                metadata(self, self.seen_to)?;
                self.seen_to = true;
                Ok(Record::ToSnap(self.name(at)?))
            }
            TAG_SIZE => {
                metadata(self, self.size.is_some())?;
                let size = self.u64("image size")?;
                self.size = Some(size);
                Ok(Record::Size(size))
            }
            TAG_WRITE | TAG_ZERO => {
                let offset = self.u64("extent offset")?;
                let length = self.u64("extent length")?;
                let size = self.size.ok_or(DiffError::MissingSize { at })?;
                if length == 0 {
                    return Err(DiffError::EmptyExtent { at }.into());
                }
                if offset < self.prev_end {
                    return Err(DiffError::OutOfOrder {
                        offset,
                        length,
                        prev_end: self.prev_end,
                        at,
                    }
                    .into());
                }
                let end = offset.checked_add(length).filter(|&e| e <= size);
                let Some(end) = end else {
                    return Err(DiffError::BeyondSize {
                        offset,
                        length,
                        size,
                        at,
                    }
                    .into());
                };
                self.in_data = true;
                self.prev_end = end;
                if tag == TAG_WRITE {
                    self.unread_data = length;
                    Ok(Record::Write { offset, length })
                } else {
                    Ok(Record::Zero { offset, length })
                }
            }
            TAG_END => {
                let mut extra = [0u8; 1];
                loop {
                    match self.r.read(&mut extra) {
                        Ok(0) => break,
                        Ok(_) => return Err(DiffError::TrailingData { at: self.pos }.into()),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                self.ended = true;
                Ok(Record::End)
            }
            other => Err(DiffError::UnknownTag { tag: other, at }.into()),
        }
    }

    /// Reads the next `buf.len()` bytes of the current `w` record's data.
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<(), crate::Error> {
        if buf.len() as u64 > self.unread_data {
            return Err(crate::Error::InvalidArgument(format!(
                "read of {} bytes with {} left in the record",
                buf.len(),
                self.unread_data
            )));
        }
        self.fill(buf, "write data")?;
        self.unread_data -= buf.len() as u64;
        Ok(())
    }

    fn skip_data(&mut self) -> Result<(), crate::Error> {
        let mut scratch = vec![0u8; self.unread_data.min(1 << 20) as usize];
        while self.unread_data > 0 {
            let n = self.unread_data.min(scratch.len() as u64) as usize;
            self.read_data(&mut scratch[..n])?;
        }
        Ok(())
    }
}
