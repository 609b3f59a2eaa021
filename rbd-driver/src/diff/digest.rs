//! Content digests: what a backup records of the data it represents, and what a restore
//! checks the data it writes against.
//!
//! The digest of an image at a point in time is its size and the wrapping sum, over
//! its 4 KiB blocks that are not all zero, of xxh3-128 of the block seeded with the
//! block's index. Zero blocks count as absent, so a sparse image and one with zeroes
//! written read the same. Because it is a sum, an incremental backup updates its
//! parent's digest from the blocks it changed alone: minus their hash before, plus
//! their hash after; a restore recomputes it from the full stream it writes.
//!
//! It detects accidents (bit rot in the backup pool, a base image changed behind our
//! back, a stream cut short or damaged), not an adversary who can write the backup pool:
//! sums of hashes can be steered.

use std::fmt;

use xxhash_rust::xxh3::xxh3_128_with_seed;

/// Block size of the digest.
pub const DIGEST_BLOCK: u64 = 4096;
const B: usize = DIGEST_BLOCK as usize;

/// The digest of an image's content at one point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ContentDigest {
    /// Image size in bytes at that point.
    pub size: u64,
    sum: u128,
}

fn block_hash(index: u64, block: &[u8]) -> Option<u128> {
    if block.iter().all(|&b| b == 0) {
        None
    } else {
        Some(xxh3_128_with_seed(block, index))
    }
}

impl ContentDigest {
    /// The digest of an all-zero (or empty) image of `size` bytes.
    pub fn zero(size: u64) -> Self {
        ContentDigest { size, sum: 0 }
    }

    /// Adds block `index` holding `block` (a whole block, or the image's short last one).
    pub fn add_block(&mut self, index: u64, block: &[u8]) {
        if let Some(h) = block_hash(index, block) {
            self.sum = self.sum.wrapping_add(h);
        }
    }

    /// Takes block `index` holding `block` out (its content before a change).
    pub fn remove_block(&mut self, index: u64, block: &[u8]) {
        if let Some(h) = block_hash(index, block) {
            self.sum = self.sum.wrapping_sub(h);
        }
    }

    /// Reads the form [`fmt::Display`] writes: `xxh3s-4k:<size>:<32 hex digits>`.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix("xxh3s-4k:")?;
        let (size, sum) = rest.split_once(':')?;
        if sum.len() != 32 {
            return None;
        }
        Some(ContentDigest {
            size: size.parse().ok()?,
            sum: u128::from_str_radix(sum, 16).ok()?,
        })
    }
}

impl fmt::Display for ContentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "xxh3s-4k:{}:{:032x}", self.size, self.sum)
    }
}

/// The digest of a whole image from its data extents in ascending order (what a full
/// diff stream carries): everything no extent covers reads as zero.
pub struct FullDigest {
    digest: ContentDigest,
    /// A block some extent covers only in part: its index and content so far.
    partial: Option<(u64, Box<[u8; B]>)>,
}

impl FullDigest {
    /// For an image of `size` bytes.
    pub fn new(size: u64) -> Self {
        FullDigest {
            digest: ContentDigest::zero(size),
            partial: None,
        }
    }

    fn block_len(&self, index: u64) -> usize {
        let start = index * DIGEST_BLOCK;
        self.digest.size.saturating_sub(start).min(DIGEST_BLOCK) as usize
    }

    fn flush(&mut self) {
        if let Some((index, block)) = self.partial.take() {
            let len = self.block_len(index);
            self.digest.add_block(index, &block[..len]);
        }
    }

    /// `data` at `offset`; calls come in ascending, non-overlapping order.
    pub fn data(&mut self, mut offset: u64, mut data: &[u8]) {
        while !data.is_empty() {
            let index = offset / DIGEST_BLOCK;
            let within = (offset % DIGEST_BLOCK) as usize;
            let block_len = self.block_len(index).max(within + 1);
            let take = (block_len - within).min(data.len());
            let pending_here = matches!(&self.partial, Some((i, _)) if *i == index);
            if within == 0 && take == block_len && !pending_here {
                // A whole block: straight from the caller's buffer.
                self.flush();
                self.digest.add_block(index, &data[..take]);
            } else {
                if !pending_here {
                    self.flush();
                    self.partial = Some((index, Box::new([0u8; B])));
                }
                if let Some((_, block)) = self.partial.as_mut() {
                    block[within..within + take].copy_from_slice(&data[..take]);
                }
            }
            offset += take as u64;
            data = &data[take..];
        }
    }

    /// The digest of everything given.
    pub fn finish(mut self) -> ContentDigest {
        self.flush();
        self.digest
    }
}

/// The blocks a set of extents touches, as ascending, merged ranges of block indexes
/// (`first..=last`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TouchedBlocks(pub Vec<(u64, u64)>);

