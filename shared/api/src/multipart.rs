//! S3 multipart uploads onto the chunk machinery. An upload is a row of `multipart_uploads`
//! and a staging file row (status `uploading`, a version of itself, so no listing shows it)
//! whose chunks hold the parts: part `n`'s pieces are chunks `(n - 1) * PIECES_PER_PART + i`,
//! stored, deduplicated and reference-counted like any chunk. Completing the upload makes the
//! object's new content ([`crate::objects::begin`]) out of the parts named:
//! - when every part but the last has one size (what every S3 client sends) of at most
//!   `MAX_CHUNK_SIZE`, the parts are the new content's chunks as they are: their blocks are
//!   linked to it, nothing is read or written again;
//! - otherwise the content is cut again into chunks of the deployment's size, read piece by
//!   piece from the staged blocks (one chunk in memory at a time).
//!
//! Then the staging row goes, and the blocks no content needs with it.

use crate::buckets::Bucket;
use crate::files::{self, FileRecord};
use crate::objects::{self, Object};
use crate::store::store_failure;
use crate::{blobs, lifecycle, settings, versions};
use vaultx_core::chunks::{MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use vaultx_core::digest;
use vaultx_core::guard;
use vaultx_core::ports::{Blobs, Platform, Row, Sql, SqlValue, Statement, StoreError};
use vaultx_core::problem::ProblemKind;
use vaultx_core::{Problem, ids};

/// S3's part numbers: 1 to 10,000.
pub const MAX_PARTS: u32 = 10_000;
/// S3's smallest part, but for the last.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// A part is stored in pieces of at most `MAX_CHUNK_SIZE`; this many chunk indexes are set
/// aside for each part (enough for a part of 8 × 16 MiB).
pub const PIECES_PER_PART: u64 = 8;
/// The largest part: what its chunk indexes hold.
pub const MAX_PART_SIZE: u64 = PIECES_PER_PART * MAX_CHUNK_SIZE;

/// One multipart upload in progress.
#[derive(Clone, Debug, PartialEq)]
pub struct Upload {
    pub id: String,
    pub bucket: String,
    pub key: String,
    pub owner_id: String,
    /// The staging file row holding the parts.
    pub file_id: String,
    pub mime_type: String,
    /// The object's user metadata, set when the upload completes.
    pub metadata: std::collections::BTreeMap<String, String>,
    pub created_at: i64,
}

const COLUMNS: &str = "upload_id, bucket, object_key, owner_id, file_id, mime_type, metadata, created_at";

fn from_row(r: &Row) -> Result<Upload, StoreError> {
    Ok(Upload {
        id: r.text(0)?.to_owned(),
        bucket: r.text(1)?.to_owned(),
        key: r.text(2)?.to_owned(),
        owner_id: r.text(3)?.to_owned(),
        file_id: r.text(4)?.to_owned(),
        mime_type: r.text(5)?.to_owned(),
        metadata: serde_json::from_str(r.text(6)?).map_err(|e| StoreError::Decode(format!("multipart metadata: {e}")))?,
        created_at: r.int(7)?,
    })
}

/// One stored part.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    pub number: u32,
    pub size: u64,
    /// The MD5 of the part, hex (S3's part ETag, unquoted).
    pub md5: String,
    pub pieces: u64,
    pub updated_at: i64,
}

/// Starts an upload of `key` into the caller's bucket.
pub async fn create<P: Platform>(p: &P, db: &P::Metadata, bucket: &Bucket, key: &str, mime_type: &str, metadata: std::collections::BTreeMap<String, String>) -> Result<Upload, Problem> {
    let now = p.now_ms();
    let id = ids::new_id(p);
    let mut staging = FileRecord {
        // Its chunks carry their CRCs, for the content's combined CRC.
        checksum_crc64nvme: Some(String::new()),
        ..FileRecord::new_upload(ids::new_id(p), bucket.owner_id.clone(), key.to_owned(), mime_type.to_owned(), 0, MAX_CHUNK_SIZE, now)
    };
    staging.version_of = Some(staging.id.clone());
    let metadata_json = serde_json::to_string(&metadata).unwrap_or_else(|_| "{}".into());
    let upload = Upload { id: id.clone(), bucket: bucket.name.clone(), key: key.to_owned(), owner_id: bucket.owner_id.clone(), file_id: staging.id.clone(), mime_type: mime_type.to_owned(), metadata, created_at: now };
    let with_row = vec![
        guard!("EXISTS (SELECT 1 FROM buckets WHERE name = ? AND owner_id = ?)", &bucket.name, &bucket.owner_id),
        Statement {
            sql: "INSERT INTO multipart_uploads (upload_id, bucket, object_key, owner_id, file_id, mime_type, metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            params: vec![id.into(), bucket.name.clone().into(), key.into(), bucket.owner_id.clone().into(), staging.id.clone().into(), mime_type.into(), metadata_json.into(), SqlValue::Integer(now)],
        },
    ];
    files::insert(db, &staging, with_row, || Problem::not_found(format!("no bucket {}", bucket.name))).await?;
    Ok(upload)
}

