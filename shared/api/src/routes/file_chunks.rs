//! `GET /api/files/:id/chunks` — upload progress: which chunks have arrived and which are
//! still missing, so a client can resume a broken upload.

use crate::store::store_failure;
use crate::{auth, files};
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
    let file = files::find_owned(&db, &user.user_id, &id).await?;
    let total = file.plan().count();
    // Once available, every chunk arrived (and background jobs may have re-cut the stored
    // blocks, which are not the upload's chunks).
    let have: Vec<u64> = if file.status == files::AVAILABLE {
        (0..total).collect()
    } else {
        files::received(&db, &file.id).await?.into_iter().map(|c| c.0).collect()
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
    Ok(ApiResponse::json(
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
    )
    .with_header("cache-control", "private, no-store"))
}
