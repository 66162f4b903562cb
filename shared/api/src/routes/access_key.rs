//! `DELETE /api/users/me/access-keys/:keyId` — deletes one of the caller's access keys: from
//! then on nothing signed with it is accepted. `204`; another account's key, or none, is `404`.

use super::Call;
use crate::access_keys;
use vaultx_core::Problem;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;

pub const MAX_BODY: usize = 0;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::user(p, req, &["DELETE"]).await?;
    access_keys::delete(&call.db, &call.user.user_id, &call.segment(4)).await?;
    Ok(ApiResponse::empty(204))
}
