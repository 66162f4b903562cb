//! The VaultX ports on Spin (spin-sdk 7, WASIp3): metadata on Spin SQLite, configuration
//! and secrets from Spin variables, time and entropy from WASI, job wake-ups as Redis
//! publishes. Plus [`route!`], which turns one `vaultx_api::routes::*` module into a Spin HTTP
//! component, and [`job!`], which turns one `vaultx_api::jobs::*` kind into a Redis-triggered
//! component.
//!
//! # In detail
//!
//! In detail (depends on vaultx-core, spin-sdk): The ports on spin-sdk 7: `Sql` on Spin SQLite, or
//! on PostgreSQL (`spin:postgres@4.2.0`) when the variable `database_url` is set (`SpinSql`),
//! `Blobs` on a key-value store in ≤ 512 KiB pieces, a blob of one piece inline in its header
//! (`vaultx_core::kv_blob`; `blobs`, or `blobs_<name>` for a storage node) or on an S3-compatible
//! bucket over outbound HTTP (`s3.rs`, presigned by `vaultx_core::s3`, transient failures retried);
//! the home store is the variable `home_blob_store`, a node's store `node_blobs(kind, binding)`,
//! `Kv` on `manifests`, the audit spool (`spool.rs`: the download's access records appended to the
//! Redis stream `vaultx-audit` by one `EVAL` that also wakes the drainer at most once a second,
//! taken with `XRANGE` and removed with `XDEL`; the `audit` key-value store where `audit_spool` is
//! `key-value`, no Redis is set, or Redis failed in the last 5 s), `Config` on Spin variables (each
//! variable, like each key-value store the component opens, asked of the host once per instance: an
//! instance may answer many requests), `Queue` as a publish on outbound Redis (`redis_address`; one
//! connection kept per instance, `redis_link.rs`), `AuditLog` on stdout, WASI clock and random.
//! `route!(module)` turns a route module into a Spin HTTP component (under
//! `vaultx_api::audit::audited`): it exports `wasi:http@0.3`'s handler itself (`wasi_http.rs`: the
//! WASI request's method, path and header list straight into an `ApiRequest`, a malformed authority
//! refused with 400 as the bundled runtime's server refuses it, the response's headers to the host
//! in one `from-list`, bodies written by a task of their own, blob-slice bodies streamed a blob at
//! a time), not through spin-sdk's `#[http_service]` and its `http` conversions; `job!(module)`
//! turns a job kind into a Redis-triggered component (`#[redis_subscriber]`).; every component's
//! global allocator is `vaultx_core::small_blocks` (freed blocks of up to 256 bytes kept per size
//! class for the next request, the rest wasi-libc's malloc)

use std::sync::Arc;
use spin_sdk::key_value::Store;
use spin_sdk::sqlite::{Connection, Value};
use vaultx_core::Problem;
use vaultx_core::kv_blob;
use vaultx_core::http::{ApiRequest, ApiResponse};
use vaultx_core::ports::{AuditLog, Blobs, Clock, Config, Entropy, Kv, Platform, Queue, Row, Sql, SqlValue, Statement, StoreError};

mod redis_link;
mod s3;
pub mod spool;
pub mod wasi_http;
pub use spool::SpinSpool;

/// Every component's allocator: freed small blocks are kept for the next request
/// (`vaultx_core::small_blocks`), the rest is wasi-libc's malloc.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: vaultx_core::small_blocks::SmallBlocks<std::alloc::System> = vaultx_core::small_blocks::SmallBlocks::new(std::alloc::System);

/// For [`job!`]'s expansion in function crates.
pub use anyhow;

/// The key-value store holding blob bytes when `home_blob_store` is not set.
pub const BLOB_STORE: &str = "blobs";
/// The variable naming the home blob store, `kind:binding` (`key-value:blobs`, `s3:<store>`).
pub const HOME_BLOB_STORE: &str = "home_blob_store";
/// The variables describing the S3-compatible stores (`vaultx_core::s3`).
pub const S3_STORES: &str = "s3_stores";
pub const S3_CREDENTIALS: &str = "s3_credentials";
/// The kind of blob store a Spin key-value label is, as storage nodes name it.
pub const KEY_VALUE_KIND: &str = "key-value";
/// The key-value store holding hot, cacheable metadata (chunk manifests).
pub const MANIFEST_STORE: &str = "manifests";
/// The key-value store spooling audit events of functions that have no database, where no
/// Redis takes them (`spool`).
pub const AUDIT_STORE: &str = "audit";

