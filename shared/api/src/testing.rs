//! A native test platform: real SQLite (in memory) with the real migrations, a settable
//! clock, fixed variables. Lets handler tests run without a wasm runtime.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use vaultx_core::http::{ApiRequest, ApiResponse};
use vaultx_core::ports::*;

pub const SECRET: &str = "test-secret-test-secret-test-secret!";

pub struct TestPlatform {
    pub conn: Rc<rusqlite::Connection>,
    pub now: Cell<i64>,
    pub vars: RefCell<HashMap<String, String>>,
    pub blobs: MemStore,
    /// A second region's blob store (`key-value` `blobs_eu`).
    pub eu_blobs: MemStore,
    pub kv: MemStore,
    pub spool: MemStore,
    pub audit: RefCell<Vec<serde_json::Value>>,
    /// Every wake-up sent, as (kind, job id).
    pub woken: RefCell<Vec<(String, String)>>,
    counter: Cell<u8>,
}

/// An in-memory key-value map, shared by every handle opened on it.
#[derive(Clone, Default)]
pub struct MemStore(pub Rc<RefCell<HashMap<String, Vec<u8>>>>);

impl Blobs for MemStore {
    async fn put(&self, key: &str, data: &[u8]) -> Result<(), StoreError> {
        self.0.borrow_mut().insert(key.to_owned(), data.to_vec());
        Ok(())
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.borrow().get(key).cloned())
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.borrow_mut().remove(key);
        Ok(())
    }
    async fn list(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.0.borrow().keys().cloned().collect())
    }
}

impl Kv for MemStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.borrow().get(key).cloned())
    }
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0.borrow_mut().insert(key.to_owned(), value.to_vec());
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.borrow_mut().remove(key);
        Ok(())
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.0.borrow().keys().filter(|k| k.starts_with(prefix)).cloned().collect())
    }
}

pub struct TestDb(pub Rc<rusqlite::Connection>);

fn to_sql(v: SqlValue) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match v {
        SqlValue::Null => V::Null,
        SqlValue::Integer(n) => V::Integer(n),
        SqlValue::Real(f) => V::Real(f),
        SqlValue::Text(s) => V::Text(s),
        SqlValue::Blob(b) => V::Blob(b),
    }
}

fn from_sql(v: rusqlite::types::Value) -> SqlValue {
    use rusqlite::types::Value as V;
    match v {
        V::Null => SqlValue::Null,
        V::Integer(n) => SqlValue::Integer(n),
        V::Real(f) => SqlValue::Real(f),
        V::Text(s) => SqlValue::Text(s),
        V::Blob(b) => SqlValue::Blob(b),
    }
}

fn fail(e: rusqlite::Error) -> StoreError {
    StoreError::from_backend(e.to_string())
}

