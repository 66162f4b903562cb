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

use crate::store::store_failure;
use serde::{Deserialize, Serialize};
use vaultx_core::http::{ApiRequest, ApiResponse, LogLine};
use vaultx_core::ports::{Platform, Spool, Sql, SqlValue, Statement};
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

/// Events moved from the spool per transaction.
pub const DRAIN_BATCH: usize = 500;
/// Events moved by one drain (the rest wait for the next: a wake-up, a read, the sweep).
pub const DRAIN_LIMIT: usize = 20_000;

/// The functions given no database (spin.toml): the signed download, whose path must stay
/// reads only, and the functions that answer without any store.
const WITHOUT_DATABASE: &[&str] = &["file-download", "health-liveness", "openapi"];

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

/// Runs a route's handler on the request the adapter read (through
/// [`vaultx_core::http::serve`]: HEAD as GET, `nosniff`), and around it everything each
/// request gets whatever the route:
/// - a request id (the caller's sane `X-Request-Id`, else a new one), answered in
///   `X-Request-Id` and, in a problem document, as its `requestId` member;
/// - its audit event: for every state-changing call (in SQL) and every download (in the spool);
/// - its log line ([`ApiResponse::log`]), which the adapter writes once the body went out.
///
/// A request the adapter could not read (a body over the route's limit) still gets its id,
/// its problem document and its log line. `function` is the component (`file-download`, or
/// the module's name `file_download`), `route` its path pattern, as the caller's route table
/// has them.
pub async fn audited<P, F, Fut>(p: &P, function: &str, route: &'static str, read: Result<ApiRequest, Problem>, handler: F) -> ApiResponse
where
    P: Platform,
    F: FnOnce(ApiRequest) -> Fut,
    Fut: Future<Output = ApiResponse>,
{
    let started_us = p.now_us();
    let function = function.replace('_', "-");
    let req = match read {
        Ok(req) => req,
        Err(problem) => {
            let id = vaultx_core::ids::new_id(p);
            let mut response = with_request_id(ApiResponse::problem(&problem), &id).with_header("x-content-type-options", "nosniff");
            let line = log_line(&function, route, None, &id, &mut response, None, (started_us, p.now_us()));
            return finish(response, line, &id);
        }
    };
    let id = request_id(p, &req);
    let download = function == "file-download" && matches!(req.method.as_str(), "GET" | "HEAD");
    let audit = download || is_state_changing(&req.method);
    // What the event and the log line need of the request, before the handler takes it.
    let method = req.method.clone();
    let address = req.header("spin-client-addr").or_else(|| req.header("cf-connecting-ip")).map(|a| a.to_owned());
    let user_id = match req.bearer_token() {
        Ok(token) => user_of(p, token).await,
        Err(_) => None,
    };
    let file_id = if download { None } else { file_of(&req) };
    let range = req.header("range").map(|r| r.to_owned());
    let bytes_in = req.body.len();
    // The problem document gets its id before `serve` drops a HEAD's body (its length stays).
    let mut response = vaultx_core::http::serve(Ok(req), |req| async { with_request_id(handler(req).await, &id) }).await;
    // One clock reading for the line's time and duration and the event's time: each reading
    // is a host call.
    let finished_us = p.now_us();
    let line = log_line(&function, route, Some((&method, user_id.as_deref(), bytes_in)), &id, &mut response, address.as_deref(), (started_us, finished_us));
    // Any request of a function with a database may start an overdue sweep (at most one
    // database check per instance and interval); the edge's functions have none to ask.
    if !WITHOUT_DATABASE.contains(&function.as_str()) {
        crate::outbox::sweep_if_due(p).await;
    }
    // A method the route does not have changed nothing and needs no record (and a route
    // without a database, the probes', could not write one).
    if !audit || response.status == 405 {
        return finish(response, line, &id);
    }
    // A download names its file only once its token checked out (the handler says which).
    let file_id = file_id.or_else(|| response.header("x-vaultx-file-id").map(str::to_owned));
    let event = Event {
        id: vaultx_core::ids::new_id(p),
        at: finished_us / 1000,
        user_id,
        action: format!("{function} {method}"),
        file_id,
        address,
        result: response.status,
        request_id: id.clone(),
        detail: problem_type(&response).or(range),
    };
    let stored = if download { spool(p, &event).await } else { insert(p, &event).await };
    if let Err(e) = stored {
        // The call happened; losing its record must not turn its answer into an error. The
        // event still reaches the platform log.
        eprintln!("vaultx: audit event {} not stored: {e}", event.id);
        p.record(&event);
    }
    finish(response, line, &id)
}

/// The account a valid access token names. A function that is not given the JWT secret (the
/// download, the probes) knows no user and says nothing about it.
async fn user_of<P: Platform>(p: &P, token: &str) -> Option<String> {
    let secret = p.get(crate::settings::JWT_SECRET).await.ok().flatten().filter(|s| !s.is_empty())?;
    let signer = vaultx_core::token::Signer::new(&secret).ok()?;
    signer.verify(token, p.now_ms()).ok().map(|s| s.user_id)
}

/// The slug of a problem document's type (`not-found`), for a refusal.
fn problem_type(response: &ApiResponse) -> Option<String> {
    (response.status >= 400)
        .then(|| serde_json::from_slice::<serde_json::Value>(response.body.bytes()).ok())
        .flatten()
        .and_then(|v| v["type"].as_str().map(|t| t.rsplit(':').next().unwrap_or(t).to_owned()))
}

/// A problem document names its request (RFC 9457 §3.2: an extension member), so a client
/// reporting an error hands over the id the logs are searched by.
fn with_request_id(mut response: ApiResponse, id: &str) -> ApiResponse {
    if response.status >= 400 && response.header("content-type") == Some(vaultx_core::problem::CONTENT_TYPE) {
        if let Ok(serde_json::Value::Object(mut doc)) = serde_json::from_slice::<serde_json::Value>(response.body.bytes()) {
            doc.insert("requestId".into(), id.into());
            if let Ok(bytes) = serde_json::to_vec(&doc) {
                response.body = vaultx_core::http::Body::Bytes(bytes);
            }
        }
    }
    response
}

/// The request's log line, less what only the adapter knows (`bytesOut`, `complete`). A
/// route may have started it (the download adds the file, the range, the client); never a
/// secret, a token or a signed URL: the route is the pattern (`/api/files/download/:token`),
/// not the path.
fn log_line(function: &str, route: &'static str, request: Option<(&str, Option<&str>, usize)>, id: &str, response: &mut ApiResponse, address: Option<&str>, (started_us, finished_us): (i64, i64)) -> LogLine {
    // The route's members (the download's file, range, client) are kept: the line is the
    // route's, completed.
    let line = response.log.take().unwrap_or_default();
    let response = &*response;
    let (method, user_id, bytes_in) = request.unwrap_or(("", None, 0));
    LogLine {
        event: "request",
        at: vaultx_core::time::rfc3339(finished_us / 1000),
        request_id: id.to_owned(),
        component: function.to_owned(),
        route,
        method: method.to_owned(),
        status: response.status,
        duration_ms: ((finished_us - started_us).max(0) as f64) / 1000.0,
        user_id: user_id.map(str::to_owned),
        client: address.map(str::to_owned),
        bytes_in,
        problem: problem_type(response),
        ..line
    }
}

fn finish(mut response: ApiResponse, line: LogLine, id: &str) -> ApiResponse {
    response.log = Some(line);
    response.with_header("x-request-id", id)
}

async fn insert<P: Platform>(p: &P, e: &Event) -> Result<(), Problem> {
    let db = p.metadata().await.map_err(store_failure)?;
    insert_into(&db, e).await
}

async fn insert_into(db: &impl Sql, e: &Event) -> Result<(), Problem> {
    db.execute(insert_sql(1), params(e).into()).await.map_err(store_failure)?;
    Ok(())
}

/// Hands a download's event to the spool, keyed so keys sort by time.
async fn spool<P: Platform>(p: &P, e: &Event) -> Result<(), Problem> {
    let spool = p.spool().await.map_err(store_failure)?;
    let bytes = serde_json::to_vec(e).map_err(|_| Problem::internal())?;
    spool.append(&format!("{:016}/{}", e.at, e.id), &bytes).await.map_err(store_failure)
}

/// Rows per INSERT when events are stored in bulk: D1 binds at most 100 parameters per
/// statement, an event takes 9.
const ROWS_PER_INSERT: usize = 11;

/// `INSERT … VALUES (…), (…) …` for `rows` events (1 or [`ROWS_PER_INSERT`]).
fn insert_sql(rows: usize) -> &'static str {
    static SQL: [std::sync::OnceLock<String>; 2] = [std::sync::OnceLock::new(), std::sync::OnceLock::new()];
    let (slot, count) = if rows == 1 { (&SQL[0], 1) } else { (&SQL[1], ROWS_PER_INSERT) };
    slot.get_or_init(|| {
        let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; count].join(", ");
        format!("INSERT INTO audit_events (id, at, user_id, action, file_id, address, result, request_id, detail) VALUES {values} ON CONFLICT (id) DO NOTHING")
    })
}

