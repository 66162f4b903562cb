//! A tiny HTTP client for the end-to-end suite. Every test talks to the deployment named by
//! `VAULTX_BASE_URL` (e.g. `http://127.0.0.1:3000`) and nothing else, so the same suite runs
//! against the local runtime, `spin up` or `wrangler dev`.
//!
//! # In detail
//!
//! In detail (depends on ureq): The end-to-end suite: plain HTTP to `VAULTX_BASE_URL` (and the
//! `vaultx` binary), raw sockets for what a client library cannot send (`http_edges.rs`), the
//! seeded concurrency checker (`concurrency.rs`), the region-outage tests (`outage.rs`, run last
//! and one at a time by `tests/run`: they stop and start the S3-compatible server,
//! `infra/local/s3`); `benches/runtime.rs`. `operations.rs`: metrics checked by `promtool`, request
//! ids, the served contract. `tests/crash` is the crash test (its fifth round a client of the
//! seed's protocol, `tests/crash-seed-protocol`, that never calls `/complete`);
//! `tests/access-records` kills the host (the bundled runtime with either spool, the Spin CLI)
//! under download load and checks that every answered download is in the audit log once;
//! `tests/redis-jobs` runs jobs on Redis alone (`--sweep-interval 0`) through a Redis outage;
//! `tests/spin-manifest-schema` checks `spin.toml` against the schema of the Spin CLI that serves
//! it in `tests/run`; `tests/schemathesis` runs schemathesis against the contract;
//! `tests/secrets-in-logs` checks a run's log for every secret and token the suite used.

use serde_json::Value;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts an RFC 9457 problem of the given status and VaultX type slug.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, slug: &str) {
        assert_eq!(self.status, status, "body: {}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.header("content-type"), Some("application/problem+json"));
        let doc = self.json();
        assert_eq!(doc["type"], format!("urn:vaultx:problem:{slug}"), "{doc}");
        assert_eq!(doc["status"], status);
        assert!(doc["title"].is_string() && doc["detail"].is_string(), "{doc}");
    }
}

pub fn base_url() -> String {
    std::env::var("VAULTX_BASE_URL")
        .expect("set VAULTX_BASE_URL to a running VaultX (tests/run starts one and sets it)")
        .trim_end_matches('/')
        .to_owned()
}

pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    pub fn new() -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Self { base: base_url(), agent }
    }

    /// Sends a request; `headers` are extra headers, `body` is sent as is.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Reply {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let result = match body {
            Some(b) => self.agent.run(req.body(b.to_vec()).unwrap()),
            None => self.agent.run(req.body(()).unwrap()),
        };
        let mut resp = result.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status().as_u16();
        let reply_headers = resp.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned())).collect();
        let body_read = resp.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap_or_default();
        let reply = Reply { status, headers: reply_headers, body: body_read };
        secrets::remember_exchange(path, headers, body, &reply);
        reply
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        self.send("GET", path, &headers, None)
    }

    pub fn post_json(&self, path: &str, json: &Value) -> Reply {
        self.send("POST", path, &[("content-type", "application/json")], Some(json.to_string().as_bytes()))
    }

    /// Registers a fresh account and signs it in; returns (email, password, access token).
    pub fn signed_in_user(&self) -> (String, String, String) {
        let email = unique_email();
        let password = "correct horse battery staple".to_owned();
        let r = self.post_json("/api/auth/register", &serde_json::json!({"email": email, "password": password}));
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let r = self.post_json("/api/auth/login", &serde_json::json!({"email": email, "password": password}));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let token = r.json()["accessToken"].as_str().unwrap().to_owned();
        (email, password, token)
    }
}