/// The upload `id` of `key` in `bucket`, if it is in progress.
pub async fn find(db: &impl Sql, bucket: &str, key: &str, id: &str) -> Result<Option<Upload>, Problem> {
    let rows = db
        .query(&format!("SELECT {COLUMNS} FROM multipart_uploads WHERE upload_id = ? AND bucket = ? AND object_key = ?"), vec![id.into(), bucket.into(), key.into()])
        .await
        .map_err(store_failure)?;
    rows.first().map(from_row).transpose().map_err(store_failure)
}

/// The uploads in progress in `bucket` whose keys start with `prefix`, by key then start,
/// after (`key`, `upload id`) when given; at most `limit`.
pub async fn list(db: &impl Sql, bucket: &str, prefix: &str, after: Option<(&str, &str)>, limit: u64) -> Result<Vec<Upload>, Problem> {
    let rows = db
        .query(&format!("SELECT {COLUMNS} FROM multipart_uploads WHERE bucket = ? ORDER BY object_key, created_at, upload_id"), vec![bucket.into()])
        .await
        .map_err(store_failure)?;
    let mut uploads: Vec<Upload> = rows.iter().map(from_row).collect::<Result<_, _>>().map_err(store_failure)?;
    // Byte order of keys, whatever the database's collation.
    uploads.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()).then(a.created_at.cmp(&b.created_at)).then(a.id.cmp(&b.id)));
    Ok(uploads
        .into_iter()
        .filter(|u| u.key.starts_with(prefix))
        .filter(|u| after.is_none_or(|(k, id)| (u.key.as_bytes(), u.id.as_str()) > (k.as_bytes(), id)))
        .take(limit as usize)
        .collect())
}

/// The parts stored so far, by number.
pub async fn parts(db: &impl Sql, upload_id: &str) -> Result<Vec<Part>, Problem> {
    let rows = db
        .query("SELECT part_number, size, etag, pieces, updated_at FROM multipart_parts WHERE upload_id = ? ORDER BY part_number", vec![upload_id.into()])
        .await
        .map_err(store_failure)?;
    rows.iter()
        .map(|r| Ok(Part { number: r.int(0)? as u32, size: r.int(1)? as u64, md5: r.text(2)?.to_owned(), pieces: r.int(3)? as u64, updated_at: r.int(4)? }))
        .collect::<Result<_, StoreError>>()
        .map_err(store_failure)
}

/// Stores part `number` (replacing an earlier one of that number), whose MD5 the caller
/// computed already (checking `Content-MD5`); returns it as hex, the part's ETag.
pub async fn put_part<P: Platform>(p: &P, db: &P::Metadata, upload: &Upload, number: u32, body: &[u8], md5: [u8; 16]) -> Result<String, Problem> {
    if !(1..=MAX_PARTS).contains(&number) {
        return Err(Problem::new(ProblemKind::BadRequest, format!("part numbers are 1 to {MAX_PARTS}")));
    }
    if body.len() as u64 > MAX_PART_SIZE {
        return Err(Problem::new(ProblemKind::PayloadTooLarge, format!("a part has at most {MAX_PART_SIZE} bytes")));
    }
    crate::quotas::check_chunk(p, db, &upload.owner_id).await?;
    let staging = files::find(db, &upload.file_id).await?.ok_or_else(|| Problem::not_found(format!("the upload {} was completed or aborted", upload.id)))?;
    let kv = p.kv().await.map_err(store_failure)?;
    let store = p.blobs().await.map_err(store_failure)?;
    let first = (number as u64 - 1) * PIECES_PER_PART;
    let pieces: Vec<&[u8]> = if body.is_empty() { vec![body] } else { body.chunks(MAX_CHUNK_SIZE as usize).collect() };
    for (i, piece) in pieces.iter().enumerate() {
        lifecycle::store_chunk(p, db, &kv, &store, &staging, first + i as u64, piece, &digest::sha256(piece)).await?;
    }
    let md5 = digest::hex(&md5);
    let batch = vec![
        guard!("EXISTS (SELECT 1 FROM multipart_uploads WHERE upload_id = ?)", &upload.id),
        Statement {
            sql: "INSERT INTO multipart_parts (upload_id, part_number, size, etag, pieces, updated_at) VALUES (?, ?, ?, ?, ?, ?) \
                  ON CONFLICT (upload_id, part_number) DO UPDATE SET size = excluded.size, etag = excluded.etag, pieces = excluded.pieces, updated_at = excluded.updated_at",
            params: vec![
                upload.id.clone().into(),
                SqlValue::Integer(number as i64),
                SqlValue::Integer(body.len() as i64),
                md5.clone().into(),
                SqlValue::Integer(pieces.len() as i64),
                SqlValue::Integer(p.now_ms()),
            ],
        },
    ];
    match db.batch(batch).await {
        Ok(()) => Ok(md5),
        Err(StoreError::Conflict) => Err(Problem::not_found(format!("the upload {} was completed or aborted", upload.id))),
        Err(e) => Err(store_failure(e)),
    }
}

