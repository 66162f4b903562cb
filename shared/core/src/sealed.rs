//! Secrets the server must be able to read back, sealed at rest: an S3 access key's secret
//! (SigV4 signs with the secret itself, so it cannot be stored as a hash). Sealed with
//! ChaCha20-Poly1305 under a key derived from a deployment setting (HMAC-SHA-256 of a fixed
//! label, so the setting can be any string of at least [`MIN_KEY_BYTES`]), a random 96-bit
//! nonce per secret, and the secret's owner record (its access key id) as associated data: a
//! sealed secret copied onto another row does not open.
//!
//! The text form is `v1.<base64url(nonce ‖ ciphertext ‖ tag)>`; the version names the
//! derivation and cipher, so a later scheme can sit beside it.

use crate::ports::Entropy;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The shortest sealing setting accepted (as for `jwt_secret`).
pub const MIN_KEY_BYTES: usize = 32;
const LABEL: &[u8] = b"vaultx sealed secrets v1";
const PREFIX: &str = "v1.";

/// A sealing key, derived from the deployment's setting.
pub struct SealingKey(ChaCha20Poly1305);

impl SealingKey {
    /// `None` when the setting is shorter than [`MIN_KEY_BYTES`].
    pub fn from_setting(setting: &str) -> Option<SealingKey> {
        if setting.len() < MIN_KEY_BYTES {
            return None;
        }
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(setting.as_bytes()).ok()?;
        mac.update(LABEL);
        let derived = mac.finalize().into_bytes();
        Some(SealingKey(ChaCha20Poly1305::new(Key::from_slice(&derived))))
    }

    /// Seals `secret` for the record `bound_to`.
    pub fn seal(&self, entropy: &impl Entropy, bound_to: &str, secret: &[u8]) -> String {
        let mut nonce = [0u8; 12];
        entropy.fill(&mut nonce);
        // Encryption fails only for inputs of gigabytes; a secret is tens of bytes.
        let sealed = self.0.encrypt(Nonce::from_slice(&nonce), Payload { msg: secret, aad: bound_to.as_bytes() }).expect("a secret is small enough to seal");
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The secret sealed for `bound_to`; `None` if the text is not one of ours, was sealed
    /// under another key or for another record, or was altered.
    pub fn open(&self, bound_to: &str, sealed: &str) -> Option<Vec<u8>> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed.strip_prefix(PREFIX)?).ok()?;
        if bytes.len() < 12 + 16 {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        self.0.decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: bound_to.as_bytes() }).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(std::cell::Cell<u8>);
    impl Entropy for Counter {
        fn fill(&self, buf: &mut [u8]) {
            for b in buf {
                self.0.set(self.0.get().wrapping_add(1));
                *b = self.0.get();
            }
        }
    }

    const SETTING: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_for_its_record() {
        let key = SealingKey::from_setting(SETTING).unwrap();
        let entropy = Counter(Default::default());
        let sealed = key.seal(&entropy, "VXKEY1", b"the secret");
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("secret"));
        assert_eq!(key.open("VXKEY1", &sealed).as_deref(), Some(&b"the secret"[..]));
        assert_eq!(key.open("VXKEY2", &sealed), None, "bound to its record");
        let other = SealingKey::from_setting("another-setting-another-setting-01").unwrap();
        assert_eq!(other.open("VXKEY1", &sealed), None, "another key");
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(key.open("VXKEY1", &String::from_utf8(altered).unwrap()), None, "altered");
        assert_eq!(key.open("VXKEY1", "v1.AAAA"), None);
        assert_eq!(key.open("VXKEY1", "plain"), None);
        assert_ne!(key.seal(&entropy, "VXKEY1", b"the secret"), sealed, "a fresh nonce each time");
    }

    #[test]
    fn a_short_setting_is_no_key() {
        assert!(SealingKey::from_setting("short").is_none());
        assert!(SealingKey::from_setting(&SETTING[..31]).is_none());
    }
}
