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

pub fn parse(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match last.parse::<u64>() {
            Ok(0) => return RangeRequest::Unsatisfiable,
            Ok(n) if size == 0 => return if n > 0 { RangeRequest::Unsatisfiable } else { RangeRequest::Full },
            Ok(n) => Some((size.saturating_sub(n), size - 1)),
            Err(_) => None,
        },
        // bytes=A-: from A to the end.
        (false, true) => first.parse::<u64>().ok().map(|a| (a, size.saturating_sub(1))),
        (false, false) => match (first.parse::<u64>(), last.parse::<u64>()) {
            (Ok(a), Ok(b)) if a <= b => Some((a, b.min(size.saturating_sub(1)))),
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
}
