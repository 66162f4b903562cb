//! Timestamps as the API shows them: RFC 3339, UTC, millisecond precision.

pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Milliseconds since the epoch of an RFC 3339 time (`2026-11-25T10:00:00Z`, any offset).
/// Epoch milliseconds as RFC 3339, for serde: `#[serde(serialize_with = "vaultx_core::time::serialize_rfc3339")]`.
pub fn serialize_rfc3339<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

pub fn parse_rfc3339(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(super::rfc3339(1_790_000_000_123), "2026-09-21T14:13:20.123Z");
        assert_eq!(super::parse_rfc3339("2026-09-21T14:13:20.123Z"), Some(1_790_000_000_123));
        assert_eq!(super::parse_rfc3339("2026-09-21T16:13:20.123+02:00"), Some(1_790_000_000_123));
        assert_eq!(super::parse_rfc3339("yesterday"), None);
    }
}
