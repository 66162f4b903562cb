//! SHA-256 digests as VaultX shows them: lower-case hex for ids and checksums, and RFC 9530
//! `Content-Digest` fields (`sha-256=:<base64>:`) on the wire.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// CRC-64/NVME (the full-object checksum S3 computes for multipart uploads), via `crc-fast`.
/// Unlike SHA-256 it combines: the CRC of a file follows from its chunks' CRCs and lengths
/// ([`crc64nvme_combine`]), so completion verifies a whole file without reading it again.
pub fn crc64nvme(data: &[u8]) -> u64 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, data)
}

/// The CRC-64/NVME of `a ‖ b`, given `crc(a)`, `crc(b)` and `b`'s length.
pub fn crc64nvme_combine(crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
    crc_fast::checksum_combine(crc_fast::CrcAlgorithm::Crc64Nvme, crc_a, crc_b, len_b)
}

/// A streaming CRC-64/NVME (for clients hashing a file as they read it).
pub struct Crc64Nvme(crc_fast::Digest);

impl Default for Crc64Nvme {
    fn default() -> Self {
        Self(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme))
    }
}

impl Crc64Nvme {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    pub fn finish(&self) -> u64 {
        self.0.finalize()
    }
}

/// As S3 writes it (`x-amz-checksum-crc64nvme`): base64 of the 8 bytes, big-endian.
pub fn crc64_base64(crc: u64) -> String {
    STANDARD.encode(crc.to_be_bytes())
}

pub fn parse_crc64_base64(text: &str) -> Option<u64> {
    let bytes: [u8; 8] = STANDARD.decode(text).ok()?.try_into().ok()?;
    (crc64_base64(u64::from_be_bytes(bytes)) == text).then(|| u64::from_be_bytes(bytes))
}

/// `sha-256=:<base64>:`, the RFC 9530 dictionary member for SHA-256.
pub fn content_digest(digest: &[u8; 32]) -> String {
    format!("sha-256=:{}:", STANDARD.encode(digest))
}

/// Reads the SHA-256 member of a `Content-Digest` (or `Repr-Digest`) field.
/// `Ok(None)`: the field names only algorithms we do not check. `Err`: the field is malformed.
pub fn parse_sha256_member(field: &str) -> Result<Option<[u8; 32]>, String> {
    for member in field.split(',') {
        let (name, value) = member.trim().split_once('=').ok_or_else(|| format!("{member:?} is not algorithm=:base64:"))?;
        let value = value.trim();
        let inner = value
            .strip_prefix(':')
            .and_then(|v| v.strip_suffix(':'))
            .ok_or_else(|| format!("the {name} value must be a byte sequence, :base64:"))?;
        if name.trim().eq_ignore_ascii_case("sha-256") {
            let bytes = STANDARD.decode(inner).map_err(|e| format!("sha-256 value: {e}"))?;
            return <[u8; 32]>::try_from(bytes.as_slice()).map(Some).map_err(|_| "sha-256 value must be 32 bytes".to_owned());
        }
    }
    Ok(None)
}

/// A whole-file checksum as the API accepts it: `sha256:<64 hex>` (or bare hex), normalised.
pub fn parse_checksum(text: &str) -> Result<String, String> {
    let hex_part = text.trim().strip_prefix("sha256:").unwrap_or(text.trim()).to_ascii_lowercase();
    if hex_part.len() == 64 && hex_part.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(format!("sha256:{hex_part}"))
    } else {
        Err("must be sha256:<64 hex digits>".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64nvme_matches_the_published_check_value_and_combines() {
        // The catalogue's check value of CRC-64/NVME for "123456789".
        assert_eq!(crc64nvme(b"123456789"), 0xae8b_1486_0a79_9888);
        let (a, b) = (b"hello, ".as_slice(), b"object store".as_slice());
        let whole = [a, b].concat();
        assert_eq!(crc64nvme_combine(crc64nvme(a), crc64nvme(b), b.len() as u64), crc64nvme(&whole));
        let mut streaming = Crc64Nvme::default();
        streaming.update(a);
        streaming.update(b);
        assert_eq!(streaming.finish(), crc64nvme(&whole));
        assert_eq!(parse_crc64_base64(&crc64_base64(0x0123_4567_89ab_cdef)), Some(0x0123_4567_89ab_cdef));
        assert_eq!(parse_crc64_base64("not base64"), None);
        assert_eq!(parse_crc64_base64("AAAA"), None, "eight bytes exactly");
    }

    #[test]
    fn content_digest_round_trips() {
        let d = sha256(b"hello");
        let field = content_digest(&d);
        assert_eq!(field, "sha-256=:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=:");
        assert_eq!(parse_sha256_member(&field), Ok(Some(d)));
        assert_eq!(parse_sha256_member(&format!("sha-512=:AAAA:, {field}")), Ok(Some(d)));
        assert_eq!(parse_sha256_member("sha-512=:AAAA:"), Ok(None));
        assert!(parse_sha256_member("sha-256=abc").is_err());
        assert!(parse_sha256_member("sha-256=:AAAA:").is_err());
    }

    #[test]
    fn checksums_are_normalised() {
        let h = hex(&sha256(b"x"));
        assert_eq!(parse_checksum(&h.to_uppercase()).unwrap(), format!("sha256:{h}"));
        assert_eq!(parse_checksum(&format!("sha256:{h}")).unwrap(), format!("sha256:{h}"));
        assert!(parse_checksum("md5:abc").is_err());
    }
}
