//! The audit log: every state-changing call and every download, recorded durably in
//! `audit_events` (who, what, which file, when, from which address, the result, the request
//! id), readable by admins (`GET /api/admin/audit`) and by owners for their files
//! (`GET /api/files/:id/audit`).
//!
//! Every route runs through [`audited`] (the Spin `route!` macro and the Worker's router call
//! it), so no handler can forget. The signed-download function has no database: it writes its
//! event to the **audit spool** (a key-value store of its own, `audit/<time>/<id>`) before the
//! response goes out, and the jobs' periodic sweep moves spooled events into SQL ([`drain`]);
//! an event is deleted from the spool only after its row committed, and its id makes a
//! replayed insert land once.

use crate::accounts::store_failure;
use serde::{Deserialize, Serialize};
use vaultx_core::http::{ApiRequest, ApiResponse};
use vaultx_core::ports::{Kv, Platform, Sql, SqlValue};
use vaultx_core::Problem;

/// One audit entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: String,
    pub at: i64,
    pub user_id: Option<String>,
    /// `<function> <METHOD>`, e.g. `file-tags POST`, `file-download GET`.
    pub action: String,
    pub file_id: Option<String>,
    pub address: Option<String>,
    /// The HTTP status answered.
    pub result: u16,
    pub request_id: String,
    /// The problem type of a refusal, or what was downloaded (`bytes=0-99`).
    pub detail: Option<String>,
}

pub const SPOOL_PREFIX: &str = "audit/";
/// Events moved from the spool per sweep (the rest wait for the next one).
pub const DRAIN_BATCH: usize = 500;

fn is_state_changing(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "PATCH" | "DELETE")
}

/// The request id: the caller's `X-Request-Id` when it is a sane token, else a new one.
fn request_id<P: Platform>(p: &P, req: &ApiRequest) -> String {
    match req.header("x-request-id") {
        Some(id) if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) => id.to_owned(),
        _ => vaultx_core::ids::new_id(p),
    }
}

/// The file a path names: `/api/files/<id>/…`.
fn file_of(req: &ApiRequest) -> Option<String> {
    let segments = req.segments();
    match segments.as_slice() {
        ["api", "files", id, ..] if vaultx_core::ids::is_id(id) => Some((*id).to_owned()),
        _ => None,
    }
}

/// Runs a route's handler and records its audit event: for every state-changing call (in SQL)
/// and every download (in the spool). Reads answer as they would; every answer carries
/// `X-Request-Id`.
pub async fn audited<P, F, Fut>(p: &P, function: &str, req: ApiRequest, handler: F) -> ApiResponse
where
    P: Platform,
    F: FnOnce(ApiRequest) -> Fut,
    Fut: Future<Output = ApiResponse>,
{
    let function = function.replace('_', "-");
    let id = request_id(p, &req);
    let download = function == "file-download" && matches!(req.method.as_str(), "GET" | "HEAD");
    // Nothing changes through the catch-all 404.
    if !download && (!is_state_changing(&req.method) || function == "not-found") {
        return handler(req).await.with_header("x-request-id", id);
    }
    // What the event needs of the request, before the handler takes it.
    let method = req.method.clone();
    let address = req.header("spin-client-addr").or_else(|| req.header("cf-connecting-ip")).map(|a| a.to_owned());
    let user_id = match req.bearer_token() {
        Ok(token) => match crate::auth::signer(p).await {
            Ok(signer) => signer.verify(token, p.now_ms()).ok().map(|s| s.user_id),
            Err(_) => None,
        },
        Err(_) => None,
    };
    let file_id = if download { None } else { file_of(&req) };
    let range = req.header("range").map(|r| r.to_owned());
    let response = handler(req).await;
    // A download names its file only once its token checked out (the handler says which).
    let file_id = file_id.or_else(|| response.header("x-vaultx-file-id").map(str::to_owned));
    let problem_type = || {
        (response.status >= 400)
            .then(|| serde_json::from_slice::<serde_json::Value>(response.body.bytes()).ok())
            .flatten()
            .and_then(|v| v["type"].as_str().map(|t| t.rsplit(':').next().unwrap_or(t).to_owned()))
    };
    let event = Event {
        id: vaultx_core::ids::new_id(p),
        at: p.now_ms(),
        user_id,
        action: format!("{function} {method}"),
        file_id,
        address,
        result: response.status,
        request_id: id.clone(),
        detail: problem_type().or(range),
    };
    let stored = if download { spool(p, &event).await } else { insert(p, &event).await };
    if let Err(e) = stored {
        // The call happened; losing its record must not turn its answer into an error. The
        // event still reaches the platform log.
        eprintln!("vaultx: audit event {} not stored: {e}", event.id);
        p.record(&serde_json::to_value(&event).unwrap_or_default());
    }
    response.with_header("x-request-id", id)
}

