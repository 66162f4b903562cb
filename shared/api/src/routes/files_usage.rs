//! `GET /api/files/stats/usage` — the caller's storage:
//!
//! ```json
//! {"files": 3, "logicalBytes": 300, "storedBytes": 120, "savedBytes": 180,
//!  "byStatus": {"uploading": {"files": 0, "bytes": 0}, "available": {…}, "archived": {…}, "invalid": {…}},
//!  "versions": {"count": 2, "bytes": 200},
//!  "regions": [{"region": "default", "storedBytes": 120}],
//!  "quota": {"maxBytes": 0, "maxFiles": 0, "custom": false},
//!  "remaining": {"bytes": null, "files": null}}
//! ```
//!
//! `files` and `byStatus` count files (their current versions); `versions` the older versions
//! kept; `logicalBytes` the declared size of everything (what the quota counts); `storedBytes`
//! what their distinct blobs occupy after deduplication and compression. `remaining` is null
//! where the quota is unlimited.

use super::{Call, private_json};
use crate::store::store_failure;
use crate::quotas;
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::{Platform, Sql};
use vaultx_core::Problem;

pub const MAX_BODY: usize = 0;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::user(p, req, &["GET"]).await?;
    let owner = || vec![call.user.user_id.clone().into()];
    let rows = call.db
        .query(
            // CASE, not a bare comparison: PostgreSQL would answer a boolean.
            "SELECT CASE WHEN version_of IS NULL THEN 1 ELSE 0 END AS head, status, count(*), COALESCE(SUM(size), 0) FROM files WHERE owner_id = ? GROUP BY 1, status",
            owner(),
        )
        .await
        .map_err(store_failure)?;
    let mut by_status = serde_json::Map::new();
    for status in [crate::files::UPLOADING, crate::files::AVAILABLE, crate::files::ARCHIVED, crate::files::INVALID] {
        by_status.insert(status.into(), serde_json::json!({"files": 0, "bytes": 0}));
    }
    let (mut files, mut logical, mut versions, mut version_bytes) = (0i64, 0i64, 0i64, 0i64);
    for r in &rows {
        let (head, status, count, bytes) = (r.int(0).map_err(store_failure)? != 0, r.text(1).map_err(store_failure)?, r.int(2).map_err(store_failure)?, r.int(3).map_err(store_failure)?);
        logical += bytes;
        if head {
            files += count;
            by_status.insert(status.into(), serde_json::json!({"files": count, "bytes": bytes}));
        } else {
            versions += count;
            version_bytes += bytes;
        }
    }
    let stored = call.db
        .query(
            "SELECT COALESCE(SUM(size), 0) FROM blobs WHERE blob_key IN \
             (SELECT c.blob_key FROM file_chunks c JOIN files f ON f.id = c.file_id WHERE f.owner_id = ?)",
            owner(),
        )
        .await
        .map_err(store_failure)?;
    let stored = stored.first().map(|r| r.int(0)).transpose().map_err(store_failure)?.unwrap_or(0);
    let quota = quotas::of(p, &call.db, &call.user.user_id).await?;
    let remaining = |max: u64, used: i64| (max > 0).then(|| max.saturating_sub(used.max(0) as u64));
    Ok(private_json(
        200,
        &serde_json::json!({
            "files": files,
            "availableFiles": by_status["available"]["files"],
            "logicalBytes": logical,
            "storedBytes": stored,
            "savedBytes": (logical - stored).max(0),
            "byStatus": by_status,
            "versions": {"count": versions, "bytes": version_bytes},
            // One blob store per region; this deployment has one.
            "regions": [{"region": "default", "storedBytes": stored}],
            "quota": quota,
            "remaining": {"bytes": remaining(quota.max_bytes, logical), "files": remaining(quota.max_files, files)},
        }),
    ))
}
