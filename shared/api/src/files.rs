//! File entries in the metadata store, and the chunk manifest the download path reads from
//! the key-value store (so a download needs neither the database nor the JWT secret).
//!
//! Every transition of a file is a compare-and-set on its `row_version` (or its status),
//! inside the batch that performs it ([`vaultx_core::guard!`]): a chunk attaches only while
//! the file is `uploading`; completion applies only if no chunk changed since it read them;
//! a delete applies only to the state it read. Manifests are immutable and written under a
//! key of their own (`manifest/<file id>/<manifest id>`) *before* the transition that
//! publishes them; a transition that loses its race deletes its manifest, which nothing can
//! reach. A delete removes the published manifest before it releases any blob, and nothing
//! else ever writes a manifest, so a late writer can never bring a deleted file back.

use crate::accounts::store_failure;
use serde::{Deserialize, Serialize};
use vaultx_core::chunks::ChunkPlan;
use vaultx_core::digest::{hex, sha256};
use vaultx_core::guard;
use vaultx_core::ports::{Blobs, Entropy, Kv, Platform, Row, Sql, SqlValue, Statement, StoreError};
use vaultx_core::problem::ProblemKind;
use vaultx_core::{Problem, time};

pub const UPLOADING: &str = "uploading";
pub const AVAILABLE: &str = "available";
/// The content contradicts its declared SHA-256 (found by the verify job after the CRC let
/// the file become available): never served again; the owner can only delete it.
pub const INVALID: &str = "invalid";
/// Kept, but neither downloadable nor writable until restored (`restore-archive`).
pub const ARCHIVED: &str = "archived";

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
    /// Goes up with every change to the file's chunks or status: the compare-and-set token.
    pub row_version: i64,
    /// The manifest an `available` file serves.
    pub manifest_id: Option<String>,
    /// The declared full-object CRC-64/NVME (base64), checked at completion.
    pub checksum_crc64nvme: Option<String>,
    /// Whether the declared SHA-256 (`checksum`) was checked against the content.
    pub checksum_verified: bool,
    /// For a version row: the file (head) it is a version of. `None` for the file itself.
    pub version_of: Option<String>,
    /// The version number of the content this row holds.
    pub version: i64,
    /// On a head: how many complete versions the file has, itself included.
    pub version_count: i64,
    /// When the content this row holds was created (it moves with the content).
    pub content_created_at_ms: i64,
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
    pub checksum_crc64nvme: Option<String>,
    /// `true` once the declared `checksum` was checked against the stored content.
    pub checksum_verified: bool,
    pub compression_enabled: bool,
    pub deduplication_enabled: bool,
    pub etag: Option<String>,
    /// The current version's number, and how many versions the file keeps.
    pub version: i64,
    pub version_count: i64,
    pub tags: Vec<String>,
    pub metadata: std::collections::BTreeMap<String, String>,
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
            checksum_crc64nvme: self.checksum_crc64nvme.clone(),
            checksum_verified: self.checksum_verified,
            compression_enabled: self.compression_enabled,
            deduplication_enabled: self.deduplication_enabled,
            etag: self.etag.clone(),
            version: self.version,
            version_count: self.version_count,
            tags: Vec::new(),
            metadata: Default::default(),
            created_at: time::rfc3339(self.created_at_ms),
            updated_at: time::rfc3339(self.updated_at_ms),
        }
    }

    /// The file whose id names this row's manifests: the head's, for every version, so a
    /// swap of contents between a head and a version keeps every manifest where it is.
    pub fn key_file(&self) -> &str {
        self.version_of.as_deref().unwrap_or(&self.id)
    }

    pub fn manifest_key(&self, manifest_id: &str) -> String {
        manifest_key(self.key_file(), manifest_id)
    }

    /// The blob key for a chunk with this SHA-256. Deduplication is scoped to the owner:
    /// identical content in any of one user's files shares one blob, but another user's copy
    /// is never found, so whether an upload was a hit (its status, its timing) tells nothing
    /// about anyone else's files. Without deduplication the key is private to this file.
    pub fn blob_key(&self, digest: &[u8; 32]) -> String {
        if self.deduplication_enabled { format!("u.{}.{}", self.owner_id, hex(digest)) } else { format!("f.{}.{}", self.id, hex(digest)) }
    }
}

