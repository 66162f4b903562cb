//! `/api/files/:id` — `GET` the file, `PATCH` its name, original name or media type,
//! `DELETE` it (its chunks are released; a blob goes when nothing references it).

use crate::accounts::store_failure;
use crate::files::{self, AVAILABLE};
use crate::{auth, blobs};
use serde::Deserialize;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::{Kv, Platform, Sql, SqlValue};
use vaultx_core::{Problem, validation};

pub const MAX_BODY: usize = super::JSON_BODY_LIMIT;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Changes {
    name: Option<String>,
    original_name: Option<String>,
    mime_type: Option<String>,
}

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let allowed = ["GET", "HEAD", "PATCH", "DELETE"];
    req.expect_method(&allowed)?;
    let user = auth::authenticate(p, &req).await?;
    let id = req.segments().get(2).copied().unwrap_or("").to_owned();
    let db = p.metadata().await.map_err(store_failure)?;
    let file = files::find_owned(&db, &user.user_id, &id).await?;
    match req.method.as_str() {
        "PATCH" => {
            let changes: Changes = req.json()?;
            let mut errors = Vec::new();
            let mut updated = file.clone();
            if let Some(n) = &changes.name {
                validation::file_name("name", n).map(|v| updated.name = v).unwrap_or_else(|e| errors.push(e));
            }
            if let Some(n) = &changes.original_name {
                validation::file_name("originalName", n).map(|v| updated.original_name = v).unwrap_or_else(|e| errors.push(e));
            }
            if let Some(m) = &changes.mime_type {
                validation::mime_type(m).map(|v| updated.mime_type = v).unwrap_or_else(|e| errors.push(e));
            }
            if !errors.is_empty() {
                return Err(Problem::validation(errors));
            }
            updated.updated_at_ms = p.now_ms();
            db.execute(
                "UPDATE files SET name = ?, original_name = ?, mime_type = ?, updated_at = ? WHERE id = ?",
                vec![
                    updated.name.clone().into(),
                    updated.original_name.clone().into(),
                    updated.mime_type.clone().into(),
                    SqlValue::Integer(updated.updated_at_ms),
                    updated.id.clone().into(),
                ],
            )
            .await
            .map_err(store_failure)?;
            if updated.status == AVAILABLE {
                // Downloads take the name and type from the manifest: keep it in step.
                let kv = p.kv().await.map_err(store_failure)?;
                if let Some(m) = files::read_manifest(&kv, &updated.id).await? {
                    files::write_manifest(&kv, &updated, m.chunks).await?;
                }
            }
            Ok(ApiResponse::json(200, &updated.view()))
        }
        "DELETE" => {
            let now = p.now_ms();
            // The manifest goes first: from here on no new download starts.
            p.kv().await.map_err(store_failure)?.delete(&files::manifest_key(&file.id)).await.map_err(store_failure)?;
            let released = blobs::release_file(&db, now, &file.id).await?;
            let store = p.blobs().await.map_err(store_failure)?;
            blobs::sweep(&db, &store, now, &released).await?;
            Ok(ApiResponse::empty(204))
        }
        _ => Ok(ApiResponse::json(200, &file.view()).with_header("cache-control", "private, no-store")),
    }
}