/// Binds one route module (`handle` + `MAX_BODY`) as this component's `wasi:http` handler
/// (the export spin-sdk's `#[http_service]` makes, without its `http` conversions:
/// [`wasi_http`]), under the audit log (`vaultx_api::audit::audited`, named by the module:
/// `auth_login`).
///
/// ```ignore
/// vaultx_spin::route!(vaultx_api::routes::auth_login);
/// ```
///
/// A module of another crate names its route: `vaultx_spin::route!(vaultx_s3 as s3);`.
#[macro_export]
macro_rules! route {
    ($($module:ident)::+ as $function:ident) => {
        $crate::route!(@export [$($module)::+] stringify!($function));
    };
    ($($module:ident)::+) => {
        $crate::route!(@export [$($module)::+] $crate::__last_ident!($($module)::+));
    };
    (@export [$($module:ident)::+] $function:expr) => {
        mod __vaultx_route {
            struct Route;
            ::spin_sdk::wasip3::http::service::export!(Route);

            impl ::spin_sdk::wasip3::exports::http::handler::Guest for Route {
                async fn handle(
                    request: ::spin_sdk::wasip3::http::types::Request,
                ) -> ::core::result::Result<::spin_sdk::wasip3::http::types::Response, ::spin_sdk::wasip3::http::types::ErrorCode> {
                    $crate::serve_route(request, $($module)::+::MAX_BODY, |read| {
                        ::vaultx_api::audit::audited(&$crate::SpinPlatform, $function, ::vaultx_api::routes::pattern($function), read, |request| {
                            $($module)::+::handle(&$crate::SpinPlatform, request)
                        })
                    })
                    .await
                }
            }
        }
    };
}

/// The last segment of a path, as a string: `a::b::c` → `"c"`.
#[doc(hidden)]
#[macro_export]
macro_rules! __last_ident {
    ($last:ident) => {
        stringify!($last)
    };
    ($first:ident :: $($rest:ident)::+) => {
        $crate::__last_ident!($($rest)::+)
    };
}

/// Binds one job kind (`KIND` + `run`) as this component's Redis message handler: each
/// message (a job id, or `sweep`) goes to `vaultx_api::jobs::consume`.
///
/// ```ignore
/// vaultx_spin::job!(vaultx_api::jobs::compress);
/// ```
#[macro_export]
macro_rules! job {
    ($($module:ident)::+) => {
        #[::spin_sdk::redis_subscriber]
        async fn on_message(message: ::std::vec::Vec<u8>) -> $crate::anyhow::Result<()> {
            ::vaultx_api::jobs::consume(&$crate::SpinPlatform, $($module)::+::KIND, &message, $($module)::+::run)
                .await
                .map_err(|problem| $crate::anyhow::anyhow!("{problem}"))
        }
    };
}

/// Reads the request, runs the route's handler on what was read (`vaultx_api::audit::audited`
/// serves it as every adapter does: HEAD as GET without the body, `nosniff`, a request id, a
/// log line), and streams the response.
pub async fn serve_route<F, Fut>(request: wasi_http::Request, max_body: usize, handler: F) -> Result<wasi_http::Response, wasi_http::ErrorCode>
where
    F: FnOnce(Result<ApiRequest, Problem>) -> Fut,
    Fut: Future<Output = ApiResponse>,
{
    wasi_http::into_response(handler(wasi_http::read_request(request, max_body).await).await).await
}

/// The platform as one Spin component sees it. Stateless: Spin may reuse an instance for
/// many requests, so nothing request-specific lives here or in globals.
#[derive(Clone, Copy)]
pub struct SpinPlatform;

impl Clock for SpinPlatform {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }

    fn now_us(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64)
    }
}

/// `buf` filled from `wasi:random` in one host call (`getrandom` asks for 8 bytes per call:
/// two or three calls for an id, each a trip through the host's component-model machinery).
/// A host that answered short would be broken; a zero-filled salt would be worse than
/// stopping, so `copy_from_slice` traps then and the runtime answers 500.
fn random_fill(buf: &mut [u8]) {
    if !buf.is_empty() {
        buf.copy_from_slice(&wasip2::random::random::get_random_bytes(buf.len() as u64));
    }
}