/// The columns of a file row, in [`from_row`] order (a macro, so statements can `concat!` it).
macro_rules! file_columns {
    () => {
        "id, owner_id, name, original_name, mime_type, size, chunk_size, checksum, \
         compression_enabled, deduplication_enabled, status, etag, created_at, updated_at, row_version, manifest_id, \
         checksum_crc64nvme, checksum_verified, version_of, version, version_count, content_created_at"
    };
}
pub const COLUMNS: &str = file_columns!();

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
        row_version: row.int(14)?,
        manifest_id: opt_text(row, 15)?,
        checksum_crc64nvme: opt_text(row, 16)?,
        checksum_verified: row.int(17)? != 0,
        version_of: opt_text(row, 18)?,
        version: row.int(19)?,
        version_count: row.int(20)?,
        content_created_at_ms: match row.int(21)? {
            0 => row.int(12)?,
            at => at,
        },
    })
}

/// Inserts a new file row, only while its owner's account exists (a token can outlive it)
/// and, with `limits` (guards of [`crate::quotas::guards`] and the like, checked after the
/// insert), only within them. A row born `available` (an empty file) publishes its manifest
/// in the same batch. A failed limit is [`StoreError::Conflict`]'s other meaning: `refused`.
pub async fn insert(db: &impl Sql, f: &FileRecord, limits: Vec<Statement>, refused: impl FnOnce() -> Problem) -> Result<(), Problem> {
    let mut statements = vec![
        guard!("EXISTS (SELECT 1 FROM users WHERE id = ?)", &f.owner_id),
        Statement {
            sql: concat!("INSERT INTO files (", file_columns!(), ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            params: vec![
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
                SqlValue::Integer(f.row_version),
                f.manifest_id.clone().into(),
                f.checksum_crc64nvme.clone().into(),
                SqlValue::Integer(f.checksum_verified as i64),
                f.version_of.clone().into(),
                SqlValue::Integer(f.version),
                SqlValue::Integer(f.version_count),
                SqlValue::Integer(f.content_created_at_ms),
            ],
        },
    ];
    statements.extend(f.manifest_id.as_deref().map(|m| published(f.key_file(), m)));
    if f.version_of.is_none() {
        statements.extend(crate::search::name_gram_rows(&f.owner_id, &f.id, &f.name));
    }
    statements.extend(limits);
    match db.batch(statements).await {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict) => {
            let exists = db.query("SELECT 1 FROM users WHERE id = ?", vec![f.owner_id.clone().into()]).await.map_err(store_failure)?;
            Err(if exists.is_empty() { crate::auth::account_gone() } else { refused() })
        }
        Err(e) => Err(store_failure(e)),
    }
}

