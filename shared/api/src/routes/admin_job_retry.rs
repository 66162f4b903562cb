//! `POST /api/admin/jobs/:id/retry` — puts a `dead` job back in the queue with a fresh set
//! of attempts and wakes its consumer (after the cause is fixed). `200` with the job;
//! `404` for no such job; `409 job-not-dead` for a job that is not dead (a queued or running
//! job is already being tried). Administrators only (`admin_emails`).

use super::Call;
use crate::outbox;
use vaultx_core::Problem;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;
use vaultx_core::problem::ProblemKind;

pub const MAX_BODY: usize = super::JSON_BODY_LIMIT;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::admin(p, req, &["POST"]).await?;
    let id = call.segment(3);
    let not_found = || Problem::not_found(format!("no job {id}"));
    if !vaultx_core::ids::is_id(&id) {
        return Err(not_found());
    }
    if !outbox::retry(&call.db, &id, p.now_ms()).await? {
        let job = outbox::find(&call.db, &id).await?.ok_or_else(not_found)?;
        return Err(Problem::new(ProblemKind::JobNotDead, format!("job {id} is {}; only a dead job can be retried", job.state)));
    }
    let job = outbox::find(&call.db, &id).await?.ok_or_else(not_found)?;
    outbox::wake(p, &[(job.kind.as_str(), job.id.as_str())]).await;
    Ok(ApiResponse::json(200, &serde_json::json!({"id": job.id, "kind": job.kind, "subject": job.subject, "state": job.state, "attempts": job.attempts}))
        .with_header("cache-control", "no-store"))
}