async fn insert<P: Platform>(p: &P, e: &Event) -> Result<(), Problem> {
    let db = p.metadata().await.map_err(store_failure)?;
    insert_into(&db, e).await
}

async fn insert_into(db: &impl Sql, e: &Event) -> Result<(), Problem> {
    db.execute(
        "INSERT INTO audit_events (id, at, user_id, action, file_id, address, result, request_id, detail) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        vec![
            e.id.clone().into(),
            SqlValue::Integer(e.at),
            e.user_id.clone().into(),
            e.action.clone().into(),
            e.file_id.clone().into(),
            e.address.clone().into(),
            SqlValue::Integer(e.result as i64),
            e.request_id.clone().into(),
            e.detail.clone().into(),
        ],
    )
    .await
    .map_err(store_failure)?;
    Ok(())
}

/// Writes an event to the spool, keyed so keys sort by time.
async fn spool<P: Platform>(p: &P, e: &Event) -> Result<(), Problem> {
    let kv = p.spool().await.map_err(store_failure)?;
    let bytes = serde_json::to_vec(e).map_err(|_| Problem::internal())?;
    kv.set(&format!("{SPOOL_PREFIX}{:016}/{}", e.at, e.id), &bytes).await.map_err(store_failure)
}

/// Moves up to [`DRAIN_BATCH`] spooled events into SQL; returns how many. Each is deleted
/// from the spool after its insert committed; a crash in between re-inserts it next time,
/// which its id turns into nothing.
pub async fn drain<P: Platform>(p: &P) -> Result<usize, Problem> {
    let kv = p.spool().await.map_err(store_failure)?;
    let db = p.metadata().await.map_err(store_failure)?;
    let mut keys = kv.list(SPOOL_PREFIX).await.map_err(store_failure)?;
    keys.sort();
    keys.truncate(DRAIN_BATCH);
    for key in &keys {
        if let Some(bytes) = kv.get(key).await.map_err(store_failure)? {
            match serde_json::from_slice::<Event>(&bytes) {
                Ok(event) => insert_into(&db, &event).await?,
                Err(e) => eprintln!("vaultx: spooled audit event {key} is unreadable ({e}); dropped"),
            }
        }
        kv.delete(key).await.map_err(store_failure)?;
    }
    Ok(keys.len())
}

/// A page of events, newest first, after the cursor.
pub struct Filter {
    pub user_id: Option<String>,
    pub file_id: Option<String>,
    pub action: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// (at, id) of the last event of the previous page.
    pub after: Option<(i64, String)>,
    pub limit: u64,
}

