//! Content-addressed chunk blobs with reference counts, safe under concurrent uploads and
//! deletes. The metadata store is the source of truth; the blob store holds bytes.
//!
//! A `blobs` row is `live` (bytes complete), `deleting` (a sweep is removing the bytes) or
//! `deleted` (tombstone); `gen` goes up each time a sweep starts. The rules:
//!
//! - An upload reads the row first. If it is `live`, the bytes are there and it writes
//!   nothing (that is the deduplication). Otherwise it writes the bytes, then, in one guarded
//!   batch ([`vaultx_core::guard!`]), revives the row only if `gen` is still what it read (no
//!   sweep started since), and attaches its chunk only if the row is live, the file is still
//!   `uploading` and the chunk still names what the upload read. Any guard failing aborts the
//!   whole batch; the upload reads again and retries, or stops if the file moved on.
//! - A sweep flips `live → deleting` only while `refcount = 0`, in one statement, and only then
//!   deletes bytes; so a blob some chunk references is never deleted, and a chunk is never
//!   attached to a blob whose bytes may be going.
//! - Bytes an upload wrote and then could not attach are discarded the same way: by claiming
//!   the (absent or tombstoned) row for deletion first, so they are never pulled from under a
//!   concurrent upload of the same content.

use crate::store::{ATTEMPTS, busy, store_failure};
use crate::files::UPLOADING;
use vaultx_core::Problem;
use vaultx_core::guard;
use vaultx_core::ports::{Blobs, Sql, SqlValue, Statement, StoreError};
use vaultx_core::problem::ProblemKind;

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
    /// The chunk now holds them; the listed blob (the chunk's previous content) may now be
    /// unreferenced (for [`sweep`]).
    Stored { released: Vec<String> },
}

