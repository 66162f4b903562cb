//! `GET /api/files/:id/chunks` — upload progress: which chunks have arrived and which are
//! still missing, so a client can resume a broken upload.

use super::{Call, private_json};
use crate::files;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;
use vaultx_core::Problem;

pub const MAX_BODY: usize = 0;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::user(p, req, &["GET"]).await?;
    let file = call.upload(2).await?;
    let total = file.plan().count();
    // Once available, every chunk arrived (and background jobs may have re-cut the stored
    // blocks, which are not the upload's chunks).
    let have: Vec<u64> = if file.status == files::AVAILABLE {
        (0..total).collect()
    } else {
        files::received(&call.db, &file.id).await?.into_iter().map(|c| c.0).collect()
    };
    let mut it = have.iter().peekable();
    let missing: Vec<u64> = (0..total)
        .filter(|i| {
            while it.peek().is_some_and(|h| **h < *i) {
                it.next();
            }
            it.peek() != Some(&i)
        })
        .collect();
    Ok(private_json(
        200,
        &serde_json::json!({
            "fileId": file.id,
            "status": file.status,
            "size": file.size,
            "chunkSize": file.chunk_size,
            "totalChunks": total,
            "received": have,
            "missing": missing,
        }),
    ))
}
