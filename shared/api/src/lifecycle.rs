//! A file's life after its rows exist: the end of an upload ([`complete`], and
//! [`finish_stalled`] for completions a crash lost) and the end of the file ([`delete`]). These
//! are the operations that touch every other layer at once — blobs, manifests, replication,
//! versions, the outbox — so they sit above all of them.

use crate::files::{AVAILABLE, FileRecord, UPLOADING, family, find, find_head, received};
use crate::store::store_failure;
use crate::{blobs, manifests};
use vaultx_core::Problem;
use vaultx_core::digest::hex;
use vaultx_core::guard;
use vaultx_core::ports::{Blobs, Kv, Platform, Sql, SqlValue, Statement, StoreError};
use vaultx_core::problem::ProblemKind;

/// The file's CRC-64/NVME combined from its chunks' CRCs, in order; `None` if a chunk has
/// none (stored before CRCs were kept).
async fn combined_crc(db: &impl Sql, file_id: &str) -> Result<Option<u64>, Problem> {
    let rows = db
        .query("SELECT crc64, size FROM file_chunks WHERE file_id = ? ORDER BY idx", vec![file_id.into()])
        .await
        .map_err(store_failure)?;
    let mut crc: Option<u64> = None;
    for r in &rows {
        let (SqlValue::Text(hex), Ok(len)) = (&r.0[0], r.int(1)) else { return Ok(None) };
        let Ok(chunk_crc) = u64::from_str_radix(hex, 16) else { return Ok(None) };
        crc = Some(match crc {
            None => chunk_crc,
            Some(so_far) => vaultx_core::digest::crc64nvme_combine(so_far, chunk_crc, len as u64),
        });
    }
    Ok(Some(crc.unwrap_or(0)))
}

/// Stores one chunk of an `uploading` file (its bytes already checked against the plan):
/// refuses it while the home store's region is deactivated, writes the block unless a live
/// copy exists (deduplication), points the chunk at it ([`blobs::attach`]), sweeps the block it
/// replaced, and, under a strong replication policy, copies it to every target region before
/// answering. `true` when the chunk already held exactly these bytes.
pub async fn store_chunk<P: Platform>(p: &P, db: &P::Metadata, kv: &P::Kv, store: &P::Blobs, f: &FileRecord, index: u64, data: &[u8], digest: &[u8; 32]) -> Result<bool, Problem> {
    // A deactivated region takes no new blocks, the home region included: the upload waits
    // until an operator points home_blob_store at an active region's store.
    let (home_kind, home_binding) = p.home_store().await.map_err(store_failure)?;
    if vaultx_core::breaker::deactivated(kv, &home_kind, &home_binding).await.map_err(store_failure)? {
        return Err(Problem::new(
            ProblemKind::RegionDeactivated,
            format!("the home blob store {home_kind}:{home_binding} belongs to a deactivated region, which takes no new blocks; set home_blob_store to a store of an active region"),
        ));
    }
    let key = f.blob_key(digest);
    let now = p.now_ms();
    // Only when the file declared a full-object CRC: completion combines these.
    let crc = f.checksum_crc64nvme.is_some().then(|| vaultx_core::digest::crc64nvme(data));
    let had_it = match blobs::attach(db, store, now, &f.id, index, &key, data, crc).await? {
        blobs::Attached::Already => true,
        blobs::Attached::Stored { released } => {
            blobs::sweep(db, store, now, &released).await?;
            false
        }
    };
    // Strong replication: the chunk is acknowledged only once every target region holds it.
    crate::replication::ensure_strong(p, db, f.key_file(), &[(key, data.len() as i64)]).await?;
    Ok(had_it)
}

/// What [`complete`] found.
#[derive(Debug)]
pub enum Completion {
    /// The file is available (now, or already was).
    Available(Box<FileRecord>),
    /// Still waiting for these chunk indexes.
    Missing(Vec<u64>),
}

