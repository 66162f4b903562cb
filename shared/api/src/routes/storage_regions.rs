//! `/api/storage/regions` (administrators) — `GET` every region with its nodes and health;
//! `POST {"code": "eu-central-1", "name": "Frankfurt"}` creates one (`201`, active; `409` if
//! the code is taken, `422` for a malformed code or name).

use crate::store::store_failure;
use crate::{auth, regions};
use serde::Deserialize;
use vaultx_core::Problem;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;

pub const MAX_BODY: usize = super::JSON_BODY_LIMIT;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Body {
    code: String,
    name: String,
}

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    req.expect_method(&["GET", "POST"])?;
    auth::require_admin(p, &req).await?;
    let db = p.metadata().await.map_err(store_failure)?;
    if req.method == "POST" {
        let body: Body = req.json()?;
        let created = regions::create(p, &db, &body.code, &body.name).await?;
        let view = regions::region_view(p, &db, &created).await?;
        return Ok(ApiResponse::json(201, &view).with_header("location", format!("/api/storage/regions/{}", created.id)));
    }
    let listed = regions::views(p, &db).await?;
    Ok(ApiResponse::json(200, &serde_json::json!({ "regions": listed })).with_header("cache-control", "no-store"))
}
