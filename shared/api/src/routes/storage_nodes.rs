//! `/api/storage/nodes` (administrators) — `GET` every node; `POST {"regionId": "eu-central-1",
//! "name": "eu-kv-1", "kind": "key-value", "store": "blobs_eu", "capacityBytes": 1099511627776}`
//! adds a blob store of the deployment to an active region (`regionId` takes an id or a code).
//! The store must be one the deployment really has — it must open — and serve no other node:
//! `422` for a store that does not exist (or is not a blob store), `409` for one already
//! serving a node or a deactivated region.

use super::Call;
use crate::regions;
use serde::Deserialize;
use vaultx_core::Problem;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;

pub const MAX_BODY: usize = super::JSON_BODY_LIMIT;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Body {
    region_id: String,
    name: String,
    kind: String,
    store: String,
    capacity_bytes: u64,
}

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::admin(p, req, &["GET", "POST"]).await?;
    if call.req.method == "POST" {
        let body: Body = call.req.json()?;
        let new = regions::NewNode { region: &body.region_id, name: &body.name, kind: &body.kind, store: &body.store, capacity_bytes: body.capacity_bytes };
        let node = regions::add_node(p, &call.db, new).await?;
        let region = regions::find(&call.db, &node.region_id).await?;
        let view = regions::node_view(p, &call.db, &node, &region.code).await?;
        return Ok(ApiResponse::json(201, &view));
    }
    let codes: std::collections::HashMap<String, String> = regions::list(&call.db).await?.into_iter().map(|r| (r.id, r.code)).collect();
    let mut listed = Vec::new();
    for n in regions::nodes(&call.db, None).await? {
        let code = codes.get(&n.region_id).cloned().unwrap_or_default();
        listed.push(regions::node_view(p, &call.db, &n, &code).await?);
    }
    Ok(ApiResponse::json(200, &serde_json::json!({ "nodes": listed })).with_header("cache-control", "no-store"))
}
