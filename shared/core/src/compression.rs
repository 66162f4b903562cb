//! Block compression for the compression job (issue 8): raw DEFLATE (miniz_oxide), applied to a
//! stored block only when it pays, and decompressed with memory bounded by the block's size.
//!
//! Data that does not compress (JPEG, zip, video, random bytes) is recognised cheaply from a
//! sample — three 4 KiB windows compressed at the fastest level — and left alone, so a job
//! spends almost nothing on a file that cannot shrink.

use miniz_oxide::deflate::compress_to_vec;
use miniz_oxide::inflate::decompress_to_vec_with_limit;

/// Compress a block only when that saves at least this fraction of it (the default of the
/// `compression_min_saving` setting): below that, reading it back costs more than it saves.
pub const DEFAULT_MIN_SAVING: f64 = 0.10;
/// DEFLATE level for stored blocks: miniz's default, most of the ratio of 9 at a fraction of
/// the time.
pub const LEVEL: u8 = 6;
const SAMPLE: usize = 4096;

/// Whether a block is worth compressing: its sample shrinks by more than 3 %.
pub fn looks_compressible(data: &[u8]) -> bool {
    if data.len() <= 3 * SAMPLE {
        return compress_to_vec(data, 1).len() * 100 < data.len() * 97;
    }
    let middle = data.len() / 2 - SAMPLE / 2;
    let windows = [&data[..SAMPLE], &data[middle..middle + SAMPLE], &data[data.len() - SAMPLE..]];
    let packed: usize = windows.iter().map(|w| compress_to_vec(w, 1).len()).sum();
    packed * 100 < 3 * SAMPLE * 97
}

/// The block compressed, if that saves at least `min_saving` of it; `None` to store it as is.
pub fn compress_block(data: &[u8], min_saving: f64) -> Option<Vec<u8>> {
    if data.is_empty() || !looks_compressible(data) {
        return None;
    }
    let packed = compress_to_vec(data, LEVEL);
    ((packed.len() as f64) <= data.len() as f64 * (1.0 - min_saving)).then_some(packed)
}

/// Decompresses a block that must come out exactly `len` bytes long; never allocates more.
pub fn decompress_block(packed: &[u8], len: usize) -> Result<Vec<u8>, String> {
    let data = decompress_to_vec_with_limit(packed, len).map_err(|e| format!("a compressed block does not inflate to {len} bytes: {:?}", e.status))?;
    if data.len() != len {
        return Err(format!("a compressed block inflates to {} bytes, not {len}", data.len()));
    }
    Ok(data)
}

/// Blob keys of DEFLATE-compressed blocks end with this: `<key of the plain block>.deflate`.
/// The encoding is in the name, so a reader never needs to ask the database how a block is
/// stored, and a plain block and its compressed twin are distinct immutable blobs.
pub const STORED_SUFFIX: &str = ".deflate";

/// The first `n` bytes of a compressed block (a download's slice ends at `n`): inflates no
/// further, so memory stays within the block. Fails if the block is shorter than `n`.
pub fn inflate_prefix(packed: &[u8], n: usize) -> Result<Vec<u8>, String> {
    use miniz_oxide::inflate::{TINFLStatus, decompress_to_vec_with_limit};
    let mut out = match decompress_to_vec_with_limit(packed, n) {
        Ok(out) => out,
        Err(e) if e.status == TINFLStatus::HasMoreOutput => e.output,
        Err(e) => return Err(format!("corrupt compressed block: {:?}", e.status)),
    };
    if out.len() < n {
        return Err(format!("compressed block holds {} bytes, {n} wanted", out.len()));
    }
    out.truncate(n);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(len: usize) -> Vec<u8> {
        let words = ["object", "store", "edge", "chunk", "manifest", "blob", "region", "the", "a", "of"];
        let mut out = Vec::new();
        let mut x = 7u64;
        while out.len() < len {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            out.extend_from_slice(words[(x >> 60) as usize % words.len()].as_bytes());
            out.push(b' ');
        }
        out.truncate(len);
        out
    }

    fn noise(len: usize) -> Vec<u8> {
        crate::test_data::noise(len, 0x9E37_79B9_7F4A_7C15)
    }

    #[test]
    fn compressible_blocks_shrink_and_come_back_byte_exact() {
        let data = text(300_000);
        let packed = compress_block(&data, DEFAULT_MIN_SAVING).expect("text compresses");
        assert!(packed.len() * 2 < data.len(), "{} of {}", packed.len(), data.len());
        assert_eq!(decompress_block(&packed, data.len()).unwrap(), data);
    }

    #[test]
    fn incompressible_blocks_are_left_alone() {
        assert_eq!(compress_block(&noise(300_000), DEFAULT_MIN_SAVING), None);
        assert_eq!(compress_block(&noise(100), DEFAULT_MIN_SAVING), None);
        assert_eq!(compress_block(b"", DEFAULT_MIN_SAVING), None);
        // Half text, half noise: compresses, but not by the required 60 %.
        let mut mixed = text(100_000);
        mixed.extend(noise(100_000));
        assert!(compress_block(&mixed, 0.10).is_some());
        assert_eq!(compress_block(&mixed, 0.60), None);
    }

    #[test]
    fn a_prefix_inflates_no_further_than_asked() {
        let data = text(200_000);
        let packed = compress_block(&data, DEFAULT_MIN_SAVING).unwrap();
        assert_eq!(inflate_prefix(&packed, 1).unwrap(), &data[..1]);
        assert_eq!(inflate_prefix(&packed, 123_457).unwrap(), &data[..123_457]);
        assert_eq!(inflate_prefix(&packed, data.len()).unwrap(), data);
        assert!(inflate_prefix(&packed, data.len() + 1).is_err());
        assert!(inflate_prefix(b"not deflate at all", 5).is_err());
    }

    #[test]
    fn decompression_is_bounded_by_the_expected_length() {
        let data = text(50_000);
        let packed = compress_block(&data, DEFAULT_MIN_SAVING).unwrap();
        assert!(decompress_block(&packed, data.len() - 1).is_err(), "a longer block is refused, not grown into");
        assert!(decompress_block(&packed, data.len() + 1).is_err());
        assert!(decompress_block(b"\xff\xff\xff", 10).is_err());
    }
}
