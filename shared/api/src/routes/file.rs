//! `/api/files/:id` — `GET` the file (with its tags and metadata), `PATCH` its name, original
//! name or media type, `DELETE` it with every version (their chunks are released; a blob goes
//! when nothing references it).

use super::{Call, private_json};
use crate::lifecycle;
use crate::store::store_failure;
use serde::Deserialize;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::{Platform, Sql, SqlValue, Statement};
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
    let call = Call::user(p, req, &["GET", "PATCH", "DELETE"]).await?;
    let id = call.segment(2);
    match call.req.method.as_str() {
        "PATCH" => {
            let changes: Changes = call.req.json()?;
            let mut errors = Vec::new();
            // A field sent and valid: Some(value); sent and invalid: its error, and None.
            let mut keep = |checked: Option<Result<String, _>>| checked.and_then(|r| r.map_err(|e| errors.push(e)).ok());
            let name = keep(changes.name.as_deref().map(|v| validation::file_name("name", v)));
            let original_name = keep(changes.original_name.as_deref().map(|v| validation::file_name("originalName", v)));
            let mime_type = keep(changes.mime_type.as_deref().map(validation::mime_type));
            if !errors.is_empty() {
                return Err(Problem::validation(errors));
            }
            // Only the fields sent change, in one statement: two PATCHes of different fields
            // both apply. Downloads are not touched: a signed URL carries the name and type it
            // was issued with, and the content is immutable.
            let mut statements = vec![
                vaultx_core::guard!("EXISTS (SELECT 1 FROM files WHERE id = ? AND owner_id = ? AND version_of IS NULL)", &id, &call.user.user_id),
                Statement {
                    sql: "UPDATE files SET name = COALESCE(?, name), original_name = COALESCE(?, original_name), \
                          mime_type = COALESCE(?, mime_type), updated_at = ? WHERE id = ?",
                    params: vec![name.clone().into(), original_name.into(), mime_type.into(), SqlValue::Integer(p.now_ms()), id.clone().into()],
                },
            ];
            if let Some(name) = &name {
                // The name's search index changes with it.
                statements.push(Statement { sql: "DELETE FROM file_name_grams WHERE file_id = ?", params: vec![id.clone().into()] });
                statements.extend(crate::files::name_gram_rows(&call.user.user_id, &id, name));
            }
            match call.db.batch(statements).await {
                Ok(()) => {}
                Err(vaultx_core::ports::StoreError::Conflict) => return Err(Problem::not_found(format!("no file {id}"))),
                Err(e) => return Err(store_failure(e)),
            }
            let updated = call.file(2).await?;
            Ok(private_json(200, &crate::labels::view(&call.db, &updated).await?))
        }
        "DELETE" => {
            let kv = p.kv().await.map_err(store_failure)?;
            let store = p.blobs().await.map_err(store_failure)?;
            lifecycle::delete(&call.db, &store, &kv, p.now_ms(), &call.user.user_id, &id).await?;
            Ok(ApiResponse::empty(204))
        }
        _ => {
            let file = call.file(2).await?;
            Ok(private_json(200, &crate::labels::view(&call.db, &file).await?))
        }
    }
}