impl Entropy for SpinPlatform {
    fn fill(&self, buf: &mut [u8]) {
        random_fill(buf);
    }
}

impl Config for SpinPlatform {
    /// A variable's value is fixed for the life of an instance, which may answer many
    /// requests: each is asked of the host once per instance (a download reads three).
    async fn get(&self, name: &str) -> Result<Option<String>, StoreError> {
        if let Some(value) = instance_cache::VARIABLES.get(name) {
            return Ok(value);
        }
        let value = match spin_sdk::variables::get(name).await {
            Ok(v) => Some(v),
            Err(spin_sdk::variables::Error::Undefined(_)) => None,
            Err(e) => return Err(StoreError::Unavailable(format!("variable {name}: {e:?}"))),
        };
        instance_cache::VARIABLES.keep(name, value.clone());
        Ok(value)
    }
}

/// What an instance keeps between the requests it answers: the variables it read and the
/// key-value stores it opened — never anything of a request. A Spin instance answers one
/// request or many (wasi:http 0.3 hosts reuse them), and neither a variable's value nor an
/// open store's meaning changes in between.
mod instance_cache {
    use spin_sdk::key_value::Store;
    use std::sync::{Arc, Mutex};

    /// Values by name, kept for the instance's life.
    pub struct Kept<T>(Mutex<Vec<(String, T)>>);

    impl<T: Clone> Kept<T> {
        const fn new() -> Self {
            Self(Mutex::new(Vec::new()))
        }

        pub fn get(&self, name: &str) -> Option<T> {
            self.0.lock().ok()?.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
        }

        /// Two requests of one instance may both have asked the host; the first answer stays.
        pub fn keep(&self, name: &str, value: T) {
            if let Ok(mut kept) = self.0.lock()
                && !kept.iter().any(|(n, _)| n == name)
            {
                kept.push((name.to_owned(), value));
            }
        }
    }

    pub static VARIABLES: Kept<Option<String>> = Kept::new();
    pub static STORES: Kept<Arc<Store>> = Kept::new();
}

impl Queue for SpinPlatform {
    /// Publishes the job id on the kind's channel at `redis_address`. An empty or unset
    /// address means no broker: the job waits for the sweep.
    async fn wake(&self, kind: &str, job_id: &str) -> Result<(), StoreError> {
        let Some(address) = self.get("redis_address").await?.filter(|a| !a.is_empty()) else {
            return Ok(());
        };
        redis_link::publish(&address, &vaultx_core::ports::job_channel(kind), job_id.as_bytes()).await
    }
}

impl AuditLog for SpinPlatform {
    fn record<E: serde::Serialize + ?Sized>(&self, event: &E) {
        // One JSON object per line on stdout, which Spin collects as the component's log:
        // written whole, in one write (`println!` formats it piece by piece through stdout's
        // line buffer).
        let mut line = serde_json::to_vec(event).unwrap_or_default();
        line.push(b'\n');
        let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), &line);
    }
}

impl Platform for SpinPlatform {
    type Metadata = SpinSql;
    type Blobs = SpinBlobs;
    type Kv = SpinKv;
    type Spool = SpinSpool;

    /// PostgreSQL when the variable `database_url` is set (`postgres://…`), else the
    /// component's SQLite database `default`: a choice of configuration, not of build.
    async fn metadata(&self) -> Result<SpinSql, StoreError> {
        match self.get(DATABASE_URL).await?.filter(|url| !url.is_empty()) {
            Some(url) => spin_sdk::pg::Connection::open(url.as_str())
                .await
                .map(|c| SpinSql::Postgres(SpinPostgres(c)))
                .map_err(|e| StoreError::Unavailable(format!("postgres: {}", pg_error_text(&e)))),
            None => Connection::open_default().await.map(|c| SpinSql::Sqlite(SpinSqlite(c))).map_err(store_error),
        }
    }

    /// The store the variable `home_blob_store` names (`kind:binding`; `key-value:blobs`
    /// when unset): where chunks are written and read first.
    async fn blobs(&self) -> Result<SpinBlobs, StoreError> {
        let (kind, binding) = self.home_store().await?;
        open_blobs(self, &kind, &binding, false).await
    }

