//! `POST /api/auth/register` — create an account.
//!
//! Request: `{"email": "...", "password": "..."}`. Response: `201` with the account and a
//! `Location` of `/api/users/me`. A taken email is `409`, an invalid one or a weak password `422`.

use crate::accounts::{self, User};
use serde::{Deserialize, Serialize};
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;
use vaultx_core::problem::ProblemKind;
use vaultx_core::{Problem, ids, password, time, validation};

pub const MAX_BODY: usize = super::JSON_BODY_LIMIT;

#[derive(Deserialize)]
struct Register {
    email: String,
    password: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub id: String,
    pub email: String,
    pub created_at: String,
}

impl From<&User> for Account {
    fn from(u: &User) -> Self {
        Self { id: u.id.clone(), email: u.email.clone(), created_at: time::rfc3339(u.created_at_ms) }
    }
}

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(register(p, req).await)
}

async fn register<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    req.expect_method(&["POST"])?;
    let body: Register = req.json()?;
    let email = validation::email(&body.email);
    let strength = validation::new_password(&body.password);
    let errors: Vec<_> = [email.as_ref().err(), strength.as_ref().err()].into_iter().flatten().cloned().collect();
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let email = email.expect("checked above");

    let db = p.metadata().await.map_err(crate::store::store_failure)?;
    let taken = || Problem::new(ProblemKind::EmailTaken, format!("{email} already has an account; sign in instead"));
    // Checked before hashing so a duplicate costs no Argon2 work; the insert re-checks.
    if accounts::find_by_email(&db, &email).await.map_err(crate::store::store_failure)?.is_some() {
        return Err(taken());
    }
    let mut salt = [0u8; 16];
    p.fill(&mut salt);
    let password_hash = password::hash(&body.password, &salt).map_err(|e| {
        eprintln!("vaultx: argon2: {e}");
        Problem::internal()
    })?;
    let user = User { id: ids::new_id(p), email: email.clone(), password_hash, created_at_ms: p.now_ms() };
    if !accounts::insert(&db, &user).await.map_err(crate::store::store_failure)? {
        return Err(taken());
    }
    Ok(ApiResponse::json(201, &Account::from(&user)).with_header("location", "/api/users/me"))
}
