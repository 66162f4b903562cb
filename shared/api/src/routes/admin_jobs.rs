//! `GET /api/admin/jobs?state=dead&kind=compress&limit=100` — the background jobs, newest
//! change first, filtered by state (`queued`, `running`, `done`, `dead`) and kind (one of
//! `jobs::KINDS`); each with its attempts, lease, next attempt and last error. `200 {jobs,
//! counts}` where `counts` is per state and kind over all jobs. Administrators only
//! (`admin_emails`); an unknown filter is `400 invalid-query`.

use super::Call;
use crate::outbox;
use crate::store::store_failure;
use crate::jobs;
use serde::Serialize;
use vaultx_core::Problem;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::{Platform, Sql};
use vaultx_core::problem::ProblemKind;

pub const MAX_BODY: usize = 0;
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JobView {
    id: String,
    kind: String,
    subject: String,
    state: String,
    attempts: i64,
    lease_until: Option<String>,
    next_attempt_at: String,
    last_error: Option<String>,
    created_at: String,
    updated_at: String,
}

fn view(j: outbox::Job) -> JobView {
    let at = vaultx_core::time::rfc3339;
    JobView {
        lease_until: j.lease_until.map(at),
        next_attempt_at: at(j.next_attempt_at),
        created_at: at(j.created_at_ms),
        updated_at: at(j.updated_at_ms),
        id: j.id,
        kind: j.kind,
        subject: j.subject,
        state: j.state,
        attempts: j.attempts,
        last_error: j.last_error,
    }
}

fn invalid(detail: String) -> Problem {
    Problem::new(ProblemKind::InvalidQuery, detail)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::admin(p, req, &["GET"]).await?;
    let (mut state, mut kind, mut limit) = (None, None, DEFAULT_LIMIT);
    for (name, value) in call.req.query_params() {
        match name.as_str() {
            "state" if outbox::STATES.contains(&value.as_str()) => state = Some(value),
            "state" => return Err(invalid(format!("state must be one of {}", outbox::STATES.join(", ")))),
            "kind" if jobs::KINDS.contains(&value.as_str()) => kind = Some(value),
            "kind" => return Err(invalid(format!("kind must be one of {}", jobs::KINDS.join(", ")))),
            "limit" => {
                limit = value.parse().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| invalid(format!("limit must be a whole number from 1 to {MAX_LIMIT}")))?
            }
            other => return Err(invalid(format!("unknown query parameter {other:?}; use state, kind, limit"))),
        }
    }
    let listed = outbox::list(&call.db, state.as_deref(), kind.as_deref(), limit).await?;
    let rows = call.db.query("SELECT state, kind, count(*) FROM jobs GROUP BY state, kind ORDER BY state, kind", vec![]).await.map_err(store_failure)?;
    let mut counts = serde_json::Map::new();
    for r in &rows {
        let (state, kind, n) = (r.text(0).map_err(store_failure)?, r.text(1).map_err(store_failure)?, r.int(2).map_err(store_failure)?);
        let entry = counts.entry(state.to_owned()).or_insert_with(|| serde_json::json!({}));
        entry[kind] = serde_json::json!(n);
    }
    let body = serde_json::json!({ "jobs": listed.into_iter().map(view).collect::<Vec<_>>(), "counts": counts });
    Ok(ApiResponse::json(200, &body).with_header("cache-control", "no-store"))
}