/// Whether the file moved on since `f` was read (another transition won).
async fn changed(db: &impl Sql, f: &FileRecord) -> Result<bool, Problem> {
    Ok(find(db, &f.id).await?.is_none_or(|now| now.row_version != f.row_version || now.status != f.status))
}

/// The background job an available file gets first, if any: deduplication (which hands over
/// to compression), or compression alone.
pub fn first_job(f: &FileRecord) -> Option<&'static str> {
    if f.deduplication_enabled {
        Some(crate::outbox::DEDUP)
    } else if f.compression_enabled {
        Some(crate::outbox::COMPRESS)
    } else {
        None
    }
}

/// How long an upload whose every chunk is stored may wait for its completion before the
/// sweep runs it ([`finish_stalled`]): the last chunk's own request completes the file at
/// once, so one still `uploading` this long after its last change lost that request (a crash
/// between the chunk's batch and the flip), and a client following the seed's protocol (chunks
/// only, no `/complete`) would wait for it forever.
pub const COMPLETION_GRACE_MS: i64 = 10_000;
/// Files one sweep completes (the rest wait for the next).
const STALLED_BATCH: i64 = 50;

/// Completes every file (or version) whose chunks have all arrived and whose completion did
/// not run, oldest first (never a multipart upload's staging row, which is a version of
/// itself and completes only by `crate::multipart::complete`); returns how many became available. Run by the sweep. Each is
/// [`complete`], so it races nothing: a client completing the same file at the same moment
/// gets the same answer. A file that cannot complete (its content contradicts a declared
/// checksum) is logged and stays `uploading`, as it would for the client.
pub async fn finish_stalled<P: Platform>(p: &P, db: &P::Metadata) -> Result<usize, Problem> {
    let now_ms = p.now_ms();
    let rows = db
        .query(
            "SELECT f.id FROM files f WHERE f.status = 'uploading' AND f.updated_at < ? AND (f.version_of IS NULL OR f.version_of <> f.id) \
             AND (SELECT COUNT(*) FROM file_chunks c WHERE c.file_id = f.id) = (f.size + f.chunk_size - 1) / f.chunk_size \
             ORDER BY f.updated_at LIMIT ?",
            vec![SqlValue::Integer(now_ms - COMPLETION_GRACE_MS), SqlValue::Integer(STALLED_BATCH)],
        )
        .await
        .map_err(store_failure)?;
    if rows.is_empty() {
        return Ok(0);
    }
    let blobs = p.blobs().await.map_err(store_failure)?;
    let kv = p.kv().await.map_err(store_failure)?;
    let mut finished = 0;
    for row in &rows {
        let id = row.text(0).map_err(store_failure)?;
        match complete(db, &blobs, &kv, p, now_ms, id).await {
            Ok(Completion::Available(_)) => {
                finished += 1;
                p.record(&serde_json::json!({"event": "completed-by-sweep", "file": id}));
            }
            Ok(Completion::Missing(_)) => {}
            Err(problem) => eprintln!("vaultx: the sweep could not complete file {id}: {problem}"),
        }
    }
    Ok(finished)
}

/// Makes the file available once every chunk is in: checks the total size and, when the
/// file declared one, its whole-content SHA-256; writes a manifest; then, in one
/// compare-and-set on the row version it read the chunks at, publishes the manifest and flips
/// the status. Idempotent and safe to run from any number of requests at once: exactly one
/// publishes, the others see the file available. A resuming client runs it by re-sending a
/// chunk or by `POST /api/files/:id/complete`.
pub async fn complete(db: &impl Sql, blobs: &impl Blobs, kv: &impl Kv, p: &impl vaultx_core::ports::Platform, now_ms: i64, file_id: &str) -> Result<Completion, Problem> {
    Ok(complete_with(db, blobs, kv, p, now_ms, file_id, &[]).await?.0)
}

