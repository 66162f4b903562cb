//! `PATCH /api/storage/regions/:id/deactivate` (administrators) — the region (by id or code)
//! takes no new blocks and no new nodes from now on; what it holds stays readable, and reads
//! fail over to replicas. Idempotent: `200` with the region either way.

use crate::regions;
use vaultx_core::Problem;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;

pub const MAX_BODY: usize = 0;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let (db, region) = regions::requested(p, &req, &["PATCH"]).await?;
    let region = regions::deactivate(p, &db, &region).await?;
    Ok(ApiResponse::json(200, &regions::region_view(p, &db, &region).await?).with_header("cache-control", "no-store"))
}