/// Stores `data` as blob `key` (unless a live copy exists) and points chunk `index` of the
/// file at it (with the chunk's CRC-64/NVME when the file declared a full-object CRC),
/// file at it, in one compare-and-set: only while the file is `uploading` and the chunk still
/// names what was read. Re-sending the same chunk is a no-op; different bytes for an index
/// replace them and release the old blob. If the file stops being `uploading` (completed,
/// deleted) first, nothing changes, the bytes written are discarded, and the answer is 409/404.
pub async fn attach(
    db: &impl Sql,
    blobs: &impl Blobs,
    now_ms: i64,
    file_id: &str,
    index: u64,
    key: &str,
    data: &[u8],
    crc64: Option<u64>,
) -> Result<Attached, Problem> {
    let mut wrote = false;
    // Names this chunk's write in `chunk_writes` (one slot writes one chunk at a time).
    let writer = format!("{file_id}/{index}");
    for _attempt in 0..ATTEMPTS {
        let previous = attached(db, file_id, index).await?;
        if previous.as_deref() == Some(key) {
            return Ok(Attached::Already);
        }
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
                // Recorded before the bytes: a request that dies before its batch leaves
                // them to the sweep (`collect_garbage`), not to nobody.
                if !wrote {
                    db.execute(
                        "INSERT INTO chunk_writes (blob_key, request_id, started_at) VALUES (?, ?, ?) ON CONFLICT (blob_key, request_id) DO NOTHING",
                        vec![key.into(), writer.as_str().into(), SqlValue::Integer(now_ms)],
                    )
                    .await
                    .map_err(store_failure)?;
                }
                blobs.put(key, data).await.map_err(store_failure)?;
                wrote = true;
                other.as_ref().map_or(0, |r| r.generation)
            }
        };
        let idx = SqlValue::Integer(index as i64);
        let result = db
            .batch(vec![
                guard!("EXISTS (SELECT 1 FROM files WHERE id = ? AND status = 'uploading')", file_id),
                // The chunk names what we read ('' for "not yet arrived").
                guard!("COALESCE((SELECT blob_key FROM file_chunks WHERE file_id = ? AND idx = ?), '') = ?", file_id, idx.clone(), previous.clone().unwrap_or_default()),
                // Create the row, or revive a tombstone no sweep has touched since we looked.
                Statement {
                    sql: "INSERT INTO blobs (blob_key, size, refcount, state, gen, changed_at) VALUES (?, ?, 0, 'live', 0, ?) \
                          ON CONFLICT (blob_key) DO UPDATE SET state = 'live', changed_at = excluded.changed_at \
                          WHERE blobs.state = 'deleted' AND blobs.gen = ?",
                    params: vec![key.into(), SqlValue::Integer(data.len() as i64), SqlValue::Integer(now_ms), SqlValue::Integer(generation)],
                },
                guard!("EXISTS (SELECT 1 FROM blobs WHERE blob_key = ? AND state = 'live')", key),
                Statement {
                    sql: "UPDATE blobs SET refcount = refcount - 1, changed_at = ? WHERE blob_key = ?",
                    params: vec![SqlValue::Integer(now_ms), previous.clone().into()],
                },
                Statement { sql: "UPDATE blobs SET refcount = refcount + 1 WHERE blob_key = ?", params: vec![key.into()] },
                Statement {
                    sql: "INSERT INTO file_chunks (file_id, idx, blob_key, size, crc64) VALUES (?, ?, ?, ?, ?) \
                          ON CONFLICT (file_id, idx) DO UPDATE SET blob_key = excluded.blob_key, size = excluded.size, crc64 = excluded.crc64",
                    params: vec![
                        file_id.into(),
                        idx,
                        key.into(),
                        SqlValue::Integer(data.len() as i64),
                        // Hex text: D1 would round a 64-bit integer to a double.
                        crc64.map_or(SqlValue::Null, |c| SqlValue::Text(format!("{c:016x}"))),
                    ],
                },
                Statement {
                    sql: "UPDATE files SET row_version = row_version + 1, updated_at = ? WHERE id = ?",
                    params: vec![SqlValue::Integer(now_ms), file_id.into()],
                },
                Statement { sql: "DELETE FROM chunk_writes WHERE blob_key = ? AND request_id = ?", params: vec![key.into(), writer.as_str().into()] },
            ])
            .await;
        match result {
            Ok(()) => return Ok(Attached::Stored { released: previous.into_iter().collect() }),
            Err(StoreError::Conflict | StoreError::Contended) => match crate::files::find(db, file_id).await?.map(|f| f.status).as_deref() {
                // Someone else changed this chunk, or a sweep took the blob: look again.
                Some(UPLOADING) => continue,
                status => {
                    if wrote {
                        discard(db, blobs, now_ms, key).await?;
                    }
                    return Err(match status {
                        None => Problem::not_found(format!("file {file_id} was deleted while the chunk arrived")),
                        Some(s) => Problem::new(ProblemKind::FileNotUploading, format!("file {file_id} became {s} while the chunk arrived; its chunks can no longer change")),
                    });
                }
            },
            Err(e) => {
                // Contended or failed: nothing attached, so the bytes we wrote must not stay
                // behind as an orphan (best effort: if even this fails, the integrity check
                // reports them).
                if wrote {
                    let _ = discard(db, blobs, now_ms, key).await;
                }
                return Err(store_failure(e));
            }
        }
    }
    if wrote {
        discard(db, blobs, now_ms, key).await?;
    }
    Err(busy())
}

