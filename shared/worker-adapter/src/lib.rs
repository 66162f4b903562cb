//! The VaultX ports on Cloudflare Workers (the `worker` crate): metadata on D1, blobs on an R2
//! bucket per region, hot metadata (manifests) on KV, configuration from vars and secrets, the
//! audit log on the Workers console. Plus the request/response translation for the one Worker.
//!
//! # In detail
//!
//! In detail (depends on vaultx-core, worker): The ports on the `worker` crate: `Sql` on D1,
//! `Blobs` on R2 (`BLOBS`; `BLOBS_<NAME>` for a storage node), `Kv` on Workers KV (`MANIFESTS`),
//! the audit spool as a `JOBS` Queue message per download sent after the response (`waitUntil`; the
//! `AUDIT` KV namespace when the Queue refuses), `Config` on vars/secrets, `Queue` on the `JOBS`
//! Queue, `AuditLog` on the console; request/response translation with streamed, fixed-length
//! downloads; answers only `ALLOWED_HOSTS` (workerd builds the URL from `Host`).

use vaultx_core::http::{ApiRequest, ApiResponse, LogLine, LogOnDrop, BlobSlice, Body};
use vaultx_core::ports::{AuditLog, Blobs, Clock, Config, Entropy, Kv, KvSpool, Platform, Queue, Row, Spool, Sql, SqlValue, Statement, StoreError};
use vaultx_core::problem::ProblemKind;
use vaultx_core::Problem;
use worker::wasm_bindgen::JsValue;
use worker::{D1Database, Env, Headers, Request, Response, ResponseBody};

/// Binding names in wrangler.toml.
pub const D1_BINDING: &str = "DB";
pub const BLOBS_BINDING: &str = "BLOBS";
/// The kind of blob store an R2 binding is, as storage nodes name it.
pub const R2_KIND: &str = "r2";
pub const MANIFESTS_BINDING: &str = "MANIFESTS";
/// The KV namespace spooling the download path's audit events (shared/api/src/audit.rs).
pub const AUDIT_BINDING: &str = "AUDIT";
/// The Queue the job wake-ups go to; the same Worker consumes it (`#[event(queue)]`).
pub const JOBS_BINDING: &str = "JOBS";

/// What travels through the Queue: a job wake-up (`kind` and job `id`), or a download's
/// access record (`kind` [`AUDIT_RECORD`], `id` its spool key, `record` the event's JSON).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct JobMessage {
    pub kind: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
}

/// The `kind` of a message carrying an access record.
pub const AUDIT_RECORD: &str = "audit-record";

#[derive(Clone)]
pub struct WorkerPlatform {
    env: Env,
    /// The request's context, for work that goes on after the response (`waitUntil`).
    ctx: Option<std::rc::Rc<worker::Context>>,
}

impl WorkerPlatform {
    pub fn new(env: Env) -> Self {
        Self { env, ctx: None }
    }

    /// The platform of one request, which may leave work to finish after its response.
    pub fn with_context(env: Env, ctx: worker::Context) -> Self {
        Self { env, ctx: Some(std::rc::Rc::new(ctx)) }
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{what}: {e}"))
}

impl Clock for WorkerPlatform {
    fn now_ms(&self) -> i64 {
        worker::Date::now().as_millis() as i64
    }
}

impl Entropy for WorkerPlatform {
    fn fill(&self, buf: &mut [u8]) {
        // crypto.getRandomValues; failing would mean no usable randomness, so stop.
        getrandom::fill(buf).expect("crypto.getRandomValues is available");
    }
}

impl Config for WorkerPlatform {
    /// Spin-style names (`jwt_secret`) are Worker bindings in upper case (`JWT_SECRET`):
    /// secrets first, then plain vars.
    async fn get(&self, name: &str) -> Result<Option<String>, StoreError> {
        let binding = name.to_ascii_uppercase();
        if let Ok(secret) = self.env.secret(&binding) {
            return Ok(Some(secret.to_string()));
        }
        Ok(self.env.var(&binding).ok().map(|v| v.to_string()))
    }
}

impl Queue for WorkerPlatform {
    async fn wake(&self, kind: &str, job_id: &str) -> Result<(), StoreError> {
        let queue = self.env.queue(JOBS_BINDING).map_err(|e| StoreError::AccessDenied(format!("Queue binding {JOBS_BINDING}: {e}")))?;
        queue.send(JobMessage { kind: kind.to_owned(), id: job_id.to_owned(), record: None }).await.map_err(|e| unavailable("Queue send", e))
    }
}

impl AuditLog for WorkerPlatform {
    fn record<E: serde::Serialize + ?Sized>(&self, event: &E) {
        if let Ok(line) = serde_json::to_string(event) {
            worker::console_log!("{line}");
        }
    }
}

impl Platform for WorkerPlatform {
    type Metadata = D1Sql;
    type Blobs = R2Blobs;
    type Kv = WorkersKv;
    type Spool = WorkerSpool;

