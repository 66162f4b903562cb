//! `/api/files` — `POST` creates a file entry (status `uploading` until every chunk has
//! arrived), `GET` lists the caller's files, a page at a time.
//!
//! `POST` body: `{"name", "originalName"?, "mimeType"?, "size", "chunkSize"?,
//! "compressionEnabled"?, "deduplicationEnabled"?, "checksum"?, "checksumCrc64nvme"?}` (unknown fields are refused;
//! `chunkSize` defaults to the deployment's `chunk_size`, as S3 clients choose a part size) → `201` with the file, `Location: /api/files/<id>`.
//! `GET ?page=1&limit=20&sort=createdAt|updatedAt|name|size&order=asc|desc[&status=…]` →
//! `{"items": [...], "page", "limit", "total"}`.

use crate::manifests;
use crate::store::store_failure;
use crate::files::{self, AVAILABLE, FileRecord, UPLOADING};
use crate::{auth, settings};
use serde::Deserialize;
use vaultx_core::chunks::{ChunkPlan, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::{Platform, Sql, SqlValue};
use vaultx_core::problem::{FieldError, ProblemKind};
use vaultx_core::{Problem, digest, ids, validation};

pub const MAX_BODY: usize = super::JSON_BODY_LIMIT;
pub const MAX_PAGE_SIZE: u64 = 100;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewFile {
    name: String,
    original_name: Option<String>,
    mime_type: Option<String>,
    size: u64,
    chunk_size: Option<u64>,
    compression_enabled: Option<bool>,
    deduplication_enabled: Option<bool>,
    checksum: Option<String>,
    checksum_crc64nvme: Option<String>,
}

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(match req.method.as_str() {
        "POST" => create(p, req).await,
        "GET" => list(p, req).await,
        _ => Err(Problem::method_not_allowed(&req.method, &["GET", "POST"])),
    })
}

async fn create<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let user = auth::authenticate(p, &req).await?;
    let body: NewFile = req.json()?;
    let mut errors = Vec::new();
    let name = validation::file_name("name", &body.name).map_err(|e| errors.push(e)).ok();
    let original_name = validation::file_name("originalName", body.original_name.as_deref().unwrap_or(&body.name))
        .map_err(|e| errors.push(e))
        .ok();
    let mime_type = validation::mime_type(body.mime_type.as_deref().unwrap_or("application/octet-stream"))
        .map_err(|e| errors.push(e))
        .ok();
    let checksum = match &body.checksum {
        Some(c) => digest::parse_checksum(c).map(Some).map_err(|m| errors.push(FieldError { field: "checksum".into(), message: m })).ok().flatten(),
        None => None,
    };
    let crc = match &body.checksum_crc64nvme {
        Some(c) => match digest::parse_crc64_base64(c) {
            Some(_) => Some(c.clone()),
            None => {
                errors.push(FieldError { field: "checksumCrc64nvme".into(), message: "must be the CRC-64/NVME as base64 of its 8 bytes, big-endian (as S3's x-amz-checksum-crc64nvme)".into() });
                None
            }
        },
        None => None,
    };
    let chunk_size = match body.chunk_size {
        Some(n) => n,
        None => settings::chunk_size(p).await?,
    };
    // The plan fails on its chunk size (only the caller's can be out of range) or on the size.
    let field = if (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) { "size" } else { "chunkSize" };
    let plan = ChunkPlan::new(body.size, chunk_size).map_err(|m| errors.push(FieldError { field: field.into(), message: m })).ok();
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let now = p.now_ms();
    let mut file = FileRecord {
        original_name: original_name.expect("validated"),
        checksum,
        compression_enabled: body.compression_enabled.unwrap_or(false),
        deduplication_enabled: body.deduplication_enabled.unwrap_or(true),
        checksum_crc64nvme: crc,
        ..FileRecord::new_upload(ids::new_id(p), user.user_id, name.expect("validated"), mime_type.expect("validated"), body.size, chunk_size, now)
    };
    let db = p.metadata().await.map_err(store_failure)?;
    // The declared size is reserved now (checked again inside the insert's batch).
    let quota = crate::quotas::of(p, &db, &file.owner_id).await?;
    if let Some(refusal) = crate::quotas::exceeded(&quota, &crate::quotas::used(&db, &file.owner_id).await?, file.size, 1) {
        return Err(refusal);
    }
    if plan.expect("validated").count() == 0 {
        // An empty file has no chunks to wait for. Its checksum can still be wrong.
        if let Some(c) = &file.checksum {
            let empty = format!("sha256:{}", digest::hex(&digest::sha256(b"")));
            if *c != empty {
                return Err(Problem::new(ProblemKind::ChecksumMismatch, format!("an empty file's checksum is {empty}")));
            }
            file.checksum_verified = true;
        }
        let empty_crc = digest::crc64_base64(digest::crc64nvme(b""));
        if file.checksum_crc64nvme.as_ref().is_some_and(|c| *c != empty_crc) {
            return Err(Problem::new(ProblemKind::ChecksumMismatch, format!("an empty file's CRC-64/NVME is {empty_crc}")));
        }
        // Its manifest is written before the row that publishes it, as for any completion.
        let kv = p.kv().await.map_err(store_failure)?;
        let (manifest_id, manifest) = manifests::write(&db, &kv, p, now, &file, Vec::new(), None).await?;
        file.status = AVAILABLE.into();
        file.etag = Some(manifest.etag);
        file.manifest_id = Some(manifest_id);
    }
    // The deployment's default replication policy, if any, comes with the row.
    let mut with_row = crate::quotas::guards(&file.owner_id, &quota);
    with_row.extend(crate::replication::default_policy(p, &file.id, now).await?);
    files::insert(&db, &file, with_row, || crate::quotas::refused(&quota)).await?;
    Ok(ApiResponse::json(201, &file.view()).with_header("location", format!("/api/files/{}", file.id)))
}

