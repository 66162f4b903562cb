//! File versions, without copying a byte.
//!
//! A file's own row (its *head*, the id clients know) always holds the **current** version's
//! content: downloads, jobs, search and usage read it as they always did. Every other version
//! is a row of its own (`version_of` = the head's id) holding that version's chunks.
//!
//! - A new version starts as an `uploading` version row (`POST /api/files/:id/versions`,
//!   which answers its `uploadId`); its chunks go to `/api/files/<uploadId>/chunks/:index`
//!   with the same protocol and checks as a new file. One version uploads at a time.
//! - Its completion ([`crate::lifecycle::complete`] → [`publish`]) and a rollback ([`restore`])
//!   *swap* the contents of the head and the version row — their chunk rows and content
//!   columns, in one guarded batch on both rows' `row_version`. Reference counts do not change
//!   (the same chunk rows still name the same blobs), so nothing is copied or re-counted.
//! - Every version's manifest lives under the head's id, so a swap moves no manifest, and a
//!   signed URL keeps serving the content it was issued for until that version is deleted.
//! - Deleting a version releases its rows like a file ([`crate::blobs::Release::Version`]): a
//!   blob goes only when no other version or file references it. `version_retention` (keep
//!   at most N versions, 0 = all) prunes the oldest after each new version.

use crate::manifests;
use crate::store::store_failure;
use crate::files::{self, AVAILABLE, FileRecord, UPLOADING};
use vaultx_core::guard;
use vaultx_core::ports::{Blobs, Config, Kv, Sql, SqlValue, Statement, StoreError};
use vaultx_core::problem::ProblemKind;
use vaultx_core::Problem;

/// Chunk rows are moved out of the way by this much while two rows swap chunk lists (the
/// primary key is `(file_id, idx)`; no file has 2^40 chunks).
const SWAP_OFFSET: i64 = 1 << 40;

/// The row holding version `number` of the head, if the file has it.
pub async fn find(db: &impl Sql, head: &FileRecord, number: i64) -> Result<Option<FileRecord>, Problem> {
    let rows = db
        .query(
            &format!("SELECT {} FROM files WHERE (id = ? OR version_of = ?) AND version = ?", files::COLUMNS),
            vec![head.id.clone().into(), head.id.clone().into(), SqlValue::Integer(number)],
        )
        .await
        .map_err(store_failure)?;
    rows.first().map(files::from_row).transpose().map_err(store_failure)
}

/// The version row uploading now, if any.
pub async fn uploading(db: &impl Sql, head_id: &str) -> Result<Option<FileRecord>, Problem> {
    let rows = db
        .query(&format!("SELECT {} FROM files WHERE version_of = ? AND status = 'uploading'", files::COLUMNS), vec![head_id.into()])
        .await
        .map_err(store_failure)?;
    rows.first().map(files::from_row).transpose().map_err(store_failure)
}

/// Parses `:version` of a path.
pub fn number(segment: &str) -> Result<i64, Problem> {
    segment
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 1 && segment == n.to_string())
        .ok_or_else(|| Problem::not_found(format!("no version {segment}: versions are numbered 1, 2, …")))
}

/// A version as `GET /api/files/:id/versions` shows it.
pub fn view(head: &FileRecord, v: &FileRecord) -> serde_json::Value {
    serde_json::json!({
        "version": v.version,
        "current": v.version_of.is_none(),
        "status": v.status,
        "size": v.size,
        "checksum": v.checksum,
        "checksumCrc64nvme": v.checksum_crc64nvme,
        "etag": v.etag,
        "createdAt": vaultx_core::time::rfc3339(v.content_created_at_ms),
        "createdBy": head.owner_id,
        // Where an uploading version's chunks go.
        "uploadId": (v.status == UPLOADING).then(|| v.id.clone()),
    })
}

