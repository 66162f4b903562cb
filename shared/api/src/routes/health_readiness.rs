//! `GET /health/readiness` — the function can serve: the metadata store answers and its
//! schema is in place. `503 not-ready` otherwise.

use vaultx_core::Problem;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::{Platform, Sql, StoreError};
use vaultx_core::problem::ProblemKind;

pub const MAX_BODY: usize = 0;

/// Reads one row of a table the schema must have: proves the store answers, and that the
/// migrations ran.
pub async fn check_metadata<P: Platform>(p: &P) -> Result<(), StoreError> {
    p.metadata().await?.query("SELECT id FROM users LIMIT 1", vec![]).await.map(drop)
}

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(readiness(p, req).await)
}

async fn readiness<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    req.expect_method(&["GET"])?;
    check_metadata(p).await.map_err(|e| {
        let _ = crate::store::store_failure(e.clone());
        Problem::new(ProblemKind::NotReady, format!("metadata store: {}", short(&e)))
    })?;
    Ok(ApiResponse::json(200, &serde_json::json!({"status": "ready", "checks": {"metadata": "ok"}}))
        .with_header("cache-control", "no-store"))
}

/// What a probe may learn about a failure: its class, never SQL or paths.
pub fn short(e: &StoreError) -> &'static str {
    match e {
        StoreError::AccessDenied(_) => "access denied",
        StoreError::Unavailable(_) => "unavailable",
        StoreError::Decode(_) => "unexpected schema",
        StoreError::Conflict => "conflict",
        StoreError::Contended => "contended",
        StoreError::Invalid(_) => "invalid value",
    }
}
