//! `GET /api/storage/regions/:id` (administrators) — one region, by id or code, with its
//! nodes (each with its store's reachability and the bytes it holds) and its health.

use crate::regions;
use vaultx_core::Problem;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;

pub const MAX_BODY: usize = 0;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let (db, region) = regions::requested(p, &req, &["GET"]).await?;
    Ok(ApiResponse::json(200, &regions::region_view(p, &db, &region).await?).with_header("cache-control", "no-store"))
}
