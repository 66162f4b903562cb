//! `GET /api/openapi.json` — the OpenAPI 3.1 contract of the whole API
//! (`shared/api/openapi.json`, written by `infra/openapi.py`; its paths and methods are
//! checked against [`super::TABLE`] and the handlers by a test, and the running API against it
//! by schemathesis in `tests/run`).

use vaultx_core::http::{ApiRequest, ApiResponse, Body, respond};
use vaultx_core::ports::Platform;

pub const MAX_BODY: usize = 0;

/// The contract, compiled in: it changes only with the code.
pub const SPEC: &str = include_str!("../../openapi.json");

pub async fn handle<P: Platform>(_p: &P, req: ApiRequest) -> ApiResponse {
    if let Err(problem) = req.expect_method(&["GET"]) {
        return respond(Err(problem));
    }
    let mut response = ApiResponse::empty(200).with_header("content-type", "application/json").with_header("cache-control", "public, max-age=300");
    response.body = Body::Bytes(SPEC.as_bytes().to_vec());
    response
}
