//! `/api/admin/users/:id/quota` (administrators) — `GET` a user's quota and use; `PUT
//! {"maxBytes": 1073741824, "maxFiles": 1000}` sets theirs (0 = unlimited); `DELETE` returns
//! them to the configured default (`quota_bytes`, `quota_files`). Lowering a quota below what
//! a user already stores deletes nothing: new files, versions and chunks are refused (`507`)
//! until they are under it again.

use super::{Call, private_json};
use crate::store::store_failure;
use crate::quotas;
use serde::Deserialize;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::{Platform, Sql, SqlValue};
use vaultx_core::Problem;

pub const MAX_BODY: usize = super::JSON_BODY_LIMIT;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Body {
    max_bytes: u64,
    max_files: u64,
}

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::admin(p, req, &["GET", "PUT", "DELETE"]).await?;
    let user_id = call.segment(3);
    let not_found = || Problem::not_found(format!("no user {user_id}"));
    if !vaultx_core::ids::is_id(&user_id) {
        return Err(not_found());
    }
    if crate::accounts::find_by_id(&call.db, &user_id).await.map_err(store_failure)?.is_none() {
        return Err(not_found());
    }
    match call.req.method.as_str() {
        "PUT" => {
            let body: Body = call.req.json()?;
            let (bytes, files) = (i64::try_from(body.max_bytes), i64::try_from(body.max_files));
            let (Ok(bytes), Ok(files)) = (bytes, files) else {
                return Err(Problem::validation(vec![vaultx_core::problem::FieldError { field: "maxBytes".into(), message: "too large".into() }]));
            };
            call.db.execute(
                "INSERT INTO user_quotas (user_id, max_bytes, max_files) VALUES (?, ?, ?) \
                 ON CONFLICT (user_id) DO UPDATE SET max_bytes = excluded.max_bytes, max_files = excluded.max_files",
                vec![user_id.clone().into(), SqlValue::Integer(bytes), SqlValue::Integer(files)],
            )
            .await
            .map_err(store_failure)?;
        }
        "DELETE" => {
            call.db.execute("DELETE FROM user_quotas WHERE user_id = ?", vec![user_id.clone().into()]).await.map_err(store_failure)?;
        }
        _ => {}
    }
    let quota = quotas::of(p, &call.db, &user_id).await?;
    let used = quotas::used(&call.db, &user_id).await?;
    Ok(private_json(200, &serde_json::json!({"userId": user_id, "quota": quota, "used": used})))
}
