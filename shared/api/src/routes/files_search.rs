//! `GET /api/files/search` — the caller's files by any combination of:
//!
//! | parameter | matches |
//! |---|---|
//! | `q` | name contains it, case-insensitively |
//! | `tags=a,b` | has all of these tags |
//! | `anyTags=a,b` | has at least one of these tags |
//! | `meta.<key>=<value>` | custom metadata `<key>` is exactly `<value>` (repeatable) |
//! | `type` | media type, exact (`image/png`) or a family (`image/*`) |
//! | `minSize`, `maxSize` | size in bytes, inclusive |
//! | `createdFrom`, `createdTo`, `updatedFrom`, `updatedTo` | RFC 3339 or epoch ms; from inclusive, to exclusive |
//! | `status` | uploading, available, archived or invalid |
//! | `minVersions`, `maxVersions` | how many versions the file keeps |
//!
//! sorted by `sort=createdAt|updatedAt|name|size` (`order=desc|asc`, default newest first),
//! `limit` 1–100 (default 20) → `{"items": [...], "nextCursor"}`; pass `cursor=<nextCursor>`
//! with the same criteria for the next page (`nextCursor` is null on the last). Pages never
//! repeat or skip a file, even when files are added or deleted between them.

use super::{Call, private_json};
use crate::store::store_failure;
use crate::search::Query;
use crate::{files, labels};
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::{Platform, Sql};
use vaultx_core::Problem;

pub const MAX_BODY: usize = 0;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::user(p, req, &["GET"]).await?;
    let query = Query::from_request(&call.req)?;
    let density = crate::search::density(&call.db, &call.user.user_id, &query).await?;
    let (sql, params) = query.sql(&call.user.user_id, &density);
    let rows = call.db.query(&sql, params).await.map_err(store_failure)?;
    let mut found = rows.iter().map(files::from_row).collect::<Result<Vec<_>, _>>().map_err(store_failure)?;
    let next = if found.len() as u64 > query.limit {
        found.truncate(query.limit as usize);
        found.last().map(|f| query.cursor_after(f))
    } else {
        None
    };
    let items = labels::views(&call.db, &found).await?;
    Ok(private_json(200, &serde_json::json!({"items": items, "limit": query.limit, "nextCursor": next})))
}
