//! `GET /health` — overall health: every dependency's check, `200` when all pass, `503` with
//! the same document when any fails (so a dashboard can show which): the metadata store, and
//! every active region's blob stores (`stores`: each node's store, probed with a read now;
//! a region is `healthy`, `degraded` or `unavailable` by how many of its stores answer).

use super::health_readiness::{check_metadata, short};
use crate::regions;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;

pub const MAX_BODY: usize = 0;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    if let Err(problem) = req.expect_method(&["GET"]) {
        return respond(Err(problem));
    }
    let metadata = check_metadata(p).await;
    let mut failing = metadata.is_err();
    let mut region_checks = serde_json::Map::new();
    let mut stores = Vec::new();
    if metadata.is_ok() {
        match region_health(p).await {
            Ok(listed) => {
                for region in listed.into_iter().filter(|r| r["status"] == regions::ACTIVE) {
                    let health = region["health"].as_str().unwrap_or("unavailable").to_owned();
                    failing |= health == "degraded" || health == "unavailable";
                    for n in region["nodes"].as_array().into_iter().flatten() {
                        stores.push(serde_json::json!({ "region": region["code"], "kind": n["kind"], "store": n["store"], "health": n["health"] }));
                    }
                    region_checks.insert(region["code"].as_str().unwrap_or("").to_owned(), health.into());
                }
            }
            Err(_) => failing = true,
        }
    }
    let body = serde_json::json!({
        "status": if failing { "degraded" } else { "ok" },
        "checks": {"metadata": metadata.as_ref().map_or_else(short, |()| "ok"), "regions": region_checks},
        "stores": stores,
    });
    ApiResponse::json(if failing { 503 } else { 200 }, &body).with_header("cache-control", "no-store")
}

async fn region_health<P: Platform>(p: &P) -> Result<Vec<serde_json::Value>, vaultx_core::Problem> {
    let db = p.metadata().await.map_err(crate::accounts::store_failure)?;
    let mut listed = Vec::new();
    for r in regions::list(&db).await? {
        listed.push(regions::region_view(p, &db, &r).await?);
    }
    Ok(listed)
}
