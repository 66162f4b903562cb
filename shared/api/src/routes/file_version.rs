//! `/api/files/:id/versions/:version` — `GET` one version (as in the history); `DELETE` it:
//! its blocks are released, and a blob goes only when no other version or file still uses it.
//! The current version cannot be deleted (`409 conflict`: restore another first, or delete
//! the file); deleting an uploading version abandons its upload.

use super::{Call, private_json};
use crate::store::store_failure;
use crate::{files, versions};
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;
use vaultx_core::Problem;

pub const MAX_BODY: usize = 0;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::user(p, req, &["GET", "DELETE"]).await?;
    let segments = call.req.segments();
    let id = segments.get(2).copied().unwrap_or("").to_owned();
    let number = versions::number(segments.get(4).copied().unwrap_or(""))?;
    if call.req.method == "DELETE" {
        let blobs = p.blobs().await.map_err(store_failure)?;
        let kv = p.kv().await.map_err(store_failure)?;
        versions::delete(&call.db, &blobs, &kv, &call.user.user_id, &id, number, p.now_ms()).await?;
        return Ok(ApiResponse::empty(204));
    }
    let head = files::find_head(&call.db, &call.user.user_id, &id).await?;
    let v = versions::find(&call.db, &head, number).await?.ok_or_else(|| Problem::not_found(format!("file {id} has no version {number}")))?;
    Ok(private_json(200, &versions::view(&head, &v)))
}