/// The statements that swap two rows' chunk lists and content columns. `a` takes `b`'s
/// content (with `a_status`), `b` takes `a`'s (with `b_status`).
fn swap_statements(a: &FileRecord, b: &FileRecord, a_status: &str, b_status: &str, now_ms: i64) -> Vec<Statement> {
    let content = |target: &FileRecord, from: &FileRecord, status: &str| Statement {
        sql: "UPDATE files SET size = ?, chunk_size = ?, checksum = ?, checksum_crc64nvme = ?, checksum_verified = ?, \
              compression_enabled = ?, deduplication_enabled = ?, etag = ?, manifest_id = ?, version = ?, content_created_at = ?, \
              status = ?, row_version = row_version + 1, updated_at = ? WHERE id = ?",
        params: vec![
            SqlValue::Integer(from.size as i64),
            SqlValue::Integer(from.chunk_size as i64),
            from.checksum.clone().into(),
            from.checksum_crc64nvme.clone().into(),
            SqlValue::Integer(from.checksum_verified as i64),
            SqlValue::Integer(from.compression_enabled as i64),
            SqlValue::Integer(from.deduplication_enabled as i64),
            from.etag.clone().into(),
            from.manifest_id.clone().into(),
            SqlValue::Integer(from.version),
            SqlValue::Integer(from.content_created_at_ms),
            status.into(),
            SqlValue::Integer(now_ms),
            target.id.clone().into(),
        ],
    };
    vec![
        Statement {
            sql: "UPDATE file_chunks SET file_id = ?, idx = idx + ? WHERE file_id = ?",
            params: vec![b.id.clone().into(), SqlValue::Integer(SWAP_OFFSET), a.id.clone().into()],
        },
        Statement {
            sql: "UPDATE file_chunks SET file_id = ? WHERE file_id = ? AND idx < ?",
            params: vec![a.id.clone().into(), b.id.clone().into(), SqlValue::Integer(SWAP_OFFSET)],
        },
        Statement {
            sql: "UPDATE file_chunks SET idx = idx - ? WHERE file_id = ? AND idx >= ?",
            params: vec![SqlValue::Integer(SWAP_OFFSET), b.id.clone().into(), SqlValue::Integer(SWAP_OFFSET)],
        },
        content(a, b, a_status),
        content(b, a, b_status),
    ]
}

/// Publishes a completed version (`done`: its row as it will be, manifest written, read at
/// `row_version`) as the file's current content, in one guarded batch with its jobs and
/// `also`. Returns the head as it now is, or `None` if either row changed since it was read.
pub async fn publish(db: &impl Sql, now_ms: i64, head_id: &str, done: &FileRecord, row_version: i64, jobs: &[(&str, String)], also: &[Statement]) -> Result<Option<FileRecord>, Problem> {
    let Some(head) = files::find(db, head_id).await? else {
        return Err(Problem::not_found(format!("no file {head_id}: it was deleted")));
    };
    if head.status != AVAILABLE {
        return Err(Problem::new(ProblemKind::FileNotAvailable, format!("file {head_id} is {}: a new version can only replace an available file", head.status)));
    }
    let mut statements = vec![
        guard!("EXISTS (SELECT 1 FROM files WHERE id = ? AND version_of = ? AND status = 'uploading' AND row_version = ?)", &done.id, head_id, row_version),
        guard!("EXISTS (SELECT 1 FROM files WHERE id = ? AND status = 'available' AND row_version = ?)", head_id, head.row_version),
    ];
    statements.extend(swap_statements(&head, done, AVAILABLE, AVAILABLE, now_ms));
    statements.push(Statement { sql: "UPDATE files SET version_count = version_count + 1 WHERE id = ?", params: vec![head_id.into()] });
    if let Some(m) = &done.manifest_id {
        statements.push(manifests::published(head_id, m));
    }
    // The new content's jobs are the head's now.
    statements.extend(jobs.iter().map(|(kind, id)| crate::outbox::enqueue(id, kind, head_id, now_ms)));
    statements.extend(also.iter().cloned());
    match db.batch(statements).await {
        Ok(()) => Ok(files::find(db, head_id).await?),
        Err(StoreError::Conflict | StoreError::Contended) => Ok(None),
        Err(e) => Err(store_failure(e)),
    }
}

