//! `GET /health` — overall health: every dependency's check, `200` when all pass, `503` with
//! the same document when any fails (so a dashboard can show which).

use super::health_readiness::{check_metadata, short};
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;

pub const MAX_BODY: usize = 0;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    if let Err(problem) = req.expect_method(&["GET"]) {
        return respond(Err(problem));
    }
    let metadata = check_metadata(p).await;
    let (status, text) = match &metadata {
        Ok(()) => (200, "ok"),
        Err(e) => (503, short(e)),
    };
    let body = serde_json::json!({
        "status": if status == 200 { "ok" } else { "degraded" },
        "checks": {"metadata": text},
    });
    ApiResponse::json(status, &body).with_header("cache-control", "no-store")
}
