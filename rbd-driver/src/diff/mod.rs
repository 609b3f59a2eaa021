//! The RBD diff v1 stream (`rbd export-diff` / `rbd import-diff`).
//!
//! ```text
//! "rbd diff v1\n"
//! ['f' le32 len, name]      from snapshot (absent in a full diff)
//! ['t' le32 len, name]      to snapshot (absent when exporting HEAD)
//! 's' le64 size             image size at the end point
//! ('w' le64 off, le64 len, data | 'z' le64 off, le64 len)*
//! 'e'
//! ```
//! The reader is strict where `rbd import-diff` is lenient: exactly one banner, metadata
//! only before data, a size before any data, extents non-empty, ascending,
//! non-overlapping and inside the size, names at most 4096 bytes, an `e` record, and
//! nothing after it. The exporter writes what `rbd export-diff` writes: one record per
//! `diff_iterate2` extent, a read that is all zeroes becomes a `z` record.

mod digest;
mod export;
mod import;
mod reader;

pub use digest::{ContentDigest, FullDigest, TouchedBlocks, DIGEST_BLOCK};
pub use export::ExportStats;
pub(crate) use export::{export_diff, read_changes, Extent};
pub use import::ImportStats;
pub(crate) use import::{import_diff, Applier};
pub use reader::{DiffReader, Record};

/// `rbd diff v1\n`
pub const BANNER_V1: &[u8] = b"rbd diff v1\n";
/// Longest snapshot name accepted (as `rbd import-diff`).
pub const MAX_NAME_LEN: u32 = 4096;

pub(crate) const TAG_FROM: u8 = b'f';
pub(crate) const TAG_TO: u8 = b't';
pub(crate) const TAG_SIZE: u8 = b's';
pub(crate) const TAG_WRITE: u8 = b'w';
pub(crate) const TAG_ZERO: u8 = b'z';
pub(crate) const TAG_END: u8 = b'e';

/// Why a diff stream was rejected. `at` is the byte offset of the offending record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    /// The stream does not start with `rbd diff v1\n`.
    #[error("missing or wrong banner (expected \"rbd diff v1\\n\")")]
    BadBanner,
    /// The stream ended inside a record or before the `e` record.
    #[error("stream truncated at byte {at}: expected {expected}")]
    Truncated {
        /// Offset where more bytes were needed.
        at: u64,
        /// What was being read.
        expected: &'static str,
    },
    /// A tag byte this format does not have.
    #[error("unknown record tag {tag:#04x} at byte {at}")]
    UnknownTag {
        /// The byte.
        tag: u8,
        /// Its offset.
        at: u64,
    },
    /// A snapshot name longer than 4096 bytes, empty, or not UTF-8.
    #[error("invalid snapshot name ({reason}) at byte {at}")]
    BadName {
        /// What is wrong.
        reason: String,
        /// Record offset.
        at: u64,
    },
    /// A metadata record appears twice.
    #[error("duplicate '{tag}' record at byte {at}")]
    Duplicate {
        /// The record tag.
        tag: char,
        /// Record offset.
        at: u64,
    },
    /// A metadata record after the first data record.
    #[error("'{tag}' record after data at byte {at}")]
    MetadataAfterData {
        /// The record tag.
        tag: char,
        /// Record offset.
        at: u64,
    },
    /// A data record before any size record.
    #[error("data record at byte {at} before the image size record")]
    MissingSize {
        /// Record offset.
        at: u64,
    },
    /// A zero-length extent.
    #[error("empty extent at byte {at}")]
    EmptyExtent {
        /// Record offset.
        at: u64,
    },
    /// An extent starting before the end of the previous one (reordered or overlapping).
    #[error("extent {offset}+{length} at byte {at} overlaps or precedes the previous extent ending at {prev_end}")]
    OutOfOrder {
        /// Extent offset.
        offset: u64,
        /// Extent length.
        length: u64,
        /// End of the previous extent.
        prev_end: u64,
        /// Record offset.
        at: u64,
    },
    /// An extent past the image size.
    #[error("extent {offset}+{length} at byte {at} is beyond the image size {size}")]
    BeyondSize {
        /// Extent offset.
        offset: u64,
        /// Extent length.
        length: u64,
        /// Image size from the `s` record.
        size: u64,
        /// Record offset.
        at: u64,
    },
    /// Bytes after the `e` record.
    #[error("trailing data after the end record at byte {at}")]
    TrailingData {
        /// Offset of the first extra byte.
        at: u64,
    },
    /// The `f` snapshot does not exist on the target image.
    #[error("start snapshot '{0}' does not exist on the target image")]
    FromSnapMissing(String),
    /// The `t` snapshot already exists on the target image.
    #[error("end snapshot '{0}' already exists on the target image")]
    ToSnapExists(String),
}

/// Encodes the stream header: banner, optional `f` and `t`, and `s`.
pub fn encode_header(from: Option<&str>, to: Option<&str>, size: u64) -> Vec<u8> {
    let mut v = BANNER_V1.to_vec();
    for (tag, name) in [(TAG_FROM, from), (TAG_TO, to)] {
        if let Some(name) = name {
            v.push(tag);
            v.extend_from_slice(&(name.len() as u32).to_le_bytes());
            v.extend_from_slice(name.as_bytes());
        }
    }
    v.push(TAG_SIZE);
    v.extend_from_slice(&size.to_le_bytes());
    v
}

/// Encodes a `w` record header (the data follows) or a `z` record.
pub fn encode_extent(write: bool, offset: u64, length: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(17);
    v.push(if write { TAG_WRITE } else { TAG_ZERO });
    v.extend_from_slice(&offset.to_le_bytes());
    v.extend_from_slice(&length.to_le_bytes());
    v
}

/// The `e` record.
pub const END_RECORD: &[u8] = &[TAG_END];

#[cfg(test)]
mod tests;