/// Why a completion was refused, in S3's terms.
#[derive(Debug, PartialEq)]
pub enum Refused {
    /// A named part is not stored, or its ETag is not the one given (`InvalidPart`).
    InvalidPart(u32),
    /// Part numbers must ascend (`InvalidPartOrder`).
    InvalidPartOrder,
    /// A part but the last is under 5 MiB (`EntityTooSmall`).
    TooSmall(u32),
}

/// Completes the upload with `named` parts (number, ETag as sent): the object's content becomes
/// the parts in order. `Ok(Err(_))` says why S3 would refuse it (nothing changed).
pub async fn complete<P: Platform>(p: &P, db: &P::Metadata, bucket: &Bucket, upload: &Upload, named: &[(u32, String)]) -> Result<Result<Object, Refused>, Problem> {
    if named.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Ok(Err(Refused::InvalidPartOrder));
    }
    let stored = parts(db, &upload.id).await?;
    let mut chosen = Vec::new();
    for (i, (number, etag)) in named.iter().enumerate() {
        let Some(part) = stored.iter().find(|s| s.number == *number && s.md5 == etag.trim_matches('"')) else { return Ok(Err(Refused::InvalidPart(*number))) };
        if i + 1 < named.len() && part.size < MIN_PART_SIZE {
            return Ok(Err(Refused::TooSmall(*number)));
        }
        chosen.push(part.clone());
    }
    if chosen.is_empty() {
        return Ok(Err(Refused::InvalidPart(0)));
    }
    // The staged pieces of the chosen parts, in order: (index, blob key, size, CRC hex).
    let mut pieces = Vec::new();
    for part in &chosen {
        let first = (part.number as u64 - 1) * PIECES_PER_PART;
        let rows = db
            .query(
                "SELECT idx, blob_key, size, crc64 FROM file_chunks WHERE file_id = ? AND idx >= ? AND idx < ? ORDER BY idx",
                vec![upload.file_id.clone().into(), SqlValue::Integer(first as i64), SqlValue::Integer((first + part.pieces) as i64)],
            )
            .await
            .map_err(store_failure)?;
        if rows.len() as u64 != part.pieces {
            return Ok(Err(Refused::InvalidPart(part.number)));
        }
        for r in &rows {
            let crc = match r.0.get(3) {
                Some(SqlValue::Text(hex)) => u64::from_str_radix(hex, 16).ok(),
                _ => None,
            };
            pieces.push((r.text(1).map_err(store_failure)?.to_owned(), r.int(2).map_err(store_failure)? as u64, crc));
        }
    }
    let size: u64 = pieces.iter().map(|p| p.1).sum();
    let mut crc: Option<u64> = None;
    for (_, len, piece_crc) in &pieces {
        let Some(piece_crc) = piece_crc else { return Err(Problem::internal()) };
        crc = Some(match crc {
            None => *piece_crc,
            Some(so_far) => digest::crc64nvme_combine(so_far, *piece_crc, *len),
        });
    }
    let crc = digest::crc64_base64(crc.unwrap_or(0));
    // S3's multipart ETag: the MD5 of the parts' MD5s, and their count.
    let mut md5s = Vec::new();
    for part in &chosen {
        md5s.extend(hex_bytes(&part.md5));
    }
    let s3_etag = format!("\"{}-{}\"", digest::hex(&md5(&md5s)), chosen.len());
    // The parts are the chunks when all but the last have one size a chunk can have.
    let first = pieces[0].1;
    let aligned = pieces.len() == 1 || ((MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&first) && pieces[..pieces.len() - 1].iter().all(|p| p.1 == first) && pieces[pieces.len() - 1].1 <= first);
    let chunk_size = if !aligned { settings::chunk_size(p).await? } else { first.clamp(MIN_CHUNK_SIZE, MAX_CHUNK_SIZE) };
    let row = objects::begin(p, db, bucket, &upload.key, &upload.mime_type, size, chunk_size, None, &crc).await?;
    let store = p.blobs().await.map_err(store_failure)?;
    if aligned {
        let chunks: Vec<(u64, String, u64, Option<u64>)> = pieces.iter().enumerate().map(|(i, (key, len, crc))| (i as u64, key.clone(), *len, *crc)).collect();
        blobs::link(db, p.now_ms(), &row.id, &chunks).await?;
    } else {
        let kv = p.kv().await.map_err(store_failure)?;
        let mut buffer: Vec<u8> = Vec::with_capacity(chunk_size as usize);
        let mut index = 0;
        for (key, len, _) in &pieces {
            let bytes = vaultx_core::http::BlobSlice::new(key.clone(), 0, *len).cut(store.get(key).await.map_err(store_failure)?).map_err(|why| {
                eprintln!("vaultx: multipart {}: {why}", upload.id);
                Problem::internal()
            })?;
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let take = rest.len().min(chunk_size as usize - buffer.len());
                buffer.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if buffer.len() as u64 == chunk_size {
                    lifecycle::store_chunk(p, db, &kv, &store, &row, index, &buffer, &digest::sha256(&buffer)).await?;
                    buffer.clear();
                    index += 1;
                }
            }
        }
        if !buffer.is_empty() {
            lifecycle::store_chunk(p, db, &kv, &store, &row, index, &buffer, &digest::sha256(&buffer)).await?;
        }
    }
    let object = objects::finish(p, db, bucket, &upload.key, &row, &upload.mime_type, &s3_etag).await?;
    crate::labels::change_metadata(db, &object.file, true, &upload.metadata, &Default::default()).await?;
    abort(p, db, upload).await?;
    Ok(Ok(object))
}

