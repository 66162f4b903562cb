//! `POST /api/replication/files/:fileId/policy` — the caller's file is kept in further
//! regions: `{"targetRegions": ["eu-central-1"], "consistency": "eventual"}` (codes or ids;
//! `consistency` defaults to `eventual`) → `201 {fileId, consistency, targetRegions}`. It
//! replaces any earlier policy of the file. Each region must be active with an active node
//! (422 naming `targetRegions` otherwise). Eventual: the `replicate` job copies the file's
//! blocks after this and after every later change; `GET …/status` says how far it is.

use super::Call;
use crate::replication;
use serde::Deserialize;
use vaultx_core::Problem;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;

pub const MAX_BODY: usize = super::JSON_BODY_LIMIT;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Body {
    target_regions: Vec<String>,
    #[serde(default)]
    consistency: Option<String>,
}

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::user(p, req, &["POST"]).await?;
    let id = call.segment(3);
    let body: Body = call.req.json()?;
    let consistency = body.consistency.as_deref().unwrap_or(replication::EVENTUAL);
    let (consistency, targets) = replication::set_policy(p, &call.db, &call.user.user_id, &id, &body.target_regions, consistency).await?;
    let codes: Vec<&str> = targets.iter().map(|t| t.code.as_str()).collect();
    Ok(ApiResponse::json(201, &serde_json::json!({ "fileId": id, "consistency": consistency, "targetRegions": codes })))
}
