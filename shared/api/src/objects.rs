//! S3 objects: a key in a bucket (`crate::buckets`) naming a file. The file is an ordinary
//! VaultX file — its chunks are deduplicated and compressed by the same jobs, its versions are
//! its versions, the REST API lists, tags and signs URLs for it — and `bucket_objects` maps the
//! key to it. A PUT over an existing key uploads a new version of the same file, so a PUT that
//! fails midway leaves the previous content current.

use crate::buckets::Bucket;
use crate::files::{self, AVAILABLE, FileRecord, UPLOADING};
use crate::manifests;
use crate::store::store_failure;
use crate::versions::{self, NewVersion};
use crate::{lifecycle, settings};
use vaultx_core::chunks::ChunkPlan;
use vaultx_core::digest;
use vaultx_core::guard;
use vaultx_core::ports::{Platform, Row, Sql, SqlValue, Statement, StoreError};
use vaultx_core::problem::ProblemKind;
use vaultx_core::{Problem, ids};

/// S3's longest key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// The order S3 lists keys in (their UTF-8 bytes) as text any collation sorts the same way:
/// lower-case hex.
pub fn sort_key(key: &str) -> String {
    digest::hex(key.as_bytes())
}

/// Whether `key` can name an object: 1 to 1,024 bytes, no control characters (they would be
/// the file's name too, which never has any). `Err` says why.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(format!("an object key has 1 to {MAX_KEY_BYTES} bytes"));
    }
    if key.chars().any(char::is_control) {
        return Err("an object key has no control characters".into());
    }
    Ok(())
}

/// An object as a listing shows it: its key and its file (the head row).
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    pub key: String,
    pub file: FileRecord,
    /// The S3 ETag of the file's current content when it came through S3 (quoted), else the
    /// file's own ETag.
    pub etag: String,
}

/// The columns of an object row: the key, the S3 ETag and what content it was computed for,
/// then the file's.
fn select(filter: &str) -> String {
    let file_columns: Vec<String> = files::COLUMNS.split(',').map(|c| format!("f.{}", c.trim())).collect();
    format!(
        "SELECT o.object_key, o.etag, o.etag_of, {} FROM bucket_objects o JOIN files f ON f.id = o.file_id WHERE {filter}",
        file_columns.join(", ")
    )
}

fn from_row(r: &Row) -> Result<Object, StoreError> {
    let file = files::from_row(&Row(r.0[3..].to_vec()))?;
    let s3_etag = match (&r.0[1], &r.0[2]) {
        (SqlValue::Text(etag), SqlValue::Text(of)) if file.checksum_crc64nvme.as_deref() == Some(of.as_str()) => Some(etag.clone()),
        _ => None,
    };
    let etag = s3_etag.unwrap_or_else(|| format!("\"{}\"", file.etag.clone().unwrap_or_default().trim_matches('"')));
    Ok(Object { key: r.text(0)?.to_owned(), file, etag })
}

/// The object at `key`, in whatever state its file is.
pub async fn find(db: &impl Sql, bucket: &str, key: &str) -> Result<Option<Object>, Problem> {
    let rows = db.query(&select("o.bucket = ? AND o.sort_key = ?"), vec![bucket.into(), sort_key(key).into()]).await.map_err(store_failure)?;
    rows.first().map(from_row).transpose().map_err(store_failure)
}

/// Up to `limit` available objects whose keys start with `prefix` and sort after `after`
/// (a key, exclusive; `None` from the start), in S3's order.
pub async fn list(db: &impl Sql, bucket: &str, prefix: &str, after: Option<&str>, limit: u64) -> Result<Vec<Object>, Problem> {
    let from = match after.map(sort_key) {
        // Strictly after the key: no sort key lies between a key's and that plus `0`.
        Some(a) if a >= sort_key(prefix) => format!("{a}0"),
        _ => sort_key(prefix),
    };
    list_from(db, bucket, prefix, &from, limit).await
}