/// Points chunks `(index, key, size, CRC)` of an `uploading` file that has none yet at blobs
/// that are already stored and referenced (a multipart upload's parts, which its staging row
/// holds until this is done, so no sweep can take them meanwhile): one batch, no bytes read or
/// written. Each reference counts, as `attach`'s do.
pub async fn link(db: &impl Sql, now_ms: i64, file_id: &str, chunks: &[(u64, String, u64, Option<u64>)]) -> Result<(), Problem> {
    let mut batch = vec![
        guard!("EXISTS (SELECT 1 FROM files WHERE id = ? AND status = 'uploading')", file_id),
        guard!("NOT EXISTS (SELECT 1 FROM file_chunks WHERE file_id = ?)", file_id),
    ];
    for (index, key, size, crc64) in chunks {
        batch.push(guard!("EXISTS (SELECT 1 FROM blobs WHERE blob_key = ? AND state = 'live' AND refcount > 0)", key.as_str()));
        batch.push(Statement { sql: "UPDATE blobs SET refcount = refcount + 1 WHERE blob_key = ?", params: vec![key.as_str().into()] });
        batch.push(Statement {
            sql: "INSERT INTO file_chunks (file_id, idx, blob_key, size, crc64) VALUES (?, ?, ?, ?, ?)",
            params: vec![
                file_id.into(),
                SqlValue::Integer(*index as i64),
                key.as_str().into(),
                SqlValue::Integer(*size as i64),
                crc64.map_or(SqlValue::Null, |c| SqlValue::Text(format!("{c:016x}"))),
            ],
        });
    }
    batch.push(Statement { sql: "UPDATE files SET row_version = row_version + 1, updated_at = ? WHERE id = ?", params: vec![SqlValue::Integer(now_ms), file_id.into()] });
    match db.batch(batch).await {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict) => Err(Problem::new(ProblemKind::Conflict, format!("file {file_id} changed while its chunks were linked"))),
        Err(e) => Err(store_failure(e)),
    }
}

/// Removes bytes written for an upload that then could not attach them, unless a live row
/// owns them by now (a concurrent upload of the same content). The absent or tombstoned row
/// is claimed for deletion first (`gen` goes up), so a concurrent upload that wrote the same
/// bytes cannot revive it without writing them again.
pub async fn discard(db: &impl Sql, blobs: &impl Blobs, now_ms: i64, key: &str) -> Result<(), Problem> {
    let claimed = db
        .execute(
            "INSERT INTO blobs (blob_key, size, refcount, state, gen, changed_at) VALUES (?, 0, 0, 'deleting', 1, ?) \
             ON CONFLICT (blob_key) DO UPDATE SET state = 'deleting', gen = blobs.gen + 1, changed_at = excluded.changed_at \
             WHERE blobs.state = 'deleted'",
            vec![key.into(), SqlValue::Integer(now_ms)],
        )
        .await
        .map_err(store_failure)?;
    if claimed == 1 {
        finish_sweep(db, blobs, now_ms, key).await?;
    }
    Ok(())
}

/// Which rows a release removes.
pub enum Release<'a> {
    /// A file: its head row, every version row, its tags and metadata.
    File { id: &'a str, row_version: i64 },
    /// One version row of the file `head` (never the head's own content). `complete` says
    /// whether it counted in the head's `version_count`.
    Version { head: &'a str, id: &'a str, row_version: i64, complete: bool },
}

/// The statements of a release, over the rows a subquery names (`$rows`, with its
/// parameters `$n` times): static SQL, as [`Statement`] requires.
macro_rules! release_sql {
    ($rows:literal) => {
        [
            concat!(
                "UPDATE blobs SET refcount = refcount - (SELECT count(*) FROM file_chunks c WHERE c.file_id IN (", $rows, ") AND c.blob_key = blobs.blob_key), changed_at = ? ",
                "WHERE blob_key IN (SELECT blob_key FROM file_chunks WHERE file_id IN (", $rows, "))"
            ),
            concat!("DELETE FROM file_chunks WHERE file_id IN (", $rows, ")"),
            concat!("DELETE FROM file_tags WHERE file_id IN (", $rows, ")"),
            concat!("DELETE FROM file_metadata WHERE file_id IN (", $rows, ")"),
            concat!("DELETE FROM file_name_grams WHERE file_id IN (", $rows, ")"),
            concat!("SELECT DISTINCT blob_key FROM file_chunks WHERE file_id IN (", $rows, ")"),
        ]
    };
}
const RELEASE_FILE: [&str; 6] = release_sql!("SELECT id FROM files WHERE id = ? OR version_of = ?");
const RELEASE_VERSION: [&str; 6] = release_sql!("SELECT id FROM files WHERE id = ?");

