//! Signed download URLs: `<key id>.<payload>.<mac>`, payload and MAC base64url, the MAC an
//! HMAC-SHA256 over the key id and payload. The key id selects the key, so keys rotate: sign
//! with the current key, verify with any key still configured, retire a key by removing it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Like SigV4 presigned URLs: a week at most.
pub const MAX_EXPIRY_SECS: i64 = 7 * 24 * 3600;
pub const MIN_SECRET_BYTES: usize = 32;
const DOMAIN: &[u8] = b"vaultx-signed-url-v1.";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Download the file's bytes.
    Read,
}

impl Permission {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Self::Read),
            _ => None,
        }
    }
}

/// What a signed URL allows. It names the exact content it serves (the file's immutable
/// manifest at the time of signing) and, as S3's `response-content-disposition` and
/// `response-content-type` do, the name and media type to serve it with: a download needs no
/// mutable state but the manifest, and no late write can change what a URL serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    #[serde(rename = "f")]
    pub file_id: String,
    #[serde(rename = "m")]
    pub manifest_id: String,
    /// The download's file name (`Content-Disposition`).
    #[serde(rename = "n")]
    pub name: String,
    /// The download's `Content-Type`.
    #[serde(rename = "t")]
    pub mime_type: String,
    #[serde(rename = "p")]
    pub permissions: Vec<Permission>,
    /// Expiry, Unix seconds.
    #[serde(rename = "e")]
    pub expires_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlTokenError {
    /// Malformed, signed by an unknown or retired key, or altered.
    Invalid(&'static str),
    Expired,
}

pub struct UrlKeys {
    current: String,
    /// Each key's MAC, keyed and fed `DOMAIN`, the id and the `.` once at parse time: a
    /// token's check then hashes only its payload (HMAC's two key blocks are not hashed
    /// again for every request of an instance that keeps its keys, `settings::url_keys`).
    keys: Vec<(String, Hmac<Sha256>)>,
}

impl UrlKeys {
    /// `keys` is `id:secret[,id:secret…]`; `current` names the key that signs new URLs.
    pub fn parse(keys: &str, current: &str) -> Result<Self, String> {
        let mut parsed = Vec::new();
        for entry in keys.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, secret) = entry.split_once(':').ok_or("each key is id:secret")?;
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(format!("key id {id:?} must be letters, digits, - or _"));
            }
            if secret.len() < MIN_SECRET_BYTES {
                return Err(format!("key {id}: the secret must be at least {MIN_SECRET_BYTES} bytes"));
            }
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
            mac.update(DOMAIN);
            mac.update(id.as_bytes());
            mac.update(b".");
            parsed.push((id.to_owned(), mac));
        }
        if !parsed.iter().any(|(id, _)| id == current) {
            return Err(format!("the current key id {current:?} is not among the keys"));
        }
        Ok(Self { current: current.to_owned(), keys: parsed })
    }

    /// The MAC of `DOMAIN`, the key id, `.` and the payload under the key (`keyed` is the
    /// key's MAC from `parse`, already past the id).
    fn mac(keyed: &Hmac<Sha256>, payload: &str) -> Hmac<Sha256> {
        let mut mac = keyed.clone();
        mac.update(payload.as_bytes());
        mac
    }

    pub fn sign(&self, grant: &Grant) -> String {
        let keyed = &self.keys.iter().find(|(id, _)| *id == self.current).expect("checked in parse").1;
        let payload = B64.encode(serde_json::to_vec(grant).expect("a grant serialises"));
        let tag = B64.encode(Self::mac(keyed, &payload).finalize().into_bytes());
        format!("{}.{payload}.{tag}", self.current)
    }

    pub fn verify(&self, token: &str, now_secs: i64) -> Result<Grant, UrlTokenError> {
        let mut parts = token.split('.');
        let (Some(key_id), Some(payload), Some(tag), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(UrlTokenError::Invalid("not a signed URL token"));
        };
        let keyed = &self.keys.iter().find(|(id, _)| id == key_id).ok_or(UrlTokenError::Invalid("unknown or retired signing key"))?.1;
        let tag = B64.decode(tag).map_err(|_| UrlTokenError::Invalid("malformed signature"))?;
        // Constant-time comparison (hmac's verify), so timing tells nothing about the tag.
        Self::mac(keyed, payload).verify_slice(&tag).map_err(|_| UrlTokenError::Invalid("signature mismatch"))?;
        let payload = B64.decode(payload).map_err(|_| UrlTokenError::Invalid("malformed payload"))?;
        let grant: Grant = serde_json::from_slice(&payload).map_err(|_| UrlTokenError::Invalid("malformed payload"))?;
        if now_secs >= grant.expires_at {
            return Err(UrlTokenError::Expired);
        }
        Ok(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "k1:11111111111111111111111111111111";
    const K2: &str = "k2:22222222222222222222222222222222";

    fn grant() -> Grant {
        Grant {
            file_id: "f-1".into(),
            manifest_id: "m-1".into(),
            name: "a.txt".into(),
            mime_type: "text/plain".into(),
            permissions: vec![Permission::Read],
            expires_at: 1000,
        }
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let keys = UrlKeys::parse(K1, "k1").unwrap();
        let token = keys.sign(&grant());
        assert!(token.starts_with("k1."));
        assert_eq!(keys.verify(&token, 999), Ok(grant()));
        assert_eq!(keys.verify(&token, 1000), Err(UrlTokenError::Expired));
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_until_the_key_is_retired() {
        let old = UrlKeys::parse(K1, "k1").unwrap().sign(&grant());
        let rotated = UrlKeys::parse(&format!("{K1},{K2}"), "k2").unwrap();
        assert!(rotated.sign(&grant()).starts_with("k2."));
        assert_eq!(rotated.verify(&old, 1), Ok(grant()));
        let retired = UrlKeys::parse(K2, "k2").unwrap();
        assert!(matches!(retired.verify(&old, 1), Err(UrlTokenError::Invalid(_))));
    }

    #[test]
    fn any_change_to_a_token_invalidates_it() {
        let keys = UrlKeys::parse(K1, "k1").unwrap();
        let token = keys.sign(&grant());
        let other = Grant { file_id: "f-2".into(), ..grant() };
        let forged_payload = B64.encode(serde_json::to_vec(&other).unwrap());
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        assert!(matches!(keys.verify(&forged, 1), Err(UrlTokenError::Invalid(_))));
        assert!(matches!(keys.verify(&token[..token.len() - 1], 1), Err(UrlTokenError::Invalid(_))));
        assert!(matches!(keys.verify("k1.e30", 1), Err(UrlTokenError::Invalid(_))));
        assert!(matches!(keys.verify("", 1), Err(UrlTokenError::Invalid(_))));
    }

    #[test]
    fn keys_are_checked() {
        assert!(UrlKeys::parse("k1:short", "k1").is_err());
        assert!(UrlKeys::parse(K1, "k2").is_err());
        assert!(UrlKeys::parse("k 1:11111111111111111111111111111111", "k 1").is_err());
    }
}
