//! `GET /api/files/download/:signedUrl` — the edge download. Needs no JWT secret and no
//! database: the token is checked with the URL-signing keys, and the chunk manifest comes
//! from the key-value store (the immutable manifest the token names). Streams the chunks in
//! order; honours a single `Range` (206/416), `If-Match` (412), `If-None-Match` (304),
//! `If-Range`; sends `ETag`, the `Content-Type` and `Content-Disposition` name the token
//! carries, and a `Cache-Control` that never outlives the token. Every request is written to
//! the audit log, with the bytes actually sent.

use crate::manifests;
use crate::{files, settings};
use vaultx_core::http::{ApiRequest, ApiResponse, Body, LogLine, percent_encode, respond};
use vaultx_core::ports::{Kv, Platform};
use vaultx_core::problem::ProblemKind;
use vaultx_core::range::{self, RangeRequest};
use vaultx_core::signed_url::{Permission, UrlTokenError};
use vaultx_core::Problem;

pub const MAX_BODY: usize = 0;
/// Even a week-long token is cached a day at most, so shared caches do not outlive a delete by
/// more than that.
pub const MAX_CACHE_SECS: i64 = 86_400;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    let mut response = respond(run(p, &req).await);
    // The request's log line (`audit::audited` adds the rest; the adapter the bytes really
    // sent, so a download cut short says so).
    response.log = Some(LogLine {
        file_id: response.header("x-vaultx-file-id").map(str::to_owned),
        range: req.header("range").map(str::to_owned),
        user_agent: req.header("user-agent").map(str::to_owned),
        ..Default::default()
    });
    response
}

/// `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266, RFC 8187): an ASCII fallback
/// for old clients and the exact name for the rest.
pub fn content_disposition(name: &str) -> String {
    let ascii: String = name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{}", percent_encode(name))
}

async fn run<P: Platform>(p: &P, req: &ApiRequest) -> Result<ApiResponse, Problem> {
    req.expect_method(&["GET"])?;
    let token = req.segments().get(3).copied().unwrap_or("");
    let keys = settings::url_keys(p).await?;
    let now_secs = p.now_ms() / 1000;
    let grant = keys.verify(token, now_secs).map_err(|e| match e {
        UrlTokenError::Expired => Problem::new(ProblemKind::ExpiredUrl, "ask the owner for a new link"),
        UrlTokenError::Invalid(why) => Problem::new(ProblemKind::InvalidUrl, why),
    })?;
    if !grant.permissions.contains(&Permission::Read) {
        return Err(Problem::new(ProblemKind::InvalidUrl, "this URL does not grant read"));
    }
    let kv = p.kv().await.map_err(crate::store::store_failure)?;
    let manifest = manifests::read(&kv, &grant.file_id, &grant.manifest_id)
        .await?
        .filter(|m| m.id == grant.file_id)
        .ok_or(());
    let manifest = match manifest {
        Ok(m) => m,
        // Only on a miss: is the file archived rather than gone?
        Err(()) if kv.get(&files::archived_key(&grant.file_id)).await.map_err(crate::store::store_failure)?.is_some() => {
            return Err(crate::files::archived(&grant.file_id));
        }
        Err(()) => return Err(Problem::new(ProblemKind::FileGone, "the file (or this version of it) was deleted; ask the owner for a new link")),
    };

    let max_age = (grant.expires_at - now_secs).clamp(0, MAX_CACHE_SECS);
    let common = |r: ApiResponse| {
        r.with_header("etag", manifest.etag.clone())
            .with_header("cache-control", format!("public, max-age={max_age}"))
            .with_header("accept-ranges", "bytes")
            .with_header("x-vaultx-file-id", manifest.id.clone())
    };
    // If-Match first (RFC 9110 §13.2.2), with strong comparison: a client resuming or
    // patching together a download must get exactly the version it started with.
    if let Some(v) = req.header("if-match") {
        let matches = v.trim() == "*" || v.split(',').any(|t| t.trim() == manifest.etag);
        if !matches {
            let problem = Problem::new(ProblemKind::PreconditionFailed, format!("If-Match: the file's ETag is {}", manifest.etag));
            return Ok(common(ApiResponse::problem(&problem)));
        }
    }
    let matches_etag = req
        .header("if-none-match")
        .is_some_and(|v| v.trim() == "*" || v.split(',').any(|t| t.trim().trim_start_matches("W/") == manifest.etag));
    if matches_etag {
        return Ok(common(ApiResponse::empty(304)));
    }
    // If-Range: serve the range only if the client's copy is this version (RFC 9110 §13.1.5).
    let range_header = match req.header("if-range") {
        Some(tag) if tag.trim() != manifest.etag => None,
        _ => req.header("range"),
    };
    let size = manifest.size;
    let (status, start, end) = match range::parse(range_header, size) {
        RangeRequest::Full => (200, 0, size.saturating_sub(1)),
        RangeRequest::Partial { start, end } => (206, start, end),
        RangeRequest::Unsatisfiable => {
            let problem = Problem::new(ProblemKind::RangeNotSatisfiable, format!("the file has {size} bytes"));
            return Ok(common(ApiResponse::problem(&problem).with_header("content-range", format!("bytes */{size}"))));
        }
    };
    let body = match &manifest.inline {
        _ if size == 0 => Body::Bytes(Vec::new()),
        // A small file's content came with its manifest: nothing more to read.
        Some(content) if content.len() as u64 == size => Body::Bytes(content[start as usize..=end as usize].to_vec()),
        _ => Body::Blobs(manifests::slices(p, &manifest, start, end).await?),
    };
    let mut response = ApiResponse { status, headers: Vec::new(), body, log: None }
        .with_header("content-type", grant.mime_type.clone())
        .with_header("content-disposition", content_disposition(&grant.name));
    if status == 206 {
        response = response.with_header("content-range", format!("bytes {start}-{end}/{size}"));
    }
    Ok(common(response))
}
