//! HTTP `Range` requests (RFC 9110 §14): one byte range is served as 206; several are
//! answered with the whole representation (allowed by §14.2); an unsatisfiable one is 416.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// Serve everything (no Range, an unknown unit, or several ranges).
    Full,
    /// Serve bytes `start..=end`.
    Partial { start: u64, end: u64 },
    Unsatisfiable,
}

/// A byte position: digits only (no sign, no spaces inside), saturating at `u64::MAX` so a
/// huge number still compares correctly against the size (RFC 9110 §14.1.1: `1*DIGIT`).
fn position(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u64, |n, d| n.saturating_mul(10).saturating_add(u64::from(d - b'0'))))
}

pub fn parse(header: Option<&str>, size: u64) -> RangeRequest {
    let Some((unit, spec)) = header.and_then(|h| h.trim().split_once('=')) else {
        return RangeRequest::Full;
    };
    // Range units are case-insensitive (§14.1).
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match position(last) {
            Some(0) => return RangeRequest::Unsatisfiable,
            Some(_) if size == 0 => return RangeRequest::Unsatisfiable,
            Some(n) => Some((size.saturating_sub(n), size - 1)),
            None => None,
        },
        // bytes=A-: from A to the end.
        (false, true) => position(first).map(|a| (a, size.saturating_sub(1))),
        (false, false) => match (position(first), position(last)) {
            (Some(a), Some(b)) if a <= b => Some((a, b.min(size.saturating_sub(1)))),
            _ => None,
        },
        (true, true) => None,
    };
    match parsed {
        // A syntactically invalid range is ignored (§14.2).
        None => RangeRequest::Full,
        Some((start, _)) if start >= size => RangeRequest::Unsatisfiable,
        Some((start, end)) => RangeRequest::Partial { start, end },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeRequest::*;

    #[test]
    fn single_ranges() {
        assert_eq!(parse(None, 100), Full);
        assert_eq!(parse(Some("bytes=0-9"), 100), Partial { start: 0, end: 9 });
        assert_eq!(parse(Some("bytes=90-"), 100), Partial { start: 90, end: 99 });
        assert_eq!(parse(Some("bytes=-10"), 100), Partial { start: 90, end: 99 });
        assert_eq!(parse(Some("bytes=-1000"), 100), Partial { start: 0, end: 99 });
        assert_eq!(parse(Some("bytes=50-1000"), 100), Partial { start: 50, end: 99 });
    }

    #[test]
    fn odd_ranges() {
        assert_eq!(parse(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-0"), 0), Unsatisfiable);
        assert_eq!(parse(Some("bytes=5-2"), 100), Full);
        assert_eq!(parse(Some("bytes=0-1,5-6"), 100), Full);
        assert_eq!(parse(Some("items=0-1"), 100), Full);
        assert_eq!(parse(Some("bytes=x-y"), 100), Full);
    }

    #[test]
    fn units_are_case_insensitive_and_positions_are_plain_digits() {
        assert_eq!(parse(Some("Bytes=0-1"), 100), Partial { start: 0, end: 1 });
        assert_eq!(parse(Some("BYTES=-2"), 100), Partial { start: 98, end: 99 });
        assert_eq!(parse(Some("bytes=+1-+2"), 100), Full);
        assert_eq!(parse(Some("bytes=1-+2"), 100), Full);
        assert_eq!(parse(Some("bytes=-+2"), 100), Full);
    }

    #[test]
    fn positions_beyond_u64_clamp_or_are_unsatisfiable() {
        assert_eq!(parse(Some("bytes=0-18446744073709551616"), 100), Partial { start: 0, end: 99 });
        assert_eq!(parse(Some("bytes=18446744073709551616-"), 100), Unsatisfiable);
        assert_eq!(parse(Some("bytes=-99999999999999999999999"), 100), Partial { start: 0, end: 99 });
    }
}
