//! `POST /api/files/:id/versions/:version/restore` — a rollback: makes an older version the
//! file's current content again, without copying data (the two versions swap places; the
//! one replaced keeps its number and stays in the history). Answers the file. Signed URLs
//! already issued keep serving what they were issued for.

use crate::store::store_failure;
use crate::{auth, labels, versions};
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
    let segments = req.segments();
    let id = segments.get(2).copied().unwrap_or("").to_owned();
    let number = versions::number(segments.get(4).copied().unwrap_or(""))?;
    let db = p.metadata().await.map_err(store_failure)?;
    let file = versions::restore(&db, &user.user_id, &id, number, p.now_ms()).await?;
    Ok(ApiResponse::json(200, &labels::view(&db, &file).await?).with_header("cache-control", "private, no-store"))
}
