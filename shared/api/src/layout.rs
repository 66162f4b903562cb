//! How an available file's content is stored — its *layout*: the ordered blocks (blob key,
//! logical length) its manifest names — and the one way background jobs change it.
//!
//! A file becomes available with the layout of its upload (its 5 MiB chunks). The
//! compression job replaces blocks by compressed twins (`<key>.deflate`), the deduplication
//! job re-cuts the content into content-defined blocks; both end in [`swap`], which never
//! changes the file's bytes, size or ETag, only where they are kept:
//!
//! 1. The job writes the blocks that are not stored yet ([`store_block`], the rules of
//!    `blobs::attach`: a live blob is reused, not rewritten) and stages the new block list
//!    (`layout_staging`, a few rows per statement).
//! 2. One guarded batch — the file still `available` at the `row_version` the job read —
//!    creates or revives the rows of the blocks it wrote, checks every new block is live,
//!    moves every reference from the old blocks to the new ones and bumps `row_version`.
//!    A job that lost to a delete or any other change applies nothing and discards
//!    the bytes it wrote; it reads the file again.
//! 3. The published manifest is rewritten from the rows ([`crate::manifests::sync`]: same id, same
//!    ETag, so signed URLs already handed out keep working). The old blocks nothing references
//!    any more stay stored for `blobs::REPLACED_GRACE_MS`, so a download that read the old
//!    manifest finishes; the periodic sweep removes them after that (`blobs::collect_garbage`).
//!
//! A crash between 2 and 3 leaves the manifest naming the old blocks (still stored, for the
//! grace period); the job's next attempt finds nothing left to change and runs step 3.

use crate::store::store_failure;
use crate::blobs::{self, STALE_SWEEP_MS};
use crate::files::{self, FileRecord};
use crate::manifests;
use vaultx_core::Problem;
use vaultx_core::guard;
use vaultx_core::ports::{Blobs, Kv, Sql, SqlValue, Statement, StoreError};

/// One block: (blob key, logical length).
pub type Part = (String, u64);

/// The file's current layout, from its rows (the source of truth), in order.
pub async fn current(db: &impl Sql, file_id: &str) -> Result<Vec<Part>, Problem> {
    Ok(files::received(db, file_id).await?.into_iter().map(|(_, key, size)| (key, size)).collect())
}

/// Whether a live copy of `key` is stored (its row says so).
pub async fn is_live(db: &impl Sql, key: &str) -> Result<bool, Problem> {
    let rows = db.query("SELECT state FROM blobs WHERE blob_key = ?", vec![key.into()]).await.map_err(store_failure)?;
    Ok(rows.first().map(|r| r.text(0).map(|s| s == "live")).transpose().map_err(store_failure)? == Some(true))
}

/// The answer when a block of the layout read at `f.row_version` is not in the blob store:
/// `None` if the layout changed since (read it again), else the error the job fails with.
pub async fn missing_block(db: &impl Sql, f: &FileRecord, key: &str) -> Result<Option<Problem>, Problem> {
    if files::find(db, &f.id).await?.is_none_or(|now| now.row_version != f.row_version) {
        return Ok(None);
    }
    Ok(Some(Problem::new(vaultx_core::problem::ProblemKind::Internal, format!("block {key} of file {} is missing from the blob store", f.id))))
}

/// A block the job has in hand for the new layout.
#[derive(Debug)]
pub struct Staged {
    pub key: String,
    pub len: u64,
    /// Set when this job wrote the bytes: the swap creates or revives their row (and a lost
    /// swap discards them). A block the job found live is only checked to be live still.
    pub written: Option<Written>,
}

#[derive(Debug)]
pub struct Written {
    /// Bytes in the blob store (smaller than the block's length when compressed).
    pub stored_size: u64,
    /// The row generation read before writing (see `blobs`), 0 for a row that did not exist.
    pub generation: i64,
}

impl Staged {
    /// A block already stored and live, that the new layout references as it is.
    pub fn kept(key: &str, len: u64) -> Staged {
        Staged { key: key.to_owned(), len, written: None }
    }
}

/// Makes sure the blob `key` holds `data` (`stored` bytes, `len` logical): reuses a live copy,
/// finishes a sweep that died, writes the bytes otherwise. `Err(busy)` while a sweep of the
/// same key is under way: the job retries later.
pub async fn store_block(db: &impl Sql, store: &impl Blobs, now_ms: i64, job_id: &str, key: &str, len: u64, stored: &[u8]) -> Result<Staged, Problem> {
    let rows = db.query("SELECT state, gen, changed_at FROM blobs WHERE blob_key = ?", vec![key.into()]).await.map_err(store_failure)?;
    let row = rows
        .first()
        .map(|r| Ok::<_, StoreError>((r.text(0)?.to_owned(), r.int(1)?, r.int(2)?)))
        .transpose()
        .map_err(store_failure)?;
    let generation = match row {
        Some((state, _, _)) if state == "live" => return Ok(Staged::kept(key, len)),
        Some((state, _, changed_at)) if state == "deleting" && now_ms - changed_at < STALE_SWEEP_MS => return Err(crate::store::busy()),
        Some((state, g, _)) if state == "deleting" => {
            // A sweep that died: finish it (the row becomes a tombstone at the same `gen`).
            blobs::finish_sweep(db, store, now_ms, key).await?;
            g
        }
        Some((_, g, _)) => g,
        None => 0,
    };
    // Recorded before the bytes: if the job dies before its swap, the sweep can find them.
    db.execute(
        "INSERT INTO job_writes (job_id, blob_key) VALUES (?, ?) ON CONFLICT (job_id, blob_key) DO NOTHING",
        vec![job_id.into(), key.into()],
    )
    .await
    .map_err(store_failure)?;
    store.put(key, stored).await.map_err(store_failure)?;
    Ok(Staged { key: key.to_owned(), len, written: Some(Written { stored_size: stored.len() as u64, generation }) })
}

