//! `/api/files/:id/tags` — `POST {"tags": ["invoices", "2026"]}` adds tags (those already
//! there are kept once) and answers the file; `GET` answers `{"tags": [...]}`. At most 10
//! tags per file, each 1–128 letters, digits, spaces or `+ - = . _ : / @` (S3's tag rules);
//! anything else is `422` with `errors[]` and adds nothing.

use crate::store::store_failure;
use crate::labels::{self, MAX_TAGS};
use crate::{auth, files};
use serde::Deserialize;
use std::collections::BTreeSet;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;
use vaultx_core::problem::FieldError;
use vaultx_core::Problem;

pub const MAX_BODY: usize = super::JSON_BODY_LIMIT;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    tags: Vec<String>,
}

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

fn too_many(have: usize) -> Problem {
    Problem::validation(vec![FieldError { field: "tags".into(), message: format!("a file has at most {MAX_TAGS} tags; this one would have {have}") }])
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    req.expect_method(&["GET", "POST"])?;
    let user = auth::authenticate(p, &req).await?;
    let id = req.segments().get(2).copied().unwrap_or("").to_owned();
    let db = p.metadata().await.map_err(store_failure)?;
    let file = files::find_head(&db, &user.user_id, &id).await?;
    if req.method == "GET" {
        return Ok(ApiResponse::json(200, &serde_json::json!({"tags": labels::tags(&db, &file.id).await?})).with_header("cache-control", "private, no-store"));
    }
    let body: Body = req.json()?;
    let mut errors = Vec::new();
    if body.tags.is_empty() {
        errors.push(FieldError { field: "tags".into(), message: "name at least one tag".into() });
    }
    for (i, tag) in body.tags.iter().enumerate() {
        if let Err(e) = labels::check_tag(&format!("tags[{i}]"), tag) {
            errors.push(e);
        }
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let new: BTreeSet<String> = body.tags.into_iter().collect();
    let existing: BTreeSet<String> = labels::tags(&db, &file.id).await?.into_iter().collect();
    let total = existing.union(&new).count();
    if total > MAX_TAGS {
        return Err(too_many(total));
    }
    if !labels::add_tags(&db, &file, &new).await? {
        // Deleted meanwhile, or concurrent additions took the room.
        let file = files::find_head(&db, &user.user_id, &id).await?;
        let now: BTreeSet<String> = labels::tags(&db, &file.id).await?.into_iter().collect();
        return Err(too_many(now.union(&new).count()));
    }
    Ok(ApiResponse::json(200, &labels::view(&db, &file).await?).with_header("cache-control", "private, no-store"))
}
