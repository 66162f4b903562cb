//! `GET /api/files/stats/usage` — the caller's storage: how many files, their logical bytes,
//! the bytes their distinct blobs really occupy (lower when deduplication finds repeats and
//! the compression job shrinks blocks), and the difference (`savedBytes`).

use crate::accounts::store_failure;
use crate::auth;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::{Platform, Sql};
use vaultx_core::Problem;

pub const MAX_BODY: usize = 0;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    req.expect_method(&["GET"])?;
    let user = auth::authenticate(p, &req).await?;
    let db = p.metadata().await.map_err(store_failure)?;
    let owner = || vec![user.user_id.clone().into()];
    let files = db
        .query("SELECT count(*), COALESCE(SUM(size), 0), COALESCE(SUM(CASE WHEN status = 'available' THEN 1 ELSE 0 END), 0) FROM files WHERE owner_id = ?", owner())
        .await
        .map_err(store_failure)?;
    let stored = db
        .query(
            "SELECT COALESCE(SUM(size), 0) FROM blobs WHERE blob_key IN \
             (SELECT c.blob_key FROM file_chunks c JOIN files f ON f.id = c.file_id WHERE f.owner_id = ?)",
            owner(),
        )
        .await
        .map_err(store_failure)?;
    let (count, logical, available) = match files.first() {
        Some(r) => (r.int(0).map_err(store_failure)?, r.int(1).map_err(store_failure)?, r.int(2).map_err(store_failure)?),
        None => (0, 0, 0),
    };
    let stored = stored.first().map(|r| r.int(0)).transpose().map_err(store_failure)?.unwrap_or(0);
    Ok(ApiResponse::json(
        200,
        &serde_json::json!({"files": count, "availableFiles": available, "logicalBytes": logical, "storedBytes": stored, "savedBytes": (logical - stored).max(0)}),
    )
    .with_header("cache-control", "private, no-store"))
}
