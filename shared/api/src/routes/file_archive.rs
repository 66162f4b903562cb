//! `POST /api/files/:id/archive` — archive the file: its data and versions stay, but nothing
//! of it downloads (signed URLs answer `403 file-archived`), and it takes no chunks and no new
//! versions until `POST /api/files/:id/restore-archive`. Only an `available` file can be
//! archived, and not while a version uploads. Idempotent; answers the file.

use crate::store::store_failure;
use crate::files::ARCHIVED;
use crate::{archive, auth, labels};
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;
use vaultx_core::Problem;

pub const MAX_BODY: usize = super::JSON_BODY_LIMIT;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    req.expect_method(&["POST"])?;
    let user = auth::authenticate(p, &req).await?;
    let id = req.segments().get(2).copied().unwrap_or("").to_owned();
    let db = p.metadata().await.map_err(store_failure)?;
    let kv = p.kv().await.map_err(store_failure)?;
    let file = archive::set(&db, &kv, &user.user_id, &id, ARCHIVED, p.now_ms()).await?;
    Ok(ApiResponse::json(200, &labels::view(&db, &file).await?).with_header("cache-control", "private, no-store"))
}
