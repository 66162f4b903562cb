//! `POST /api/files/:id/archive` — archive the file: its data and versions stay, but nothing
//! of it downloads (signed URLs answer `403 file-archived`), and it takes no chunks and no new
//! versions until `POST /api/files/:id/restore-archive`. Only an `available` file can be
//! archived, and not while a version uploads. Idempotent; answers the file.

use super::{Call, private_json};
use crate::store::store_failure;
use crate::files::ARCHIVED;
use crate::{archive, labels};
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;
use vaultx_core::Problem;

pub const MAX_BODY: usize = super::JSON_BODY_LIMIT;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::user(p, req, &["POST"]).await?;
    let id = call.segment(2);
    let kv = p.kv().await.map_err(store_failure)?;
    let file = archive::set(&call.db, &kv, &call.user.user_id, &id, ARCHIVED, p.now_ms()).await?;
    Ok(private_json(200, &labels::view(&call.db, &file).await?))
}
