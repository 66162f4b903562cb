//! Content-addressed chunk blobs with reference counts, safe under concurrent uploads and
//! deletes. The metadata store is the source of truth; the blob store holds bytes.
//!
//! A `blobs` row is `live` (bytes complete), `deleting` (a sweep is removing the bytes) or
//! `deleted` (tombstone); `gen` goes up each time a sweep starts. The rules:
//!
//! - An upload reads the row first. If it is `live`, the bytes are there and it writes
//!   nothing (that is the deduplication). Otherwise it writes the bytes, then, in one
//!   transaction, revives the row only if `gen` is still what it read (no sweep started since),
//!   and attaches its chunk only if the row is `live`. It then reads its chunk back; if a sweep
//!   won the race, the chunk is not attached and the upload starts over.
//! - A sweep flips `live → deleting` only while `refcount = 0`, in one statement, and only then
//!   deletes bytes; so a blob some chunk references is never deleted, and a chunk is never
//!   attached to a blob whose bytes may be going.

use crate::accounts::store_failure;
use vaultx_core::Problem;
use vaultx_core::ports::{Blobs, Sql, SqlValue, Statement};
use vaultx_core::problem::ProblemKind;

/// The condition "the blob bound to the next `?` is live", for statements in [`attach`].
macro_rules! live_blob {
    () => {
        "EXISTS (SELECT 1 FROM blobs WHERE blob_key = ? AND state = 'live')"
    };
}

/// A sweep that has not finished after this long is taken to have died, and is finished by
/// whoever meets it (well past the longest request).
pub const STALE_SWEEP_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, Clone, PartialEq)]
struct BlobRow {
    state: String,
    generation: i64,
    changed_at: i64,
}

async fn read_row(db: &impl Sql, key: &str) -> Result<Option<BlobRow>, Problem> {
    let rows = db
        .query("SELECT state, gen, changed_at FROM blobs WHERE blob_key = ?", vec![key.into()])
        .await
        .map_err(store_failure)?;
    rows.first()
        .map(|r| Ok(BlobRow { state: r.text(0)?.to_owned(), generation: r.int(1)?, changed_at: r.int(2)? }))
        .transpose()
        .map_err(store_failure)
}

/// The blob key a chunk's row currently names, if the chunk has arrived.
pub async fn attached(db: &impl Sql, file_id: &str, index: u64) -> Result<Option<String>, Problem> {
    let rows = db
        .query("SELECT blob_key FROM file_chunks WHERE file_id = ? AND idx = ?", vec![file_id.into(), SqlValue::Integer(index as i64)])
        .await
        .map_err(store_failure)?;
    rows.first().map(|r| r.text(0).map(str::to_owned)).transpose().map_err(store_failure)
}

/// What [`attach`] did.
#[derive(Debug, PartialEq)]
pub enum Attached {
    /// The chunk already held exactly these bytes: nothing changed.
    Already,
    /// The chunk now holds them; the listed blobs may now be unreferenced (for [`sweep`]).
    Stored { released: Vec<String> },
}