/// The first key at or after `sort_key_text` (hex) past every key that starts with `prefix`:
/// where a listing resumes after rolling a common prefix up.
pub fn after_prefix(prefix: &str) -> String {
    // No key's hex has a `g`: this sorts after every key that starts with the prefix, and
    // before every other key after it.
    format!("{}g", sort_key(prefix))
}

/// Like [`list`], but resuming at a raw sort position (hex, inclusive), for skipping a rolled-up
/// common prefix.
pub async fn list_from(db: &impl Sql, bucket: &str, prefix: &str, from_sort_key: &str, limit: u64) -> Result<Vec<Object>, Problem> {
    // The keys that start with the prefix are exactly those in [hex(prefix), after_prefix(prefix)).
    let prefix_hex = sort_key(prefix);
    let start = if from_sort_key > prefix_hex.as_str() { from_sort_key.to_owned() } else { prefix_hex };
    let filter = "o.bucket = ? AND o.sort_key >= ? AND o.sort_key < ? AND f.status = 'available' ORDER BY o.sort_key LIMIT ?";
    let rows = db
        .query(&select(filter), vec![bucket.into(), start.into(), after_prefix(prefix).into(), SqlValue::Integer(limit as i64)])
        .await
        .map_err(store_failure)?;
    rows.iter().map(from_row).collect::<Result<_, _>>().map_err(store_failure)
}

/// What a PUT stores: the key, its content and how to describe it.
pub struct NewObject<'a> {
    pub key: &'a str,
    pub mime_type: String,
    pub body: &'a [u8],
    /// The ETag S3 clients expect for this content (quoted): the MD5 of a single PUT.
    pub s3_etag: String,
}

/// Stores an object: a new file for a new key (or one whose upload was abandoned), a new
/// version of the key's file otherwise. The content becomes current only once every chunk is
/// stored and verified; until then the previous content is served. In a bucket without
/// versioning the content it replaced is deleted afterwards.
pub async fn put<P: Platform>(p: &P, db: &P::Metadata, bucket: &Bucket, new: NewObject<'_>) -> Result<Object, Problem> {
    let chunk_size = settings::chunk_size(p).await?;
    let size = new.body.len() as u64;
    let plan = ChunkPlan::new(size, chunk_size).map_err(|m| Problem::new(ProblemKind::PayloadTooLarge, m))?;
    let checksum = format!("sha256:{}", digest::hex(&digest::sha256(new.body)));
    let crc = digest::crc64_base64(digest::crc64nvme(new.body));
    let row = begin(p, db, bucket, new.key, &new.mime_type, size, chunk_size, Some(checksum), &crc).await?;
    let kv = p.kv().await.map_err(store_failure)?;
    let store = p.blobs().await.map_err(store_failure)?;
    for index in 0..plan.count() {
        let start = (index * chunk_size) as usize;
        let data = &new.body[start..start + plan.expected_len(index).map_err(|m| Problem::new(ProblemKind::ChunkOutOfRange, m))? as usize];
        lifecycle::store_chunk(p, db, &kv, &store, &row, index, data, &digest::sha256(data)).await?;
    }
    finish(p, db, bucket, new.key, &row, &new.mime_type, &new.s3_etag).await
}

