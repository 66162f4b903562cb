//! `POST /api/files/:id/restore-archive` — bring an archived file back: downloadable again
//! (signed URLs issued before the archive work again while they have not expired), and open
//! to new versions. Only an `archived` file can be restored; an `available` one answers as it
//! is (idempotent). Answers the file.

use crate::store::store_failure;
use crate::files::AVAILABLE;
use crate::{archive, auth, labels};
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;
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
    let kv = p.kv().await.map_err(store_failure)?;
    let file = archive::set(&db, &kv, &user.user_id, &id, AVAILABLE, p.now_ms()).await?;
    Ok(ApiResponse::json(200, &labels::view(&db, &file).await?).with_header("cache-control", "private, no-store"))
}
