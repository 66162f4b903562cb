//! `/api/files/:id/versions` — `GET` the file's version history (`{"items": [{version,
//! current, status, size, checksum, checksumCrc64nvme, etag, createdAt, createdBy,
//! uploadId}]}`, oldest first); `POST` starts a new version.
//!
//! `POST` body: `{"size", "chunkSize"?, "checksum"?, "checksumCrc64nvme"?}` (the same rules
//! as a new file) → `201 {"version", "uploadId", "status": "uploading", "chunkSize",
//! "chunkCount"}`, `Location: /api/files/:id/versions/<version>`. The version's chunks go to
//! `/api/files/<uploadId>/chunks/:index` (and `GET /api/files/<uploadId>/chunks`,
//! `POST /api/files/<uploadId>/complete`), with the same `Content-Digest` and checksum rules
//! as any upload; when the last one is in, the version becomes the file's current content
//! (the file keeps its id, name and tags). One version uploads at a time (`409 conflict`);
//! an archived file takes none (`403 file-archived`); the declared size counts against the
//! quota from now on (`507 quota-exceeded`).

use super::{Call, private_json};
use crate::lifecycle;
use crate::store::store_failure;
use crate::files;
use crate::versions::{self, NewVersion};
use crate::settings;
use serde::Deserialize;
use vaultx_core::chunks::{ChunkPlan, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::Platform;
use vaultx_core::problem::FieldError;
use vaultx_core::{Problem, digest};

pub const MAX_BODY: usize = super::JSON_BODY_LIMIT;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Body {
    size: u64,
    chunk_size: Option<u64>,
    checksum: Option<String>,
    checksum_crc64nvme: Option<String>,
}

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::user(p, req, &["GET", "POST"]).await?;
    let id = call.segment(2);
    if call.req.method == "GET" {
        let head = call.file(2).await?;
        let mut rows = files::family(&call.db, &head.id).await?;
        rows.sort_by_key(|r| r.version);
        let items: Vec<_> = rows.iter().map(|r| versions::view(&head, r)).collect();
        return Ok(private_json(200, &serde_json::json!({"items": items, "current": head.version, "count": head.version_count})));
    }
    let body: Body = call.req.json()?;
    let mut errors = Vec::new();
    let checksum = match &body.checksum {
        Some(c) => digest::parse_checksum(c).map(Some).map_err(|m| errors.push(FieldError { field: "checksum".into(), message: m })).ok().flatten(),
        None => None,
    };
    if body.checksum_crc64nvme.as_deref().is_some_and(|c| digest::parse_crc64_base64(c).is_none()) {
        errors.push(FieldError { field: "checksumCrc64nvme".into(), message: "must be the CRC-64/NVME as base64 of its 8 bytes, big-endian".into() });
    }
    let chunk_size = match body.chunk_size {
        Some(n) => n,
        None => settings::chunk_size(p).await?,
    };
    let field = if (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) { "size" } else { "chunkSize" };
    let plan = ChunkPlan::new(body.size, chunk_size).map_err(|m| errors.push(FieldError { field: field.into(), message: m })).ok();
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let new = NewVersion { size: body.size, chunk_size, checksum, checksum_crc64nvme: body.checksum_crc64nvme.clone() };
    let row = versions::create(p, &call.db, &call.user.user_id, &id, new).await?;
    let mut status = row.status.clone();
    if plan.expect("validated").count() == 0 {
        // An empty version has no chunks to wait for: it completes now (checksums included).
        let blobs = p.blobs().await.map_err(store_failure)?;
        let kv = p.kv().await.map_err(store_failure)?;
        let outcome = lifecycle::complete(&call.db, &blobs, &kv, p, p.now_ms(), &row.id).await;
        if let Err(problem) = outcome {
            // Nothing of it may stay behind.
            let _ = versions::delete_version(&call.db, &blobs, &kv, p.now_ms(), &row).await;
            return Err(problem);
        }
        status = files::AVAILABLE.into();
    }
    Ok(ApiResponse::json(
        201,
        &serde_json::json!({
            "version": row.version,
            "uploadId": row.id,
            "status": status,
            "size": row.size,
            "chunkSize": row.chunk_size,
            "chunkCount": row.plan().count(),
        }),
    )
    .with_header("location", format!("/api/files/{id}/versions/{}", row.version)))
}
