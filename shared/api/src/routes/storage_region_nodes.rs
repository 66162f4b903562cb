//! `GET /api/storage/regions/:regionId/nodes` (administrators) — one region's nodes (by the
//! region's id or code), oldest first, each with its store's reachability and used bytes.

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
    let mut listed = Vec::new();
    for n in regions::nodes(&db, Some(&region.id)).await? {
        listed.push(regions::node_view(p, &db, &n, &region.code).await?);
    }
    Ok(ApiResponse::json(200, &serde_json::json!({ "region": region.code, "nodes": listed })).with_header("cache-control", "no-store"))
}
