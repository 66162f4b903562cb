//! Tags and custom metadata: what a user attaches to a file to find it again.
//!
//! Limits, chosen after S3 (10 tags; user metadata of 2 KB, as `x-amz-meta-*` headers) and
//! enforced with 422 `errors[]`:
//! - **Tags**: at most [`MAX_TAGS`] per file, each 1–128 characters of letters, digits,
//!   spaces and `+ - = . _ : / @` (S3's tag alphabet). Case-sensitive.
//! - **Metadata**: keys 1–128 characters of lower-case letters, digits, `-`, `_` and `.` (they
//!   must survive as HTTP header names); values up to 1024 characters, no control characters;
//!   keys and values together at most [`MAX_METADATA_BYTES`] bytes of UTF-8.
//!
//! The limits are also checked inside the batch that writes (a guard after the writes), so
//! two concurrent additions cannot together exceed them.

use crate::store::store_failure;
use crate::files::{FileRecord, FileView};
use std::collections::{BTreeMap, BTreeSet};
use vaultx_core::guard;
use vaultx_core::ports::{Sql, SqlValue, Statement, StoreError};
use vaultx_core::problem::FieldError;
use vaultx_core::Problem;

pub const MAX_TAGS: usize = 10;
pub const MAX_TAG_CHARS: usize = 128;
pub const MAX_METADATA_KEY_CHARS: usize = 128;
pub const MAX_METADATA_VALUE_CHARS: usize = 1024;
pub const MAX_METADATA_BYTES: usize = 2048;

pub fn check_tag(field: &str, tag: &str) -> Result<(), FieldError> {
    let allowed = |c: char| c.is_alphanumeric() || " +-=._:/@".contains(c);
    let n = tag.chars().count();
    if n == 0 || n > MAX_TAG_CHARS || !tag.chars().all(allowed) || tag.trim() != tag {
        return Err(FieldError {
            field: field.into(),
            message: format!("a tag is 1 to {MAX_TAG_CHARS} letters, digits, spaces or + - = . _ : / @, without leading or trailing spaces"),
        });
    }
    Ok(())
}

pub fn check_metadata_key(field: &str, key: &str) -> Result<(), FieldError> {
    let n = key.chars().count();
    if n == 0 || n > MAX_METADATA_KEY_CHARS || !key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c)) {
        return Err(FieldError { field: field.into(), message: format!("a metadata key is 1 to {MAX_METADATA_KEY_CHARS} of a-z, 0-9, - _ .") });
    }
    Ok(())
}

pub fn check_metadata_value(field: &str, value: &str) -> Result<(), FieldError> {
    if value.chars().count() > MAX_METADATA_VALUE_CHARS || value.chars().any(char::is_control) {
        return Err(FieldError { field: field.into(), message: format!("a metadata value is at most {MAX_METADATA_VALUE_CHARS} characters, none of them control characters") });
    }
    Ok(())
}

pub fn metadata_bytes(m: &BTreeMap<String, String>) -> usize {
    m.iter().map(|(k, v)| k.len() + v.len()).sum()
}

pub async fn tags(db: &impl Sql, file_id: &str) -> Result<Vec<String>, Problem> {
    let rows = db.query("SELECT tag FROM file_tags WHERE file_id = ? ORDER BY tag", vec![file_id.into()]).await.map_err(store_failure)?;
    rows.iter().map(|r| r.text(0).map(str::to_owned)).collect::<Result<_, _>>().map_err(store_failure)
}

pub async fn metadata(db: &impl Sql, file_id: &str) -> Result<BTreeMap<String, String>, Problem> {
    let rows = db.query("SELECT meta_key, value FROM file_metadata WHERE file_id = ?", vec![file_id.into()]).await.map_err(store_failure)?;
    rows.iter().map(|r| Ok((r.text(0)?.to_owned(), r.text(1)?.to_owned()))).collect::<Result<_, StoreError>>().map_err(store_failure)
}

/// The files as the API shows them, with their tags and metadata (two queries for the lot).
pub async fn views(db: &impl Sql, files: &[FileRecord]) -> Result<Vec<FileView>, Problem> {
    let mut views: Vec<FileView> = files.iter().map(FileRecord::view).collect();
    if files.is_empty() {
        return Ok(views);
    }
    let marks = vec!["?"; files.len()].join(", ");
    let ids: Vec<SqlValue> = files.iter().map(|f| f.id.clone().into()).collect();
    let at: BTreeMap<&str, usize> = files.iter().enumerate().map(|(i, f)| (f.id.as_str(), i)).collect();
    let tag_rows = db.query(&format!("SELECT file_id, tag FROM file_tags WHERE file_id IN ({marks}) ORDER BY tag"), ids.clone()).await.map_err(store_failure)?;
    for r in &tag_rows {
        if let Some(&i) = at.get(r.text(0).map_err(store_failure)?) {
            views[i].tags.push(r.text(1).map_err(store_failure)?.to_owned());
        }
    }
    let meta_rows = db.query(&format!("SELECT file_id, meta_key, value FROM file_metadata WHERE file_id IN ({marks})"), ids).await.map_err(store_failure)?;
    for r in &meta_rows {
        if let Some(&i) = at.get(r.text(0).map_err(store_failure)?) {
            views[i].metadata.insert(r.text(1).map_err(store_failure)?.to_owned(), r.text(2).map_err(store_failure)?.to_owned());
        }
    }
    Ok(views)
}