/// Releases the references of the rows and deletes them, in one batch guarded on the
/// `row_version` read (the head's, for a whole file: every version change bumps it).
/// Returns the blob keys that were referenced (for [`sweep`]), or `None` if the rows changed
/// since they were read: read again.
pub async fn release(db: &impl Sql, now_ms: i64, what: Release<'_>) -> Result<Option<Vec<String>>, Problem> {
    let (sql, rows, guard) = match what {
        Release::File { id, row_version } => (
            RELEASE_FILE,
            vec![SqlValue::from(id), id.into()],
            guard!("EXISTS (SELECT 1 FROM files WHERE id = ? AND version_of IS NULL AND row_version = ?)", id, row_version),
        ),
        Release::Version { head, id, row_version, .. } => (
            RELEASE_VERSION,
            vec![SqlValue::from(id)],
            guard!("EXISTS (SELECT 1 FROM files WHERE id = ? AND version_of = ? AND row_version = ?)", id, head, row_version),
        ),
    };
    let keys: Vec<String> = db
        .query(sql[5], rows.clone())
        .await
        .map_err(store_failure)?
        .iter()
        .map(|r| r.text(0).map(str::to_owned))
        .collect::<Result<_, _>>()
        .map_err(store_failure)?;
    let mut statements = vec![
        guard,
        Statement { sql: sql[0], params: rows.iter().cloned().chain([SqlValue::Integer(now_ms)]).chain(rows.iter().cloned()).collect() },
    ];
    statements.extend(sql[1..5].iter().map(|sql| Statement { sql, params: rows.clone() }));
    match what {
        Release::File { id, .. } => {
            statements.push(Statement { sql: "DELETE FROM files WHERE version_of = ?", params: vec![id.into()] });
            statements.push(Statement { sql: "DELETE FROM files WHERE id = ?", params: vec![id.into()] });
            // Its copies in other regions are unneeded from now on: the replicate job's sweep
            // removes them (replication::collect).
            statements.push(Statement { sql: "DELETE FROM replication_targets WHERE file_id = ?", params: vec![id.into()] });
            statements.push(Statement { sql: "DELETE FROM replication_policies WHERE file_id = ?", params: vec![id.into()] });
            // An S3 object is its file: the key goes with it.
            statements.push(Statement { sql: "DELETE FROM bucket_objects WHERE file_id = ?", params: vec![id.into()] });
        }
        Release::Version { head, id, complete, .. } => {
            statements.push(Statement { sql: "DELETE FROM files WHERE id = ?", params: vec![id.into()] });
            statements.push(Statement {
                sql: "UPDATE files SET version_count = version_count - ? WHERE id = ?",
                params: vec![SqlValue::Integer(complete as i64), head.into()],
            });
        }
    }
    match db.batch(statements).await {
        Ok(()) => Ok(Some(keys)),
        Err(StoreError::Conflict | StoreError::Contended) => Ok(None),
        Err(e) => Err(store_failure(e)),
    }
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

/// Blobs swept per [`collect_garbage`] call: the periodic sweep bounds its own work.
const GARBAGE_BATCH: i64 = 256;
/// How long a block replaced by a background job (`layout::swap`) stays stored after nothing
/// references it: a download that read the file's manifest just before the swap has this
/// long to finish. Releases by a delete or a re-sent chunk are swept at once.
pub const REPLACED_GRACE_MS: i64 = 10 * 60 * 1000;

/// The periodic sweep: removes the blocks layout swaps replaced once their grace period is
/// over (`replaced_blocks`), and live blobs nothing has referenced for [`REPLACED_GRACE_MS`]
/// (what a process that died between a release and its sweep left). Safe at any time: the
/// sweep claims a blob only while its `refcount` is 0, and nothing attaches a blob that is not
/// live (a blob referenced again meanwhile is kept).
pub async fn collect_garbage(db: &impl Sql, blobs: &impl Blobs, now_ms: i64) -> Result<(), Problem> {
    let keys = |rows: Vec<vaultx_core::ports::Row>| -> Result<Vec<String>, Problem> {
        rows.iter().map(|r| r.text(0).map(str::to_owned)).collect::<Result<_, _>>().map_err(store_failure)
    };
    let replaced = keys(
        db.query("SELECT blob_key FROM replaced_blocks WHERE sweep_after < ? LIMIT ?", vec![SqlValue::Integer(now_ms), SqlValue::Integer(GARBAGE_BATCH)])
            .await
            .map_err(store_failure)?,
    )?;
    sweep(db, blobs, now_ms, &replaced).await?;
    for key in &replaced {
        db.execute("DELETE FROM replaced_blocks WHERE blob_key = ? AND sweep_after < ?", vec![key.into(), SqlValue::Integer(now_ms)]).await.map_err(store_failure)?;
    }
    let leftovers = keys(
        db.query(
            "SELECT blob_key FROM blobs WHERE refcount <= 0 AND state = 'live' AND changed_at < ? LIMIT ?",
            vec![SqlValue::Integer(now_ms - REPLACED_GRACE_MS), SqlValue::Integer(GARBAGE_BATCH)],
        )
        .await
        .map_err(store_failure)?,
    )?;
    sweep(db, blobs, now_ms, &leftovers).await?;
    // Bytes jobs wrote and did not swap in (the job died, or is waiting to run again): gone
    // unless a live row owns them. A job that runs again writes them again.
    let rows = db
        .query(
            "SELECT w.job_id, w.blob_key FROM job_writes w LEFT JOIN jobs j ON j.id = w.job_id \
             WHERE j.id IS NULL OR NOT (j.state = 'running' AND j.lease_until >= ?) LIMIT ?",
            vec![SqlValue::Integer(now_ms), SqlValue::Integer(GARBAGE_BATCH)],
        )
        .await
        .map_err(store_failure)?;
    for r in &rows {
        let (job, key) = (r.text(0).map_err(store_failure)?, r.text(1).map_err(store_failure)?);
        discard(db, blobs, now_ms, key).await?;
        db.execute("DELETE FROM job_writes WHERE job_id = ? AND blob_key = ?", vec![job.into(), key.into()]).await.map_err(store_failure)?;
    }
    // Bytes of chunk uploads whose request died between the write and its batch (a crash, a
    // killed instance): gone unless a live row owns them by now. A request that old is over.
    let rows = db
        .query(
            "SELECT blob_key, request_id FROM chunk_writes WHERE started_at < ? LIMIT ?",
            vec![SqlValue::Integer(now_ms - STALE_SWEEP_MS), SqlValue::Integer(GARBAGE_BATCH)],
        )
        .await
        .map_err(store_failure)?;
    for r in &rows {
        let (key, writer) = (r.text(0).map_err(store_failure)?, r.text(1).map_err(store_failure)?);
        discard(db, blobs, now_ms, key).await?;
        db.execute("DELETE FROM chunk_writes WHERE blob_key = ? AND request_id = ?", vec![key.into(), writer.into()]).await.map_err(store_failure)?;
    }
    Ok(())
}

pub(crate) async fn finish_sweep(db: &impl Sql, blobs: &impl Blobs, now_ms: i64, key: &str) -> Result<(), Problem> {
    blobs.delete(key).await.map_err(store_failure)?;
    db.execute(
        "UPDATE blobs SET state = 'deleted', changed_at = ? WHERE blob_key = ? AND state = 'deleting'",
        vec![SqlValue::Integer(now_ms), key.into()],
    )
    .await
    .map_err(store_failure)?;
    Ok(())
}
