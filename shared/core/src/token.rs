//! Access tokens: compact JWTs signed with HS256 (`jwt-compact`), carrying the user id as
//! `sub`. The signing secret comes from configuration (`jwt.secret`); its lifetime from
//! `jwt.expirationTime`.

use chrono::{DateTime, Duration, Utc};
use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{AlgorithmExt, Claims, Header, TimeOptions, UntrustedToken, ValidationError};
use serde::{Deserialize, Serialize};

/// Shorter secrets are refused: HS256 is only as strong as its key (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;
const ISSUER: &str = "vaultx";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct AccessClaims {
    sub: String,
    email: String,
    iss: String,
}

/// Who a valid token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    pub user_id: String,
    pub email: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Not a JWT, not ours, or altered after signing.
    Invalid(String),
    Expired,
}

pub struct Signer {
    key: Hs256Key,
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl Signer {
    pub fn new(secret: &str) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!("jwt secret must be at least {MIN_SECRET_BYTES} bytes"));
        }
        Ok(Self { key: Hs256Key::new(secret.as_bytes()) })
    }

    pub fn issue(&self, subject: &Subject, now_ms: i64, ttl_secs: i64) -> Result<String, String> {
        let custom = AccessClaims { sub: subject.user_id.clone(), email: subject.email.clone(), iss: ISSUER.into() };
        let options = TimeOptions::new(Duration::zero(), move || at(now_ms));
        let claims = Claims::new(custom).set_duration_and_issuance(&options, Duration::seconds(ttl_secs));
        Hs256.token(&Header::empty().with_token_type("JWT"), &claims, &self.key).map_err(|e| e.to_string())
    }

    pub fn verify(&self, token: &str, now_ms: i64) -> Result<Subject, TokenError> {
        // Our own words, not the JWT library's: its messages describe its internals.
        let untrusted = UntrustedToken::new(token).map_err(|_| TokenError::Invalid("not a well-formed access token".into()))?;
        let token = Hs256
            .validator::<AccessClaims>(&self.key)
            .validate(&untrusted)
            .map_err(|_| TokenError::Invalid("the token's signature or claims are not valid".into()))?;
        let claims = token.claims();
        // A few seconds of leeway for clocks that disagree between edge locations.
        let options = TimeOptions::new(Duration::seconds(5), move || at(now_ms));
        match claims.validate_expiration(&options) {
            Ok(_) => {}
            Err(ValidationError::Expired) => return Err(TokenError::Expired),
            Err(_) => return Err(TokenError::Invalid("the token has no valid expiry".into())),
        }
        if claims.custom.iss != ISSUER {
            return Err(TokenError::Invalid("issuer mismatch".into()));
        }
        Ok(Subject { user_id: claims.custom.sub.clone(), email: claims.custom.email.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_790_000_000_000;

    fn alice() -> Subject {
        Subject { user_id: "u-1".into(), email: "alice@example.com".into() }
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let signer = Signer::new(SECRET).unwrap();
        let token = signer.issue(&alice(), NOW, 3600).unwrap();
        assert_eq!(signer.verify(&token, NOW + 1000), Ok(alice()));
        assert_eq!(signer.verify(&token, NOW + 3_600_000 + 10_000), Err(TokenError::Expired));
    }

    #[test]
    fn tampered_or_foreign_tokens_are_invalid() {
        let signer = Signer::new(SECRET).unwrap();
        let token = signer.issue(&alice(), NOW, 3600).unwrap();
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = String::from_utf8(b64.decode(&parts[1]).unwrap()).unwrap().replace("u-1", "u-2");
        parts[1] = b64.encode(payload);
        assert!(matches!(signer.verify(&parts.join("."), NOW), Err(TokenError::Invalid(_))));
        let other = Signer::new("another-secret-another-secret-xx").unwrap();
        assert!(matches!(other.verify(&token, NOW), Err(TokenError::Invalid(_))));
        assert!(matches!(signer.verify("not-a-jwt", NOW), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn unsigned_alg_none_tokens_are_refused() {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let forged = format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(r#"{"sub":"u-1","email":"a@b.c","iss":"vaultx","exp":9999999999}"#)
        );
        assert!(matches!(Signer::new(SECRET).unwrap().verify(&forged, NOW), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(Signer::new("short").is_err());
    }
}
