//! `GET /api/users/me` — the signed-in user's account.

use super::auth_register::Account;
use crate::auth;
use vaultx_core::Problem;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;

pub const MAX_BODY: usize = 0;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(me(p, req).await)
}

async fn me<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    req.expect_method(&["GET"])?;
    let user = auth::current_user(p, &req).await?;
    Ok(ApiResponse::json(200, &Account::from(&user)).with_header("cache-control", "private, no-store"))
}
