//! The ports: what the domain needs from a platform, as traits. Each platform adapter
//! (Spin, Cloudflare Workers, a test double) implements them once; handlers in `vaultx-api`
//! are written against these traits only.
//!
//! Futures here are not `Send`: every target is a single-threaded wasm guest.
#![allow(async_fn_in_trait)]

use std::fmt;

/// A value bound to or read from a SQL statement. The subset SQLite, D1 and PostgreSQL share.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}
impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}
impl From<&String> for SqlValue {
    fn from(v: &String) -> Self {
        Self::Text(v.clone())
    }
}
impl From<u64> for SqlValue {
    fn from(v: u64) -> Self {
        Self::Integer(v as i64)
    }
}
impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        Self::Integer(v)
    }
}
impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// One result row, columns in the order the statement selected them.
#[derive(Clone, Debug, PartialEq)]
pub struct Row(pub Vec<SqlValue>);

impl Row {
    pub fn text(&self, i: usize) -> Result<&str, StoreError> {
        match self.0.get(i) {
            Some(SqlValue::Text(s)) => Ok(s),
            other => Err(StoreError::Decode(format!("column {i}: expected text, got {other:?}"))),
        }
    }

    pub fn int(&self, i: usize) -> Result<i64, StoreError> {
        match self.0.get(i) {
            Some(SqlValue::Integer(n)) => Ok(*n),
            other => Err(StoreError::Decode(format!("column {i}: expected integer, got {other:?}"))),
        }
    }
}

/// A statement and its parameters, for batches.
#[derive(Clone, Debug)]
pub struct Statement {
    pub sql: &'static str,
    pub params: Vec<SqlValue>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StoreError {
    /// The platform did not grant this function the store (least privilege at work).
    AccessDenied(String),
    /// The store is missing, unreachable or failed.
    Unavailable(String),
    /// A row did not have the shape the query promised.
    Decode(String),
    /// A guard of a [`Sql::batch`] did not hold: the state it was computed from changed, and
    /// nothing in the batch was applied. Re-read and decide again.
    Conflict,
    /// The store kept aborting the batch because of concurrent transactions (PostgreSQL's
    /// serialization failures and deadlocks), even after re-running it. Nothing was applied,
    /// but no guard failed either: a caller that re-reads and decides again on a conflict may
    /// do so here too; one that reads a conflict as an answer (a full quota, a gone file)
    /// must not — past its attempts the request is answered `busy` (503, retry).
    Contended,
    /// A value the store cannot hold or compare (PostgreSQL's data exceptions): the
    /// request's fault, answered 400.
    Invalid(String),
}

/// The table guards write into (see [`guard!`]). Its one column is `NOT NULL`, so a guard that
/// fails inserts a NULL and aborts its transaction, on SQLite, D1 and PostgreSQL alike.
pub const GUARD_TABLE: &str = "cas_guard";

impl StoreError {
    /// Classifies a backend's error message: a failed guard names the guard table (SQLite and
    /// D1: `NOT NULL constraint failed: cas_guard.conflict`; PostgreSQL: `null value in column
    /// "conflict" of relation "cas_guard"`); anything else is the store failing.
    pub fn from_backend(message: impl Into<String>) -> Self {
        let message = message.into();
        if message.contains(GUARD_TABLE) { Self::Conflict } else { Self::Unavailable(message) }
    }
}

/// A batch statement that aborts the whole batch with [`StoreError::Conflict`] unless the SQL
/// condition holds. This is how every state change in VaultX is a compare-and-set: the batch
/// opens with guards on the state its author read, and applies only if that state still holds.
///
/// ```ignore
/// guard!("EXISTS (SELECT 1 FROM files WHERE id = ? AND status = 'uploading')", file_id)
/// ```
#[macro_export]
macro_rules! guard {
    ($condition:expr $(, $param:expr)* $(,)?) => {
        $crate::ports::Statement {
            sql: concat!("INSERT INTO cas_guard (conflict) SELECT NULL WHERE NOT (", $condition, ")"),
            params: vec![$($crate::ports::SqlValue::from($param)),*],
        }
    };
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AccessDenied(s) => write!(f, "access denied: {s}"),
            Self::Unavailable(s) => write!(f, "store unavailable: {s}"),
            Self::Decode(s) => write!(f, "unexpected row shape: {s}"),
            Self::Conflict => write!(f, "the state changed concurrently; nothing was applied"),
            Self::Contended => write!(f, "concurrent transactions kept aborting the batch; nothing was applied"),
            Self::Invalid(s) => write!(f, "a value the store cannot hold: {s}"),
        }
    }
}

