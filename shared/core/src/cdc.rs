//! Content-defined chunking for the deduplication job (issue 8): FastCDC (the `fastcdc` crate,
//! 2020 variant) cuts content where its bytes say, not at fixed offsets, so an insert or delete
//! moves only the block it falls in and every later block is found again by its hash.
//!
//! Sizes: 32 KiB minimum, 128 KiB on average, 512 KiB maximum. The maximum is the Spin blob
//! piece size ([`BLOCK_MAX`] = 512 KiB: real Spin deployments cap key-value values near 1 MB), so
//! every block is one key-value value and one read; the average keeps an edit's cost to about
//! 128–256 KiB of new storage while a 100 MiB file is ~800 blocks (R2 objects / KV entries),
//! not the ~6,400 of 16 KiB blocks that cost a request each at the edge.

use fastcdc::v2020::FastCDC;

pub const BLOCK_MIN: usize = 32 * 1024;
pub const BLOCK_AVG: usize = 128 * 1024;
pub const BLOCK_MAX: usize = 512 * 1024;

/// The blocks of `data` as (offset, length), in order, covering it exactly.
pub fn blocks(data: &[u8]) -> Vec<(usize, usize)> {
    if data.is_empty() {
        return Vec::new();
    }
    FastCDC::new(data, BLOCK_MIN, BLOCK_AVG, BLOCK_MAX).map(|c| (c.offset, c.length)).collect()
}

/// The length of the first block of `data`. Final once `data` holds at least [`BLOCK_MAX`]
/// bytes or ends where the content ends: the cut never looks further than that.
pub fn first_block(data: &[u8]) -> usize {
    FastCDC::new(data, BLOCK_MIN, BLOCK_AVG, BLOCK_MAX).next().map_or(data.len(), |c| c.length)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256;
    use crate::test_data::noise;
    use std::collections::HashSet;

    #[test]
    fn blocks_cover_the_content_within_their_bounds() {
        let data = noise(5 << 20, 3);
        let blocks = blocks(&data);
        let mut at = 0;
        for (i, (offset, len)) in blocks.iter().enumerate() {
            assert_eq!(*offset, at);
            assert!(*len <= BLOCK_MAX && (*len >= BLOCK_MIN || i == blocks.len() - 1), "{len}");
            at += len;
        }
        assert_eq!(at, data.len());
        let average = data.len() / blocks.len();
        assert!((BLOCK_AVG / 2..BLOCK_AVG * 2).contains(&average), "{average}");
        assert!(super::blocks(b"").is_empty());
        assert_eq!(super::blocks(b"tiny"), [(0, 4)]);
    }

    #[test]
    fn cutting_block_by_block_finds_the_blocks_of_the_whole() {
        let data = noise(3 * 1024 * 1024 + 12345, 7);
        let mut start = 0;
        let mut streamed = Vec::new();
        while start < data.len() {
            let window = &data[start..data.len().min(start + BLOCK_MAX)];
            let length = first_block(window);
            streamed.push((start, length));
            start += length;
        }
        assert_eq!(streamed, blocks(&data));
    }

    #[test]
    fn an_insert_near_the_start_changes_only_a_few_blocks() {
        let original = noise(8 << 20, 5);
        let mut edited = original[..1000].to_vec();
        edited.extend_from_slice(b"a few inserted bytes");
        edited.extend_from_slice(&original[1000..]);
        let hashes = |data: &[u8]| blocks(data).into_iter().map(|(o, l)| sha256(&data[o..o + l])).collect::<HashSet<_>>();
        let (before, after) = (hashes(&original), hashes(&edited));
        let new = after.difference(&before).count();
        assert!(new <= 2, "{new} of {} blocks changed", after.len());
    }
}
