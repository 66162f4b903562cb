//! `GET /api/users/me/access-keys` — the caller's S3 access keys, oldest first:
//! `{"items": [{"accessKeyId", "name", "createdAt"}]}`, never their secrets.
//!
//! `POST /api/users/me/access-keys` `{"name"?}` — a new key: `201 {"accessKeyId",
//! "secretAccessKey", "name", "createdAt"}`. The secret is shown this once; keep it. At most
//! five keys per account (`409 limit-exceeded`); `503 not-configured` when the deployment has
//! no `access_key_sealing_key`. An empty body is `{}`.

use super::{Call, private_json};
use crate::access_keys;
use serde::Deserialize;
use vaultx_core::Problem;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;

pub const MAX_BODY: usize = super::JSON_BODY_LIMIT;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: Option<String>,
}

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::user(p, req, &["GET", "POST"]).await?;
    if call.req.method == "GET" {
        let items = access_keys::list(&call.db, &call.user.user_id).await?;
        return Ok(private_json(200, &serde_json::json!({ "items": items })));
    }
    let body: NewKey = if call.req.body.is_empty() { NewKey::default() } else { call.req.json()? };
    let name = body.name.unwrap_or_default();
    access_keys::check_name(&name).map_err(|e| Problem::validation(vec![e]))?;
    let (key, secret) = access_keys::create(p, &call.db, &call.user.user_id, &name, p.now_ms()).await?;
    let mut view = serde_json::to_value(&key).map_err(|_| Problem::internal())?;
    view["secretAccessKey"] = secret.into();
    Ok(private_json(201, &view).with_header("location", format!("/api/users/me/access-keys/{}", key.id)))
}
