//! File entries in the metadata store, and the chunk manifest the download path reads from
//! the key-value store (so a download needs neither the database nor the JWT secret).

use crate::accounts::store_failure;
use serde::{Deserialize, Serialize};
use vaultx_core::chunks::ChunkPlan;
use vaultx_core::digest::{hex, sha256};
use vaultx_core::ports::{Blobs, Kv, Row, Sql, SqlValue, StoreError};
use vaultx_core::problem::ProblemKind;
use vaultx_core::{Problem, time};

pub const UPLOADING: &str = "uploading";
pub const AVAILABLE: &str = "available";

#[derive(Clone, Debug, PartialEq)]
pub struct FileRecord {
    pub id: String,
    pub owner_id: String,
    pub name: String,
    pub original_name: String,
    pub mime_type: String,
    pub size: u64,
    pub chunk_size: u64,
    pub checksum: Option<String>,
    pub compression_enabled: bool,
    pub deduplication_enabled: bool,
    pub status: String,
    pub etag: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A file as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileView {
    pub id: String,
    pub name: String,
    pub original_name: String,
    pub mime_type: String,
    pub size: u64,
    pub status: String,
    pub chunk_size: u64,
    pub chunk_count: u64,
    pub checksum: Option<String>,
    pub compression_enabled: bool,
    pub deduplication_enabled: bool,
    pub etag: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl FileRecord {
    pub fn plan(&self) -> ChunkPlan {
        ChunkPlan { size: self.size, chunk_size: self.chunk_size }
    }

    pub fn view(&self) -> FileView {
        FileView {
            id: self.id.clone(),
            name: self.name.clone(),
            original_name: self.original_name.clone(),
            mime_type: self.mime_type.clone(),
            size: self.size,
            status: self.status.clone(),
            chunk_size: self.chunk_size,
            chunk_count: self.plan().count(),
            checksum: self.checksum.clone(),
            compression_enabled: self.compression_enabled,
            deduplication_enabled: self.deduplication_enabled,
            etag: self.etag.clone(),
            created_at: time::rfc3339(self.created_at_ms),
            updated_at: time::rfc3339(self.updated_at_ms),
        }
    }

    /// The blob key for a chunk with this SHA-256. With deduplication, identical content
    /// anywhere shares one blob; without, the key is private to this file.
    pub fn blob_key(&self, digest: &[u8; 32]) -> String {
        if self.deduplication_enabled { hex(digest) } else { format!("{}.{}", hex(digest), self.id) }
    }
}

pub const COLUMNS: &str = "id, owner_id, name, original_name, mime_type, size, chunk_size, checksum, \
    compression_enabled, deduplication_enabled, status, etag, created_at, updated_at";

fn opt_text(row: &Row, i: usize) -> Result<Option<String>, StoreError> {
    match row.0.get(i) {
        Some(SqlValue::Null) | None => Ok(None),
        _ => row.text(i).map(|s| Some(s.to_owned())),
    }
}

pub fn from_row(row: &Row) -> Result<FileRecord, StoreError> {
    Ok(FileRecord {
        id: row.text(0)?.to_owned(),
        owner_id: row.text(1)?.to_owned(),
        name: row.text(2)?.to_owned(),
        original_name: row.text(3)?.to_owned(),
        mime_type: row.text(4)?.to_owned(),
        size: row.int(5)? as u64,
        chunk_size: row.int(6)? as u64,
        checksum: opt_text(row, 7)?,
        compression_enabled: row.int(8)? != 0,
        deduplication_enabled: row.int(9)? != 0,
        status: row.text(10)?.to_owned(),
        etag: opt_text(row, 11)?,
        created_at_ms: row.int(12)?,
        updated_at_ms: row.int(13)?,
    })
}

pub async fn insert(db: &impl Sql, f: &FileRecord) -> Result<(), Problem> {
    db.execute(
        &format!("INSERT INTO files ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
        vec![
            f.id.clone().into(),
            f.owner_id.clone().into(),
            f.name.clone().into(),
            f.original_name.clone().into(),
            f.mime_type.clone().into(),
            SqlValue::Integer(f.size as i64),
            SqlValue::Integer(f.chunk_size as i64),
            f.checksum.clone().into(),
            SqlValue::Integer(f.compression_enabled as i64),
            SqlValue::Integer(f.deduplication_enabled as i64),
            f.status.clone().into(),
            f.etag.clone().into(),
            SqlValue::Integer(f.created_at_ms),
            SqlValue::Integer(f.updated_at_ms),
        ],
    )
    .await
    .map_err(store_failure)?;
    Ok(())
}

/// The caller's file. Another user's file is "not found" too: existence is not disclosed.
pub async fn find_owned(db: &impl Sql, owner_id: &str, id: &str) -> Result<FileRecord, Problem> {
    let not_found = || Problem::not_found(format!("no file {id}"));
    if !vaultx_core::ids::is_id(id) {
        return Err(not_found());
    }
    let rows = db
        .query(&format!("SELECT {COLUMNS} FROM files WHERE id = ? AND owner_id = ?"), vec![id.into(), owner_id.into()])
        .await
        .map_err(store_failure)?;
    rows.first().map(from_row).transpose().map_err(store_failure)?.ok_or_else(not_found)
}

/// Chunks received so far: (index, blob key, size), in index order.
pub async fn received(db: &impl Sql, file_id: &str) -> Result<Vec<(u64, String, u64)>, Problem> {
    let rows = db
        .query("SELECT idx, blob_key, size FROM file_chunks WHERE file_id = ? ORDER BY idx", vec![file_id.into()])
        .await
        .map_err(store_failure)?;
    rows.iter()
        .map(|r| Ok((r.int(0)? as u64, r.text(1)?.to_owned(), r.int(2)? as u64)))
        .collect::<Result<_, StoreError>>()
        .map_err(store_failure)
}

/// What the download path needs, stored in the key-value store under `manifest/<file id>`
/// when the file becomes available. Chunk contents never change, so it can be cached anywhere.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub id: String,
    pub name: String,
    pub original_name: String,
    pub mime_type: String,
    pub size: u64,
    pub etag: String,
    /// (blob key, length) per chunk, in order.
    pub chunks: Vec<(String, u64)>,
}

pub fn manifest_key(file_id: &str) -> String {
    format!("manifest/{file_id}")
}

/// A strong validator from the chunk contents: the SHA-256 of the chunks' blob keys in order.
pub fn etag(chunks: &[(String, u64)]) -> String {
    let joined = chunks.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(",");
    format!("\"{}\"", &hex(&sha256(joined.as_bytes()))[..32])
}

pub async fn write_manifest(kv: &impl Kv, f: &FileRecord, chunks: Vec<(String, u64)>) -> Result<(), Problem> {
    let manifest = Manifest {
        id: f.id.clone(),
        name: f.name.clone(),
        original_name: f.original_name.clone(),
        mime_type: f.mime_type.clone(),
        size: f.size,
        etag: etag(&chunks),
        chunks,
    };
    let bytes = serde_json::to_vec(&manifest).map_err(|_| Problem::internal())?;
    kv.set(&manifest_key(&f.id), &bytes).await.map_err(store_failure)
}

pub async fn read_manifest(kv: &impl Kv, file_id: &str) -> Result<Option<Manifest>, Problem> {
    match kv.get(&manifest_key(file_id)).await.map_err(store_failure)? {
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            eprintln!("vaultx: manifest {file_id}: {e}");
            Problem::internal()
        }),
        None => Ok(None),
    }
}

