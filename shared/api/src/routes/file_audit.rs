//! `GET /api/files/:id/audit?action=&from=&to=&limit=&cursor=` — the audit log of one of the
//! caller's files (calls on it and downloads of it, by anyone), newest first, as
//! `/api/admin/audit` shows it. Another user's file is `404`.

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
    let call = Call::user(p, req, &["GET"]).await?;
    let file = call.file(2).await?;
    let mut filter = audit::filter(&call.req)?;
    if filter.user_id.is_some() {
        return Err(Problem::new(vaultx_core::problem::ProblemKind::InvalidQuery, "user= is for /api/admin/audit; this log is the file's".to_owned()));
    }
    filter.file_id = Some(file.id);
    audit::catch_up(p).await;
    let (events, next) = audit::page(&call.db, &filter).await?;
    let items: Vec<_> = events.iter().map(audit::view).collect();
    Ok(private_json(200, &serde_json::json!({"items": items, "nextCursor": next})))
}