fn params(e: &Event) -> [SqlValue; 9] {
    [
        e.id.clone().into(),
        SqlValue::Integer(e.at),
        e.user_id.clone().into(),
        e.action.clone().into(),
        e.file_id.clone().into(),
        e.address.clone().into(),
        SqlValue::Integer(e.result as i64),
        e.request_id.clone().into(),
        e.detail.clone().into(),
    ]
}

/// Stores events in one transaction (a batch of multi-row INSERTs). An event already stored
/// (by id) is left as it is, so a batch delivered twice lands once.
pub async fn insert_all(db: &impl Sql, events: &[Event]) -> Result<(), Problem> {
    let mut statements = Vec::new();
    let mut bulk = events.chunks_exact(ROWS_PER_INSERT);
    for group in &mut bulk {
        statements.push(Statement { sql: insert_sql(ROWS_PER_INSERT), params: group.iter().flat_map(params).collect() });
    }
    for e in bulk.remainder() {
        statements.push(Statement { sql: insert_sql(1), params: params(e).into() });
    }
    if statements.is_empty() {
        return Ok(());
    }
    db.batch(statements).await.map_err(store_failure)
}

/// Moves spooled events into SQL, [`DRAIN_BATCH`] at a time in one transaction each, until
/// the spool is empty or [`DRAIN_LIMIT`] moved; returns how many. Records are removed from
/// the spool only after their batch committed; a crash in between inserts them again next
/// time, which their ids turn into nothing.
pub async fn drain<P: Platform>(p: &P) -> Result<usize, Problem> {
    let spool = p.spool().await.map_err(store_failure)?;
    let db = p.metadata().await.map_err(store_failure)?;
    let mut moved = 0;
    while moved < DRAIN_LIMIT {
        let records = spool.take(DRAIN_BATCH).await.map_err(store_failure)?;
        let mut events = Vec::with_capacity(records.len());
        for (receipt, bytes) in &records {
            match serde_json::from_slice::<Event>(bytes) {
                Ok(event) => events.push(event),
                Err(e) => eprintln!("vaultx: spooled audit event {receipt} is unreadable ({e}); dropped"),
            }
        }
        insert_all(&db, &events).await?;
        let receipts: Vec<String> = records.into_iter().map(|(receipt, _)| receipt).collect();
        spool.remove(&receipts).await.map_err(store_failure)?;
        moved += receipts.len();
        if receipts.len() < DRAIN_BATCH {
            break;
        }
    }
    Ok(moved)
}