/// The row an object's new content uploads into: a new file (with its key) for a new key, or
/// for one whose upload was abandoned; a new version of the key's file otherwise. `crc` is the
/// content's CRC-64/NVME (base64), which completion checks and the S3 ETag is bound to.
#[allow(clippy::too_many_arguments)]
pub async fn begin<P: Platform>(p: &P, db: &P::Metadata, bucket: &Bucket, key: &str, mime_type: &str, size: u64, chunk_size: u64, checksum: Option<String>, crc: &str) -> Result<FileRecord, Problem> {
    let owner_id = bucket.owner_id.as_str();
    let quota = crate::quotas::of(p, db, owner_id).await?;
    for _ in 0..crate::store::ATTEMPTS {
        match find(db, &bucket.name, key).await? {
            None => {
                if let Some(refusal) = crate::quotas::exceeded(&quota, &crate::quotas::used(db, owner_id).await?, size, 1) {
                    return Err(refusal);
                }
                let now = p.now_ms();
                let file = FileRecord {
                    checksum: checksum.clone(),
                    checksum_crc64nvme: Some(crc.to_owned()),
                    ..FileRecord::new_upload(ids::new_id(p), owner_id.to_owned(), key.to_owned(), mime_type.to_owned(), size, chunk_size, now)
                };
                let mut with_row = vec![
                    guard!("EXISTS (SELECT 1 FROM buckets WHERE name = ? AND owner_id = ?)", &bucket.name, owner_id),
                    guard!("NOT EXISTS (SELECT 1 FROM bucket_objects WHERE bucket = ? AND sort_key = ?)", &bucket.name, sort_key(key)),
                    Statement {
                        sql: "INSERT INTO bucket_objects (bucket, sort_key, object_key, file_id) VALUES (?, ?, ?, ?)",
                        params: vec![bucket.name.clone().into(), sort_key(key).into(), key.into(), file.id.clone().into()],
                    },
                ];
                with_row.extend(crate::quotas::guards(owner_id, &quota));
                with_row.extend(crate::replication::default_policy(p, &file.id, now).await?);
                // A refusal is read again: the key taken meanwhile (the next attempt replaces
                // it), the bucket gone, or the quota.
                match files::insert(db, &file, with_row, || Problem::new(ProblemKind::Conflict, "changed")).await {
                    Ok(()) => return Ok(file),
                    Err(p) if p.kind == ProblemKind::Conflict => {
                        if crate::buckets::find(db, &bucket.name).await?.is_none_or(|b| b.owner_id != owner_id) {
                            return Err(Problem::not_found(format!("no bucket {}", bucket.name)));
                        }
                    }
                    Err(p) => return Err(p),
                }
            }
            // An upload that never completed (abandoned, or racing this one): the last writer
            // wins, as in S3.
            Some(o) if o.file.status == UPLOADING => {
                let kv = p.kv().await.map_err(store_failure)?;
                let store = p.blobs().await.map_err(store_failure)?;
                lifecycle::delete(db, &store, &kv, p.now_ms(), owner_id, &o.file.id).await.or_else(ignore_gone)?;
            }
            Some(o) if o.file.status == files::ARCHIVED => return Err(files::archived(&o.file.id)),
            Some(o) => {
                let version = NewVersion { size, chunk_size, checksum: checksum.clone(), checksum_crc64nvme: Some(crc.to_owned()) };
                match versions::create(p, db, owner_id, &o.file.id, version).await {
                    Ok(v) => return Ok(v),
                    // Another PUT's version is uploading: the last writer wins.
                    Err(problem) if problem.kind == ProblemKind::Conflict => {
                        if let Some(v) = versions::uploading(db, &o.file.id).await? {
                            let kv = p.kv().await.map_err(store_failure)?;
                            let store = p.blobs().await.map_err(store_failure)?;
                            versions::delete_version(db, &store, &kv, p.now_ms(), &v).await?;
                        }
                    }
                    Err(problem) if problem.kind == ProblemKind::NotFound => continue,
                    Err(problem) => return Err(problem),
                }
            }
        }
    }
    Err(crate::store::busy())
}