    async fn metadata(&self) -> Result<D1Sql, StoreError> {
        self.env.d1(D1_BINDING).map(D1Sql).map_err(|e| StoreError::AccessDenied(format!("D1 binding {D1_BINDING}: {e}")))
    }

    async fn blobs(&self) -> Result<R2Blobs, StoreError> {
        self.env.bucket(BLOBS_BINDING).map(R2Blobs).map_err(|e| StoreError::AccessDenied(format!("R2 binding {BLOBS_BINDING}: {e}")))
    }

    async fn home_store(&self) -> Result<(String, String), StoreError> {
        Ok((R2_KIND.to_owned(), BLOBS_BINDING.to_owned()))
    }

    /// R2 blob stores are the bindings `BLOBS` and `BLOBS_<NAME>` (`[[r2_buckets]]`).
    async fn node_blobs(&self, kind: &str, binding: &str) -> Result<R2Blobs, StoreError> {
        if kind != R2_KIND {
            return Err(StoreError::Unavailable(format!("this deployment has no {kind:?} blob stores")));
        }
        if binding != BLOBS_BINDING && !binding.strip_prefix("BLOBS_").is_some_and(|rest| !rest.is_empty()) {
            return Err(StoreError::AccessDenied(format!("{binding:?} is not a blob store binding (BLOBS, BLOBS_<NAME>)")));
        }
        self.env.bucket(binding).map(R2Blobs).map_err(|e| StoreError::Unavailable(format!("R2 binding {binding}: {e}")))
    }

    async fn kv(&self) -> Result<WorkersKv, StoreError> {
        self.env.kv(MANIFESTS_BINDING).map(WorkersKv).map_err(|e| StoreError::AccessDenied(format!("KV binding {MANIFESTS_BINDING}: {e}")))
    }

