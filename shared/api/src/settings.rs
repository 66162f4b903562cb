//! Named configuration values. Names are Spin variable names (lower snake case); the seed's
//! keys map onto them: `jwt.secret` → `jwt_secret`, `jwt.expirationTime` → `jwt_expiration_time`.

use vaultx_core::Problem;
use vaultx_core::config::parse_duration_secs;
use vaultx_core::ports::Config;

pub const JWT_SECRET: &str = "jwt_secret";
pub const JWT_EXPIRATION_TIME: &str = "jwt_expiration_time";
pub const DEFAULT_JWT_EXPIRATION_SECS: i64 = 3600;
/// Accounts with the operator role: a comma-separated list of emails. Configuration is the
/// only way to become an administrator; registering never grants it.
pub const ADMIN_EMAILS: &str = "admin_emails";
/// The origin signed URLs are built on (`https://files.example.com`); empty: relative URLs.
pub const PUBLIC_URL: &str = "public_url";
/// The key S3 access-key secrets are sealed under (`vaultx_core::sealed`): at least 32 bytes;
/// empty, and no access key can be created.
pub const ACCESS_KEY_SEALING_KEY: &str = "access_key_sealing_key";

/// A required setting. Missing configuration is the operator's fault, not the client's, so
/// it is a 500 whose detail stays generic; the adapter's log names the variable.
pub async fn required(config: &impl Config, name: &str) -> Result<String, Problem> {
    match config.get(name).await {
        Ok(Some(v)) if !v.is_empty() => Ok(v),
        _ => {
            eprintln!("vaultx: required variable {name} is not set");
            Err(Problem::internal())
        }
    }
}

pub async fn jwt_ttl_secs(config: &impl Config) -> Result<i64, Problem> {
    match config.get(JWT_EXPIRATION_TIME).await {
        Ok(Some(text)) if !text.is_empty() => parse_duration_secs(&text).map_err(|e| {
            eprintln!("vaultx: {JWT_EXPIRATION_TIME}: {e}");
            Problem::internal()
        }),
        _ => Ok(DEFAULT_JWT_EXPIRATION_SECS),
    }
}

pub const CHUNK_SIZE: &str = "chunk_size";
pub const URL_SIGNING_KEYS: &str = "url_signing_keys";
pub const URL_SIGNING_KEY_ID: &str = "url_signing_key_id";

/// The seed's `CHUNK_SIZE` (bytes), for files created from now on.
pub async fn chunk_size(config: &impl Config) -> Result<u64, Problem> {
    match config.get(CHUNK_SIZE).await {
        Ok(Some(text)) if !text.is_empty() => text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (vaultx_core::chunks::MIN_CHUNK_SIZE..=vaultx_core::chunks::MAX_CHUNK_SIZE).contains(n))
            .ok_or_else(|| {
                eprintln!("vaultx: {CHUNK_SIZE}={text:?} must be a byte count between 64 KiB and 16 MiB");
                Problem::internal()
            }),
        _ => Ok(vaultx_core::chunks::DEFAULT_CHUNK_SIZE),
    }
}

/// The keys signed URLs are signed and verified with.
pub async fn url_keys(config: &impl Config) -> Result<std::sync::Arc<vaultx_core::signed_url::UrlKeys>, Problem> {
    use std::sync::Arc;
    use vaultx_core::signed_url::UrlKeys;
    // The keys parsed last, by the settings they were parsed from: an instance (Spin) or an
    // isolate (Workers) answers many downloads with the same settings, and parsing keys the
    // HMACs, which is a quarter of checking a token. Other settings parse anew.
    thread_local! {
        static PARSED: std::cell::RefCell<Option<(String, String, Arc<UrlKeys>)>> = const { std::cell::RefCell::new(None) };
    }
    let keys = required(config, URL_SIGNING_KEYS).await?;
    let current = required(config, URL_SIGNING_KEY_ID).await?;
    if let Some(parsed) = PARSED.with_borrow(|p| p.as_ref().filter(|(k, c, _)| *k == keys && *c == current).map(|(_, _, parsed)| parsed.clone())) {
        return Ok(parsed);
    }
    let parsed = Arc::new(UrlKeys::parse(&keys, &current).map_err(|e| {
        eprintln!("vaultx: {URL_SIGNING_KEYS}: {e}");
        Problem::internal()
    })?);
    PARSED.set(Some((keys, current, parsed.clone())));
    Ok(parsed)
}

/// A non-negative whole number setting; unset or empty is `default`.
async fn count(config: &impl Config, name: &str, default: u64) -> Result<u64, Problem> {
    match config.get(name).await {
        Ok(Some(text)) if !text.trim().is_empty() => text.trim().parse::<u64>().map_err(|_| {
            eprintln!("vaultx: {name}={text:?} must be a whole number (0 = unlimited)");
            Problem::internal()
        }),
        _ => Ok(default),
    }
}

/// How many versions a file keeps, its current one included (0: all of them).
pub const VERSION_RETENTION: &str = "version_retention";
pub async fn version_retention(config: &impl Config) -> Result<u64, Problem> {
    count(config, VERSION_RETENTION, 0).await
}

/// The default per-user quotas (0: unlimited); an admin can set others per user.
pub const QUOTA_BYTES: &str = "quota_bytes";
pub const QUOTA_FILES: &str = "quota_files";
pub async fn default_quota(config: &impl Config) -> Result<(u64, u64), Problem> {
    Ok((count(config, QUOTA_BYTES, 0).await?, count(config, QUOTA_FILES, 0).await?))
}

/// How old an S3 multipart upload in progress may get before the sweep aborts it: 7 days by
/// default, the lifecycle rule S3 users set for it.
pub const MULTIPART_MAX_AGE_SECONDS: &str = "multipart_max_age_seconds";
pub const DEFAULT_MULTIPART_MAX_AGE_SECONDS: u64 = 7 * 24 * 3600;
pub async fn multipart_max_age_seconds(config: &impl Config) -> Result<u64, Problem> {
    count(config, MULTIPART_MAX_AGE_SECONDS, DEFAULT_MULTIPART_MAX_AGE_SECONDS).await
}