pub async fn view(db: &impl Sql, f: &FileRecord) -> Result<FileView, Problem> {
    Ok(views(db, std::slice::from_ref(f)).await?.remove(0))
}

fn head_guard(f: &FileRecord) -> Statement {
    guard!("EXISTS (SELECT 1 FROM files WHERE id = ? AND owner_id = ? AND version_of IS NULL)", &f.id, &f.owner_id)
}

/// Adds tags (those already there are kept once). `Ok(false)`: the file would have more
/// than [`MAX_TAGS`], nothing was added.
pub async fn add_tags(db: &impl Sql, f: &FileRecord, new: &BTreeSet<String>) -> Result<bool, Problem> {
    let mut statements = vec![head_guard(f)];
    for tag in new {
        statements.push(Statement {
            sql: "INSERT INTO file_tags (file_id, owner_id, tag) VALUES (?, ?, ?) ON CONFLICT (file_id, tag) DO NOTHING",
            params: vec![f.id.clone().into(), f.owner_id.clone().into(), tag.clone().into()],
        });
    }
    statements.push(guard!("(SELECT count(*) FROM file_tags WHERE file_id = ?) <= 10", &f.id));
    match db.batch(statements).await {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict) => Ok(false),
        Err(e) => Err(store_failure(e)),
    }
}

/// Replaces every tag of the file with `tags` (S3's `PutObjectTagging`). `Ok(false)`: more
/// than [`MAX_TAGS`], nothing changed.
pub async fn replace_tags(db: &impl Sql, f: &FileRecord, tags: &BTreeSet<String>) -> Result<bool, Problem> {
    if tags.len() > MAX_TAGS {
        return Ok(false);
    }
    let mut statements = vec![head_guard(f), Statement { sql: "DELETE FROM file_tags WHERE file_id = ?", params: vec![f.id.clone().into()] }];
    statements.extend(tags.iter().map(|tag| Statement {
        sql: "INSERT INTO file_tags (file_id, owner_id, tag) VALUES (?, ?, ?)",
        params: vec![f.id.clone().into(), f.owner_id.clone().into(), tag.clone().into()],
    }));
    match db.batch(statements).await {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict) => Ok(false),
        Err(e) => Err(store_failure(e)),
    }
}

/// Removes a tag; `false` if the file did not have it.
pub async fn remove_tag(db: &impl Sql, f: &FileRecord, tag: &str) -> Result<bool, Problem> {
    let n = db.execute("DELETE FROM file_tags WHERE file_id = ? AND tag = ?", vec![f.id.clone().into(), tag.into()]).await.map_err(store_failure)?;
    Ok(n > 0)
}

/// Writes the metadata change: `replace` drops every key first; then `set` upserts and
/// `remove` deletes keys. `Ok(false)`: the result would exceed the size limit (concurrent
/// changes included), nothing was written.
pub async fn change_metadata(db: &impl Sql, f: &FileRecord, replace: bool, set: &BTreeMap<String, String>, remove: &BTreeSet<String>) -> Result<bool, Problem> {
    let mut statements = vec![head_guard(f)];
    if replace {
        statements.push(Statement { sql: "DELETE FROM file_metadata WHERE file_id = ?", params: vec![f.id.clone().into()] });
    }
    for key in remove {
        statements.push(Statement { sql: "DELETE FROM file_metadata WHERE file_id = ? AND meta_key = ?", params: vec![f.id.clone().into(), key.clone().into()] });
    }
    for (key, value) in set {
        statements.push(Statement {
            sql: "INSERT INTO file_metadata (file_id, owner_id, meta_key, value) VALUES (?, ?, ?, ?) \
                  ON CONFLICT (file_id, meta_key) DO UPDATE SET value = excluded.value",
            params: vec![f.id.clone().into(), f.owner_id.clone().into(), key.clone().into(), value.clone().into()],
        });
    }
    // Characters, not bytes, in SQL (portable); the handler checked the bytes of the result
    // it computed, this catches what concurrent changes add up to.
    statements.push(guard!("(SELECT COALESCE(SUM(length(meta_key) + length(value)), 0) FROM file_metadata WHERE file_id = ?) <= 2048", &f.id));
    match db.batch(statements).await {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict) => Ok(false),
        Err(e) => Err(store_failure(e)),
    }
}