    async fn spool(&self) -> Result<WorkerSpool, StoreError> {
        Ok(WorkerSpool(self.clone()))
    }
}

/// The audit spool on Workers. A download's record is a message on the `JOBS` Queue, sent
/// after the response went out (`waitUntil`): no KV write per download (a billed,
/// rate-limited `put`). The Queue delivers it at least once, in batches, to this Worker's
/// consumer, which stores each batch in one D1 transaction (`vaultx_api::audit::insert_all`).
/// A record the Queue refused goes to the `AUDIT` KV namespace, which the sweep drains.
pub struct WorkerSpool(WorkerPlatform);

impl WorkerSpool {
    fn key_value(&self) -> Result<KvSpool<WorkersKv>, StoreError> {
        key_value_spool(&self.0.env)
    }
}

fn key_value_spool(env: &Env) -> Result<KvSpool<WorkersKv>, StoreError> {
    let kv = env.kv(AUDIT_BINDING).map_err(|e| StoreError::AccessDenied(format!("KV binding {AUDIT_BINDING}: {e}")))?;
    Ok(KvSpool(WorkersKv(kv)))
}

impl Spool for WorkerSpool {
    async fn append(&self, key: &str, record: &[u8]) -> Result<(), StoreError> {
        let queue = self.0.env.queue(JOBS_BINDING).map_err(|e| StoreError::AccessDenied(format!("Queue binding {JOBS_BINDING}: {e}")))?;
        let message = JobMessage { kind: AUDIT_RECORD.to_owned(), id: key.to_owned(), record: Some(String::from_utf8_lossy(record).into_owned()) };
        // The fallback is opened only if the Queue refuses: not on every download.
        let env = self.0.env.clone();
        let (key, record) = (key.to_owned(), record.to_vec());
        let send = async move {
            if let Err(e) = queue.send(message).await {
                worker::console_error!("access record {key} not queued ({e}); spooled to KV");
                let stored = match key_value_spool(&env) {
                    Ok(kv) => kv.append(&key, &record).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = stored {
                    worker::console_error!("access record {key} lost: {e}");
                }
            }
        };
        match &self.0.ctx {
            Some(ctx) => ctx.wait_until(send),
            None => send.await,
        }
        Ok(())
    }

    async fn take(&self, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.key_value()?.take(limit).await
    }

    async fn remove(&self, receipts: &[String]) -> Result<(), StoreError> {
        self.key_value()?.remove(receipts).await
    }
}

/// The metadata store on D1 (SQLite at the edge: same SQL, same `?` placeholders).
pub struct D1Sql(D1Database);

fn to_js(v: SqlValue) -> JsValue {
    match v {
        SqlValue::Null => JsValue::null(),
        // JS numbers hold integers exactly up to 2^53: ample for sizes and millisecond times.
        SqlValue::Integer(n) => JsValue::from_f64(n as f64),
        SqlValue::Real(f) => JsValue::from_f64(f),
        SqlValue::Text(s) => JsValue::from_str(&s),
        SqlValue::Blob(b) => worker::js_sys::Uint8Array::from(b.as_slice()).into(),
    }
}

fn from_json(v: serde_json::Value) -> SqlValue {
    match v {
        serde_json::Value::Null => SqlValue::Null,
        serde_json::Value::Bool(b) => SqlValue::Integer(b as i64),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => SqlValue::Integer(i),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => SqlValue::Integer(f as i64),
            (None, Some(f)) => SqlValue::Real(f),
            _ => SqlValue::Null,
        },
        serde_json::Value::String(s) => SqlValue::Text(s),
        serde_json::Value::Array(a) => SqlValue::Blob(a.into_iter().filter_map(|x| x.as_u64().map(|b| b as u8)).collect()),
        serde_json::Value::Object(_) => SqlValue::Null,
    }
}

impl D1Sql {
    fn statement(&self, sql: &str, params: Vec<SqlValue>) -> Result<worker::D1PreparedStatement, StoreError> {
        let params: Vec<JsValue> = params.into_iter().map(to_js).collect();
        self.0.prepare(sql).bind(&params).map_err(|e| unavailable("D1 bind", e))
    }
}

impl Sql for D1Sql {
    async fn query(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<Row>, StoreError> {
        let rows: Vec<Vec<serde_json::Value>> = self.statement(sql, params)?.raw().await.map_err(|e| unavailable("D1 query", e))?;
        Ok(rows.into_iter().map(|r| Row(r.into_iter().map(from_json).collect())).collect())
    }

    async fn execute(&self, sql: &str, params: Vec<SqlValue>) -> Result<u64, StoreError> {
        let result = self.statement(sql, params)?.run().await.map_err(|e| unavailable("D1 execute", e))?;
        let meta = result.meta().map_err(|e| unavailable("D1 meta", e))?;
        Ok(meta.and_then(|m| m.changes).unwrap_or(0) as u64)
    }

    /// D1 runs a batch as one transaction.
    async fn batch(&self, statements: Vec<Statement>) -> Result<(), StoreError> {
        let prepared = statements.into_iter().map(|s| self.statement(s.sql, s.params)).collect::<Result<Vec<_>, _>>()?;
        self.0.batch(prepared).await.map(drop).map_err(|e| StoreError::from_backend(format!("D1 batch: {e}")))
    }
}

/// Blobs on R2: one object per blob (R2 takes a chunk in one piece).
pub struct R2Blobs(worker::Bucket);

impl Blobs for R2Blobs {
    async fn put(&self, key: &str, data: &[u8]) -> Result<(), StoreError> {
        self.0.put(key, data.to_vec()).execute().await.map(drop).map_err(|e| unavailable("R2 put", e))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(object) = self.0.get(key).execute().await.map_err(|e| unavailable("R2 get", e))? else {
            return Ok(None);
        };
        match object.body() {
            Some(body) => body.bytes().await.map(Some).map_err(|e| unavailable("R2 read", e)),
            None => Ok(Some(Vec::new())),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key).await.map_err(|e| unavailable("R2 delete", e))
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        let (mut keys, mut cursor) = (Vec::new(), None::<String>);
        loop {
            let mut request = self.0.list();
            if let Some(c) = cursor.take() {
                request = request.cursor(c);
            }
            let page = request.execute().await.map_err(|e| unavailable("R2 list", e))?;
            keys.extend(page.objects().iter().map(|o| o.key()));
            match page.cursor().filter(|_| page.truncated()) {
                Some(next) => cursor = Some(next),
                None => return Ok(keys),
            }
        }
    }
}

/// Hot metadata on Workers KV.
pub struct WorkersKv(worker::KvStore);

impl Kv for WorkersKv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key).bytes().await.map_err(|e| unavailable("KV get", e))
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0
            .put_bytes(key, value)
            .map_err(|e| unavailable("KV put", e))?
            .execute()
            .await
            .map_err(|e| unavailable("KV put", e))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key).await.map_err(|e| unavailable("KV delete", e))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let (mut keys, mut cursor) = (Vec::new(), None::<String>);
        loop {
            let mut request = self.0.list().prefix(prefix.to_owned());
            if let Some(c) = cursor.take() {
                request = request.cursor(c);
            }
            let page = request.execute().await.map_err(|e| unavailable("KV list", e))?;
            keys.extend(page.keys.into_iter().map(|k| k.name));
            match page.cursor.filter(|_| !page.list_complete) {
                Some(next) => cursor = Some(next),
                None => return Ok(keys),
            }
        }
    }
}

/// The `ALLOWED_HOSTS` variable: the `host[:port]` values this Worker answers for,
/// comma-separated (as Django's `ALLOWED_HOSTS`). Empty or unset: any.
pub const ALLOWED_HOSTS: &str = "ALLOWED_HOSTS";