impl TouchedBlocks {
    /// Notes the extent `offset`+`length`. Extents in ascending order merge as they
    /// come; call [`TouchedBlocks::normalize`] after any other.
    pub fn extent(&mut self, offset: u64, length: u64) {
        if length == 0 {
            return;
        }
        let first = offset / DIGEST_BLOCK;
        let last = (offset + length - 1) / DIGEST_BLOCK;
        match self.0.last_mut() {
            Some((f, l)) if first >= *f && first <= *l + 1 => *l = (*l).max(last),
            _ => self.0.push((first, last)),
        }
    }

    /// Sorts the ranges and merges those that overlap or touch, so no block is listed
    /// twice.
    pub fn normalize(&mut self) {
        self.0.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::with_capacity(self.0.len());
        for &(f, l) in &self.0 {
            match out.last_mut() {
                Some((_, pl)) if f <= *pl + 1 => *pl = (*pl).max(l),
                _ => out.push((f, l)),
            }
        }
        self.0 = out;
    }

    /// Block count.
    pub fn blocks(&self) -> u64 {
        self.0.iter().map(|(f, l)| l - f + 1).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(size: usize, writes: &[(usize, &[u8])]) -> Vec<u8> {
        let mut v = vec![0u8; size];
        for (off, data) in writes {
            v[*off..off + data.len()].copy_from_slice(data);
        }
        v
    }

    fn whole(img: &[u8]) -> ContentDigest {
        let mut d = ContentDigest::zero(img.len() as u64);
        for (i, b) in img.chunks(B).enumerate() {
            d.add_block(i as u64, b);
        }
        d
    }

    #[test]
    fn a_digest_from_unaligned_extents_equals_the_digest_of_the_whole_image() {
        let size = 10 * B + 1000;
        let img = image(
            size,
            &[
                (100, &[1; 50]),
                (B - 10, &[2; 30]),
                (3 * B, &[3; 2 * B]),
                (10 * B + 5, &[4; 900]),
            ],
        );
        // Extents as a sparse full stream would carry them, cut at odd places.
        let mut f = FullDigest::new(size as u64);
        for (off, len) in [
            (100, 50),
            (B - 10, 30),
            (3 * B, 100),
            (3 * B + 100, 2 * B - 100),
            (10 * B, 1000),
        ] {
            f.data(off as u64, &img[off..off + len]);
        }
        assert_eq!(f.finish(), whole(&img));
        // A zero block and no block are the same content.
        let mut z = FullDigest::new(size as u64);
        z.data(0, &img[..5 * B]);
        z.data(6 * B as u64, &vec![0u8; B]);
        z.data(10 * B as u64, &img[10 * B..]);
        assert_eq!(z.finish(), whole(&img));
    }

    #[test]
    fn a_changed_byte_a_moved_block_or_another_size_changes_the_digest() {
        let img = image(4 * B, &[(B, &[7; B])]);
        let d = whole(&img);
        let mut flipped = img.clone();
        flipped[B + 17] ^= 1;
        assert_ne!(whole(&flipped), d);
        let moved = image(4 * B, &[(2 * B, &[7; B])]);
        assert_ne!(whole(&moved), d, "the block index is part of the hash");
        assert_ne!(
            whole(&image(5 * B, &[(B, &[7; B])])),
            d,
            "the size is part of it"
        );
        assert_eq!(ContentDigest::parse(&d.to_string()), Some(d));
        assert_eq!(ContentDigest::parse("xxh3s-4k:1:zz"), None);
    }

    #[test]
    fn an_incremental_update_equals_the_digest_of_the_new_content() {
        let old = image(8 * B, &[(0, &[1; 3 * B]), (6 * B, &[2; 100])]);
        let new = image(
            8 * B,
            &[
                (0, &[1; 3 * B]),
                (B + 5, &[9; 10]),
                (6 * B, &[0; 100]),
                (7 * B, &[5; 1]),
            ],
        );
        let mut touched = TouchedBlocks::default();
        for (off, len) in [(B + 5, 10), (6 * B, 100), (7 * B, 1)] {
            touched.extent(off as u64, len as u64);
        }
        assert_eq!(touched.0, vec![(1, 1), (6, 7)]);
        // A range out of order (a size change) merges without listing a block twice.
        let mut t = touched.clone();
        t.extent(0, 3 * DIGEST_BLOCK);
        t.extent(5 * DIGEST_BLOCK, 10 * DIGEST_BLOCK);
        t.normalize();
        assert_eq!(t.0, vec![(0, 2), (5, 14)]);
        assert_eq!(t.blocks(), 13);
        let mut d = whole(&old);
        for &(first, last) in &touched.0 {
            for i in first..=last {
                let r = i as usize * B..(i as usize + 1) * B;
                d.remove_block(i, &old[r.clone()]);
                d.add_block(i, &new[r]);
            }
        }
        assert_eq!(d, whole(&new));
    }
}