/// Stores `data` as blob `key` (unless a live copy exists) and points chunk `index` of the
/// file at it. Re-sending the same chunk is a no-op; sending different bytes for an index
/// replaces them and releases the old blob.
pub async fn attach(
    db: &impl Sql,
    blobs: &impl Blobs,
    now_ms: i64,
    file_id: &str,
    index: u64,
    key: &str,
    data: &[u8],
) -> Result<Attached, Problem> {
    let previous = attached(db, file_id, index).await?;
    if previous.as_deref() == Some(key) {
        return Ok(Attached::Already);
    }
    for _attempt in 0..3 {
        let row = read_row(db, key).await?;
        let generation = match &row {
            Some(r) if r.state == "live" => r.generation,
            Some(r) if r.state == "deleting" && now_ms - r.changed_at < STALE_SWEEP_MS => {
                return Err(busy());
            }
            Some(r) if r.state == "deleting" => {
                finish_sweep(db, blobs, now_ms, key).await?;
                continue;
            }
            other => {
                blobs.put(key, data).await.map_err(store_failure)?;
                other.as_ref().map_or(0, |r| r.generation)
            }
        };
        let idx = SqlValue::Integer(index as i64);
        db.batch(vec![
            // Create the row, or revive a tombstone no sweep has touched since we looked.
            Statement {
                sql: "INSERT INTO blobs (blob_key, size, refcount, state, gen, changed_at) VALUES (?, ?, 0, 'live', 0, ?) \
                      ON CONFLICT (blob_key) DO UPDATE SET state = 'live', changed_at = excluded.changed_at \
                      WHERE blobs.state = 'deleted' AND blobs.gen = ?",
                params: vec![key.into(), SqlValue::Integer(data.len() as i64), SqlValue::Integer(now_ms), SqlValue::Integer(generation)],
            },
            // Release the blob the chunk named before, if it named another and ours is live.
            Statement {
                sql: concat!(
                    "UPDATE blobs SET refcount = refcount - 1, changed_at = ? ",
                    "WHERE blob_key = (SELECT blob_key FROM file_chunks WHERE file_id = ? AND idx = ?) AND blob_key <> ? AND ",
                    live_blob!()
                ),
                params: vec![SqlValue::Integer(now_ms), file_id.into(), idx.clone(), key.into(), key.into()],
            },
            // Take a reference, unless the chunk already holds one.
            Statement {
                sql: "UPDATE blobs SET refcount = refcount + 1 WHERE blob_key = ? AND state = 'live' \
                      AND NOT EXISTS (SELECT 1 FROM file_chunks WHERE file_id = ? AND idx = ? AND blob_key = ?)",
                params: vec![key.into(), file_id.into(), idx.clone(), key.into()],
            },
            Statement {
                sql: concat!(
                    "INSERT INTO file_chunks (file_id, idx, blob_key, size) SELECT ?, ?, ?, ? WHERE ",
                    live_blob!(),
                    " ON CONFLICT (file_id, idx) DO UPDATE SET blob_key = excluded.blob_key, size = excluded.size"
                ),
                params: vec![file_id.into(), idx, key.into(), SqlValue::Integer(data.len() as i64), key.into()],
            },
        ])
        .await
        .map_err(store_failure)?;
        if attached(db, file_id, index).await?.as_deref() == Some(key) {
            return Ok(Attached::Stored { released: previous.into_iter().collect() });
        }
        // A sweep started between our look and our commit: look again.
    }
    Err(busy())
}

fn busy() -> Problem {
    let mut p = Problem::new(ProblemKind::Busy, "the same content is being removed right now; send the chunk again");
    p.headers.push(("retry-after", "1".into()));
    p
}

/// Drops every chunk reference of a file (before the file row goes). Returns the blob keys
/// that may now be unreferenced, for [`sweep`].
pub async fn release_file(db: &impl Sql, now_ms: i64, file_id: &str) -> Result<Vec<String>, Problem> {
    let keys: Vec<String> = db
        .query("SELECT DISTINCT blob_key FROM file_chunks WHERE file_id = ?", vec![file_id.into()])
        .await
        .map_err(store_failure)?
        .iter()
        .map(|r| r.text(0).map(str::to_owned))
        .collect::<Result<_, _>>()
        .map_err(store_failure)?;
    db.batch(vec![
        Statement {
            sql: "UPDATE blobs SET refcount = refcount - (SELECT count(*) FROM file_chunks c WHERE c.file_id = ? AND c.blob_key = blobs.blob_key), changed_at = ? \
                  WHERE blob_key IN (SELECT blob_key FROM file_chunks WHERE file_id = ?)",
            params: vec![file_id.into(), SqlValue::Integer(now_ms), file_id.into()],
        },
        Statement { sql: "DELETE FROM file_chunks WHERE file_id = ?", params: vec![file_id.into()] },
        Statement { sql: "DELETE FROM files WHERE id = ?", params: vec![file_id.into()] },
    ])
    .await
    .map_err(store_failure)?;
    Ok(keys)
}

/// Removes the bytes of each blob that nothing references any more.
pub async fn sweep(db: &impl Sql, blobs: &impl Blobs, now_ms: i64, keys: &[String]) -> Result<(), Problem> {
    for key in keys {
        let claimed = db
            .execute(
                "UPDATE blobs SET state = 'deleting', gen = gen + 1, changed_at = ? WHERE blob_key = ? AND state = 'live' AND refcount <= 0",
                vec![SqlValue::Integer(now_ms), key.as_str().into()],
            )
            .await
            .map_err(store_failure)?;
        if claimed == 1 {
            finish_sweep(db, blobs, now_ms, key).await?;
        }
    }
    Ok(())
}

async fn finish_sweep(db: &impl Sql, blobs: &impl Blobs, now_ms: i64, key: &str) -> Result<(), Problem> {
    blobs.delete(key).await.map_err(store_failure)?;
    db.execute(
        "UPDATE blobs SET state = 'deleted', changed_at = ? WHERE blob_key = ? AND state = 'deleting'",
        vec![SqlValue::Integer(now_ms), key.into()],
    )
    .await
    .map_err(store_failure)?;
    Ok(())
}