pub async fn page(db: &impl Sql, f: &Filter) -> Result<(Vec<Event>, Option<String>), Problem> {
    let mut sql = String::from("SELECT id, at, user_id, action, file_id, address, result, request_id, detail FROM audit_events WHERE 1 = 1");
    let mut params: Vec<SqlValue> = Vec::new();
    if let Some(u) = &f.user_id {
        sql.push_str(" AND user_id = ?");
        params.push(u.clone().into());
    }
    if let Some(id) = &f.file_id {
        sql.push_str(" AND file_id = ?");
        params.push(id.clone().into());
    }
    if let Some(a) = &f.action {
        // `file-tags` matches every method of it; `file-tags POST` one.
        sql.push_str(" AND (action = ? OR action LIKE ?)");
        params.push(a.clone().into());
        params.push(format!("{} %", a.replace(['%', '_'], "")).into());
    }
    if let Some(from) = f.from_ms {
        sql.push_str(" AND at >= ?");
        params.push(SqlValue::Integer(from));
    }
    if let Some(to) = f.to_ms {
        sql.push_str(" AND at < ?");
        params.push(SqlValue::Integer(to));
    }
    if let Some((at, id)) = &f.after {
        sql.push_str(" AND (at < ? OR (at = ? AND id < ?))");
        params.extend([SqlValue::Integer(*at), SqlValue::Integer(*at), id.clone().into()]);
    }
    sql.push_str(" ORDER BY at DESC, id DESC LIMIT ?");
    params.push(SqlValue::Integer(f.limit as i64 + 1));
    let rows = db.query(&sql, params).await.map_err(store_failure)?;
    let opt = |r: &vaultx_core::ports::Row, i: usize| match r.0.get(i) {
        Some(SqlValue::Text(s)) => Some(s.clone()),
        _ => None,
    };
    let mut events = rows
        .iter()
        .map(|r| {
            Ok(Event {
                id: r.text(0)?.to_owned(),
                at: r.int(1)?,
                user_id: opt(r, 2),
                action: r.text(3)?.to_owned(),
                file_id: opt(r, 4),
                address: opt(r, 5),
                result: r.int(6)? as u16,
                request_id: r.text(7)?.to_owned(),
                detail: opt(r, 8),
            })
        })
        .collect::<Result<Vec<_>, vaultx_core::ports::StoreError>>()
        .map_err(store_failure)?;
    let next = if events.len() as u64 > f.limit {
        events.truncate(f.limit as usize);
        events.last().map(|e| crate::search::encode_cursor(&serde_json::json!([e.at, e.id])))
    } else {
        None
    };
    Ok((events, next))
}

/// The event as the API shows it.
pub fn view(e: &Event) -> serde_json::Value {
    serde_json::json!({
        "id": e.id,
        "at": vaultx_core::time::rfc3339(e.at),
        "userId": e.user_id,
        "action": e.action,
        "fileId": e.file_id,
        "address": e.address,
        "result": e.result,
        "requestId": e.request_id,
        "detail": e.detail,
    })
}

/// Parses the query of an audit listing: `user`, `action`, `from`, `to` (RFC 3339 or epoch
/// milliseconds), `limit` (1–200, default 50), `cursor`.
pub fn filter(req: &ApiRequest) -> Result<Filter, Problem> {
    let bad = |m: String| Problem::new(vaultx_core::problem::ProblemKind::InvalidQuery, m);
    let time = |name: &str| -> Result<Option<i64>, Problem> {
        match req.query_param(name) {
            None => Ok(None),
            Some(v) => crate::search::parse_time(&v).map(Some).ok_or_else(|| bad(format!("{name}={v}: use an RFC 3339 time or milliseconds since the epoch"))),
        }
    };
    let limit = match req.query_param("limit") {
        None => 50,
        Some(v) => v.parse::<u64>().ok().filter(|n| (1..=200).contains(n)).ok_or_else(|| bad("limit must be a whole number from 1 to 200".into()))?,
    };
    let after = match req.query_param("cursor") {
        None => None,
        Some(c) => {
            let v = crate::search::decode_cursor(&c).ok_or_else(|| bad("cursor is not one this API issued".into()))?;
            match (v[0].as_i64(), v[1].as_str()) {
                (Some(at), Some(id)) => Some((at, id.to_owned())),
                _ => return Err(bad("cursor is not one this API issued".into())),
            }
        }
    };
    Ok(Filter {
        user_id: req.query_param("user"),
        file_id: None,
        action: req.query_param("action"),
        from_ms: time("from")?,
        to_ms: time("to")?,
        after,
        limit,
    })
}
