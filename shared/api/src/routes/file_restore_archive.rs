//! `POST /api/files/:id/restore-archive` — bring an archived file back: downloadable again
//! (signed URLs issued before the archive work again while they have not expired), and open
//! to new versions. Only an `archived` file can be restored; an `available` one answers as it
//! is (idempotent). Answers the file.

use super::{Call, private_json};
use crate::store::store_failure;
use crate::files::AVAILABLE;
use crate::{archive, labels};
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;
use vaultx_core::Problem;

pub const MAX_BODY: usize = super::JSON_BODY_LIMIT;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::user(p, req, &["POST"]).await?;
    let id = call.segment(2);
    let kv = p.kv().await.map_err(store_failure)?;
    let file = archive::set(&call.db, &kv, &call.user.user_id, &id, AVAILABLE, p.now_ms()).await?;
    Ok(private_json(200, &labels::view(&call.db, &file).await?))
}
