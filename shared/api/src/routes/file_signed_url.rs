//! `POST /api/files/:id/signed-url` — a temporary URL that downloads the file without a
//! bearer token. Body: `{"expirationSeconds": 3600, "permissions": ["read"], "version": 2}`
//! (all optional; at most 7 days; `version` names an older version, default the current one).
//! Response `201 {url, path, token, expiresAt, permissions, version}`. The URL serves the
//! content it was issued for: a later version or a restore does not change what it serves;
//! deleting that version or the file ends it (`404 file-gone`), archiving suspends it (`403
//! file-archived`). Only an `available` file gets one (`409 file-not-available` while
//! uploading, `403 file-archived` when archived).

use super::Call;
use crate::store::store_failure;
use crate::files::{self, AVAILABLE};
use crate::settings;
use serde::Deserialize;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;
use vaultx_core::problem::{FieldError, ProblemKind};
use vaultx_core::signed_url::{Grant, MAX_EXPIRY_SECS, Permission};
use vaultx_core::{Problem, time};

pub const MAX_BODY: usize = super::JSON_BODY_LIMIT;
pub const DEFAULT_EXPIRY_SECS: i64 = 3600;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Request {
    expiration_seconds: Option<i64>,
    permissions: Option<Vec<String>>,
    version: Option<i64>,
}

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

/// The deployment's public origin (`public_url`, e.g. `https://files.example.com`), never the
/// request's `Host`: a client must not be able to make us hand out links to another site.
/// Without one the `url` is relative (the path), to be resolved against the API's address.
async fn public_origin<P: Platform>(p: &P) -> Result<Option<String>, Problem> {
    let Some(url) = p.get(settings::PUBLIC_URL).await.map_err(store_failure)?.filter(|u| !u.trim().is_empty()) else {
        return Ok(None);
    };
    let url = url.trim().trim_end_matches('/');
    let valid = url.split_once("://").is_some_and(|(scheme, rest)| {
        (scheme == "http" || scheme == "https") && !rest.is_empty() && !rest.contains(['/', '?', '#', '@', ' '])
    });
    if !valid {
        eprintln!("vaultx: {} must be an origin such as https://files.example.com", settings::PUBLIC_URL);
        return Err(Problem::internal());
    }
    Ok(Some(url.to_owned()))
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::user(p, req, &["POST"]).await?;
    let body: Request = if call.req.body.is_empty() { Request::default() } else { call.req.json()? };
    let mut errors = Vec::new();
    let expiry = body.expiration_seconds.unwrap_or(DEFAULT_EXPIRY_SECS);
    if !(1..=MAX_EXPIRY_SECS).contains(&expiry) {
        errors.push(FieldError { field: "expirationSeconds".into(), message: format!("must be from 1 to {MAX_EXPIRY_SECS} (7 days)") });
    }
    let mut permissions = Vec::new();
    for name in body.permissions.unwrap_or_else(|| vec!["read".into()]) {
        match Permission::parse(&name) {
            Some(perm) if !permissions.contains(&perm) => permissions.push(perm),
            Some(_) => {}
            None => errors.push(FieldError { field: "permissions".into(), message: format!("{name:?} is not a permission; use read") }),
        }
    }
    if permissions.is_empty() && errors.is_empty() {
        errors.push(FieldError { field: "permissions".into(), message: "must grant at least read".into() });
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let id = call.segment(2);
    let head = call.file(2).await?;
    if head.status == files::ARCHIVED {
        return Err(crate::files::archived(&id));
    }
    let file = match body.version {
        None => head.clone(),
        Some(n) => crate::versions::find(&call.db, &head, n).await?.ok_or_else(|| Problem::not_found(format!("file {id} has no version {n}")))?,
    };
    if file.status != AVAILABLE {
        return Err(Problem::new(ProblemKind::FileNotAvailable, format!("file {id} is {}: upload every chunk first", file.status)));
    }
    let keys = settings::url_keys(p).await?;
    let expires_at = p.now_ms() / 1000 + expiry;
    let Some(manifest_id) = file.manifest_id.clone() else {
        eprintln!("vaultx: file {} is available without a manifest", file.id);
        return Err(Problem::internal());
    };
    let token = keys.sign(&Grant {
        file_id: head.id.clone(),
        manifest_id,
        name: head.original_name.clone(),
        mime_type: head.mime_type.clone(),
        permissions: permissions.clone(),
        expires_at,
    });
    let path = format!("/api/files/download/{token}");
    let url = public_origin(p).await?.map_or_else(|| path.clone(), |o| format!("{o}{path}"));
    Ok(ApiResponse::json(
        201,
        &serde_json::json!({
            "url": url,
            "path": path,
            "token": token,
            "expiresAt": time::rfc3339(expires_at * 1000),
            "permissions": permissions,
            "version": file.version,
        }),
    )
    .with_header("cache-control", "no-store"))
}
