//! `POST /api/files/:id/complete` — finish an upload whose chunks have all arrived: verify the
//! size and checksum, publish the manifest, make the file `available`. Idempotent: an
//! available file answers `200` as it is. Uploads normally complete on their last chunk; this
//! is for a client resuming an upload whose completion was interrupted (a crash between the
//! last chunk and the flip), and for clients that prefer an explicit final step (as S3's
//! CompleteMultipartUpload). `409 chunks-missing` lists what is still missing.

use crate::lifecycle;
use crate::store::store_failure;
use crate::{auth, files};
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;
use vaultx_core::problem::ProblemKind;
use vaultx_core::Problem;

pub const MAX_BODY: usize = super::JSON_BODY_LIMIT;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    req.expect_method(&["POST"])?;
    let user = auth::authenticate(p, &req).await?;
    let id = req.segments().get(2).copied().unwrap_or("").to_owned();
    let db = p.metadata().await.map_err(store_failure)?;
    let file = files::find_owned(&db, &user.user_id, &id).await?;
    let blobs = p.blobs().await.map_err(store_failure)?;
    let kv = p.kv().await.map_err(store_failure)?;
    match lifecycle::complete(&db, &blobs, &kv, p, p.now_ms(), &file.id).await? {
        lifecycle::Completion::Available(done) => Ok(ApiResponse::json(200, &crate::labels::view(&db, &done).await?).with_header("cache-control", "private, no-store")),
        lifecycle::Completion::Missing(missing) => {
            let shown: Vec<String> = missing.iter().take(20).map(u64::to_string).collect();
            let more = if missing.len() > 20 { format!(" and {} more", missing.len() - 20) } else { String::new() };
            Err(Problem::new(
                ProblemKind::ChunksMissing,
                format!("{} of {} chunks are missing: {}{more}; GET /api/files/{id}/chunks lists them", missing.len(), file.plan().count(), shown.join(", ")),
            ))
        }
    }
}
