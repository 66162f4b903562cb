//! `DELETE /api/files/:id/tags/:tag` — remove one tag (percent-encoded in the path) → `204`;
//! `404` if the file does not have it.

use super::Call;
use crate::{files, labels};
use vaultx_core::http::{ApiRequest, ApiResponse, percent_decode, respond};
use vaultx_core::ports::Platform;
use vaultx_core::Problem;

pub const MAX_BODY: usize = 0;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::user(p, req, &["DELETE"]).await?;
    let segments = call.req.segments();
    let id = segments.get(2).copied().unwrap_or("").to_owned();
    let tag = percent_decode(segments.get(4).copied().unwrap_or(""));
    let file = files::find_head(&call.db, &call.user.user_id, &id).await?;
    if !labels::remove_tag(&call.db, &file, &tag).await? {
        return Err(Problem::not_found(format!("file {id} has no tag {tag:?}")));
    }
    Ok(ApiResponse::empty(204))
}