/// [`complete`], with `also` committed in the batch that makes the content current; the
/// `bool` says whether this call was the one that did (else `also` was not applied: the file
/// was complete already, or is still missing chunks). The S3 door's ETag and content type go
/// there: written afterwards, they waited behind the jobs the completion had just woken,
/// whose transactions hold the database's write lock.
pub async fn complete_with(db: &impl Sql, blobs: &impl Blobs, kv: &impl Kv, p: &impl vaultx_core::ports::Platform, now_ms: i64, file_id: &str, also: &[Statement]) -> Result<(Completion, bool), Problem> {
    'attempt: for _ in 0..crate::store::ATTEMPTS {
        let f = find(db, file_id).await?.ok_or_else(|| Problem::not_found(format!("no file {file_id}")))?;
        if let (Some(head_id), true) = (&f.version_of, f.status != UPLOADING) {
            // The version was published (its row now holds what it replaced): the file is
            // what the caller uploaded into.
            let head = find(db, head_id).await?.ok_or_else(|| Problem::not_found(format!("no file {head_id}")))?;
            return Ok((Completion::Available(Box::new(head)), false));
        }
        if f.status == AVAILABLE {
            return Ok((Completion::Available(Box::new(f)), false));
        }
        if f.status != UPLOADING {
            // Archived or invalid: nothing to complete (found by schemathesis: an archived
            // file's completion used to retry its guarded batch until `busy`).
            return Err(Problem::new(vaultx_core::problem::ProblemKind::FileNotUploading, format!("file {} is {}: there is nothing to complete", f.id, f.status)));
        }
        let chunks = received(db, &f.id).await?;
        let plan = f.plan();
        if chunks.len() as u64 != plan.count() {
            let have: std::collections::BTreeSet<u64> = chunks.iter().map(|c| c.0).collect();
            return Ok((Completion::Missing((0..plan.count()).filter(|i| !have.contains(i)).collect()), false));
        }
        let total: u64 = chunks.iter().map(|c| c.2).sum();
        if total != f.size {
            // Each chunk's length was checked on arrival, so this means the rows are damaged.
            eprintln!("vaultx: file {}: chunks add up to {total} bytes, expected {}", f.id, f.size);
            return Err(Problem::internal());
        }
        // A declared CRC-64/NVME is checked by combining the chunks' CRCs (computed as they
        // arrived): no byte is read again, and the SHA-256 is left to the verify job. Without
        // one (or with a chunk stored before CRCs were kept) the chunks are read once, for
        // every checksum the file declared.
        let combined = match &f.checksum_crc64nvme {
            Some(_) => combined_crc(db, &f.id).await?,
            None => None,
        };
        // A small file's content, when the checks below read it (it goes into the manifest).
        let mut small: Option<Vec<u8>> = None;
        let (mismatch, verified) = match (combined, &f.checksum_crc64nvme) {
            (Some(actual), Some(declared)) => {
                let actual = vaultx_core::digest::crc64_base64(actual);
                ((actual != *declared).then(|| format!("the content's CRC-64/NVME is {actual}, not {declared}")), false)
            }
            _ if f.checksum.is_none() && f.checksum_crc64nvme.is_none() => (None, false),
            _ => {
                let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
                let mut crc = vaultx_core::digest::Crc64Nvme::default();
                for (_, key, _) in &chunks {
                    let Some(bytes) = blobs.get(key).await.map_err(store_failure)? else {
                        // A chunk replaced since we listed them: its old blob may be gone.
                        if changed(db, &f).await? {
                            continue 'attempt;
                        }
                        eprintln!("vaultx: blob {key} of file {} is missing", f.id);
                        return Err(Problem::internal());
                    };
                    if f.checksum.is_some() {
                        sha2::Digest::update(&mut hasher, &bytes);
                    }
                    if f.checksum_crc64nvme.is_some() {
                        crc.update(&bytes);
                    }
                    if f.size <= manifests::INLINE_MAX {
                        small = Some(bytes);
                    }
                }
                let sha = format!("sha256:{}", hex(&sha2::Digest::finalize(hasher)));
                let crc = vaultx_core::digest::crc64_base64(crc.finish());
                let mismatch = match (&f.checksum, &f.checksum_crc64nvme) {
                    (Some(expected), _) if *expected != sha => Some(format!("the content is {sha}, not {expected}")),
                    (_, Some(expected)) if *expected != crc => Some(format!("the content's CRC-64/NVME is {crc}, not {expected}")),
                    _ => None,
                };
                (mismatch, f.checksum.is_some())
            }
        };
        if let Some(mismatch) = mismatch {
            if changed(db, &f).await? {
                continue 'attempt;
            }
            return Err(Problem::new(
                ProblemKind::ChecksumMismatch,
                format!("all chunks arrived but {mismatch}; re-send the chunks that differ, or delete the file"),
            ));
        }
        let parts: Vec<(String, u64)> = chunks.into_iter().map(|(_, k, s)| (k, s)).collect();
        // A strongly replicated file becomes available only once every target region holds
        // every block (503 replica-unavailable otherwise, the file still uploading).
        let blocks: Vec<(String, i64)> = parts.iter().map(|(k, s)| (k.clone(), *s as i64)).collect();
        crate::replication::ensure_strong(p, db, f.key_file(), &blocks).await?;
        let home = crate::regions::home(p).await?;
        // A small file's content travels in its manifest: as the checks above read it, or
        // read here (one block of at most manifests::INLINE_MAX bytes).
        let inline = match (small, &parts[..]) {
            (Some(bytes), _) => Some(bytes),
            (None, [(key, size)]) if *size <= manifests::INLINE_MAX => blobs.get(key).await.map_err(store_failure)?,
            _ => None,
        };
        let (manifest_id, manifest) = manifests::write(db, kv, p, now_ms, &f, parts, inline).await?;
        // The file's background jobs commit with the transition that makes them due.
        let verify = (f.checksum.is_some() && !verified).then_some(crate::outbox::VERIFY);
        // New content of a replicated file goes to its regions too (the policy is the head's).
        let replicate = crate::replication::is_replicated(db, f.key_file()).await?.then_some(crate::outbox::REPLICATE);
        let jobs: Vec<(&str, String)> = verify.into_iter().chain(first_job(&f)).chain(replicate).map(|kind| (kind, vaultx_core::ids::new_id(p))).collect();
        if let Some(head_id) = &f.version_of {
            // A new version: it becomes the file's current content (crate::versions).
            let done = FileRecord { status: AVAILABLE.into(), etag: Some(manifest.etag.clone()), manifest_id: Some(manifest_id.clone()), checksum_verified: verified, ..f.clone() };
            let published = crate::versions::publish(db, now_ms, head_id, &done, f.row_version, &jobs, also).await;
            if published.is_err() {
                // The file cannot take it (deleted, or not available): the manifest goes.
                manifests::discard(db, kv, head_id, &manifest_id).await?;
            }
            match published? {
                Some(head) => {
                    let woken: Vec<(&str, &str)> = jobs.iter().map(|(kind, id)| (*kind, id.as_str())).collect();
                    crate::outbox::wake(p, &woken).await;
                    manifests::remove_dead(db, kv, now_ms, head_id, false).await?;
                    crate::versions::prune(p, db, blobs, kv, now_ms, head_id).await?;
                    return Ok((Completion::Available(Box::new(head)), true));
                }
                None => {
                    manifests::discard(db, kv, head_id, &manifest_id).await?;
                    continue 'attempt;
                }
            }
        }
        let result = db
            .batch(vec![
                guard!("EXISTS (SELECT 1 FROM files WHERE id = ? AND status = 'uploading' AND row_version = ?)", &f.id, f.row_version),
                crate::replication::strong_copies_present(&f.id, f.key_file(), &home),
                Statement {
                    sql: "UPDATE files SET status = 'available', etag = ?, manifest_id = ?, checksum_verified = ?, row_version = row_version + 1, updated_at = ? WHERE id = ?",
                    params: vec![
                        manifest.etag.clone().into(),
                        manifest_id.clone().into(),
                        SqlValue::Integer(verified as i64),
                        SqlValue::Integer(now_ms),
                        f.id.clone().into(),
                    ],
                },
                manifests::published(f.key_file(), &manifest_id),
            ]
            .into_iter()
            .chain(jobs.iter().map(|(kind, id)| crate::outbox::enqueue(id, kind, &f.id, now_ms)))
            .chain(also.iter().cloned())
            .collect())
            .await;
        match result {
            Ok(()) => {
                let woken: Vec<(&str, &str)> = jobs.iter().map(|(kind, id)| (*kind, id.as_str())).collect();
                crate::outbox::wake(p, &woken).await;
                manifests::remove_dead(db, kv, now_ms, f.key_file(), false).await?;
                return Ok((Completion::Available(Box::new(FileRecord {
                    status: AVAILABLE.into(),
                    etag: Some(manifest.etag),
                    manifest_id: Some(manifest_id),
                    checksum_verified: verified,
                    row_version: f.row_version + 1,
                    updated_at_ms: now_ms,
                    ..f
                })), true));
            }
            Err(StoreError::Conflict | StoreError::Contended) => {
                // Another request changed a chunk, completed or deleted the file first (or
                // PostgreSQL kept aborting the batch: nothing applied either way). Our
                // manifest was never published: nothing can reach it, so it goes.
                manifests::discard(db, kv, f.key_file(), &manifest_id).await?;
            }
            Err(e) => return Err(store_failure(e)),
        }
    }
    Err(crate::store::busy())
}

