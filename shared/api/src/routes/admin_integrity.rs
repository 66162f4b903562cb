//! `GET /api/admin/integrity` — the integrity check ([`crate::integrity`]) over the whole
//! deployment: reference counts against references, blob rows against stored bytes, available
//! files against their manifests, orphans of any kind. Administrators only (`admin_emails`).
//! `200 {ok, violations: [...], ...counts}`; `ok` is false when any invariant is broken. It
//! lists every store, so it is an audit to run at rest, not a health probe.

use super::Call;
use crate::store::store_failure;
use crate::integrity;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;
use vaultx_core::Problem;

pub const MAX_BODY: usize = 0;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::admin(p, req, &["GET"]).await?;
    let blobs = p.blobs().await.map_err(store_failure)?;
    let kv = p.kv().await.map_err(store_failure)?;
    let mut report = integrity::check(&call.db, &blobs, &kv, p.now_ms()).await?;
    integrity::check_replicas(p, &call.db, &blobs, &mut report).await?;
    Ok(ApiResponse::json(200, &report).with_header("cache-control", "no-store"))
}
