//! `GET /api/admin/audit?user=&action=&from=&to=&limit=&cursor=` (administrators) — the audit
//! log, newest first: every state-changing call and every download, with who, what, which
//! file, when, from which address, the status answered and the request id. `action` is a
//! function (`file-tags`) or a function and method (`file-tags POST`); `from`/`to` are RFC
//! 3339 or epoch ms. → `{"items": [...], "nextCursor"}`.

use crate::store::store_failure;
use crate::{audit, auth};
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;
use vaultx_core::Problem;

pub const MAX_BODY: usize = 0;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    req.expect_method(&["GET"])?;
    auth::require_admin(p, &req).await?;
    let filter = audit::filter(&req)?;
    let db = p.metadata().await.map_err(store_failure)?;
    audit::catch_up(p).await;
    let (events, next) = audit::page(&db, &filter).await?;
    let items: Vec<_> = events.iter().map(audit::view).collect();
    Ok(ApiResponse::json(200, &serde_json::json!({"items": items, "nextCursor": next})).with_header("cache-control", "private, no-store"))
}