/// Rows per staging statement: 6 parameters each, under D1's 100 bound parameters.
const STAGE_ROWS: usize = 16;

/// What [`swap`] did.
#[derive(Debug, PartialEq)]
pub enum Swapped {
    /// The new layout is the file's and the manifest says so; the old blocks go after the
    /// grace period.
    Done,
    /// The file changed or went away first: nothing applied, the job's bytes discarded.
    Lost,
}

/// Replaces the layout of `f` (read at `f.row_version`, `available`) with `blocks`. See the
/// module docs. A replicated file's new blocks must reach its regions: the swap enqueues a
/// `replicate` job with id `replicate_job` in the same batch when the file has a policy
/// ([`after_swap`] wakes it).
#[allow(clippy::too_many_arguments)]
pub async fn swap(
    db: &impl Sql,
    store: &impl Blobs,
    kv: &impl Kv,
    now_ms: i64,
    job_id: &str,
    f: &FileRecord,
    blocks: &[Staged],
    replicate_job: &str,
) -> Result<Swapped, Problem> {
    let total: u64 = blocks.iter().map(|b| b.len).sum();
    if total != f.size {
        eprintln!("vaultx: job {job_id}: new layout of file {} covers {total} bytes, not {}", f.id, f.size);
        return Err(Problem::internal());
    }
    db.execute("DELETE FROM layout_staging WHERE job_id = ?", vec![job_id.into()]).await.map_err(store_failure)?;
    let mut staging = Vec::new();
    for (n, rows) in blocks.chunks(STAGE_ROWS).enumerate() {
        let mut params = Vec::with_capacity(rows.len() * 6);
        for (i, b) in rows.iter().enumerate() {
            params.extend([
                SqlValue::from(job_id),
                SqlValue::Integer((n * STAGE_ROWS + i) as i64),
                b.key.as_str().into(),
                SqlValue::Integer(b.len as i64),
                // Blocks found live are staged with gen -1: the swap creates no row for them.
                SqlValue::Integer(b.written.as_ref().map_or(0, |w| w.stored_size as i64)),
                SqlValue::Integer(b.written.as_ref().map_or(-1, |w| w.generation)),
            ]);
        }
        staging.push(Statement { sql: STAGE_SQL[rows.len() - 1], params });
    }
    db.batch(staging).await.map_err(store_failure)?;

    let now = SqlValue::Integer(now_ms);
    let statements = vec![
        guard!("EXISTS (SELECT 1 FROM files WHERE id = ? AND status = 'available' AND row_version = ?)", &f.id, f.row_version),
        // Create the rows of the blocks this job wrote, or revive tombstones no sweep touched
        // since it looked. One row per key (PostgreSQL refuses to upsert one key twice in a
        // statement).
        Statement {
            sql: "INSERT INTO blobs (blob_key, size, refcount, state, gen, changed_at) \
                  SELECT blob_key, MAX(stored_size), 0, 'live', MAX(gen), ? FROM layout_staging WHERE job_id = ? AND gen >= 0 GROUP BY blob_key \
                  ON CONFLICT (blob_key) DO UPDATE SET state = 'live', size = excluded.size, changed_at = excluded.changed_at \
                  WHERE blobs.state = 'deleted' AND blobs.gen = excluded.gen",
            params: vec![now.clone(), job_id.into()],
        },
        guard!(
            "NOT EXISTS (SELECT 1 FROM layout_staging s LEFT JOIN blobs b ON b.blob_key = s.blob_key WHERE s.job_id = ? AND (b.state IS NULL OR b.state <> 'live'))",
            job_id
        ),
        Statement {
            sql: "UPDATE blobs SET refcount = refcount - (SELECT count(*) FROM file_chunks c WHERE c.file_id = ? AND c.blob_key = blobs.blob_key), changed_at = ? \
                  WHERE blob_key IN (SELECT blob_key FROM file_chunks WHERE file_id = ?)",
            params: vec![f.id.clone().into(), now.clone(), f.id.clone().into()],
        },
        // The old blocks stay stored through the grace period (downloads under way).
        Statement {
            sql: "INSERT INTO replaced_blocks (blob_key, sweep_after) SELECT DISTINCT blob_key, CAST(? AS BIGINT) FROM file_chunks WHERE file_id = ? \
                  ON CONFLICT (blob_key) DO UPDATE SET sweep_after = excluded.sweep_after",
            params: vec![SqlValue::Integer(now_ms + blobs::REPLACED_GRACE_MS), f.id.clone().into()],
        },
        Statement { sql: "DELETE FROM file_chunks WHERE file_id = ?", params: vec![f.id.clone().into()] },
        Statement {
            sql: "INSERT INTO file_chunks (file_id, idx, blob_key, size) SELECT ?, idx, blob_key, size FROM layout_staging WHERE job_id = ?",
            params: vec![f.id.clone().into(), job_id.into()],
        },
        Statement {
            sql: "UPDATE blobs SET refcount = refcount + (SELECT count(*) FROM layout_staging s WHERE s.job_id = ? AND s.blob_key = blobs.blob_key) \
                  WHERE blob_key IN (SELECT blob_key FROM layout_staging WHERE job_id = ?)",
            params: vec![job_id.into(), job_id.into()],
        },
        Statement {
            sql: "UPDATE files SET row_version = row_version + 1, updated_at = ? WHERE id = ?",
            params: vec![now.clone(), f.id.clone().into()],
        },
        Statement { sql: "DELETE FROM layout_staging WHERE job_id = ?", params: vec![job_id.into()] },
        // The job's writes are settled either way: now owned by live rows, or discarded below.
        Statement { sql: "DELETE FROM job_writes WHERE job_id = ?", params: vec![job_id.into()] },
        crate::replication::enqueue_if_replicated(replicate_job, &f.id, now_ms),
    ];
    match db.batch(statements).await {
        Ok(()) => {
            manifests::sync(db, kv, &f.id).await?;
            Ok(Swapped::Done)
        }
        Err(StoreError::Conflict | StoreError::Contended) => {
            db.execute("DELETE FROM layout_staging WHERE job_id = ?", vec![job_id.into()]).await.map_err(store_failure)?;
            discard_written(db, store, now_ms, blocks).await?;
            db.execute("DELETE FROM job_writes WHERE job_id = ?", vec![job_id.into()]).await.map_err(store_failure)?;
            Ok(Swapped::Lost)
        }
        Err(e) => Err(store_failure(e)),
    }
}

