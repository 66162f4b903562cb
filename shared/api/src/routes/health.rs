//! `GET /health` — overall health: every dependency's check, `200` when all pass, `503` with
//! the same document when any fails (so a dashboard can show which): the metadata store, and
//! every active region's blob stores (`stores`: each node's store, probed with a read now;
//! a region is `healthy`, `degraded` or `unavailable` by how many of its stores answer, and
//! each store's circuit breaker as the edge's readers see it).

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
        let probed = match p.metadata().await {
            Ok(db) => regions::probed(p, &db).await,
            Err(e) => Err(crate::store::store_failure(e)),
        };
        match probed {
            Ok(listed) => {
                for (region, nodes) in listed {
                    let health = regions::region_health(nodes.len(), nodes.iter().filter(|(_, up)| *up).count());
                    failing |= health == "degraded" || health == "unavailable";
                    for (n, up) in &nodes {
                        let breaker = regions::breaker_view(p, &n.kind, &n.store).await;
                        stores.push(serde_json::json!({ "region": region.code, "kind": n.kind, "store": n.store, "health": regions::node_health(*up), "breaker": breaker }));
                    }
                    region_checks.insert(region.code, health.into());
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