/// Makes version `number` current again (a rollback): swaps its content with the head's.
/// No byte is copied and no manifest written; the version it replaces keeps its number.
pub async fn restore(db: &impl Sql, owner_id: &str, file_id: &str, number: i64, now_ms: i64) -> Result<FileRecord, Problem> {
    for _ in 0..crate::store::ATTEMPTS {
        let head = files::find_owned(db, owner_id, file_id).await?;
        if head.version_of.is_some() {
            return Err(Problem::not_found(format!("no file {file_id}")));
        }
        let Some(v) = find(db, &head, number).await? else {
            return Err(Problem::not_found(format!("file {file_id} has no version {number}")));
        };
        if v.id == head.id {
            return Ok(head);
        }
        if head.status != AVAILABLE || v.status != AVAILABLE {
            let which = if head.status != AVAILABLE { format!("the file is {}", head.status) } else { format!("version {number} is {}", v.status) };
            return Err(Problem::new(ProblemKind::FileNotAvailable, format!("cannot restore version {number}: {which}")));
        }
        let mut statements = vec![
            guard!("EXISTS (SELECT 1 FROM files WHERE id = ? AND status = 'available' AND row_version = ?)", &head.id, head.row_version),
            guard!("EXISTS (SELECT 1 FROM files WHERE id = ? AND status = 'available' AND row_version = ?)", &v.id, v.row_version),
        ];
        statements.extend(swap_statements(&head, &v, AVAILABLE, AVAILABLE, now_ms));
        match db.batch(statements).await {
            Ok(()) => return files::find_owned(db, owner_id, file_id).await,
            Err(StoreError::Conflict | StoreError::Contended) => continue,
            Err(e) => return Err(store_failure(e)),
        }
    }
    Err(crate::store::busy())
}

/// Deletes version `number` of the caller's file. The current version cannot go (restore
/// another first, or delete the file); an uploading version can (that abandons the upload).
pub async fn delete(db: &impl Sql, blobs: &impl Blobs, kv: &impl Kv, owner_id: &str, file_id: &str, number: i64, now_ms: i64) -> Result<(), Problem> {
    for _ in 0..crate::store::ATTEMPTS {
        let head = files::find_owned(db, owner_id, file_id).await?;
        let Some(v) = find(db, &head, number).await? else {
            return Err(Problem::not_found(format!("file {file_id} has no version {number}")));
        };
        if v.version_of.is_none() {
            return Err(Problem::new(
                ProblemKind::Conflict,
                format!("version {number} is the current version of file {file_id}: restore another version first, or delete the file"),
            ));
        }
        if delete_version(db, blobs, kv, now_ms, &v).await? {
            return Ok(());
        }
        // The row changed (a restore swapped contents) after its manifest was unpublished:
        // put back whatever the rows publish now, then try again.
        crate::manifests::sync_family(db, kv, &head.id).await?;
    }
    Err(crate::store::busy())
}

/// Keeps at most `version_retention` versions (0: all), deleting the oldest non-current ones.
pub async fn prune(config: &impl Config, db: &impl Sql, blobs: &impl Blobs, kv: &impl Kv, now_ms: i64, head_id: &str) -> Result<(), Problem> {
    let keep = crate::settings::version_retention(config).await?;
    if keep == 0 {
        return Ok(());
    }
    let rows = files::family(db, head_id).await?;
    let mut complete: Vec<&FileRecord> = rows.iter().filter(|r| r.status != UPLOADING).collect();
    if complete.len() as u64 <= keep {
        return Ok(());
    }
    complete.sort_by_key(|r| r.version);
    let excess = complete.len() - keep as usize;
    for old in complete.into_iter().filter(|r| r.version_of.is_some()).take(excess) {
        // A row that changed meanwhile is left for the next version's pruning.
        if !delete_version(db, blobs, kv, now_ms, old).await? {
            crate::manifests::sync_family(db, kv, head_id).await?;
        }
    }
    Ok(())
}

/// What a new version declares (`POST /api/files/:id/versions`).
pub struct NewVersion {
    pub size: u64,
    pub chunk_size: u64,
    pub checksum: Option<String>,
    pub checksum_crc64nvme: Option<String>,
}