    async fn home_store(&self) -> Result<(String, String), StoreError> {
        let configured = self.get(HOME_BLOB_STORE).await?.filter(|v| !v.trim().is_empty());
        let Some(configured) = configured else {
            return Ok((KEY_VALUE_KIND.to_owned(), BLOB_STORE.to_owned()));
        };
        match configured.trim().split_once(':') {
            Some((kind, binding)) if !kind.is_empty() && !binding.is_empty() => Ok((kind.to_owned(), binding.to_owned())),
            _ => Err(StoreError::Unavailable(format!("{HOME_BLOB_STORE} = {configured:?}: expected kind:binding (key-value:blobs, s3:<store>)"))),
        }
    }

    /// Key-value blob stores are the labels `blobs` and `blobs_<name>` (Spin labels are
    /// snake_case); the label must be granted to the component and known to the host
    /// (`infra/spin/runtime-config.toml` for the Spin CLI). S3-compatible stores are the
    /// names in the variable `s3_stores` (`vaultx_core::s3`).
    async fn node_blobs(&self, kind: &str, binding: &str) -> Result<SpinBlobs, StoreError> {
        open_blobs(self, kind, binding, true).await
    }

    async fn kv(&self) -> Result<SpinKv, StoreError> {
        open_store(MANIFEST_STORE).await.map(SpinKv)
    }

    /// A Redis stream when `redis_address` is set, else (or while Redis fails) the `audit`
    /// key-value store ([`spool`]).
    async fn spool(&self) -> Result<SpinSpool, StoreError> {
        let append_to_redis = self.get("audit_spool").await?.is_none_or(|v| v.trim() != "key-value");
        Ok(SpinSpool { redis: self.get("redis_address").await?.filter(|a| !a.is_empty()), append_to_redis })
    }
}

/// Opens a blob store by kind and binding; `probe`: also check that it answers, so a store the
/// deployment does not really have fails here, not on the first block.
async fn open_blobs(p: &SpinPlatform, kind: &str, binding: &str, probe: bool) -> Result<SpinBlobs, StoreError> {
    match kind {
        KEY_VALUE_KIND => {
            if binding != BLOB_STORE && !binding.strip_prefix("blobs_").is_some_and(|rest| !rest.is_empty()) {
                return Err(StoreError::AccessDenied(format!("{binding:?} is not a blob store label (blobs, blobs_<name>)")));
            }
            let store = open_store(binding).await?;
            if probe {
                // Spin opens a granted label lazily on some hosts.
                store.exists("probe").await.map_err(kv_error)?;
            }
            Ok(SpinBlobs::KeyValue(KvBlobs(store)))
        }
        vaultx_core::s3::KIND => {
            let stores = p.get(S3_STORES).await?.unwrap_or_default();
            let credentials = p.get(S3_CREDENTIALS).await?.unwrap_or_default();
            let store = vaultx_core::s3::find(&stores, &credentials, binding)
                .map_err(StoreError::Unavailable)?
                .ok_or_else(|| StoreError::Unavailable(format!("this deployment has no S3-compatible store {binding:?} (s3_stores)")))?;
            let blobs = s3::S3Blobs(store);
            if probe {
                blobs.probe().await?;
            }
            Ok(SpinBlobs::S3(blobs))
        }
        other => Err(StoreError::Unavailable(format!("this deployment has no {other:?} blob stores (key-value, s3)"))),
    }
}

/// A key-value store by label, opened once per instance (`instance_cache`).
async fn open_store(label: &str) -> Result<Arc<Store>, StoreError> {
    if let Some(store) = instance_cache::STORES.get(label) {
        return Ok(store);
    }
    let store = Arc::new(Store::open(label).await.map_err(|e| match e {
        spin_sdk::key_value::Error::AccessDenied => StoreError::AccessDenied(format!("key-value store {label:?}")),
        other => StoreError::Unavailable(format!("key-value store {label:?}: {other:?}")),
    })?);
    instance_cache::STORES.keep(label, store.clone());
    Ok(store)
}

fn kv_error(e: spin_sdk::key_value::Error) -> StoreError {
    StoreError::Unavailable(format!("key-value: {e:?}"))
}