/// An email no earlier run or test has used (the deployment keeps its data).
pub fn unique_email() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("user-{nanos}-{}-{}@example.com", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// The deployment's chunk size (the seed's CHUNK_SIZE default unless VAULTX_CHUNK_SIZE says).
pub fn chunk_size() -> usize {
    std::env::var("VAULTX_CHUNK_SIZE").ok().and_then(|v| v.parse().ok()).unwrap_or(5 * 1024 * 1024)
}

/// Deterministic pseudo-random bytes (xorshift): different seeds never share chunks.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    vaultx_core::digest::hex(&vaultx_core::digest::sha256(data))
}

impl Client {
    pub fn auth_send(&self, method: &str, path: &str, token: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Reply {
        let auth = format!("Bearer {token}");
        let mut all = vec![("authorization", auth.as_str())];
        all.extend_from_slice(headers);
        self.send(method, path, &all, body)
    }

    /// Creates a file entry for `data`; returns its id.
    pub fn create_file(&self, token: &str, name: &str, data: &[u8]) -> String {
        let body = serde_json::json!({"name": name, "originalName": name, "mimeType": "application/octet-stream",
            "size": data.len(), "checksum": format!("sha256:{}", sha256_hex(data))});
        let r = self.auth_send("POST", "/api/files", token, &[("content-type", "application/json")], Some(body.to_string().as_bytes()));
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        r.json()["id"].as_str().unwrap().to_owned()
    }

    pub fn put_chunk(&self, token: &str, id: &str, index: usize, chunk: &[u8]) -> Reply {
        self.auth_send("POST", &format!("/api/files/{id}/chunks/{index}"), token, &[("content-type", "application/octet-stream")], Some(chunk))
    }

    /// Uploads every chunk of `data`, in order, in the deployment's chunk size.
    pub fn upload(&self, token: &str, id: &str, data: &[u8]) {
        self.upload_with(token, id, data, chunk_size());
    }

    /// A signed download path for the file.
    pub fn signed_path(&self, token: &str, id: &str, seconds: u64) -> String {
        let body = serde_json::json!({"expirationSeconds": seconds});
        let r = self.auth_send("POST", &format!("/api/files/{id}/signed-url"), token, &[("content-type", "application/json")], Some(body.to_string().as_bytes()));
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        r.json()["path"].as_str().unwrap().to_owned()
    }
}

/// Which deployment the suite runs against (`VAULTX_TARGET`: `runtime`, the default, `spin`
/// (the Spin CLI's `spin up`) or `worker` (`wrangler dev`)). A few tests are about the local
/// runtime's own HTTP server or reach into its data directory; elsewhere they call
/// [`not_applicable`] and return.
pub fn target() -> String {
    std::env::var("VAULTX_TARGET").unwrap_or_else(|_| "runtime".into())
}

/// Says that the calling test does not apply to this target, and why, in one line that
/// `tests/run` counts and names in its summary as "not applicable" (not as a pass). The test
/// returns right after.
pub fn not_applicable(reason: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    println!("vaultx-e2e: not applicable on {}: {test}: {reason}", target());
}

/// `host:port` of the deployment.
pub fn authority() -> String {
    base_url().trim_start_matches("http://").trim_end_matches('/').to_owned()
}

/// Sends `request` as raw bytes (`{host}` is replaced by the deployment's `host:port`) and
/// reads one response: for requests a well-behaved client cannot send.
pub fn raw(request: &str) -> Reply {
    raw_bytes(request.replace("{host}", &authority()).as_bytes())
}

pub fn raw_bytes(request: &[u8]) -> Reply {
    let (reply, out) = exchange(request);
    reply.unwrap_or_else(|| panic!("no complete response: {:?}", String::from_utf8_lossy(&out)))
}

/// As [`raw`], but a server that closes the connection without answering (the Spin CLI's, for
/// a request it refuses) gives `None` instead of a failure.
pub fn raw_or_closed(request: &str) -> Option<Reply> {
    exchange(request.replace("{host}", &authority()).as_bytes()).0
}

/// Sends the bytes and reads until one response is complete or the server closes: the
/// response, if one came whole, and every byte read.
fn exchange(request: &[u8]) -> (Option<Reply>, Vec<u8>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(authority()).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // The server may answer and close before it has read everything we send.
    let _ = stream.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if let Some(reply) = parse_reply(&out) {
                    return (Some(reply), out);
                }
            }
            Err(_) => break,
        }
    }
    (parse_reply(&out), out)
}