/// Makes the file available once every chunk is in: checks the total size and, when the
/// file declared one, its whole-content SHA-256; writes the manifest; flips the status.
/// Returns the updated record, or `None` while chunks are missing.
pub async fn complete_if_ready(
    db: &impl Sql,
    blobs: &impl Blobs,
    kv: &impl Kv,
    now_ms: i64,
    f: &FileRecord,
) -> Result<Option<FileRecord>, Problem> {
    let chunks = received(db, &f.id).await?;
    let plan = f.plan();
    if chunks.len() as u64 != plan.count() {
        return Ok(None);
    }
    let total: u64 = chunks.iter().map(|c| c.2).sum();
    if total != f.size {
        // Each chunk's length was checked on arrival, so this means the rows are damaged.
        eprintln!("vaultx: file {}: chunks add up to {total} bytes, expected {}", f.id, f.size);
        return Err(Problem::internal());
    }
    if let Some(expected) = &f.checksum {
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        for (_, key, _) in &chunks {
            let bytes = blobs.get(key).await.map_err(store_failure)?.ok_or_else(|| {
                eprintln!("vaultx: blob {key} of file {} is missing", f.id);
                Problem::internal()
            })?;
            sha2::Digest::update(&mut hasher, &bytes);
        }
        let actual = format!("sha256:{}", hex(&sha2::Digest::finalize(hasher)));
        if &actual != expected {
            return Err(Problem::new(
                ProblemKind::ChecksumMismatch,
                format!("all chunks arrived but the content is {actual}, not {expected}; re-send the chunks that differ, or delete the file"),
            ));
        }
    }
    let parts: Vec<(String, u64)> = chunks.into_iter().map(|(_, k, s)| (k, s)).collect();
    let tag = etag(&parts);
    write_manifest(kv, f, parts).await?;
    db.execute(
        "UPDATE files SET status = ?, etag = ?, updated_at = ? WHERE id = ? AND status = ?",
        vec![AVAILABLE.into(), tag.clone().into(), SqlValue::Integer(now_ms), f.id.clone().into(), UPLOADING.into()],
    )
    .await
    .map_err(store_failure)?;
    Ok(Some(FileRecord { status: AVAILABLE.into(), etag: Some(tag), updated_at_ms: now_ms, ..f.clone() }))
}
