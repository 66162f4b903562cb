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

/// How often an adapter re-runs a batch PostgreSQL aborted as a serialization failure or a
/// deadlock before reporting [`StoreError::Conflict`]. Re-running is safe: a batch is
/// self-contained (its guards restate everything its author read), so a re-run either
/// applies to the same state or fails its guards.
pub const SERIALIZATION_RETRIES: u32 = 8;

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
/// deadlock (40P01) is a concurrent change, as is a failed guard (a NOT NULL violation in
/// `cas_guard`, recognised by [`StoreError::from_backend`]); anything else is the store.
pub fn classify(sqlstate: Option<&str>, message: &str) -> StoreError {
    match sqlstate {
        Some(code) if is_retryable(code) => StoreError::Conflict,
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
    fn only_concurrency_is_a_conflict() {
        assert_eq!(classify(Some("40001"), "could not serialize access"), StoreError::Conflict);
        assert_eq!(classify(Some("40P01"), "deadlock detected"), StoreError::Conflict);
        assert_eq!(
            classify(Some("23502"), "null value in column \"conflict\" of relation \"cas_guard\" violates not-null constraint"),
            StoreError::Conflict
        );
        assert!(matches!(classify(Some("42P01"), "relation \"nope\" does not exist"), StoreError::Unavailable(_)));
        assert!(matches!(classify(None, "connection reset"), StoreError::Unavailable(_)));
    }
}
