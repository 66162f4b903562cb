//! Chunk plans: how a file of `size` bytes splits into fixed-size chunks (the last one the
//! remainder), and which blob slices serve a byte range.

use crate::http::BlobSlice;

/// The seed's `CHUNK_SIZE` default: 5 MiB, S3's minimum part size.
pub const DEFAULT_CHUNK_SIZE: u64 = 5 * 1024 * 1024;
pub const MIN_CHUNK_SIZE: u64 = 64 * 1024;
pub const MAX_CHUNK_SIZE: u64 = 16 * 1024 * 1024;
/// As S3 multipart: at most 10,000 parts per object.
pub const MAX_CHUNKS: u64 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkPlan {
    pub size: u64,
    pub chunk_size: u64,
}

impl ChunkPlan {
    pub fn new(size: u64, chunk_size: u64) -> Result<Self, String> {
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(format!("chunk size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} bytes"));
        }
        let plan = Self { size, chunk_size };
        if plan.count() > MAX_CHUNKS {
            return Err(format!("at most {} bytes ({MAX_CHUNKS} chunks of {chunk_size})", MAX_CHUNKS * chunk_size));
        }
        Ok(plan)
    }

    pub fn count(&self) -> u64 {
        self.size.div_ceil(self.chunk_size)
    }

    /// The exact length chunk `index` must have, or why the index is out of range.
    pub fn expected_len(&self, index: u64) -> Result<u64, String> {
        let count = self.count();
        if index >= count {
            return Err(if count == 0 {
                "this file is empty: it has no chunks".to_owned()
            } else {
                format!("chunk index must be between 0 and {} for this file", count - 1)
            });
        }
        Ok(if index + 1 < count { self.chunk_size } else { self.size - index * self.chunk_size })
    }
}

/// The slices of `chunks` (blob key, length, in order) covering bytes `start..=end`.
pub fn slices(chunks: &[(String, u64)], start: u64, end: u64) -> Vec<BlobSlice> {
    let mut out = Vec::new();
    let mut offset = 0;
    for (key, len) in chunks {
        let (lo, hi) = (offset, offset + len); // this chunk covers [lo, hi)
        if hi > start && lo <= end {
            out.push(BlobSlice::new(key.clone(), start.max(lo) - lo, (end + 1).min(hi) - lo));
        }
        offset = hi;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_fixed_size_but_the_last() {
        let plan = ChunkPlan::new(12 * 1024 * 1024, DEFAULT_CHUNK_SIZE).unwrap();
        assert_eq!(plan.count(), 3);
        assert_eq!(plan.expected_len(0), Ok(DEFAULT_CHUNK_SIZE));
        assert_eq!(plan.expected_len(2), Ok(2 * 1024 * 1024));
        assert!(plan.expected_len(3).is_err());
        assert_eq!(ChunkPlan::new(DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE).unwrap().count(), 1);
        assert_eq!(ChunkPlan::new(0, DEFAULT_CHUNK_SIZE).unwrap().count(), 0);
    }

    #[test]
    fn plans_have_limits() {
        assert!(ChunkPlan::new(1, 1024).is_err());
        assert!(ChunkPlan::new(MAX_CHUNKS * DEFAULT_CHUNK_SIZE + 1, DEFAULT_CHUNK_SIZE).is_err());
        assert!(ChunkPlan::new(MAX_CHUNKS * DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE).is_ok());
    }

    #[test]
    fn ranges_map_onto_blob_slices() {
        let chunks = vec![("a".to_owned(), 10), ("b".to_owned(), 10), ("c".to_owned(), 5)];
        let s = |k: &str, a, b| BlobSlice::new(k, a, b);
        assert_eq!(slices(&chunks, 0, 24), [s("a", 0, 10), s("b", 0, 10), s("c", 0, 5)]);
        assert_eq!(slices(&chunks, 5, 14), [s("a", 5, 10), s("b", 0, 5)]);
        assert_eq!(slices(&chunks, 10, 10), [s("b", 0, 1)]);
        assert_eq!(slices(&chunks, 24, 24), [s("c", 4, 5)]);
    }
}