/// One HTTP/1.1 response with a Content-Length body (or none), once all of it has arrived.
fn parse_reply(bytes: &[u8]) -> Option<Reply> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned())).collect();
    let length: usize = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let body = bytes.get(end + 4..end + 4 + length)?.to_vec();
    Some(Reply { status, headers, body })
}

/// The administrator named in `VAULTX_ADMIN_EMAIL` (tests/run configures it as
/// `admin_emails`), signed in; registered on first use.
pub fn admin_token(c: &Client) -> String {
    let email = std::env::var("VAULTX_ADMIN_EMAIL").expect("set VAULTX_ADMIN_EMAIL to an email in the deployment's admin_emails");
    let password = "admin correct horse battery staple";
    let body = serde_json::json!({"email": email, "password": password});
    let r = c.post_json("/api/auth/register", &body);
    assert!(r.status == 201 || r.status == 409, "{}", String::from_utf8_lossy(&r.body));
    let r = c.post_json("/api/auth/login", &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["accessToken"].as_str().unwrap().to_owned()
}

/// Polls `poll` every `every` until it returns `Ok`: a wait on the deployment's background
/// work, bounded by that work's progress rather than by a clock. `Err(state)` says how far the
/// work has got (job counts, bytes in sync, records arrived); the wait fails only when the state
/// stays the same for two minutes, or after fifteen minutes in all. A busy CI machine slows
/// background work down; it does not stop it, and a stopped one is still caught.
#[track_caller]
pub fn wait_for<T>(what: &str, every: Duration, mut poll: impl FnMut() -> Result<T, String>) -> T {
    let started = std::time::Instant::now();
    let (mut last, mut since) = (None::<String>, started);
    loop {
        let state = match poll() {
            Ok(done) => return done,
            Err(state) => state,
        };
        if last.as_deref() != Some(state.as_str()) {
            (last, since) = (Some(state), std::time::Instant::now());
        }
        let state = last.as_deref().unwrap_or_default();
        assert!(since.elapsed() < Duration::from_secs(120), "{what}: no progress for two minutes: {state}");
        assert!(started.elapsed() < Duration::from_secs(900), "{what}: not done after fifteen minutes: {state}");
        std::thread::sleep(every);
    }
}

/// Waits until no background job is queued or running (the deployment is at rest), for as
/// long as the jobs make progress; returns the job counts by state and kind
/// (`GET /api/admin/jobs`).
#[track_caller]
pub fn wait_for_jobs(c: &Client) -> Value {
    let token = admin_token(c);
    wait_for("jobs still queued or running", Duration::from_millis(100), || {
        let r = c.get("/api/admin/jobs?limit=1", Some(&token));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let counts = r.json()["counts"].clone();
        let busy = ["queued", "running"].iter().any(|s| counts[s].as_object().is_some_and(|k| k.values().any(|n| n.as_i64() > Some(0))));
        if busy { Err(counts.to_string()) } else { Ok(counts) }
    })
}

/// Runs the deployment's integrity check and panics with its violations unless it is clean.
/// Only meaningful at rest: call it when no other request is in flight; it waits for the
/// background jobs to finish first.
#[track_caller]
pub fn assert_integrity(c: &Client) -> Value {
    wait_for_jobs(c);
    let token = admin_token(c);
    let r = c.get("/api/admin/integrity", Some(&token));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let report = r.json();
    assert_eq!(report["ok"], true, "integrity violations: {:#}", report["violations"]);
    report
}

/// One test at a time in a binary whose tests check invariants at rest.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

impl Client {
    /// Uploads every chunk of `data` in chunks of `chunk_size`, in order.
    pub fn upload_with(&self, token: &str, id: &str, data: &[u8], chunk_size: usize) {
        for (i, chunk) in data.chunks(chunk_size).enumerate() {
            let r = self.put_chunk(token, id, i, chunk);
            assert!(r.status == 201 || r.status == 200, "chunk {i}: {}", String::from_utf8_lossy(&r.body));
        }
    }
}

/// A blob taken out of the local runtime's home store behind its back (a lost disk, an
/// operator's mistake), to be put back later. The home store is the key-value store `blobs`
/// in the runtime's data directory, or, when VAULTX_HOME_BLOB_DIR names it, the directory
/// of the S3-compatible server's bucket (one file per object).
pub enum HomeBlob {
    /// The rows as they were: key, value, and the file holding a large value (`kv-values/`),
    /// which stays on disk while its row is away.
    KeyValue { db: String, pieces: Vec<(String, Vec<u8>, Option<String>)> },
    File { path: std::path::PathBuf, bytes: Vec<u8> },
}

impl HomeBlob {
    pub fn take(data_dir: &str, key: &str) -> Self {
        if let Ok(dir) = std::env::var("VAULTX_HOME_BLOB_DIR") {
            let path = std::path::Path::new(&dir).join(key);
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("the blob is stored at {}: {e}", path.display()));
            std::fs::remove_file(&path).unwrap();
            return Self::File { path, bytes };
        }
        let db = format!("{data_dir}/key_value.db");
        let store = rusqlite::Connection::open(&db).unwrap();
        let pieces: Vec<(String, Vec<u8>, Option<String>)> = {
            let mut q = store.prepare("SELECT key, value, file FROM spin_key_value WHERE store = 'blobs' AND key LIKE ?").unwrap();
            q.query_map([format!("{key}/%")], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
        };
        assert!(!pieces.is_empty(), "the blob is stored under {key}/");
        store.execute("DELETE FROM spin_key_value WHERE store = 'blobs' AND key LIKE ?", [format!("{key}/%")]).unwrap();
        Self::KeyValue { db, pieces }
    }

    pub fn restore(self) {
        match self {
            Self::File { path, bytes } => std::fs::write(path, bytes).unwrap(),
            Self::KeyValue { db, pieces } => {
                let store = rusqlite::Connection::open(db).unwrap();
                for (k, v, file) in &pieces {
                    store.execute("INSERT INTO spin_key_value (store, key, value, file) VALUES ('blobs', ?, ?, ?)", rusqlite::params![k, v, file]).unwrap();
                }
            }
        }
    }
}

/// The code of the region whose node is the deployment's blob store `(kind, store)`, created
/// as `code` (with one node) on first use; a later caller, or another test, finds it.
pub fn region_with_store(c: &Client, admin: &str, code: &str, name: &str, kind: &str, store: &str) -> String {
    let existing = || {
        let nodes = c.get("/api/storage/nodes", Some(admin)).json();
        nodes["nodes"].as_array().unwrap().iter().find(|n| n["kind"] == kind && n["store"] == store).map(|n| n["regionCode"].as_str().unwrap().to_owned())
    };
    if let Some(code) = existing() {
        return code;
    }
    let json = [("content-type", "application/json")];
    let r = c.auth_send("POST", "/api/storage/regions", admin, &json, Some(serde_json::json!({"code": code, "name": name}).to_string().as_bytes()));
    assert!(r.status == 201 || r.status == 409, "{}", String::from_utf8_lossy(&r.body));
    let body = serde_json::json!({"regionId": code, "name": format!("{code}-node"), "kind": kind, "store": store, "capacityBytes": 1u64 << 40});
    let r = c.auth_send("POST", "/api/storage/nodes", admin, &json, Some(body.to_string().as_bytes()));
    assert!(r.status == 201 || r.status == 409, "{}", String::from_utf8_lossy(&r.body));
    existing().expect("the store serves a node")
}

/// The deployment's home blob store as a node names it: VAULTX_HOME_STORE (`kind:binding`,
/// as the runtime's `home_blob_store`), else the platform's default.
pub fn home_store() -> (String, String) {
    match std::env::var("VAULTX_HOME_STORE") {
        Ok(v) => {
            let (kind, binding) = v.split_once(':').expect("VAULTX_HOME_STORE is kind:binding");
            (kind.to_owned(), binding.to_owned())
        }
        Err(_) if target() == "worker" => ("r2".into(), "BLOBS".into()),
        Err(_) => ("key-value".into(), "blobs".into()),
    }
}

/// Stops or starts the S3-compatible server of the local run (VAULTX_S3_CONTROL, a command
/// taking `stop` or `start`); `None` where the test run has none to control.
pub fn s3_server(action: &str) -> Option<()> {
    let control = std::env::var("VAULTX_S3_CONTROL").ok()?;
    let status = std::process::Command::new(&control).arg(action).status().unwrap_or_else(|e| panic!("{control} {action}: {e}"));
    assert!(status.success(), "{control} {action}: {status}");
    Some(())
}

/// The region whose node is the deployment's `_eu` store (`eu-central-1` when this call
/// creates it).
pub fn eu_region(c: &Client, admin: &str) -> String {
    let (kind, store) = if target() == "worker" { ("r2", "BLOBS_EU") } else { ("key-value", "blobs_eu") };
    region_with_store(c, admin, "eu-central-1", "Frankfurt", kind, store)
}

/// `POST /api/replication/files/:id/policy` with `body`.
pub fn policy(c: &Client, token: &str, id: &str, body: &Value) -> Reply {
    c.auth_send("POST", &format!("/api/replication/files/{id}/policy"), token, &[("content-type", "application/json")], Some(body.to_string().as_bytes()))
}

/// The Worker's sweep is its Cron Trigger, fired on demand under `wrangler dev`; the local
/// runtime's runs every second by itself.
pub fn sweep(c: &Client) {
    if target() == "worker" {
        c.get("/__scheduled?cron=*+*+*+*+*", None);
    }
}

/// Polls the file's replication status until every region is `in-sync`, for as long as the
/// copies make progress (a job that died while a store was down is queued again after the
/// breaker's reset timeout).
#[track_caller]
pub fn wait_in_sync(c: &Client, token: &str, id: &str) -> Value {
    wait_for("not in sync", Duration::from_millis(100), || {
        let r = c.get(&format!("/api/replication/files/{id}/status"), Some(token));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let status = r.json();
        if status["regions"].as_array().unwrap().iter().all(|r| r["state"] == "in-sync") {
            return Ok(status);
        }
        sweep(c);
        // The regions' states and bytes copied (not lagMs, which grows by itself).
        let progress: Vec<String> = status["regions"].as_array().unwrap().iter().map(|r| format!("{} {} {}/{}", r["region"], r["state"], r["bytesPresent"], r["bytesTotal"])).collect();
        Err(progress.join(", "))
    })
}

/// Every secret the suite sends or receives — passwords, access tokens, signed URLs' tokens —
/// appended to the file `VAULTX_SECRETS_LOG` names (when set), one per line, so `tests/run`
/// can check that none of them reached the deployment's logs (`tests/secrets-in-logs`).
pub mod secrets {
    use std::io::Write;
    use std::sync::Mutex;

    static FILE: Mutex<Option<Option<std::fs::File>>> = Mutex::new(None);

    /// Records one secret.
    pub fn remember(secret: &str) {
        let secret = secret.trim();
        if secret.is_empty() || secret.contains('\n') {
            return;
        }
        let mut file = FILE.lock().unwrap_or_else(|e| e.into_inner());
        let file = file.get_or_insert_with(|| {
            std::env::var("VAULTX_SECRETS_LOG").ok().map(|path| std::fs::OpenOptions::new().create(true).append(true).open(path).expect("VAULTX_SECRETS_LOG is writable"))
        });
        if let Some(f) = file.as_mut() {
            let _ = writeln!(f, "{secret}");
        }
    }

    /// The token of a signed download path or URL (`…/api/files/download/<token>[?…]`).
    pub fn download_token(path: &str) -> Option<&str> {
        let token = path.split("/api/files/download/").nth(1)?;
        Some(token.split(['?', '#']).next().unwrap_or(token))
    }

    /// What one request and its answer carried: the bearer token, a download path's token, a
    /// password in a JSON body; an access token or a signed URL in the answer.
    pub fn remember_exchange(path: &str, headers: &[(&str, &str)], body: Option<&[u8]>, reply: &super::Reply) {
        for (k, v) in headers {
            if k.eq_ignore_ascii_case("authorization") {
                remember(v.trim_start_matches("Bearer ").trim_start_matches("bearer "));
            }
        }
        if let Some(token) = download_token(path) {
            remember(token);
        }
        let json = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).ok();
        if let Some(v) = body.and_then(json) {
            for field in ["password", "newPassword"] {
                if let Some(p) = v[field].as_str() {
                    remember(p);
                }
            }
        }
        if let Some(v) = json(&reply.body) {
            for field in ["accessToken", "secretAccessKey"] {
                if let Some(t) = v[field].as_str() {
                    remember(t);
                }
            }
            for field in ["url", "path"] {
                if let Some(token) = v[field].as_str().and_then(download_token) {
                    remember(token);
                }
            }
        }
    }
}

