//! What every PostgreSQL adapter of the [`Sql`](crate::ports::Sql) port does the same way:
//! VaultX's statements use `?` placeholders (SQLite and D1); PostgreSQL numbers them (`$1`).
//! And which PostgreSQL errors mean "the state changed concurrently" rather than "the store
//! failed".

use crate::ports::StoreError;
use std::borrow::Cow;

/// The isolation every guarded batch runs at on PostgreSQL. SQLite has one writer at a time,
/// so a batch's guards and writes see no one else's; SERIALIZABLE gives PostgreSQL's many
/// writers the same guarantee (a batch that would not be equivalent to some serial order is
/// aborted with SQLSTATE 40001 instead of committing).
pub const BEGIN_BATCH: &str = "BEGIN ISOLATION LEVEL SERIALIZABLE";

/// Run right after [`BEGIN_BATCH`]. A sequential scan takes a predicate lock on the whole
/// relation (PostgreSQL's manual, "Serializable Isolation Level"), so on the small tables
/// the planner likes to scan, any two batches touching one table looked like a conflict.
/// Guards and keyed updates all have an index; steering the batch's plans to it keeps the
/// predicate locks on the rows read (measured: 503 `busy` answers in the e2e concurrency
/// checker fell from about 25 to 4 per 12 000 operations).
pub const BATCH_SETTINGS: &str = "SET LOCAL enable_seqscan = off";

/// How often an adapter re-runs a batch PostgreSQL aborted as a serialization failure or a
/// deadlock before reporting [`StoreError::Contended`]. Re-running is safe: a batch is
/// self-contained (its guards restate everything its author read), so a re-run either
/// applies to the same state or fails its guards.
pub const SERIALIZATION_RETRIES: u32 = 12;

/// How long to wait before re-run `retry` (1, 2, …) of an aborted batch: "full jitter" over
/// an exponential ceiling (1 ms doubling, at most 64 ms), so batches that collided once do
/// not collide again in lockstep. `random` is any uniformly random number. Twelve re-runs
/// wait about 0.2 s on average, 0.45 s at most.
pub fn retry_delay_ms(retry: u32, random: u64) -> u64 {
    let ceiling = 1u64 << retry.min(6);
    random % (ceiling + 1)
}

/// `?` → `$1`, `$2`, … outside string literals, quoted identifiers and comments.
pub fn numbered_placeholders(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                // Copy up to the closing quote; a doubled quote is an escaped one.
                while let Some(d) = chars.next() {
                    out.push(d);
                    if d == c {
                        if chars.peek() == Some(&c) {
                            out.push(chars.next().unwrap());
                        } else {
                            break;
                        }
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Classifies a PostgreSQL error by its SQLSTATE: a serialization failure (40001) or a
/// deadlock (40P01) is contention (the adapter re-runs the batch first), a failed guard (a NOT
/// NULL violation in `cas_guard`, recognised by [`StoreError::from_backend`]) a conflict;
/// anything else is the store. The two must not be confused: a handler reads a conflict as
/// "the state I read is gone" (a quota now full, a file now deleted), which contention is not.
pub fn classify(sqlstate: Option<&str>, message: &str) -> StoreError {
    match sqlstate {
        Some(code) if is_retryable(code) => StoreError::Contended,
        // Class 22, data exception: a value the request carried that PostgreSQL cannot hold
        // or compare (U+0000 in text, a number out of range). The request's fault, not the
        // store's.
        Some(code) if code.starts_with("22") => StoreError::Invalid(message.to_owned()),
        _ => StoreError::from_backend(message),
    }
}

/// Whether PostgreSQL aborted the transaction only because of concurrent transactions.
pub fn is_retryable(sqlstate: &str) -> bool {
    matches!(sqlstate, "40001" | "40P01")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_are_jittered_under_a_doubling_ceiling() {
        assert_eq!(retry_delay_ms(1, 0), 0);
        assert_eq!(retry_delay_ms(1, 2), 2);
        assert_eq!(retry_delay_ms(1, 3), 0);
        assert!((0..1000).all(|r| retry_delay_ms(3, r) <= 8));
        assert!((0..1000).all(|r| retry_delay_ms(40, r) <= 64));
        assert_eq!((0..1000).map(|r| retry_delay_ms(6, r)).max(), Some(64));
    }

    #[test]
    fn placeholders_are_numbered_outside_literals() {
        assert_eq!(numbered_placeholders("SELECT 1"), "SELECT 1");
        assert_eq!(
            numbered_placeholders("UPDATE files SET name = ? WHERE id = ? AND note = 'why?' AND \"odd?\" = ?"),
            "UPDATE files SET name = $1 WHERE id = $2 AND note = 'why?' AND \"odd?\" = $3"
        );
        assert_eq!(numbered_placeholders("SELECT 'it''s ?', ? -- really?\n, ?"), "SELECT 'it''s ?', $1 -- really?\n, $2");
        assert_eq!(numbered_placeholders("LIKE ? ESCAPE '\\'"), "LIKE $1 ESCAPE '\\'");
    }

    #[test]
    fn a_failed_guard_is_a_conflict_and_an_aborted_transaction_is_contention() {
        assert_eq!(classify(Some("40001"), "could not serialize access"), StoreError::Contended);
        assert_eq!(classify(Some("40P01"), "deadlock detected"), StoreError::Contended);
        assert_eq!(
            classify(Some("23502"), "null value in column \"conflict\" of relation \"cas_guard\" violates not-null constraint"),
            StoreError::Conflict
        );
        assert!(matches!(classify(Some("42P01"), "relation \"nope\" does not exist"), StoreError::Unavailable(_)));
        assert!(matches!(classify(None, "connection reset"), StoreError::Unavailable(_)));
        assert!(matches!(classify(Some("22021"), "invalid byte sequence for encoding \"UTF8\": 0x00"), StoreError::Invalid(_)));
    }
}