/// Completes `row` (from [`begin`], every chunk stored), records the S3 ETag and content type
/// of its content, and, in a bucket without versioning, deletes the content it replaced.
pub async fn finish<P: Platform>(p: &P, db: &P::Metadata, bucket: &Bucket, key: &str, row: &FileRecord, mime_type: &str, s3_etag: &str) -> Result<Object, Problem> {
    let kv = p.kv().await.map_err(store_failure)?;
    let store = p.blobs().await.map_err(store_failure)?;
    let head_id = row.version_of.as_deref().unwrap_or(&row.id);
    // Committed with the content: the S3 ETag belongs to this content (its CRC), so content
    // uploaded later through the REST API has the file's own ETag; and the content type is
    // the new content's (a version row took the file's).
    let also = [
        Statement {
            sql: "UPDATE bucket_objects SET etag = ?, etag_of = ? WHERE file_id = ?",
            params: vec![s3_etag.into(), row.checksum_crc64nvme.clone().into(), head_id.into()],
        },
        Statement { sql: "UPDATE files SET mime_type = ? WHERE id = ?", params: vec![mime_type.into(), head_id.into()] },
    ];
    let (completion, tagged) = lifecycle::complete_with(db, &store, &kv, p, p.now_ms(), &row.id, &also).await?;
    let head = match completion {
        lifecycle::Completion::Available(head) => *head,
        lifecycle::Completion::Missing(_) => return Err(Problem::new(ProblemKind::Conflict, "the object changed while it was written; send it again")),
    };
    // Another caller completed the row first (the sweep, after a stall): `also` did not go
    // with it, and goes now if the content is still this PUT's.
    if !tagged && head.checksum_crc64nvme == row.checksum_crc64nvme {
        db.batch(also.to_vec()).await.map_err(store_failure)?;
    }
    if !bucket.keeps_versions() && head.version_count > 1 {
        for old in files::family(db, &head.id).await?.iter().filter(|r| r.version_of.is_some() && r.status != UPLOADING) {
            // One that changed meanwhile stays, for the next PUT.
            versions::delete_version(db, &store, &kv, p.now_ms(), old).await?;
        }
    }
    find(db, &bucket.name, key).await?.ok_or_else(|| Problem::not_found(format!("the object {key} was deleted while it was written")))
}

fn ignore_gone(problem: Problem) -> Result<(), Problem> {
    if problem.kind == ProblemKind::NotFound { Ok(()) } else { Err(problem) }
}

/// Deletes the object at `key` (its file and every version of it). Deleting a key that
/// does not exist is not an error, as in S3.
pub async fn delete<P: Platform>(p: &P, db: &P::Metadata, bucket: &Bucket, key: &str) -> Result<(), Problem> {
    let Some(o) = find(db, &bucket.name, key).await? else { return Ok(()) };
    let kv = p.kv().await.map_err(store_failure)?;
    let store = p.blobs().await.map_err(store_failure)?;
    lifecycle::delete(db, &store, &kv, p.now_ms(), &bucket.owner_id, &o.file.id).await.or_else(ignore_gone)
}

/// The content of an available object as the bytes `[start, end]` to stream: its manifest's
/// inline copy, or slices of its blocks (each naming where else to read it).
pub async fn content<P: Platform>(p: &P, o: &Object, start: u64, end: u64) -> Result<vaultx_core::http::Body, Problem> {
    if o.file.status != AVAILABLE {
        return Err(Problem::not_found(format!("the object {} is {}", o.key, o.file.status)));
    }
    if o.file.size == 0 {
        return Ok(vaultx_core::http::Body::Bytes(Vec::new()));
    }
    let kv = p.kv().await.map_err(store_failure)?;
    let manifest_id = o.file.manifest_id.clone().unwrap_or_default();
    let manifest = manifests::read(&kv, o.file.key_file(), &manifest_id)
        .await?
        .ok_or_else(|| Problem::new(ProblemKind::Conflict, format!("the object {} changed while it was read; read it again", o.key)))?;
    Ok(match &manifest.inline {
        Some(content) if content.len() as u64 == manifest.size => vaultx_core::http::Body::Bytes(content[start as usize..=end as usize].to_vec()),
        _ => vaultx_core::http::Body::Blobs(manifests::slices(p, &manifest, start, end).await?),
    })
}
