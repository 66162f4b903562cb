//! `GET /api/files/:id/audit?action=&from=&to=&limit=&cursor=` — the audit log of one of the
//! caller's files (calls on it and downloads of it, by anyone), newest first, as
//! `/api/admin/audit` shows it. Another user's file is `404`.

use crate::store::store_failure;
use crate::{audit, auth, files};
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;
use vaultx_core::Problem;

pub const MAX_BODY: usize = 0;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    req.expect_method(&["GET"])?;
    let user = auth::authenticate(p, &req).await?;
    let id = req.segments().get(2).copied().unwrap_or("").to_owned();
    let db = p.metadata().await.map_err(store_failure)?;
    let file = files::find_head(&db, &user.user_id, &id).await?;
    let mut filter = audit::filter(&req)?;
    if filter.user_id.is_some() {
        return Err(Problem::new(vaultx_core::problem::ProblemKind::InvalidQuery, "user= is for /api/admin/audit; this log is the file's".to_owned()));
    }
    filter.file_id = Some(file.id);
    audit::catch_up(p).await;
    let (events, next) = audit::page(&db, &filter).await?;
    let items: Vec<_> = events.iter().map(audit::view).collect();
    Ok(ApiResponse::json(200, &serde_json::json!({"items": items, "nextCursor": next})).with_header("cache-control", "private, no-store"))
}
