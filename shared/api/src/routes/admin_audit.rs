//! `GET /api/admin/audit?user=&action=&from=&to=&limit=&cursor=` (administrators) — the audit
//! log, newest first: every state-changing call and every download, with who, what, which
//! file, when, from which address, the status answered and the request id. `action` is a
//! function (`file-tags`) or a function and method (`file-tags POST`); `from`/`to` are RFC
//! 3339 or epoch ms. → `{"items": [...], "nextCursor"}`.

use super::{Call, private_json};
use crate::audit;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;
use vaultx_core::Problem;

pub const MAX_BODY: usize = 0;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::admin(p, req, &["GET"]).await?;
    let filter = audit::filter(&call.req)?;
    audit::catch_up(p).await;
    let (events, next) = audit::page(&call.db, &filter).await?;
    let items: Vec<_> = events.iter().map(audit::view).collect();
    Ok(private_json(200, &serde_json::json!({"items": items, "nextCursor": next})))
}
