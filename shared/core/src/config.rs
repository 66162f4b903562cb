//! Configuration values as the seed spells them (`jwt.expirationTime=3600s`), parsed once.

/// Parses a duration such as `3600s`, `60m`, `12h`, `7d` or a bare number of seconds.
pub fn parse_duration_secs(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: i64 = digits.parse().map_err(|_| format!("{text:?} is not a duration like 3600s, 60m, 12h or 7d"))?;
    let factor = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?} has an unknown unit; use s, m, h or d")),
    };
    match n.checked_mul(factor) {
        Some(secs) if secs > 0 => Ok(secs),
        _ => Err(format!("{text:?} must be a positive duration")),
    }
}

/// Every setting of the deployment, checked at once (`vaultx-runtime` before it serves, and
/// `vaultx-runtime check-config` before `spin up` or `wrangler deploy`): one message per
/// problem, naming the variable, so an operator fixes them all in one go. `get` answers a
/// variable's value (unset or empty: the default applies); `key_value_stores` are the
/// key-value labels the deployment has (a `key-value:` home store must be one of them).
/// Secrets are never quoted back. Only the variables `declared` says the deployment has are
/// checked (a manifest without signed URLs needs no URL keys).
pub fn check(get: &dyn Fn(&str) -> Option<String>, declared: &dyn Fn(&str) -> bool, key_value_stores: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    let value = |name: &str| get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let mut whole = |name: &str, range: std::ops::RangeInclusive<u64>, what: &str| {
        if let Some(v) = value(name) {
            if !v.parse::<u64>().is_ok_and(|n| range.contains(&n)) {
                problems.push(format!("{name}={v:?}: {what} from {} to {}", range.start(), range.end()));
            }
        }
    };
    whole("chunk_size", crate::chunks::MIN_CHUNK_SIZE..=crate::chunks::MAX_CHUNK_SIZE, "bytes, a whole number");
    whole("job_concurrency", 1..=64, "jobs of a kind at once, a whole number");
    whole("job_lease_seconds", 1..=86_400, "seconds, a whole number");
    whole("job_retry_base_ms", 1..=3_600_000, "milliseconds, a whole number");
    whole("sweep_interval_seconds", 0..=86_400, "seconds (0: only from a schedule), a whole number");
    whole("version_retention", 0..=1_000_000, "versions (0: all), a whole number");
    whole("multipart_max_age_seconds", 1..=31_536_000, "seconds, a whole number");
    whole("quota_bytes", 0..=u64::MAX, "bytes (0: unlimited), a whole number");
    whole("quota_files", 0..=u64::MAX, "files (0: unlimited), a whole number");
    whole("circuit_breaker_failure_threshold", 1..=1_000_000, "failures, a whole number");
    whole("circuit_breaker_reset_timeout", 1..=86_400_000, "milliseconds, a whole number");
    if let Some(v) = value("audit_spool")
        && v != "redis"
        && v != "key-value"
    {
        problems.push(format!("audit_spool={v:?}: redis or key-value"));
    }

    match value("jwt_secret") {
        None if !declared("jwt_secret") => {}
        None => problems.push("jwt_secret is required: an HS256 key of at least 32 bytes".into()),
        Some(s) if s.len() < 32 => problems.push(format!("jwt_secret is {} bytes; it must be at least 32", s.len())),
        Some(_) => {}
    }
    // Optional: without it no access key can be created; a short one is a mistake.
    if let Some(s) = value("access_key_sealing_key")
        && s.len() < crate::sealed::MIN_KEY_BYTES
    {
        problems.push(format!("access_key_sealing_key is {} bytes; it must be at least {} (or empty: no access keys)", s.len(), crate::sealed::MIN_KEY_BYTES));
    }
    if let Some(v) = value("jwt_expiration_time") {
        if let Err(e) = parse_duration_secs(&v) {
            problems.push(format!("jwt_expiration_time: {e}"));
        }
    }
    match value("url_signing_keys") {
        None if !declared("url_signing_keys") => {}
        None => problems.push("url_signing_keys is required: id:secret[,id:secret...], secrets of at least 32 bytes".into()),
        Some(keys) => {
            let current = value("url_signing_key_id").unwrap_or_else(|| "k1".into());
            if let Err(e) = crate::signed_url::UrlKeys::parse(&keys, &current) {
                problems.push(format!("url_signing_keys / url_signing_key_id: {e}"));
            }
        }
    }
    if let Some(url) = value("public_url") {
        let origin = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).map(|o| o.strip_suffix('/').unwrap_or(o));
        if !origin.is_some_and(|o| !o.is_empty() && !o.contains(['/', '?', '#', ' ', '@'])) {
            problems.push(format!("public_url={url:?}: an origin, http(s)://host[:port]"));
        }
    }
    if let Some(emails) = value("admin_emails") {
        for e in emails.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if crate::validation::email(e).is_err() {
                problems.push(format!("admin_emails: {e:?} is not an email address"));
            }
        }
    }
    if let Some(url) = value("database_url") {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            problems.push("database_url: empty for SQLite, or postgres://user:password@host:port/database".into());
        }
    }
    if let Some(address) = value("redis_address") {
        if !(address.starts_with("redis://") || address.starts_with("rediss://")) {
            problems.push(format!("redis_address={address:?}: redis://host:port, or empty for no broker"));
        }
    }
    if let Some(v) = value("compression_min_saving") {
        if !v.parse::<f64>().is_ok_and(|f| (0.0..1.0).contains(&f)) {
            problems.push(format!("compression_min_saving={v:?}: a fraction from 0 to below 1 (0.10 = 10 %)"));
        }
    }
    if let Some(v) = value("replication_default_consistency") {
        if v != "eventual" && v != "strong" {
            problems.push(format!("replication_default_consistency={v:?}: eventual or strong"));
        }
    }
    if let Some(codes) = value("replication_default_regions") {
        for code in codes.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if code.len() > 32 || !code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
                problems.push(format!("replication_default_regions: {code:?} is not a region code (a-z, 0-9, -)"));
            }
        }
    }
    if let Some(token) = value("metrics_token") {
        if token.len() < 16 {
            problems.push(format!("metrics_token is {} bytes; use at least 16 (or leave it empty: metrics open like /health)", token.len()));
        }
    }
    let stores = value("s3_stores").unwrap_or_default();
    #[cfg(feature = "s3")]
    let credentials = value("s3_credentials").unwrap_or_default();
    #[cfg(feature = "s3")]
    for name in stores.split(',').filter_map(|e| e.split_once('=')).map(|(n, _)| n.trim()) {
        if let Err(e) = crate::s3::find(&stores, &credentials, name) {
            problems.push(e);
        }
    }
    let home = value("home_blob_store").unwrap_or_else(|| "key-value:blobs".into());
    match home.split_once(':') {
        _ if !declared("home_blob_store") => {}
        Some(("key-value", label)) if key_value_stores.iter().any(|s| s == label) => {}
        Some(("key-value", label)) => problems.push(format!("home_blob_store={home:?}: the deployment has no key-value store {label:?} ({})", key_value_stores.join(", "))),
        Some(("s3", name)) if stores.split(',').filter_map(|e| e.split_once('=')).any(|(n, _)| n.trim() == name) => {}
        Some(("s3", name)) => problems.push(format!("home_blob_store={home:?}: s3_stores has no store {name:?}")),
        _ => problems.push(format!("home_blob_store={home:?}: key-value:<label> or s3:<name>")),
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> std::collections::HashMap<&'static str, &'static str> {
        std::collections::HashMap::from([
            ("jwt_secret", "0123456789abcdef0123456789abcdef"),
            ("url_signing_keys", "k1:0123456789abcdef0123456789abcdef"),
        ])
    }

    fn problems(vars: &std::collections::HashMap<&'static str, &'static str>) -> Vec<String> {
        check(&|name| vars.get(name).map(|v| v.to_string()), &|_| true, &["blobs".to_owned(), "manifests".to_owned()])
    }

    #[test]
    fn the_defaults_and_two_secrets_are_a_valid_configuration() {
        assert_eq!(problems(&valid()), Vec::<String>::new());
    }

    #[test]
    fn every_problem_is_reported_at_once_and_names_its_variable() {
        let mut vars = valid();
        vars.insert("jwt_secret", "short");
        vars.remove("url_signing_keys");
        vars.insert("chunk_size", "1000");
        vars.insert("job_concurrency", "0");
        vars.insert("jwt_expiration_time", "soon");
        vars.insert("circuit_breaker_reset_timeout", "-5");
        vars.insert("home_blob_store", "key-value:nope");
        vars.insert("admin_emails", "ops@example.com, not an email");
        vars.insert("replication_default_consistency", "sometimes");
        vars.insert("public_url", "files.example.com");
        vars.insert("access_key_sealing_key", "too-short");
        let found = problems(&vars);
        for name in ["jwt_secret", "url_signing_keys", "chunk_size", "job_concurrency", "jwt_expiration_time", "circuit_breaker_reset_timeout", "home_blob_store", "admin_emails", "replication_default_consistency", "public_url", "access_key_sealing_key"] {
            assert!(found.iter().any(|p| p.starts_with(name)), "{name} not reported: {found:#?}");
        }
        assert_eq!(found.len(), 11, "{found:#?}");
        assert!(!found.iter().any(|p| p.contains("short")), "a secret is never quoted back");
    }

    #[test]
    fn durations_take_the_seed_spelling() {
        assert_eq!(parse_duration_secs("3600s"), Ok(3600));
        assert_eq!(parse_duration_secs("3600"), Ok(3600));
        assert_eq!(parse_duration_secs("15m"), Ok(900));
        assert_eq!(parse_duration_secs("2h"), Ok(7200));
        assert_eq!(parse_duration_secs("7d"), Ok(604_800));
        assert!(parse_duration_secs("0s").is_err());
        assert!(parse_duration_secs("soon").is_err());
        assert!(parse_duration_secs("5y").is_err());
        assert!(parse_duration_secs("99999999999999999999s").is_err());
    }
}
