//! Password hashing with Argon2id at the OWASP Password Storage Cheat Sheet's first
//! recommended setting (m = 19 MiB, t = 2, p = 1), stored as a PHC string so the parameters
//! travel with the hash and can be raised later without breaking old hashes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

pub const MEMORY_KIB: u32 = 19 * 1024;
pub const ITERATIONS: u32 = 2;
pub const PARALLELISM: u32 = 1;

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).expect("the OWASP parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` with a 16-byte random `salt` the caller draws from its platform.
pub fn hash(password: &str, salt: &[u8; 16]) -> Result<String, String> {
    let salt = SaltString::encode_b64(salt).map_err(|e| e.to_string())?;
    argon2().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// True when `password` matches the stored PHC string. A malformed stored hash never matches.
pub fn verify(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        // Verify with the parameters recorded in the hash, not today's defaults.
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// True when `stored` parses as a PHC string, i.e. [`verify`] will run Argon2 on it.
pub fn is_phc(stored: &str) -> bool {
    PasswordHash::new(stored).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_record_owasp_parameters() {
        let h = hash("correct horse battery", &[7; 16]).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse battery!", &h));
        assert!(!verify("anything", "not a phc string"));
    }

    #[test]
    fn the_salt_changes_the_hash() {
        assert_ne!(hash("pw-pw-pw-pw", &[1; 16]).unwrap(), hash("pw-pw-pw-pw", &[2; 16]).unwrap());
    }
}