/// A file by id, whoever owns it (for transitions that re-read after a conflict).
pub async fn find(db: &impl Sql, id: &str) -> Result<Option<FileRecord>, Problem> {
    let rows = db.query(&format!("SELECT {COLUMNS} FROM files WHERE id = ?"), vec![id.into()]).await.map_err(store_failure)?;
    rows.first().map(from_row).transpose().map_err(store_failure)
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

/// The caller's file by the id clients know (a head): a version row's upload id is not a file.
pub async fn find_head(db: &impl Sql, owner_id: &str, id: &str) -> Result<FileRecord, Problem> {
    let f = find_owned(db, owner_id, id).await?;
    if f.version_of.is_some() {
        return Err(Problem::not_found(format!("no file {id}: it is the upload id of a version of file {}", f.key_file())));
    }
    Ok(f)
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

/// What the download path needs, stored in the key-value store under
/// `manifest/<file id>/<manifest id>` before the file becomes available. It never changes:
/// chunk contents are content-addressed, and the name and media type a download is served
/// with travel in the signed URL. So it can be cached anywhere, forever.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub id: String,
    pub size: u64,
    pub etag: String,
    /// (blob key, length) per chunk, in order.
    pub chunks: Vec<(String, u64)>,
    /// The other regions' stores holding copies of chunks, `(kind, binding)`: where the edge
    /// reads when the home store is deactivated, failing, or its breaker is open.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stores: Vec<(String, String)>,
    /// Per chunk, the indexes in `stores` holding a copy of it, in the order to try them
    /// (empty when the file has no copies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<Vec<u16>>,
}

pub fn manifest_key(file_id: &str, manifest_id: &str) -> String {
    format!("manifest/{file_id}/{manifest_id}")
}

/// A strong validator from the chunk contents: the SHA-256 of the chunks' blob keys in order.
pub fn etag(chunks: &[(String, u64)]) -> String {
    let joined = chunks.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(",");
    format!("\"{}\"", &hex(&sha256(joined.as_bytes()))[..32])
}

/// Writes a new manifest for the file and returns its id. Nothing can reach it until a
/// transition publishes the id in the file's row. The write is recorded first
/// (`manifest_writes`), so a manifest whose writer died before publishing or deleting it can
/// be found and removed ([`remove_dead_manifests`]); the publishing batch clears the record
/// ([`published`]).
pub async fn write_manifest(db: &impl Sql, kv: &impl Kv, entropy: &impl Entropy, now_ms: i64, f: &FileRecord, chunks: Vec<(String, u64)>) -> Result<(String, Manifest), Problem> {
    let manifest_id = vaultx_core::ids::new_id(entropy);
    db.execute(
        "INSERT INTO manifest_writes (file_id, manifest_id, started_at) VALUES (?, ?, ?)",
        vec![f.key_file().into(), manifest_id.clone().into(), SqlValue::Integer(now_ms)],
    )
    .await
    .map_err(store_failure)?;
    let (stores, replicas) = crate::replication::placement(db, f.key_file(), &chunks).await?;
    let manifest = Manifest { id: f.key_file().to_owned(), size: f.size, etag: etag(&chunks), chunks, stores, replicas };
    let bytes = serde_json::to_vec(&manifest).map_err(|_| Problem::internal())?;
    kv.set(&f.manifest_key(&manifest_id), &bytes).await.map_err(store_failure)?;
    Ok((manifest_id, manifest))
}

/// The statement that clears a manifest's write record, for the batch that publishes it.
pub fn published(file_id: &str, manifest_id: &str) -> Statement {
    Statement { sql: "DELETE FROM manifest_writes WHERE file_id = ? AND manifest_id = ?", params: vec![file_id.into(), manifest_id.into()] }
}

/// Deletes a manifest that was never published (or no longer is) and its write record.
async fn discard_manifest(db: &impl Sql, kv: &impl Kv, file_id: &str, manifest_id: &str) -> Result<(), Problem> {
    kv.delete(&manifest_key(file_id, manifest_id)).await.map_err(store_failure)?;
    let p = published(file_id, manifest_id);
    db.execute(p.sql, p.params).await.map_err(store_failure)?;
    Ok(())
}

/// Removes the manifests of the file whose writers died before publishing them: recorded
/// writes older than any request can run ([`crate::blobs::STALE_SWEEP_MS`]), or all of them
/// when `all` (the file is being deleted: whatever is in flight will lose its race anyway).
pub async fn remove_dead_manifests(db: &impl Sql, kv: &impl Kv, now_ms: i64, file_id: &str, all: bool) -> Result<(), Problem> {
    let before = if all { i64::MAX } else { now_ms - crate::blobs::STALE_SWEEP_MS };
    let rows = db
        .query("SELECT manifest_id FROM manifest_writes WHERE file_id = ? AND started_at < ?", vec![file_id.into(), SqlValue::Integer(before)])
        .await
        .map_err(store_failure)?;
    for row in &rows {
        discard_manifest(db, kv, file_id, row.text(0).map_err(store_failure)?).await?;
    }
    Ok(())
}

pub async fn read_manifest(kv: &impl Kv, file_id: &str, manifest_id: &str) -> Result<Option<Manifest>, Problem> {
    match kv.get(&manifest_key(file_id, manifest_id)).await.map_err(store_failure)? {
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            eprintln!("vaultx: manifest {file_id}/{manifest_id}: {e}");
            Problem::internal()
        }),
        None => Ok(None),
    }
}

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