/// Removes the bytes a job wrote for a layout it will not apply (unless a live row owns
/// them by now: `blobs::discard`).
pub async fn discard_written(db: &impl Sql, store: &impl Blobs, now_ms: i64, blocks: &[Staged]) -> Result<(), Problem> {
    for b in blocks.iter().filter(|b| b.written.is_some()) {
        blobs::discard(db, store, now_ms, &b.key).await?;
    }
    Ok(())
}

/// `INSERT INTO layout_staging … VALUES (…), (…)` for 1..=STAGE_ROWS rows.
static STAGE_SQL: [&str; STAGE_ROWS] = {
    macro_rules! values {
        ($($n:literal)*) => {
            [$(concat!("INSERT INTO layout_staging (job_id, idx, blob_key, size, stored_size, gen) VALUES (?, ?, ?, ?, ?, ?)", $n)),*]
        };
    }
    values!(
        ""
        ", (?, ?, ?, ?, ?, ?)"
        ", (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)"
        ", (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)"
        ", (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)"
        ", (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)"
        ", (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)"
        ", (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)"
        ", (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)"
        ", (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)"
        ", (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)"
        ", (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)"
        ", (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)"
        ", (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)"
        ", (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)"
        ", (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)"
    )
};

/// After a [`swap`] that applied: wakes the `replicate` job it enqueued, if the file is
/// replicated (else there is none).
pub async fn after_swap<P: vaultx_core::ports::Platform>(p: &P, db: &impl Sql, file_id: &str, replicate_job: &str) -> Result<(), Problem> {
    if crate::replication::is_replicated(db, file_id).await? {
        crate::outbox::wake(p, &[(crate::outbox::REPLICATE, replicate_job)]).await;
        // A strongly replicated file's new blocks go to every target now, and its manifest
        // names them there (if a target is down this run fails and is retried; the
        // replicate job catches up too).
        let f = files::find(db, file_id).await?.ok_or_else(|| Problem::not_found(format!("no file {file_id}")))?;
        let blocks: Vec<(String, i64)> = current(db, &f.id).await?.into_iter().map(|(k, s)| (k, s as i64)).collect();
        if crate::replication::ensure_strong(p, db, f.key_file(), &blocks).await? > 0 {
            // The swap's own manifest sync ran before these copies existed.
            let kv = p.kv().await.map_err(store_failure)?;
            manifests::sync(db, &kv, &f.id).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[test]
fn each_staging_statement_binds_six_parameters_per_row() {
    for (i, sql) in STAGE_SQL.iter().enumerate() {
        assert_eq!(sql.matches('?').count(), 6 * (i + 1), "{sql}");
    }
}