fn bad_query(detail: String) -> Problem {
    Problem::new(ProblemKind::InvalidQuery, detail)
}

async fn list<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let user = auth::authenticate(p, &req).await?;
    let number = |name: &str, default: u64, max: u64| -> Result<u64, Problem> {
        match req.query_param(name) {
            None => Ok(default),
            Some(v) => v.parse::<u64>().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| bad_query(format!("{name} must be a whole number from 1 to {max}"))),
        }
    };
    let page = number("page", 1, 1_000_000)?;
    let limit = number("limit", 20, MAX_PAGE_SIZE)?;
    let sort = match req.query_param("sort").as_deref().unwrap_or("createdAt") {
        "createdAt" => "created_at",
        "updatedAt" => "updated_at",
        "name" => "name",
        "size" => "size",
        other => return Err(bad_query(format!("sort={other}: use createdAt, updatedAt, name or size"))),
    };
    let order = match req.query_param("order").as_deref().unwrap_or("desc") {
        "asc" => "ASC",
        "desc" => "DESC",
        other => return Err(bad_query(format!("order={other}: use asc or desc"))),
    };
    let status = match req.query_param("status") {
        None => None,
        Some(s) if s == UPLOADING || s == AVAILABLE || s == files::INVALID || s == files::ARCHIVED => Some(s),
        Some(s) => return Err(bad_query(format!("status={s}: use uploading, available, archived or invalid"))),
    };
    let db = p.metadata().await.map_err(store_failure)?;
    // Files are heads: a version's row is listed under its file (`/versions`).
    let mut filter = "owner_id = ? AND version_of IS NULL".to_owned();
    let mut params: Vec<SqlValue> = vec![user.user_id.clone().into()];
    if let Some(s) = status {
        filter.push_str(" AND status = ?");
        params.push(s.into());
    }
    let total = db.query(&format!("SELECT count(*) FROM files WHERE {filter}"), params.clone()).await.map_err(store_failure)?;
    let total = total.first().map(|r| r.int(0)).transpose().map_err(store_failure)?.unwrap_or(0);
    // `id` breaks ties, so pages never overlap or skip when sort keys repeat.
    let sql = format!("SELECT {} FROM files WHERE {filter} ORDER BY {sort} {order}, id {order} LIMIT ? OFFSET ?", files::COLUMNS);
    params.push(SqlValue::Integer(limit as i64));
    params.push(SqlValue::Integer(((page - 1) * limit) as i64));
    let rows = db.query(&sql, params).await.map_err(store_failure)?;
    let records = rows.iter().map(files::from_row).collect::<Result<Vec<_>, _>>().map_err(store_failure)?;
    let items = crate::labels::views(&db, &records).await?;
    Ok(ApiResponse::json(200, &serde_json::json!({"items": items, "page": page, "limit": limit, "total": total}))
        .with_header("cache-control", "private, no-store"))
}
