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
