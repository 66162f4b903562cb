//! `POST /api/files/:id/complete` — finish an upload whose chunks have all arrived: verify the
//! size and checksum, publish the manifest, make the file `available`. Idempotent: an
//! available file answers `200` as it is. Uploads normally complete on their last chunk; this
//! is for a client resuming an upload whose completion was interrupted (a crash between the
//! last chunk and the flip), and for clients that prefer an explicit final step (as S3's
//! CompleteMultipartUpload). `409 chunks-missing` lists what is still missing.

use super::{Call, private_json};
use crate::lifecycle;
use crate::store::store_failure;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;
use vaultx_core::problem::ProblemKind;
use vaultx_core::Problem;

pub const MAX_BODY: usize = super::JSON_BODY_LIMIT;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::user(p, req, &["POST"]).await?;
    let id = call.segment(2);
    let file = call.upload(2).await?;
    let blobs = p.blobs().await.map_err(store_failure)?;
    let kv = p.kv().await.map_err(store_failure)?;
    match lifecycle::complete(&call.db, &blobs, &kv, p, p.now_ms(), &file.id).await? {
        lifecycle::Completion::Available(done) => Ok(private_json(200, &crate::labels::view(&call.db, &done).await?)),
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