/// Deletes the caller's file and every version of it: unpublishes their manifests first (no
/// download starts after that), then, in one compare-and-set on the head's row version,
/// drops the chunk references and the rows, then sweeps blobs nothing references any more.
pub async fn delete(db: &impl Sql, blobs: &impl Blobs, kv: &impl Kv, now_ms: i64, owner_id: &str, file_id: &str) -> Result<(), Problem> {
    // Set once an attempt took the file's manifests down, cleared once its rows are gone: if
    // the delete gives up (busy, or the store failed) the file is still there, so the key-value
    // store is made to agree with its rows again — a delete that did not happen never leaves
    // an available file that no signed URL can serve.
    let mut unpublished: Option<String> = None;
    let outcome = try_delete(db, blobs, kv, now_ms, owner_id, file_id, &mut unpublished).await;
    if let (Err(_), Some(head)) = (&outcome, &unpublished) {
        if let Err(e) = manifests::sync_family(db, kv, head).await {
            eprintln!("vaultx: delete of {head} gave up and could not publish its manifests again: {}", e.detail);
        }
    }
    outcome
}

async fn try_delete(db: &impl Sql, blobs: &impl Blobs, kv: &impl Kv, now_ms: i64, owner_id: &str, file_id: &str, unpublished: &mut Option<String>) -> Result<(), Problem> {
    for _ in 0..crate::store::ATTEMPTS {
        let f = find_head(db, owner_id, file_id).await?;
        let manifests = manifests::keys(&family(db, &f.id).await?);
        *unpublished = Some(f.id.clone());
        manifests::delete_all(kv, &manifests).await?;
        if let Some(released) = blobs::release(db, now_ms, blobs::Release::File { id: &f.id, row_version: f.row_version }).await? {
            // The rows are gone: nothing to publish again, whatever happens next.
            *unpublished = None;
            // Again, now that the rows are gone: a background job that rewrote a manifest
            // (manifests::sync) between our first delete and the batch is undone here;
            // one that writes after this sees the row gone and undoes its own write.
            manifests::delete_all(kv, &manifests).await?;
            kv.delete(&crate::files::archived_key(&f.id)).await.map_err(store_failure)?;
            // The rows are gone: any completion still in flight will lose, so every manifest
            // recorded for the file can go (a crash before this leaves the records, which the
            // integrity check counts as pending and the clean-up job will take).
            manifests::remove_dead(db, kv, now_ms, &f.id, true).await?;
            return blobs::sweep(db, blobs, now_ms, &released).await;
        }
        // A chunk arrived, an upload completed or a version changed since we read the row.
    }
    Err(crate::store::busy())
}