/// Starts a new version of the caller's file: an `uploading` version row, numbered after
/// the highest number given so far, its declared size reserved against the quota. Returns
/// the row; its chunks go to `/api/files/<row id>/chunks/:index`.
pub async fn create<P: vaultx_core::ports::Platform>(p: &P, db: &impl Sql, owner_id: &str, file_id: &str, new: NewVersion) -> Result<FileRecord, Problem> {
    let quota = crate::quotas::of(p, db, owner_id).await?;
    for _ in 0..crate::store::ATTEMPTS {
        let head = files::find_head(db, owner_id, file_id).await?;
        if head.status == files::ARCHIVED {
            return Err(crate::files::archived(file_id));
        }
        if head.status != AVAILABLE {
            return Err(Problem::new(ProblemKind::FileNotAvailable, format!("file {file_id} is {}: a new version can only follow a complete file", head.status)));
        }
        if let Some(v) = uploading(db, &head.id).await? {
            return Err(Problem::new(
                ProblemKind::Conflict,
                format!("version {} of file {file_id} is still uploading (upload id {}): complete or delete it first", v.version, v.id),
            ));
        }
        if let Some(refusal) = crate::quotas::exceeded(&quota, &crate::quotas::used(db, owner_id).await?, new.size, 0) {
            return Err(refusal);
        }
        let last = db.query("SELECT last_version FROM files WHERE id = ?", vec![head.id.clone().into()]).await.map_err(store_failure)?;
        let Some(last) = last.first().map(|r| r.int(0)).transpose().map_err(store_failure)? else { continue };
        let now = p.now_ms();
        let row = FileRecord {
            id: vaultx_core::ids::new_id(p),
            status: UPLOADING.into(),
            size: new.size,
            chunk_size: new.chunk_size,
            checksum: new.checksum.clone(),
            checksum_crc64nvme: new.checksum_crc64nvme.clone(),
            checksum_verified: false,
            etag: None,
            manifest_id: None,
            created_at_ms: now,
            updated_at_ms: now,
            content_created_at_ms: now,
            row_version: 0,
            version_of: Some(head.id.clone()),
            version: last + 1,
            version_count: 0,
            ..head.clone()
        };
        let mut limits = vec![
            guard!("EXISTS (SELECT 1 FROM files WHERE id = ? AND status = 'available' AND last_version = ?)", &head.id, last),
            guard!("(SELECT count(*) FROM files WHERE version_of = ? AND status = 'uploading') = 1", &head.id),
            Statement { sql: "UPDATE files SET last_version = last_version + 1 WHERE id = ?", params: vec![head.id.clone().into()] },
        ];
        let quota_guards = crate::quotas::guards(owner_id, &quota);
        let quota_guarded = !quota_guards.is_empty();
        limits.extend(quota_guards);
        let mut refused_by_quota = false;
        match files::insert(db, &row, limits, || {
            refused_by_quota = true;
            crate::quotas::refused(&quota)
        })
        .await
        {
            Ok(()) => return Ok(row),
            // A limit failed: the quota if it still refuses, else another version or change
            // got in first (read again).
            Err(problem) if refused_by_quota => {
                let used = crate::quotas::used(db, owner_id).await?;
                if quota_guarded && crate::quotas::exceeded(&quota, &used, new.size, 0).is_some() {
                    return Err(problem);
                }
            }
            Err(problem) => return Err(problem),
        }
    }
    Err(crate::store::busy())
}

/// Deletes one version of a file (not its current one: restore another first). Its blobs
/// go unless another version or file still references them.
pub async fn delete_version(db: &impl Sql, blobs: &impl Blobs, kv: &impl Kv, now_ms: i64, v: &FileRecord) -> Result<bool, Problem> {
    let Some(head) = v.version_of.as_deref() else { return Ok(false) };
    let manifests = crate::manifests::keys(std::slice::from_ref(v));
    crate::manifests::delete_all(kv, &manifests).await?;
    let release = crate::blobs::Release::Version { head, id: &v.id, row_version: v.row_version, complete: v.status != UPLOADING };
    let released = match crate::blobs::release(db, now_ms, release).await {
        Ok(released) => released,
        Err(problem) => {
            // The version is still there (busy, or the store failed): publish it again.
            if let Err(e) = crate::manifests::sync(db, kv, &v.id).await {
                eprintln!("vaultx: deleting version {} gave up and could not publish its manifest again: {}", v.id, e.detail);
            }
            return Err(problem);
        }
    };
    match released {
        Some(released) => {
            crate::manifests::delete_all(kv, &manifests).await?;
            crate::blobs::sweep(db, blobs, now_ms, &released).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}