impl Sql for TestDb {
    async fn query(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.0.prepare(sql).map_err(fail)?;
        let n = stmt.column_count();
        let params = rusqlite::params_from_iter(params.into_iter().map(to_sql));
        let rows = stmt
            .query_map(params, |r| (0..n).map(|i| r.get::<_, rusqlite::types::Value>(i).map(from_sql)).collect())
            .map_err(fail)?;
        rows.map(|r| r.map(Row).map_err(fail)).collect()
    }
    async fn execute(&self, sql: &str, params: Vec<SqlValue>) -> Result<u64, StoreError> {
        let params = rusqlite::params_from_iter(params.into_iter().map(to_sql));
        self.0.execute(sql, params).map(|n| n as u64).map_err(fail)
    }
    async fn batch(&self, statements: Vec<Statement>) -> Result<(), StoreError> {
        self.0.execute_batch("BEGIN").map_err(fail)?;
        for s in statements {
            if let Err(e) = self.execute(s.sql, s.params).await {
                let _ = self.0.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
        self.0.execute_batch("COMMIT").map_err(fail)
    }
}

impl TestPlatform {
    pub fn new() -> Self {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for sql in crate::testing::MIGRATIONS {
            conn.execute_batch(sql).unwrap();
        }
        let vars = HashMap::from([
            ("jwt_secret".to_owned(), SECRET.to_owned()),
            ("url_signing_keys".to_owned(), format!("k1:{SECRET}")),
            ("url_signing_key_id".to_owned(), "k1".to_owned()),
            ("chunk_size".to_owned(), (64 * 1024).to_string()),
            // No traffic-driven sweep unless a test asks for one: its clock is process-wide.
            ("sweep_interval_seconds".to_owned(), "0".to_owned()),
        ]);
        Self {
            conn: Rc::new(conn),
            now: Cell::new(1_790_000_000_000),
            vars: RefCell::new(vars),
            blobs: MemStore::default(),
            eu_blobs: MemStore::default(),
            kv: MemStore::default(),
            spool: MemStore::default(),
            audit: RefCell::default(),
            woken: RefCell::default(),
            counter: Cell::new(0),
        }
    }
}

pub const MIGRATIONS: &[&str] = &[
    include_str!("../../../infra/migrations/0001_users.sql"),
    include_str!("../../../infra/migrations/0002_files.sql"),
    include_str!("../../../infra/migrations/0003_integrity.sql"),
    include_str!("../../../infra/migrations/0004_jobs.sql"),
    include_str!("../../../infra/migrations/0005_layouts.sql"),
    include_str!("../../../infra/migrations/0006_checksums.sql"),
    include_str!("../../../infra/migrations/0007_file_api.sql"),
    include_str!("../../../infra/migrations/0008_regions.sql"),
    include_str!("../../../infra/migrations/0009_replication.sql"),
    include_str!("../../../infra/migrations/0010_sweep_clock.sql"),
    include_str!("../../../infra/migrations/0011_access_keys.sql"),
    include_str!("../../../infra/migrations/0012_buckets.sql"),
];

impl Clock for TestPlatform {
    fn now_ms(&self) -> i64 {
        self.now.get()
    }
}
impl Entropy for TestPlatform {
    fn fill(&self, buf: &mut [u8]) {
        // Distinct, repeatable bytes per call: ids differ, tests stay deterministic.
        self.counter.set(self.counter.get().wrapping_add(1));
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.counter.get().wrapping_mul(31).wrapping_add(i as u8);
        }
    }
}
impl Config for TestPlatform {
    async fn get(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.vars.borrow().get(name).cloned())
    }
}
impl AuditLog for TestPlatform {
    fn record<E: serde::Serialize + ?Sized>(&self, event: &E) {
        self.audit.borrow_mut().push(serde_json::to_value(event).expect("a log event is JSON"));
    }
}
impl Queue for TestPlatform {
    async fn wake(&self, kind: &str, job_id: &str) -> Result<(), StoreError> {
        self.woken.borrow_mut().push((kind.to_owned(), job_id.to_owned()));
        Ok(())
    }
}

impl Platform for TestPlatform {
    type Metadata = TestDb;
    type Blobs = MemStore;
    type Kv = MemStore;
    type Spool = KvSpool<MemStore>;
    async fn metadata(&self) -> Result<TestDb, StoreError> {
        Ok(TestDb(self.conn.clone()))
    }
    async fn blobs(&self) -> Result<MemStore, StoreError> {
        Ok(self.blobs.clone())
    }
    async fn home_store(&self) -> Result<(String, String), StoreError> {
        Ok(("key-value".to_owned(), "blobs".to_owned()))
    }
    /// The home store, and `blobs_eu` (a second region's store).
    async fn node_blobs(&self, kind: &str, binding: &str) -> Result<MemStore, StoreError> {
        match (kind, binding) {
            ("key-value", "blobs") => Ok(self.blobs.clone()),
            ("key-value", "blobs_eu") => Ok(self.eu_blobs.clone()),
            _ => Err(StoreError::Unavailable(format!("no {kind} store {binding}"))),
        }
    }
    async fn kv(&self) -> Result<MemStore, StoreError> {
        Ok(self.kv.clone())
    }
    async fn spool(&self) -> Result<KvSpool<MemStore>, StoreError> {
        Ok(KvSpool(self.spool.clone()))
    }
}

pub fn json_request(method: &str, path: &str, body: &str) -> ApiRequest {
    ApiRequest {
        method: method.into(),
        path: path.into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
        ..Default::default()
    }
}

pub fn body_json(r: &ApiResponse) -> serde_json::Value {
    serde_json::from_slice(r.body.bytes()).unwrap()
}

pub fn run<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}
