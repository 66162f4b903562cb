//! `POST /api/files/:id/versions/:version/restore` — a rollback: makes an older version the
//! file's current content again, without copying data (the two versions swap places; the
//! one replaced keeps its number and stays in the history). Answers the file. Signed URLs
//! already issued keep serving what they were issued for.

use super::{Call, private_json};
use crate::{labels, versions};
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;
use vaultx_core::Problem;

pub const MAX_BODY: usize = super::JSON_BODY_LIMIT;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::user(p, req, &["POST"]).await?;
    let segments = call.req.segments();
    let id = segments.get(2).copied().unwrap_or("").to_owned();
    let number = versions::number(segments.get(4).copied().unwrap_or(""))?;
    let file = versions::restore(&call.db, &call.user.user_id, &id, number, p.now_ms()).await?;
    Ok(private_json(200, &labels::view(&call.db, &file).await?))
}