/// A blob store on Spin: a key-value label, or an S3-compatible bucket over outbound HTTP.
pub enum SpinBlobs {
    KeyValue(KvBlobs),
    S3(s3::S3Blobs),
}

impl Blobs for SpinBlobs {
    async fn put(&self, key: &str, data: &[u8]) -> Result<(), StoreError> {
        match self {
            Self::KeyValue(b) => b.put(key, data).await,
            Self::S3(b) => b.put(key, data).await,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Self::KeyValue(b) => b.get(key).await,
            Self::S3(b) => b.get(key).await,
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Self::KeyValue(b) => b.delete(key).await,
            Self::S3(b) => b.delete(key).await,
        }
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Self::KeyValue(b) => b.list().await,
            Self::S3(b) => b.list().await,
        }
    }
}

/// Blobs on Spin key-value, laid out as `vaultx_core::kv_blob` says: a header `<key>/n`,
/// written last, holding a small blob's bytes itself or counting a larger one's pieces.
pub struct KvBlobs(Arc<Store>);

impl Blobs for KvBlobs {
    async fn put(&self, key: &str, data: &[u8]) -> Result<(), StoreError> {
        let (pieces, header) = kv_blob::layout(data);
        for (i, piece) in pieces.iter().enumerate() {
            self.0.set(kv_blob::piece_key(key, i), piece).await.map_err(kv_error)?;
        }
        self.0.set(kv_blob::header_key(key), &header).await.map_err(kv_error)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(raw) = self.0.get(kv_blob::header_key(key)).await.map_err(kv_error)? else {
            return Ok(None);
        };
        let head = kv_blob::Header::parse(&raw)
            .ok_or_else(|| StoreError::Decode(format!("blob {key}: bad header {:?}", String::from_utf8_lossy(&raw[..raw.len().min(64)]))))?;
        if let Some(bytes) = head.inline {
            return Ok(Some(bytes.to_vec()));
        }
        let mut data = Vec::with_capacity(head.len);
        for i in 0..head.pieces {
            // A piece gone after its header was read: a sweep is deleting the blob (header
            // first, then pieces), so it is as good as gone already.
            let Some(piece) = self.0.get(kv_blob::piece_key(key, i)).await.map_err(kv_error)? else {
                return Ok(None);
            };
            data.extend_from_slice(&piece);
        }
        if data.len() != head.len {
            return Err(StoreError::Decode(format!("blob {key}: {} bytes, expected {}", data.len(), head.len)));
        }
        Ok(Some(data))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let Some(raw) = self.0.get(kv_blob::header_key(key)).await.map_err(kv_error)? else {
            return Ok(());
        };
        // An unreadable header still goes, with the one piece it might have had.
        let pieces = kv_blob::Header::parse(&raw).map_or(1, |h| h.pieces);
        self.0.delete(kv_blob::header_key(key)).await.map_err(kv_error)?;
        for i in 0..pieces {
            self.0.delete(kv_blob::piece_key(key, i)).await.map_err(kv_error)?;
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        // A blob is complete when its header `<key>/n` exists.
        let keys = self.0.get_keys().await.collect().await.map_err(kv_error)?;
        Ok(keys.into_iter().filter_map(|k| k.strip_suffix("/n").map(str::to_owned)).collect())
    }
}

/// Hot metadata on Spin key-value.
pub struct SpinKv(Arc<Store>);

impl Kv for SpinKv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key).await.map_err(kv_error)
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0.set(key, value).await.map_err(kv_error)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key).await.map_err(kv_error)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let keys = self.0.get_keys().await.collect().await.map_err(kv_error)?;
        Ok(keys.into_iter().filter(|k| k.starts_with(prefix)).collect())
    }
}

/// The variable naming the PostgreSQL database (`postgres://user:password@host:port/db`);
/// empty or unset: Spin SQLite.
pub const DATABASE_URL: &str = "database_url";

/// The metadata store: Spin SQLite, or PostgreSQL through `spin:postgres@4.2.0`.
pub enum SpinSql {
    Sqlite(SpinSqlite),
    Postgres(SpinPostgres),
}

