//! `GET /api/replication/files/:fileId/status` — how far the caller's file is replicated:
//! `{fileId, policy: {consistency, targetRegions} | null, regions: [{region, regionStatus,
//! state: pending | replicating | in-sync | failed, bytesPresent, bytesTotal, lagMs}]}`.

use crate::store::store_failure;
use crate::{auth, replication};
use vaultx_core::Problem;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;

pub const MAX_BODY: usize = 0;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    req.expect_method(&["GET"])?;
    let user = auth::authenticate(p, &req).await?;
    let id = req.segments().get(3).copied().unwrap_or("").to_owned();
    let db = p.metadata().await.map_err(store_failure)?;
    let status = replication::status(p, &db, &user.user_id, &id).await?;
    Ok(ApiResponse::json(200, &status).with_header("cache-control", "private, no-store"))
}