/// Reads a request for a route that accepts at most `max_body` bytes (413 beyond). Workers
/// need a known length to store into R2 anyway, and bound memory at 128 MB: a body is read
/// only when its declared length fits. A route that takes no body (`max_body` 0) ignores one.
/// With `allowed_hosts`, a request for any other authority is refused with 421.
pub async fn read_request(mut req: Request, max_body: usize, allowed_hosts: &[String]) -> Result<ApiRequest, Problem> {
    // The URL is the platform's: workerd builds it from `Host` and the request line, and hands
    // us `Host` already reduced to the URL's host, so a `Host` carrying a path rewrites the URL
    // before we see it (`Host: x/api/files/C?` arrives as http://x/api/files/C?/…). Answering
    // only the configured hosts closes that; Cloudflare's edge, in front of a deployed Worker,
    // only routes hostnames of the zone anyway. Signed URLs never use the Host (`public_url`).
    let url = req.url().map_err(|_| Problem::new(ProblemKind::BadRequest, "the request URL is not valid"))?;
    if !allowed_hosts.is_empty() {
        let authority = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or("")),
            None => url.host_str().unwrap_or("").to_owned(),
        };
        if !allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(&authority)) {
            return Err(Problem::new(ProblemKind::MisdirectedRequest, "the request's host is not one this deployment serves"));
        }
    }
    let too_large = || Problem::new(ProblemKind::PayloadTooLarge, format!("this route accepts at most {max_body} bytes"));
    let declared = req.headers().get("content-length").ok().flatten().and_then(|v| v.parse::<u64>().ok());
    if max_body > 0 && declared.is_some_and(|n| n > max_body as u64) {
        return Err(too_large());
    }
    let headers: Vec<(String, String)> = req.headers().entries().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    // The method exactly as the platform hands it over (methods are case-sensitive; note that
    // Fetch itself upper-cases the six it standardises, such as `delete`).
    let method = req.inner().method();
    let body = if max_body == 0 || method == "GET" || method == "HEAD" {
        Vec::new()
    } else {
        req.bytes().await.map_err(|e| {
            worker::console_error!("vaultx: reading a request body: {e}");
            Problem::new(ProblemKind::BadRequest, "the request body could not be read")
        })?
    };
    if body.len() > max_body {
        return Err(too_large());
    }
    Ok(ApiRequest { method, path: url.path().to_owned(), query: url.query().unwrap_or("").to_owned(), headers, body, sent_as_head: false })
}

/// Turns a handler's response into a Workers response; blob-slice bodies stream from R2 one
/// blob at a time behind a fixed length, so clients get `Content-Length`.
pub fn into_response(platform: &WorkerPlatform, api: ApiResponse) -> worker::Result<Response> {
    let headers = Headers::new();
    for (name, value) in &api.headers {
        // Workers set Content-Length from the body, except for bodiless answers to HEAD,
        // where the handler's own value is kept.
        if name != "content-length" || api.body.is_empty() {
            headers.append(name, value)?;
        }
    }
    let length = api.body.len();
    let recorder = platform.clone();
    let audit = LogOnDrop::new(api.log, length, move |event: &LogLine| recorder.record(event));
    let body = match api.body {
        Body::Bytes(bytes) => {
            audit.sent_whole();
            if bytes.is_empty() { ResponseBody::Empty } else { ResponseBody::Body(bytes) }
        }
        Body::Blobs(slices) => {
            let stream = worker::FixedLengthStream::wrap(blob_stream(platform.clone(), slices, audit), length);
            let sys: worker::worker_sys::FixedLengthStream = stream.into();
            ResponseBody::Stream(sys.readable())
        }
    };
    Ok(Response::from_body(body)?.with_status(api.status).with_headers(headers))
}

/// One blob at a time; the audit event goes out when the stream ends or is dropped, with the
/// bytes really sent.
fn blob_stream<F: FnMut(&LogLine) + 'static>(
    platform: WorkerPlatform,
    slices: Vec<BlobSlice>,
    audit: LogOnDrop<F>,
) -> impl futures::Stream<Item = worker::Result<Vec<u8>>> + 'static {
    let reader = vaultx_core::failover::Reader::new(platform);
    futures::stream::unfold((reader, slices.into_iter(), audit), move |(mut reader, mut rest, mut audit)| {
        async move {
            let slice = rest.next()?;
            // Each slice from the first of its stores that serves it (vaultx_core::failover).
            match reader.read(&slice).await {
                Ok(bytes) => {
                    audit.sent += bytes.len() as u64;
                    Some((Ok(bytes), (reader, rest, audit)))
                }
                Err(e) => Some((Err(worker::Error::RustError(e)), (reader, Vec::new().into_iter(), audit))),
            }
        }
    })
}
