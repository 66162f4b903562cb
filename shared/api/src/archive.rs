//! Archiving: an archived file keeps every byte and every version, but serves none of them
//! (its manifests leave the key-value store, so signed URLs stop at the edge), takes no chunks
//! and no new versions, and counts apart in usage. Restoring brings it all back.
//!
//! The status changes in one guarded batch for the head and its complete versions; then the
//! key-value store is made to agree with the rows ([`converge`]). Every writer re-reads after
//! acting and acts again if the rows moved, so an archive racing a restore ends with the
//! manifests the final status calls for. A marker (`archived/<file id>`) lets the download
//! path, which reads no database, tell "archived" from "deleted" when a manifest is missing.

use crate::store::store_failure;
use crate::files::{self, ARCHIVED, AVAILABLE, FileRecord};
use vaultx_core::guard;
use vaultx_core::ports::{Kv, Sql, SqlValue, Statement, StoreError};
use vaultx_core::problem::ProblemKind;
use vaultx_core::Problem;

/// Archives (`to` = archived) or restores (`to` = available) the caller's file. Idempotent.
pub async fn set(db: &impl Sql, kv: &impl Kv, owner_id: &str, file_id: &str, to: &str, now_ms: i64) -> Result<FileRecord, Problem> {
    let from = if to == ARCHIVED { AVAILABLE } else { ARCHIVED };
    for _ in 0..crate::store::ATTEMPTS {
        let head = files::find_owned(db, owner_id, file_id).await?;
        if head.version_of.is_some() {
            return Err(Problem::not_found(format!("no file {file_id}")));
        }
        if head.status == to {
            converge(db, kv, &head.id).await?;
            return Ok(head);
        }
        if head.status != from {
            return Err(Problem::new(ProblemKind::FileNotAvailable, format!("file {file_id} is {}: only {from} files can be {}", head.status, if to == ARCHIVED { "archived" } else { "restored" })));
        }
        if to == ARCHIVED {
            if let Some(v) = crate::versions::uploading(db, &head.id).await? {
                return Err(Problem::new(ProblemKind::Conflict, format!("version {} of file {file_id} is uploading: complete or delete it first", v.version)));
            }
            // Before the rows change, so a download that finds no manifest can say why.
            kv.set(&files::archived_key(&head.id), b"1").await.map_err(store_failure)?;
        }
        let result = db
            .batch(vec![
                guard!("EXISTS (SELECT 1 FROM files WHERE id = ? AND status = ? AND row_version = ?)", &head.id, from, head.row_version),
                guard!("NOT EXISTS (SELECT 1 FROM files WHERE version_of = ? AND status = 'uploading')", &head.id),
                Statement {
                    sql: "UPDATE files SET status = ?, row_version = row_version + 1, updated_at = ? WHERE (id = ? OR version_of = ?) AND status = ?",
                    params: vec![to.into(), SqlValue::Integer(now_ms), head.id.clone().into(), head.id.clone().into(), from.into()],
                },
            ])
            .await;
        match result {
            Ok(()) => {
                converge(db, kv, &head.id).await?;
                return files::find_owned(db, owner_id, file_id).await;
            }
            Err(StoreError::Conflict | StoreError::Contended) => continue,
            Err(e) => return Err(store_failure(e)),
        }
    }
    Err(crate::store::busy())
}

/// Makes the key-value store agree with the file's rows: the manifests of available rows
/// published, those of archived rows removed, the marker present while the file is archived.
/// Repeats until the rows did not move while it worked.
pub async fn converge(db: &impl Sql, kv: &impl Kv, head_id: &str) -> Result<(), Problem> {
    let state = |rows: &[FileRecord]| rows.iter().map(|r| (r.id.clone(), r.row_version, r.status.clone())).collect::<Vec<_>>();
    let mut rows = files::family(db, head_id).await?;
    for _ in 0..crate::store::ATTEMPTS {
        let Some(head) = rows.first() else {
            // Deleted: the delete removed (and re-removes) the manifests; the marker goes too.
            kv.delete(&files::archived_key(head_id)).await.map_err(store_failure)?;
            return Ok(());
        };
        let archived = head.status == ARCHIVED;
        if archived {
            kv.set(&files::archived_key(head_id), b"1").await.map_err(store_failure)?;
        }
        for row in &rows {
            match (row.status.as_str(), &row.manifest_id) {
                (AVAILABLE, Some(_)) => crate::manifests::sync(db, kv, &row.id).await?,
                (ARCHIVED, Some(m)) => kv.delete(&row.manifest_key(m)).await.map_err(store_failure)?,
                _ => {}
            }
        }
        if !archived {
            kv.delete(&files::archived_key(head_id)).await.map_err(store_failure)?;
        }
        let now = files::family(db, head_id).await?;
        if state(&now) == state(&rows) {
            return Ok(());
        }
        rows = now;
    }
    Err(crate::store::busy())
}