/// The deployment's Redis (`VAULTX_REDIS_ADDRESS`, `redis://host:port`), when the target has
/// one the suite may look into: the bundled runtime and the Spin CLI.
pub fn redis_address() -> Option<String> {
    std::env::var("VAULTX_REDIS_ADDRESS").ok().filter(|a| !a.is_empty())
}

/// A Redis reply, as RESP2 carries it.
#[derive(Debug, Clone, PartialEq)]
pub enum RedisReply {
    Nil,
    Int(i64),
    Text(Vec<u8>),
    Array(Vec<RedisReply>),
}

impl RedisReply {
    /// Every byte string in the reply, depth first.
    pub fn texts(&self) -> Vec<&[u8]> {
        match self {
            Self::Text(t) => vec![t.as_slice()],
            Self::Array(items) => items.iter().flat_map(Self::texts).collect(),
            _ => Vec::new(),
        }
    }
}

/// Runs one command on the deployment's Redis (a connection of its own).
pub fn redis(address: &str, args: &[&str]) -> RedisReply {
    use std::io::{BufRead, BufReader, Read, Write};
    let authority = address.trim_start_matches("redis://").split('/').next().unwrap_or_default();
    let mut stream = std::net::TcpStream::connect(authority).unwrap_or_else(|e| panic!("redis {authority}: {e}"));
    let mut command = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        command.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    stream.write_all(&command).unwrap();
    fn read(r: &mut BufReader<std::net::TcpStream>) -> RedisReply {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let (kind, rest) = line.trim_end().split_at(1);
        match kind {
            "+" => RedisReply::Text(rest.as_bytes().to_vec()),
            "-" => panic!("redis: {rest}"),
            ":" => RedisReply::Int(rest.parse().unwrap()),
            "$" if rest == "-1" => RedisReply::Nil,
            "$" => {
                let mut text = vec![0; rest.parse::<usize>().unwrap() + 2];
                r.read_exact(&mut text).unwrap();
                text.truncate(text.len() - 2);
                RedisReply::Text(text)
            }
            "*" if rest == "-1" => RedisReply::Nil,
            "*" => RedisReply::Array((0..rest.parse::<usize>().unwrap()).map(|_| read(r)).collect()),
            other => panic!("redis: unexpected reply {other}{rest}"),
        }
    }
    read(&mut BufReader::new(stream))
}
