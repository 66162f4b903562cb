//! `/api/files/:id/metadata` — custom metadata, key → value. `GET` answers `{"metadata": {}}`.
//! `POST` changes it and answers the file:
//! - `{"set": {"project": "apollo"}, "remove": ["draft"]}` merges: `set` adds or overwrites
//!   those keys, `remove` deletes those keys, every other key stays;
//! - `{"replace": {"project": "apollo"}}` replaces the whole map (`{}` clears it).
//!
//! Keys are 1–128 of `a-z 0-9 - _ .` (they must survive as HTTP header names, as S3's
//! `x-amz-meta-*`); values at most 1024 characters, no control characters; keys and values
//! together at most 2048 bytes (S3's user-metadata limit). Otherwise `422` with `errors[]`,
//! and nothing changes.

use super::{Call, private_json};
use crate::labels::{self, MAX_METADATA_BYTES};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;
use vaultx_core::problem::FieldError;
use vaultx_core::Problem;

pub const MAX_BODY: usize = super::JSON_BODY_LIMIT;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    set: Option<BTreeMap<String, String>>,
    remove: Option<Vec<String>>,
    replace: Option<BTreeMap<String, String>>,
}

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

fn too_large(bytes: usize) -> Problem {
    Problem::validation(vec![FieldError { field: "metadata".into(), message: format!("keys and values add up to {bytes} bytes; at most {MAX_METADATA_BYTES}") }])
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::user(p, req, &["GET", "POST"]).await?;
    let file = call.file(2).await?;
    if call.req.method == "GET" {
        return Ok(private_json(200, &serde_json::json!({"metadata": labels::metadata(&call.db, &file.id).await?})));
    }
    let body: Body = call.req.json()?;
    let mut errors = Vec::new();
    let replace = body.replace.is_some();
    if replace && (body.set.is_some() || body.remove.is_some()) {
        errors.push(FieldError { field: "replace".into(), message: "send either replace, or set and remove".into() });
    }
    if !replace && body.set.is_none() && body.remove.is_none() {
        errors.push(FieldError { field: "set".into(), message: "send set and/or remove, or replace".into() });
    }
    let set = body.replace.or(body.set).unwrap_or_default();
    let remove: BTreeSet<String> = body.remove.unwrap_or_default().into_iter().collect();
    let prefix = if replace { "replace" } else { "set" };
    for (k, v) in &set {
        if let Err(e) = labels::check_metadata_key(&format!("{prefix}.{k}"), k) {
            errors.push(e);
        }
        if let Err(e) = labels::check_metadata_value(&format!("{prefix}.{k}"), v) {
            errors.push(e);
        }
    }
    for k in &remove {
        if set.contains_key(k) {
            errors.push(FieldError { field: format!("remove.{k}"), message: "a key cannot be both set and removed".into() });
        }
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let mut result = if replace { BTreeMap::new() } else { labels::metadata(&call.db, &file.id).await? };
    for k in &remove {
        result.remove(k);
    }
    result.extend(set.clone());
    let bytes = labels::metadata_bytes(&result);
    if bytes > MAX_METADATA_BYTES {
        return Err(too_large(bytes));
    }
    if !labels::change_metadata(&call.db, &file, replace, &set, &remove).await? {
        let file = call.file(2).await?;
        let mut now = labels::metadata(&call.db, &file.id).await?;
        now.extend(set);
        return Err(too_large(labels::metadata_bytes(&now)));
    }
    Ok(private_json(200, &labels::view(&call.db, &file).await?))
}
