//! `GET /api/replication/files/:fileId/status` — how far the caller's file is replicated:
//! `{fileId, policy: {consistency, targetRegions} | null, regions: [{region, regionStatus,
//! state: pending | replicating | in-sync | failed, bytesPresent, bytesTotal, lagMs}]}`.

use super::{Call, private_json};
use crate::replication;
use vaultx_core::Problem;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;

pub const MAX_BODY: usize = 0;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::user(p, req, &["GET"]).await?;
    let id = call.segment(3);
    let status = replication::status(p, &call.db, &call.user.user_id, &id).await?;
    Ok(private_json(200, &status))
}
