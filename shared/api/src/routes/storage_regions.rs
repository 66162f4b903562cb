//! `/api/storage/regions` (administrators) — `GET` every region with its nodes and health;
//! `POST {"code": "eu-central-1", "name": "Frankfurt"}` creates one (`201`, active; `409` if
//! the code is taken, `422` for a malformed code or name).

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
    code: String,
    name: String,
}

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::admin(p, req, &["GET", "POST"]).await?;
    if call.req.method == "POST" {
        let body: Body = call.req.json()?;
        let created = regions::create(p, &call.db, &body.code, &body.name).await?;
        let view = regions::region_view(p, &call.db, &created).await?;
        return Ok(ApiResponse::json(201, &view).with_header("location", format!("/api/storage/regions/{}", created.id)));
    }
    let listed = regions::views(p, &call.db).await?;
    Ok(ApiResponse::json(200, &serde_json::json!({ "regions": listed })).with_header("cache-control", "no-store"))
}
