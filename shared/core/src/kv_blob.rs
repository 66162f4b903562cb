//! How a blob is laid out on a key-value store (Spin key-value, whose real deployments cap a
//! value at 1 MB): its header `<key>/n`, written last, and, for a blob larger than one piece,
//! its pieces `<key>/0`, `<key>/1`, … written before the header. A blob without a header does
//! not exist, so a half-written or half-deleted blob is never read as whole.
//!
//! The header is `<pieces> <length>`. A blob of at most one piece has no pieces: its bytes
//! follow the header after a newline (`0 <length>\n<bytes>`), so writing it is one set and
//! reading it one get — a small download's blob read is one key-value read, not two. A
//! header without the newline is a pieced blob (every blob written before inline blobs, too).

/// The largest piece a blob is cut into, and the largest blob held inline in its header.
pub const PIECE: usize = 512 * 1024;

/// The key of a blob's header.
pub fn header_key(key: &str) -> String {
    format!("{key}/n")
}

/// The key of a blob's `index`th piece.
pub fn piece_key(key: &str, index: usize) -> String {
    format!("{key}/{index}")
}

/// What to write for `data`: its pieces (empty for an inline blob), then its header.
pub fn layout(data: &[u8]) -> (Vec<&[u8]>, Vec<u8>) {
    if data.len() <= PIECE {
        let mut header = format!("0 {}\n", data.len()).into_bytes();
        header.extend_from_slice(data);
        return (Vec::new(), header);
    }
    let pieces: Vec<&[u8]> = data.chunks(PIECE).collect();
    let header = format!("{} {}", pieces.len(), data.len()).into_bytes();
    (pieces, header)
}

/// A blob's header, read.
#[derive(Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// How many pieces follow under `<key>/0`…; none for an inline blob.
    pub pieces: usize,
    /// The blob's length in bytes.
    pub len: usize,
    /// The blob's bytes, when it is inline.
    pub inline: Option<&'a [u8]>,
}

impl<'a> Header<'a> {
    /// Reads a header; `None` when it is not one (then the blob cannot be read).
    pub fn parse(raw: &'a [u8]) -> Option<Self> {
        let (text, inline) = match raw.iter().position(|&b| b == b'\n') {
            Some(at) => (&raw[..at], Some(&raw[at + 1..])),
            None => (raw, None),
        };
        let (pieces, len) = std::str::from_utf8(text).ok()?.split_once(' ')?;
        let (pieces, len) = (pieces.parse().ok()?, len.parse().ok()?);
        match inline {
            Some(bytes) if pieces != 0 || bytes.len() != len => None,
            _ => Some(Self { pieces, len, inline }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::noise;

    /// Lays `data` out, then reads it back as `KvBlobs::get` does: the number of values
    /// written (pieces and header) and the bytes read.
    fn round_trip(data: &[u8]) -> (usize, Vec<u8>) {
        let (pieces, header) = layout(data);
        let head = Header::parse(&header).expect("a header");
        assert_eq!(head.len, data.len());
        assert_eq!(head.pieces, pieces.len());
        let read = match head.inline {
            Some(bytes) => bytes.to_vec(),
            None => pieces.concat(),
        };
        (pieces.len() + 1, read)
    }

    #[test]
    fn a_blob_of_at_most_one_piece_is_one_value() {
        for len in [0, 1, 4096, PIECE] {
            let data = noise(len, 7);
            assert_eq!(round_trip(&data), (1, data.clone()), "{len} bytes");
        }
    }

    #[test]
    fn a_larger_blob_is_pieces_then_a_header() {
        let data = noise(2 * PIECE + 1, 9);
        let (values, read) = round_trip(&data);
        assert_eq!(values, 4);
        assert_eq!(read, data);
        assert_eq!(layout(&data).1, format!("3 {}", data.len()).into_bytes());
    }

    #[test]
    fn headers_written_before_inline_blobs_still_read() {
        assert_eq!(Header::parse(b"10 5242880"), Some(Header { pieces: 10, len: 5_242_880, inline: None }));
        assert_eq!(Header::parse(b"0 0"), Some(Header { pieces: 0, len: 0, inline: None }));
    }

    #[test]
    fn an_inline_blob_whose_bytes_are_not_its_length_is_no_header() {
        assert_eq!(Header::parse(b"0 3\nab"), None);
        assert_eq!(Header::parse(b"1 2\nab"), None);
        assert_eq!(Header::parse(b"0 2\nab"), Some(Header { pieces: 0, len: 2, inline: Some(b"ab") }));
        // Inline bytes may hold newlines of their own.
        assert_eq!(Header::parse(b"0 3\n\n\n\n").map(|h| h.inline), Some(Some(&b"\n\n\n"[..])));
        for junk in [&b""[..], b"x y", b"1", b"-1 2", b"\n"] {
            assert_eq!(Header::parse(junk), None, "{junk:?}");
        }
    }
}