/// Makes the file available once every chunk is in: checks the total size and, when the
/// file declared one, its whole-content SHA-256; writes a manifest; then, in one
/// compare-and-set on the row version it read the chunks at, publishes the manifest and flips
/// the status. Idempotent and safe to run from any number of requests at once: exactly one
/// publishes, the others see the file available. A resuming client runs it by re-sending a
/// chunk or by `POST /api/files/:id/complete`.
/// The background job an available file gets first, if any: deduplication (which hands over
/// to compression), or compression alone.
pub fn first_job(f: &FileRecord) -> Option<&'static str> {
    if f.deduplication_enabled {
        Some(crate::jobs::dedup::KIND)
    } else if f.compression_enabled {
        Some(crate::jobs::compress::KIND)
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
/// not run, oldest first; returns how many became available. Run by the sweep. Each is
/// [`complete`], so it races nothing: a client completing the same file at the same moment
/// gets the same answer. A file that cannot complete (its content contradicts a declared
/// checksum) is logged and stays `uploading`, as it would for the client.
pub async fn finish_stalled<P: Platform>(p: &P, db: &P::Metadata) -> Result<usize, Problem> {
    let now_ms = p.now_ms();
    let rows = db
        .query(
            "SELECT f.id FROM files f WHERE f.status = 'uploading' AND f.updated_at < ? \
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

pub async fn complete(db: &impl Sql, blobs: &impl Blobs, kv: &impl Kv, p: &impl vaultx_core::ports::Platform, now_ms: i64, file_id: &str) -> Result<Completion, Problem> {
    'attempt: for _ in 0..crate::blobs::ATTEMPTS {
        let f = find(db, file_id).await?.ok_or_else(|| Problem::not_found(format!("no file {file_id}")))?;
        if let (Some(head_id), true) = (&f.version_of, f.status != UPLOADING) {
            // The version was published (its row now holds what it replaced): the file is
            // what the caller uploaded into.
            let head = find(db, head_id).await?.ok_or_else(|| Problem::not_found(format!("no file {head_id}")))?;
            return Ok(Completion::Available(Box::new(head)));
        }
        if f.status == AVAILABLE {
            return Ok(Completion::Available(Box::new(f)));
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
            return Ok(Completion::Missing((0..plan.count()).filter(|i| !have.contains(i)).collect()));
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
        let (manifest_id, manifest) = write_manifest(db, kv, p, now_ms, &f, parts).await?;
        // The file's background jobs commit with the transition that makes them due.
        let verify = (f.checksum.is_some() && !verified).then_some(crate::jobs::verify::KIND);
        // New content of a replicated file goes to its regions too (the policy is the head's).
        let replicate = crate::replication::is_replicated(db, f.key_file()).await?.then_some(crate::jobs::replicate::KIND);
        let jobs: Vec<(&str, String)> = verify.into_iter().chain(first_job(&f)).chain(replicate).map(|kind| (kind, vaultx_core::ids::new_id(p))).collect();
        if let Some(head_id) = &f.version_of {
            // A new version: it becomes the file's current content (crate::versions).
            let done = FileRecord { status: AVAILABLE.into(), etag: Some(manifest.etag.clone()), manifest_id: Some(manifest_id.clone()), checksum_verified: verified, ..f.clone() };
            let published = crate::versions::publish(db, now_ms, head_id, &done, f.row_version, &jobs).await;
            if published.is_err() {
                // The file cannot take it (deleted, or not available): the manifest goes.
                discard_manifest(db, kv, head_id, &manifest_id).await?;
            }
            match published? {
                Some(head) => {
                    let woken: Vec<(&str, &str)> = jobs.iter().map(|(kind, id)| (*kind, id.as_str())).collect();
                    crate::jobs::wake(p, &woken).await;
                    remove_dead_manifests(db, kv, now_ms, head_id, false).await?;
                    crate::versions::prune(p, db, blobs, kv, now_ms, head_id).await?;
                    return Ok(Completion::Available(Box::new(head)));
                }
                None => {
                    discard_manifest(db, kv, head_id, &manifest_id).await?;
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
                published(f.key_file(), &manifest_id),
            ]
            .into_iter()
            .chain(jobs.iter().map(|(kind, id)| crate::jobs::enqueue(id, kind, &f.id, now_ms)))
            .collect())
            .await;
        match result {
            Ok(()) => {
                let woken: Vec<(&str, &str)> = jobs.iter().map(|(kind, id)| (*kind, id.as_str())).collect();
                crate::jobs::wake(p, &woken).await;
                remove_dead_manifests(db, kv, now_ms, f.key_file(), false).await?;
                return Ok(Completion::Available(Box::new(FileRecord {
                    status: AVAILABLE.into(),
                    etag: Some(manifest.etag),
                    manifest_id: Some(manifest_id),
                    checksum_verified: verified,
                    row_version: f.row_version + 1,
                    updated_at_ms: now_ms,
                    ..f
                })));
            }
            Err(StoreError::Conflict | StoreError::Contended) => {
                // Another request changed a chunk, completed or deleted the file first (or
                // PostgreSQL kept aborting the batch: nothing applied either way). Our
                // manifest was never published: nothing can reach it, so it goes.
                discard_manifest(db, kv, f.key_file(), &manifest_id).await?;
            }
            Err(e) => return Err(store_failure(e)),
        }
    }
    Err(crate::blobs::busy())
}

/// Every row of a file: its head first, then its versions by number.
pub async fn family(db: &impl Sql, head_id: &str) -> Result<Vec<FileRecord>, Problem> {
    let rows = db
        .query(&format!("SELECT {COLUMNS} FROM files WHERE id = ? OR version_of = ? ORDER BY version_of IS NOT NULL, version"), vec![head_id.into(), head_id.into()])
        .await
        .map_err(store_failure)?;
    rows.iter().map(from_row).collect::<Result<_, _>>().map_err(store_failure)
}

/// The manifests the rows publish.
pub fn manifest_keys(rows: &[FileRecord]) -> Vec<String> {
    rows.iter().filter_map(|r| r.manifest_id.as_deref().map(|m| r.manifest_key(m))).collect()
}

async fn delete_keys(kv: &impl Kv, keys: &[String]) -> Result<(), Problem> {
    for key in keys {
        kv.delete(key).await.map_err(store_failure)?;
    }
    Ok(())
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
        if let Err(e) = crate::versions::republish(db, kv, head).await {
            eprintln!("vaultx: delete of {head} gave up and could not publish its manifests again: {}", e.detail);
        }
    }
    outcome
}

async fn try_delete(db: &impl Sql, blobs: &impl Blobs, kv: &impl Kv, now_ms: i64, owner_id: &str, file_id: &str, unpublished: &mut Option<String>) -> Result<(), Problem> {
    for _ in 0..crate::blobs::ATTEMPTS {
        let f = find_head(db, owner_id, file_id).await?;
        let manifests = manifest_keys(&family(db, &f.id).await?);
        *unpublished = Some(f.id.clone());
        delete_keys(kv, &manifests).await?;
        if let Some(released) = crate::blobs::release(db, now_ms, crate::blobs::Release::File { id: &f.id, row_version: f.row_version }).await? {
            // The rows are gone: nothing to publish again, whatever happens next.
            *unpublished = None;
            // Again, now that the rows are gone: a background job that rewrote a manifest
            // (layout::sync_manifest) between our first delete and the batch is undone here;
            // one that writes after this sees the row gone and undoes its own write.
            delete_keys(kv, &manifests).await?;
            kv.delete(&archived_key(&f.id)).await.map_err(store_failure)?;
            // The rows are gone: any completion still in flight will lose, so every manifest
            // recorded for the file can go (a crash before this leaves the records, which the
            // integrity check counts as pending and the clean-up job will take).
            remove_dead_manifests(db, kv, now_ms, &f.id, true).await?;
            return crate::blobs::sweep(db, blobs, now_ms, &released).await;
        }
        // A chunk arrived, an upload completed or a version changed since we read the row.
    }
    Err(crate::blobs::busy())
}

/// Deletes one version of a file (not its current one: restore another first). Its blobs
/// go unless another version or file still references them.
pub async fn delete_version(db: &impl Sql, blobs: &impl Blobs, kv: &impl Kv, now_ms: i64, v: &FileRecord) -> Result<bool, Problem> {
    let Some(head) = v.version_of.as_deref() else { return Ok(false) };
    let manifests = manifest_keys(std::slice::from_ref(v));
    delete_keys(kv, &manifests).await?;
    let release = crate::blobs::Release::Version { head, id: &v.id, row_version: v.row_version, complete: v.status != UPLOADING };
    let released = match crate::blobs::release(db, now_ms, release).await {
        Ok(released) => released,
        Err(problem) => {
            // The version is still there (busy, or the store failed): publish it again.
            if let Err(e) = crate::layout::sync_manifest(db, kv, &v.id).await {
                eprintln!("vaultx: deleting version {} gave up and could not publish its manifest again: {}", v.id, e.detail);
            }
            return Err(problem);
        }
    };
    match released {
        Some(released) => {
            delete_keys(kv, &manifests).await?;
            crate::blobs::sweep(db, blobs, now_ms, &released).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Marks an archived file in the key-value store, so the download path (which has no
/// database) can say why a link stopped working.
pub fn archived_key(file_id: &str) -> String {
    format!("archived/{file_id}")
}
