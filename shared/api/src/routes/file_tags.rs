//! `/api/files/:id/tags` — `POST {"tags": ["invoices", "2026"]}` adds tags (those already
//! there are kept once) and answers the file; `GET` answers `{"tags": [...]}`. At most 10
//! tags per file, each 1–128 letters, digits, spaces or `+ - = . _ : / @` (S3's tag rules);
//! anything else is `422` with `errors[]` and adds nothing.

use super::{Call, private_json};
use crate::labels::{self, MAX_TAGS};
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
    let call = Call::user(p, req, &["GET", "POST"]).await?;
    let file = call.file(2).await?;
    if call.req.method == "GET" {
        return Ok(private_json(200, &serde_json::json!({"tags": labels::tags(&call.db, &file.id).await?})));
    }
    let body: Body = call.req.json()?;
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
    let existing: BTreeSet<String> = labels::tags(&call.db, &file.id).await?.into_iter().collect();
    let total = existing.union(&new).count();
    if total > MAX_TAGS {
        return Err(too_many(total));
    }
    if !labels::add_tags(&call.db, &file, &new).await? {
        // Deleted meanwhile, or concurrent additions took the room.
        let file = call.file(2).await?;
        let now: BTreeSet<String> = labels::tags(&call.db, &file.id).await?.into_iter().collect();
        return Err(too_many(now.union(&new).count()));
    }
    Ok(private_json(200, &labels::view(&call.db, &file).await?))
}