impl Sql for SpinSql {
    async fn query(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<Row>, StoreError> {
        match self {
            Self::Sqlite(db) => db.query(sql, params).await,
            Self::Postgres(db) => db.query(sql, params).await,
        }
    }

    async fn execute(&self, sql: &str, params: Vec<SqlValue>) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(db) => db.execute(sql, params).await,
            Self::Postgres(db) => db.execute(sql, params).await,
        }
    }

    async fn batch(&self, statements: Vec<Statement>) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(db) => db.batch(statements).await,
            Self::Postgres(db) => db.batch(statements).await,
        }
    }
}

/// The metadata store on PostgreSQL: `?` placeholders numbered, values bound with the types
/// the schema declares (`BIGINT`, `TEXT`, `BYTEA`), batches SERIALIZABLE.
pub struct SpinPostgres(spin_sdk::pg::Connection);

fn pg_error_text(e: &spin_sdk::pg::Error) -> String {
    use spin_sdk::pg::{Error as E, PgError as P, QueryError as Q};
    match e {
        E::PgError(P::QueryFailed(Q::DbError(db))) => format!("{} ({}){}", db.message, db.code, db.detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default()),
        E::PgError(P::QueryFailed(Q::Text(t)) | P::ConnectionFailed(t) | P::BadParameter(t) | P::ValueConversionFailed(t) | P::Other(t)) => t.clone(),
        E::Decode(t) => t.clone(),
    }
}

fn sqlstate(e: &spin_sdk::pg::Error) -> Option<&str> {
    match e {
        spin_sdk::pg::Error::PgError(spin_sdk::pg::PgError::QueryFailed(spin_sdk::pg::QueryError::DbError(db))) => Some(&db.code),
        _ => None,
    }
}

fn pg_store_error(e: spin_sdk::pg::Error) -> StoreError {
    vaultx_core::postgres::classify(sqlstate(&e), &pg_error_text(&e))
}

fn to_pg(v: SqlValue) -> spin_sdk::pg::ParameterValue {
    use spin_sdk::pg::ParameterValue as P;
    match v {
        SqlValue::Null => P::DbNull,
        SqlValue::Integer(n) => P::Int64(n),
        SqlValue::Real(f) => P::Floating64(f),
        SqlValue::Text(s) => P::Str(s),
        SqlValue::Blob(b) => P::Binary(b),
    }
}

fn from_pg(v: spin_sdk::pg::DbValue) -> Result<SqlValue, StoreError> {
    use spin_sdk::pg::DbValue as V;
    Ok(match v {
        V::DbNull => SqlValue::Null,
        V::Boolean(b) => SqlValue::Integer(b as i64),
        V::Int8(n) => SqlValue::Integer(n.into()),
        V::Int16(n) => SqlValue::Integer(n.into()),
        V::Int32(n) => SqlValue::Integer(n.into()),
        V::Int64(n) => SqlValue::Integer(n),
        V::Floating32(f) => SqlValue::Real(f.into()),
        V::Floating64(f) => SqlValue::Real(f),
        V::Str(s) => SqlValue::Text(s),
        V::Binary(b) => SqlValue::Blob(b),
        // sum() of BIGINTs is a NUMERIC; VaultX's sums are whole numbers.
        V::Decimal(d) => match d.parse::<i64>() {
            Ok(n) => SqlValue::Integer(n),
            Err(_) => SqlValue::Real(d.parse().map_err(|_| StoreError::Decode(format!("numeric {d:?}")))?),
        },
        other => return Err(StoreError::Decode(format!("unsupported PostgreSQL value {other:?}"))),
    })
}

impl SpinPostgres {
    async fn run(&self, sql: &str, params: Vec<SqlValue>) -> Result<u64, spin_sdk::pg::Error> {
        let sql = vaultx_core::postgres::numbered_placeholders(sql);
        self.0.execute(sql.as_ref(), params.into_iter().map(to_pg).collect::<Vec<_>>()).await
    }

    /// One attempt at a batch, rolled back unless it committed.
    async fn attempt(&self, statements: &[Statement]) -> Result<(), spin_sdk::pg::Error> {
        self.run(vaultx_core::postgres::BEGIN_BATCH, vec![]).await?;
        self.run(vaultx_core::postgres::BATCH_SETTINGS, vec![]).await?;
        for s in statements {
            if let Err(e) = self.run(s.sql, s.params.clone()).await {
                let _ = self.run("ROLLBACK", vec![]).await;
                return Err(e);
            }
        }
        if let Err(e) = self.run("COMMIT", vec![]).await {
            let _ = self.run("ROLLBACK", vec![]).await;
            return Err(e);
        }
        Ok(())
    }
}

