//! A file's rows in the metadata store (`files`: the head, the id clients know, and one row
//! per version), their statuses, how they are found, and the keys a file owns in the
//! key-value store (its manifests, its `archived/` marker). What a manifest holds is
//! `crate::manifests`; a file's life (completion, deletion) is `crate::lifecycle`.
//!
//! Every transition of a file is a compare-and-set on its `row_version` (or its status),
//! inside the batch that performs it ([`vaultx_core::guard!`]): a chunk attaches only while
//! the file is `uploading`; completion applies only if no chunk changed since it read them;
//! a delete applies only to the state it read.

use crate::store::store_failure;
use serde::Serialize;
use vaultx_core::chunks::ChunkPlan;
use vaultx_core::digest::hex;
use vaultx_core::ports::{Row, Sql, SqlValue, Statement, StoreError};
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
    /// A new file's head row, `uploading`, with no checksum declared, deduplicated and not
    /// compressed (what a caller does not choose).
    pub fn new_upload(id: String, owner_id: String, name: String, mime_type: String, size: u64, chunk_size: u64, now_ms: i64) -> Self {
        Self {
            id,
            owner_id,
            original_name: name.clone(),
            name,
            mime_type,
            size,
            chunk_size,
            checksum: None,
            compression_enabled: false,
            deduplication_enabled: true,
            status: UPLOADING.into(),
            etag: None,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            row_version: 0,
            manifest_id: None,
            checksum_crc64nvme: None,
            checksum_verified: false,
            version_of: None,
            version: 1,
            version_count: 1,
            content_created_at_ms: now_ms,
        }
    }

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
        crate::auth::account_exists(&f.owner_id),
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
        statements.extend(crate::files::name_gram_rows(&f.owner_id, &f.id, &f.name));
    }
    statements.extend(limits);
    match db.batch(statements).await {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict) => Err(crate::auth::gone_or(db, &f.owner_id, refused).await),
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

pub fn manifest_key(file_id: &str, manifest_id: &str) -> String {
    format!("manifest/{file_id}/{manifest_id}")
}

/// Every row of a file: its head first, then its versions by number.
pub async fn family(db: &impl Sql, head_id: &str) -> Result<Vec<FileRecord>, Problem> {
    let rows = db
        .query(&format!("SELECT {COLUMNS} FROM files WHERE id = ? OR version_of = ? ORDER BY version_of IS NOT NULL, version"), vec![head_id.into(), head_id.into()])
        .await
        .map_err(store_failure)?;
    rows.iter().map(from_row).collect::<Result<_, _>>().map_err(store_failure)
}

/// Marks an archived file in the key-value store, so the download path (which has no
/// database) can say why a link stopped working.
pub fn archived_key(file_id: &str) -> String {
    format!("archived/{file_id}")
}

/// The answer to any change of an archived file.
pub fn archived(file_id: &str) -> Problem {
    Problem::new(ProblemKind::FileArchived, format!("file {file_id} is archived: its owner can restore it (POST /api/files/{file_id}/restore-archive)"))
}

/// The distinct trigrams of a name, ASCII letters lower-cased (as SQL's `LOWER` does on
/// every backend for ASCII).
pub fn grams(name: &str) -> std::collections::BTreeSet<String> {
    let chars: Vec<char> = name.to_ascii_lowercase().chars().collect();
    chars.windows(3).map(|w| w.iter().collect()).collect()
}

/// The statements that index a head's name (for the batch that writes the name).
pub fn name_gram_rows(owner_id: &str, file_id: &str, name: &str) -> Vec<vaultx_core::ports::Statement> {
    grams(name)
        .into_iter()
        .map(|g| vaultx_core::ports::Statement {
            sql: "INSERT INTO file_name_grams (owner_id, gram, file_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            params: vec![owner_id.into(), g.into(), file_id.into()],
        })
        .collect()
}

/// The statement that clears a manifest's write record, for the batch that publishes it.
pub fn published(file_id: &str, manifest_id: &str) -> Statement {
    Statement { sql: "DELETE FROM manifest_writes WHERE file_id = ? AND manifest_id = ?", params: vec![file_id.into(), manifest_id.into()] }
}