/// Ends the upload: the staging row with its references first (a part arriving after that
/// finds no upload), then the upload's rows.
pub async fn abort<P: Platform>(p: &P, db: &P::Metadata, upload: &Upload) -> Result<(), Problem> {
    let kv = p.kv().await.map_err(store_failure)?;
    let store = p.blobs().await.map_err(store_failure)?;
    let mut gone = false;
    for _ in 0..crate::store::ATTEMPTS {
        let Some(staging) = files::find(db, &upload.file_id).await? else {
            gone = true;
            break;
        };
        // A part arriving meanwhile changed the row: read it again.
        if versions::delete_version(db, &store, &kv, p.now_ms(), &staging).await? {
            gone = true;
            break;
        }
    }
    if !gone {
        return Err(crate::store::busy());
    }
    db.batch(vec![
        Statement { sql: "DELETE FROM multipart_parts WHERE upload_id = ?", params: vec![upload.id.clone().into()] },
        Statement { sql: "DELETE FROM multipart_uploads WHERE upload_id = ?", params: vec![upload.id.clone().into()] },
    ])
    .await
    .map_err(store_failure)
}

/// Aborts the uploads older than `multipart_max_age_seconds` (a batch per sweep); returns how
/// many.
pub async fn abort_stale<P: Platform>(p: &P, db: &P::Metadata) -> Result<usize, Problem> {
    let max_age = settings::multipart_max_age_seconds(p).await?;
    let before = p.now_ms() - (max_age as i64) * 1000;
    let rows = db
        .query(&format!("SELECT {COLUMNS} FROM multipart_uploads WHERE created_at < ? ORDER BY created_at LIMIT 50"), vec![SqlValue::Integer(before)])
        .await
        .map_err(store_failure)?;
    let stale: Vec<Upload> = rows.iter().map(from_row).collect::<Result<_, _>>().map_err(store_failure)?;
    for upload in &stale {
        abort(p, db, upload).await?;
    }
    Ok(stale.len())
}

fn md5(bytes: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(bytes).into()
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2).filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect()
}