/// The metadata store, as SQL. Statements use `?` placeholders and the portable subset of
/// SQLite and PostgreSQL; an adapter for a `$1`-style driver rewrites the placeholders.
pub trait Sql {
    async fn query(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<Row>, StoreError>;
    /// Runs a statement and returns how many rows it changed.
    async fn execute(&self, sql: &str, params: Vec<SqlValue>) -> Result<u64, StoreError>;
    /// Runs all statements or none, in one serializable transaction (the outbox pattern and
    /// every guarded state change depend on it). A failed [`guard!`] is `Err(Conflict)`.
    async fn batch(&self, statements: Vec<Statement>) -> Result<(), StoreError>;
}

/// Wall-clock time, as Unix milliseconds.
pub trait Clock {
    fn now_ms(&self) -> i64;
    /// Microseconds, for durations in log lines; platforms whose clock is finer say so.
    fn now_us(&self) -> i64 {
        self.now_ms() * 1000
    }
}

/// Cryptographically secure random bytes.
pub trait Entropy {
    fn fill(&self, buf: &mut [u8]);
}

/// Deployment configuration and secrets (Spin variables, Worker vars and secrets).
pub trait Config {
    /// `Ok(None)` when the variable is not set; `Err` when the platform refused or failed.
    async fn get(&self, name: &str) -> Result<Option<String>, StoreError>;
}

/// The blob store of one region: immutable, content-addressed chunk bytes. Values can be
/// larger than a platform's key-value limit; the adapter splits them as it must.
pub trait Blobs {
    async fn put(&self, key: &str, data: &[u8]) -> Result<(), StoreError>;
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Deleting a missing blob is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Every complete blob's key (for the integrity check; costs a full listing).
    async fn list(&self) -> Result<Vec<String>, StoreError>;
}

/// Small values read on hot paths at the edge (chunk manifests): Spin key-value, Workers KV.
pub trait Kv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// The keys that start with `prefix` (for the integrity check; costs a full listing).
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
}

/// The audit spool: the access records of the functions without a database (the signed
/// download's audit events) on their way into SQL. A download hands its record over without
/// a durable write of its own (a Redis stream on Spin, a Queue message on Workers; a
/// key-value store where neither is configured or reachable); a consumer with a database
/// takes records in batches, inserts them, and only then removes them.
pub trait Spool {
    /// Hands one record over. `key` is unique and sorts by time (`<ms>/<event id>`).
    async fn append(&self, key: &str, record: &[u8]) -> Result<(), StoreError>;
    /// Up to `limit` records, oldest first where the platform can tell, each with the receipt
    /// [`Self::remove`] takes.
    async fn take(&self, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Forgets records whose contents are stored elsewhere now. A receipt already removed is
    /// no error (two consumers may have taken the same records).
    async fn remove(&self, receipts: &[String]) -> Result<(), StoreError>;
}

/// A spool on a key-value store, one key per record under [`KvSpool::PREFIX`]: every write a
/// commit of the store, so it is the fallback where no broker takes the records.
pub struct KvSpool<K>(pub K);

impl<K> KvSpool<K> {
    pub const PREFIX: &'static str = "audit/";
}

impl<K: Kv> Spool for KvSpool<K> {
    async fn append(&self, key: &str, record: &[u8]) -> Result<(), StoreError> {
        self.0.set(&format!("{}{key}", Self::PREFIX), record).await
    }

    async fn take(&self, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut keys = self.0.list(Self::PREFIX).await?;
        keys.sort();
        keys.truncate(limit);
        let mut records = Vec::with_capacity(keys.len());
        for key in keys {
            // A key gone since the listing was taken by another consumer.
            if let Some(bytes) = self.0.get(&key).await? {
                records.push((key, bytes));
            }
        }
        Ok(records)
    }

    async fn remove(&self, receipts: &[String]) -> Result<(), StoreError> {
        for key in receipts {
            self.0.delete(key).await?;
        }
        Ok(())
    }
}

/// The job kind whose consumer moves the audit spool into SQL, and the message that asks it
/// to do just that (a spool on a broker wakes it so: `vaultx_spin`'s stream).
pub const AUDIT_DRAINER: &str = "verify";
pub const AUDIT_MESSAGE: &[u8] = b"audit";

/// The Redis channel the consumer of a job kind subscribes to on Spin (`[[trigger.redis]]`).
pub fn job_channel(kind: &str) -> String {
    format!("vaultx-jobs-{kind}")
}

/// Wakes the consumer of a job kind after the batch that enqueued a job committed (a Redis
/// publish on Spin, a Queue message on Workers). Best effort by design: the job is already
/// in the outbox, so a lost wake-up only delays it until the next sweep.
pub trait Queue {
    async fn wake(&self, kind: &str, job_id: &str) -> Result<(), StoreError>;
}

/// Append-only audit events (one JSON object each), e.g. every download.
pub trait AuditLog {
    /// Writes one event (a request's [`crate::http::LogLine`], a job's outcome) to the
    /// platform's log as one line of JSON.
    fn record<E: serde::Serialize + ?Sized>(&self, event: &E);
}

/// Everything a handler may ask of its platform. Each store is opened on first use, and only
/// a function granted that store may open it.
pub trait Platform: Clock + Entropy + Config + AuditLog + Queue {
    type Metadata: Sql;
    type Blobs: Blobs;
    type Kv: Kv;
    type Spool: Spool;
    async fn metadata(&self) -> Result<Self::Metadata, StoreError>;
    async fn blobs(&self) -> Result<Self::Blobs, StoreError>;
    /// The home blob store as a storage node names it: `(kind, binding)` (what [`Self::blobs`]
    /// opens; configuration says which).
    async fn home_store(&self) -> Result<(String, String), StoreError>;
    /// A blob store of the deployment by the kind and binding a storage node names
    /// (`key-value` + a Spin label, `r2` + a Workers binding, …). `Err(AccessDenied)` or
    /// `Err(Unavailable)`: this deployment has no such store, or did not grant it to this
    /// function; only blob stores can be named (never the manifests or the audit spool).
    async fn node_blobs(&self, kind: &str, binding: &str) -> Result<Self::Blobs, StoreError>;
    async fn kv(&self) -> Result<Self::Kv, StoreError>;
    /// The audit spool ([`Spool`]): where functions without a database leave their audit
    /// events for a consumer with one to move into SQL.
    async fn spool(&self) -> Result<Self::Spool, StoreError>;
}