impl Sql for SpinPostgres {
    async fn query(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<Row>, StoreError> {
        let sql = vaultx_core::postgres::numbered_placeholders(sql);
        let mut result = self.0.query(sql.as_ref(), params.into_iter().map(to_pg).collect::<Vec<_>>()).await.map_err(pg_store_error)?;
        let mut rows = Vec::new();
        while let Some(values) = result.rows().next().await {
            rows.push(Row(values.into_iter().map(from_pg).collect::<Result<_, _>>()?));
        }
        result.result().await.map_err(pg_store_error)?;
        Ok(rows)
    }

    async fn execute(&self, sql: &str, params: Vec<SqlValue>) -> Result<u64, StoreError> {
        self.run(sql, params).await.map_err(pg_store_error)
    }

    /// SERIALIZABLE; a batch PostgreSQL aborted only because of concurrent transactions
    /// (SQLSTATE 40001, 40P01) runs again after a jittered pause, a bounded number of times:
    /// it restates its own preconditions, so a re-run is the same compare-and-set on the
    /// state as it is now. Past the bound it is `Contended` (503 busy), never `Conflict`.
    async fn batch(&self, statements: Vec<Statement>) -> Result<(), StoreError> {
        let mut retries = 0;
        loop {
            match self.attempt(&statements).await {
                Ok(()) => return Ok(()),
                Err(e) if sqlstate(&e).is_some_and(vaultx_core::postgres::is_retryable) && retries < vaultx_core::postgres::SERIALIZATION_RETRIES => {
                    retries += 1;
                    let mut random = [0u8; 8];
                    random_fill(&mut random);
                    let pause = vaultx_core::postgres::retry_delay_ms(retries, u64::from_le_bytes(random));
                    // The instance serves this one request: blocking it blocks no one else.
                    std::thread::sleep(std::time::Duration::from_millis(pause));
                }
                Err(e) => return Err(pg_store_error(e)),
            }
        }
    }
}

/// The metadata store on Spin's SQLite (`sqlite_databases = ["default"]`).
pub struct SpinSqlite(Connection);

fn store_error(e: spin_sdk::sqlite::Error) -> StoreError {
    match e {
        spin_sdk::sqlite::Error::AccessDenied => StoreError::AccessDenied("sqlite database \"default\"".into()),
        other => StoreError::from_backend(format!("{other:?}")),
    }
}

fn to_value(v: SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(n) => Value::Integer(n),
        SqlValue::Real(f) => Value::Real(f),
        SqlValue::Text(s) => Value::Text(s),
        SqlValue::Blob(b) => Value::Blob(b),
    }
}

fn from_value(v: Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Integer(n) => SqlValue::Integer(n),
        Value::Real(f) => SqlValue::Real(f),
        Value::Text(s) => SqlValue::Text(s),
        Value::Blob(b) => SqlValue::Blob(b),
    }
}

impl Sql for SpinSqlite {
    async fn query(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<Row>, StoreError> {
        let result = self.0.execute(sql, params.into_iter().map(to_value)).await.map_err(store_error)?;
        let rows = result.collect().await.map_err(store_error)?;
        Ok(rows.into_iter().map(|r| Row(r.values.into_iter().map(from_value).collect())).collect())
    }

    async fn execute(&self, sql: &str, params: Vec<SqlValue>) -> Result<u64, StoreError> {
        let result = self.0.execute(sql, params.into_iter().map(to_value)).await.map_err(store_error)?;
        result.collect().await.map_err(store_error)?;
        Ok(self.0.changes().await)
    }

    async fn batch(&self, statements: Vec<Statement>) -> Result<(), StoreError> {
        // IMMEDIATE takes the write lock up front: two batches cannot deadlock upgrading.
        self.execute("BEGIN IMMEDIATE", vec![]).await?;
        for s in statements {
            if let Err(e) = self.execute(s.sql, s.params).await {
                let _ = self.execute("ROLLBACK", vec![]).await;
                return Err(e);
            }
        }
        self.execute("COMMIT", vec![]).await.map(drop)
    }
}
