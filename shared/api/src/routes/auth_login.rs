//! `POST /api/auth/login` — exchange email and password for an access token.
//!
//! Request: `{"email": "...", "password": "..."}`. Response: `200`
//! `{"accessToken": "...", "tokenType": "Bearer", "expiresIn": 3600}`. Wrong email or password
//! are indistinguishable: both `401 invalid-credentials`, in about the same time.

use crate::{accounts, auth, settings};
use serde::{Deserialize, Serialize};
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;
use vaultx_core::problem::ProblemKind;
use vaultx_core::token::Subject;
use vaultx_core::{Problem, password, validation};

pub const MAX_BODY: usize = super::JSON_BODY_LIMIT;

/// Verified when the email is unknown, so a miss costs what a hit costs (no user enumeration
/// by timing). It is the hash of a random string nobody knows, at the same parameters.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2VlZC1zYWx0LXZhdWx0eA$7AQ3z3tUe5r0bq6lQ8bVQoU9cgH0xw5ZfNwrJYk3oQY";

#[derive(Deserialize)]
struct Login {
    email: String,
    password: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
}

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(login(p, req).await)
}

async fn login<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    req.expect_method(&["POST"])?;
    let body: Login = req.json()?;
    let email = validation::email(&body.email).map_err(|e| Problem::validation(vec![e]))?;
    if body.password.len() > validation::PASSWORD_MAX_BYTES {
        return Err(Problem::new(ProblemKind::InvalidCredentials, "wrong email or password"));
    }
    let signer = auth::signer(p).await?;
    let ttl = settings::jwt_ttl_secs(p).await?;
    let db = p.metadata().await.map_err(crate::store::store_failure)?;
    let user = accounts::find_by_email(&db, &email).await.map_err(crate::store::store_failure)?;
    let stored = user.as_ref().map_or(DECOY_HASH, |u| u.password_hash.as_str());
    let matches = password::verify(&body.password, stored);
    let user = match user {
        Some(u) if matches => u,
        _ => return Err(Problem::new(ProblemKind::InvalidCredentials, "wrong email or password")),
    };
    let subject = Subject { user_id: user.id, email: user.email };
    let access_token = signer.issue(&subject, p.now_ms(), ttl).map_err(|e| {
        eprintln!("vaultx: signing: {e}");
        Problem::internal()
    })?;
    // RFC 6749 §5.1: token responses must not be cached.
    Ok(ApiResponse::json(200, &TokenResponse { access_token, token_type: "Bearer", expires_in: ttl })
        .with_header("cache-control", "no-store"))
}