/// Moves the spooled download events into SQL before the log is read, so a download is in
/// the log its caller reads next on every platform, not only after the next sweep. Best
/// effort: on a failure the page shows what SQL holds and the sweep moves the rest.
pub async fn catch_up<P: Platform>(p: &P) {
    if let Err(e) = drain(p).await {
        eprintln!("vaultx: spooled audit events not moved before a read ({e}); the sweep will move them");
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestPlatform, run};

    fn event(i: usize) -> Event {
        Event {
            id: format!("event-{i:05}"),
            at: 1_790_000_000_000 + i as i64,
            user_id: None,
            action: "file-download GET".into(),
            file_id: Some("file-1".into()),
            address: Some("127.0.0.1".into()),
            result: 200,
            request_id: format!("request-{i}"),
            detail: (i % 2 == 0).then(|| "bytes=0-9".into()),
        }
    }

    fn stored(p: &TestPlatform) -> Vec<Event> {
        let mut filter = Filter { user_id: None, file_id: Some("file-1".into()), action: None, from_ms: None, to_ms: None, after: None, limit: 200 };
        let mut all = Vec::new();
        loop {
            let db = run(p.metadata()).unwrap();
            let (events, next) = run(page(&db, &filter)).unwrap();
            all.extend(events);
            match next {
                None => return all,
                Some(_) => filter.after = all.last().map(|e| (e.at, e.id.clone())),
            }
        }
    }

    #[test]
    fn the_spool_moves_into_sql_in_batches_and_a_record_delivered_twice_lands_once() {
        let p = TestPlatform::new();
        let spool = run(p.spool()).unwrap();
        // More than one transaction's worth, in bulk INSERTs and single ones.
        let events: Vec<Event> = (0..DRAIN_BATCH + 23).map(event).collect();
        for e in &events {
            run(spool.append(&format!("{:016}/{}", e.at, e.id), &serde_json::to_vec(e).unwrap())).unwrap();
        }
        assert_eq!(run(drain(&p)).unwrap(), events.len());
        assert!(p.spool.0.borrow().is_empty());
        let mut back = stored(&p);
        back.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(back, events);
        // A consumer that stored a batch and died before removing it: the batch comes again.
        run(insert_all(&run(p.metadata()).unwrap(), &events[..30])).unwrap();
        for e in &events[..30] {
            run(spool.append(&format!("{:016}/{}", e.at, e.id), &serde_json::to_vec(e).unwrap())).unwrap();
        }
        assert_eq!(run(drain(&p)).unwrap(), 30);
        assert_eq!(stored(&p).len(), events.len());
    }

    #[test]
    fn an_unreadable_record_is_dropped_and_the_rest_still_move() {
        let p = TestPlatform::new();
        let spool = run(p.spool()).unwrap();
        run(spool.append("0000000000000001/garbage", b"{not json")).unwrap();
        run(spool.append("0000000000000002/event-00002", &serde_json::to_vec(&event(2)).unwrap())).unwrap();
        assert_eq!(run(drain(&p)).unwrap(), 2);
        assert_eq!(stored(&p), [event(2)]);
        assert!(p.spool.0.borrow().is_empty());
    }
}
