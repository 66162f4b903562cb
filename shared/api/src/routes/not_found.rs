//! Every path no other route claims: `404 not-found` as problem+json, on every platform.

use vaultx_core::Problem;
use vaultx_core::http::{ApiRequest, ApiResponse};
use vaultx_core::ports::Platform;

pub const MAX_BODY: usize = 0;

pub async fn handle<P: Platform>(_p: &P, req: ApiRequest) -> ApiResponse {
    ApiResponse::problem(&Problem::not_found(format!("no route for {} {}", req.method, req.path)))
}
