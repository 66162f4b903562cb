//! `GET /health/liveness` — the function runs. Touches no store, so it stays up when they are down.

use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;

pub const MAX_BODY: usize = 0;

pub async fn handle<P: Platform>(_p: &P, req: ApiRequest) -> ApiResponse {
    respond(req.expect_method(&["GET"]).map(|()| {
        ApiResponse::json(200, &serde_json::json!({"status": "ok"})).with_header("cache-control", "no-store")
    }))
}
