//! Host side of the `spin:*` interfaces: SQLite (`spin:sqlite@3.1.0`), key-value
//! (`spin:key-value@3.0.0`), variables (`spin:variables@3.0.0`) and outbound Redis
//! (`spin:redis@3.0.0`, in `redis_host.rs`) and PostgreSQL (`spin:postgres@4.2.0`, in
//! `pg_host.rs`), each checked against what the manifest granted
//! the calling component. A component that did not list a store
//! gets `access-denied`, as on Spin.

use crate::stores::{self, Stores};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use wasmtime::component::{Accessor, FutureReader, HasData, Lift, Linker, Lower, Resource, ResourceTable, StreamReader};
use wasmtime::Result;

wasmtime::component::bindgen!({
    path: "wit",
    world: "spin-host",
    imports: { default: trappable },
    with: {
        "spin:sqlite/sqlite.connection": SqliteConnection,
        "spin:key-value/key-value.store": KvStore,
        "spin:redis/redis.connection": crate::redis_host::RedisConnection,
        "spin:postgres/postgres.connection": crate::pg_host::PgConnection,
        "spin:postgres/postgres.connection-builder": crate::pg_host::PgConnectionBuilder,
    },
});

use spin::key_value::key_value as kv;
use spin::sqlite::sqlite;
use spin::variables::variables;

/// A guest's open SQLite connection: its own rusqlite connection (see `Stores::open_sqlite`),
/// and the database it belongs to, so closing hands it back to that database's idle pool.
pub struct SqliteConnection {
    database: String,
    conn: Arc<Mutex<rusqlite::Connection>>,
}

/// A guest's open key-value store: its label and the file that holds it (`Stores::kv`), found once
/// at `open` rather than at every call.
pub struct KvStore {
    label: String,
    kv: Arc<stores::KeyValue>,
}

/// What one component may use, from the manifest.
pub struct Grants {
    pub sqlite_databases: Vec<String>,
    pub key_value_stores: Vec<String>,
    pub variables: HashMap<String, String>,
    /// For `redis://` and `postgres://` addresses (outbound HTTP checks its own copy in `Outbound`).
    pub allowed_outbound_hosts: Vec<String>,
}

pub struct SpinCtx {
    pub grants: Arc<Grants>,
    pub stores: Arc<Stores>,
    pub redis: Arc<crate::redis_host::Clients>,
    pub pg: Arc<crate::pg_host::Pools>,
}

pub struct SpinView<'a> {
    pub ctx: &'a mut SpinCtx,
    pub table: &'a mut ResourceTable,
}

pub trait HasSpin: Send + 'static {
    fn spin(&mut self) -> SpinView<'_>;
}

pub struct Spin;
impl HasData for Spin {
    type Data<'a> = SpinView<'a>;
}

pub fn add_to_linker<T: HasSpin>(linker: &mut Linker<T>) -> Result<()> {
    sqlite::add_to_linker::<_, Spin>(linker, T::spin)?;
    kv::add_to_linker::<_, Spin>(linker, T::spin)?;
    variables::add_to_linker::<_, Spin>(linker, T::spin)?;
    spin::redis::redis::add_to_linker::<_, Spin>(linker, T::spin)?;
    spin::postgres::postgres::add_to_linker::<_, Spin>(linker, T::spin)?;
    Ok(())
}

/// What the host has already read in full (rows, keys), as the `(stream, completion)` pair
/// the `-async` functions return; the completion resolves to `done`.
pub fn finished_stream<T: 'static, R, E>(a: &Accessor<T, Spin>, items: Vec<R>, done: Result<(), E>) -> Result<(StreamReader<R>, FutureReader<Result<(), E>>)>
where
    R: Lower + Lift + Send + Sync + Unpin + 'static,
    E: Lower + Lift + Send + Sync + 'static,
{
    a.with(|mut x| Ok((StreamReader::new(&mut x, items)?, FutureReader::new(&mut x, async move { Ok::<_, wasmtime::Error>(done) })?)))
}

/// Runs blocking SQLite work off the async executor.
async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Result<R> {
    Ok(tokio::task::spawn_blocking(f).await?)
}

// ---- spin:sqlite ----

fn to_rusqlite(v: sqlite::Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match v {
        sqlite::Value::Integer(n) => V::Integer(n),
        sqlite::Value::Real(f) => V::Real(f),
        sqlite::Value::Text(s) => V::Text(s),
        sqlite::Value::Blob(b) => V::Blob(b),
        sqlite::Value::Null => V::Null,
    }
}

fn from_rusqlite(v: rusqlite::types::Value) -> sqlite::Value {
    use rusqlite::types::Value as V;
    match v {
        V::Integer(n) => sqlite::Value::Integer(n),
        V::Real(f) => sqlite::Value::Real(f),
        V::Text(s) => sqlite::Value::Text(s),
        V::Blob(b) => sqlite::Value::Blob(b),
        V::Null => sqlite::Value::Null,
    }
}

fn sqlite_error(e: impl std::fmt::Display) -> sqlite::Error {
    sqlite::Error::Io(e.to_string())
}

impl SpinView<'_> {
    fn open_sqlite(&mut self, database: &str) -> Result<Result<Resource<SqliteConnection>, sqlite::Error>> {
        if !self.ctx.grants.sqlite_databases.iter().any(|d| d == database) {
            return Ok(Err(sqlite::Error::AccessDenied));
        }
        let conn = match self.ctx.stores.open_sqlite(database) {
            Ok(c) => c,
            Err(e) => return Ok(Err(sqlite_error(e))),
        };
        Ok(Ok(self.table.push(SqliteConnection { database: database.to_owned(), conn: Arc::new(Mutex::new(conn)) })?))
    }

    fn sqlite(&self, c: &Resource<SqliteConnection>) -> Result<Arc<Mutex<rusqlite::Connection>>> {
        Ok(self.table.get(c)?.conn.clone())
    }
}

type Rows = (Vec<String>, Vec<sqlite::RowResult>);

fn run_sql(conn: &Mutex<rusqlite::Connection>, statement: &str, parameters: Vec<sqlite::Value>) -> Result<Rows, sqlite::Error> {
    let conn = conn.lock().map_err(sqlite_error)?;
    let out = stores::execute(&conn, statement, parameters.into_iter().map(to_rusqlite).collect()).map_err(sqlite_error)?;
    let rows = out.rows.into_iter().map(|r| sqlite::RowResult { values: r.into_iter().map(from_rusqlite).collect() }).collect();
    Ok((out.columns, rows))
}

impl sqlite::Host for SpinView<'_> {}

impl sqlite::HostConnection for SpinView<'_> {
    fn open(&mut self, database: String) -> Result<Result<Resource<SqliteConnection>, sqlite::Error>> {
        self.open_sqlite(&database)
    }

    fn execute(
        &mut self,
        c: Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<sqlite::Value>,
    ) -> Result<Result<sqlite::QueryResult, sqlite::Error>> {
        let conn = self.sqlite(&c)?;
        Ok(run_sql(&conn, &statement, parameters).map(|(columns, rows)| sqlite::QueryResult { columns, rows }))
    }

    fn last_insert_rowid(&mut self, c: Resource<SqliteConnection>) -> Result<i64> {
        Ok(self.sqlite(&c)?.lock().map_err(|e| wasmtime::format_err!("{e}"))?.last_insert_rowid())
    }

    fn changes(&mut self, c: Resource<SqliteConnection>) -> Result<u64> {
        Ok(self.sqlite(&c)?.lock().map_err(|e| wasmtime::format_err!("{e}"))?.changes())
    }

    fn drop(&mut self, c: Resource<SqliteConnection>) -> Result<()> {
        let closed = self.table.delete(c)?;
        // Only the last holder can hand it back (an execute may still hold a clone).
        if let Ok(conn) = Arc::try_unwrap(closed.conn)
            && let Ok(conn) = conn.into_inner()
        {
            self.ctx.stores.release_sqlite(&closed.database, conn);
        }
        Ok(())
    }
}

impl<T: 'static> sqlite::HostConnectionWithStore<T> for Spin {
    async fn open_async(a: &Accessor<T, Self>, database: String) -> Result<Result<Resource<SqliteConnection>, sqlite::Error>> {
        a.with(|mut x| x.get().open_sqlite(&database))
    }

    async fn execute_async(
        a: &Accessor<T, Self>,
        c: Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<sqlite::Value>,
    ) -> Result<Result<(Vec<String>, StreamReader<sqlite::RowResult>, FutureReader<Result<(), sqlite::Error>>), sqlite::Error>> {
        let conn = a.with(|mut x| x.get().sqlite(&c))?;
        let (columns, rows) = match blocking(move || run_sql(&conn, &statement, parameters)).await? {
            Ok(out) => out,
            Err(e) => return Ok(Err(e)),
        };
        let (rows, done) = finished_stream(a, rows, Ok(()))?;
        Ok(Ok((columns, rows, done)))
    }

    async fn last_insert_rowid_async(a: &Accessor<T, Self>, c: Resource<SqliteConnection>) -> Result<i64> {
        let conn = a.with(|mut x| x.get().sqlite(&c))?;
        Ok(conn.lock().map_err(|e| wasmtime::format_err!("{e}"))?.last_insert_rowid())
    }

    async fn changes_async(a: &Accessor<T, Self>, c: Resource<SqliteConnection>) -> Result<u64> {
        let conn = a.with(|mut x| x.get().sqlite(&c))?;
        Ok(conn.lock().map_err(|e| wasmtime::format_err!("{e}"))?.changes())
    }
}

// ---- spin:key-value ----

fn kv_error(e: impl std::fmt::Display) -> kv::Error {
    kv::Error::Other(e.to_string())
}

/// A key-value read, on this thread: a read connection never waits for the writer (WAL), and
/// a read from the page cache costs less than handing it to another thread and back.
fn kv_read<T: 'static, R>(
    a: &Accessor<T, Spin>,
    s: &Resource<KvStore>,
    op: impl FnOnce(&stores::KeyValue, &str) -> rusqlite::Result<R>,
) -> Result<Result<R, kv::Error>> {
    a.with(|mut x| {
        let store = x.get().table.get(s)?;
        Ok(op(&store.kv, &store.label).map_err(kv_error))
    })
}

/// A key-value write, committed by the store's writer thread with whatever other writes are
/// waiting (`stores::KeyValue`). A large value's file is written off the executor first.
async fn kv_write<T: 'static, F>(a: &Accessor<T, Spin>, s: &Resource<KvStore>, large: bool, op: impl FnOnce(&stores::KeyValue, &str) -> F + Send + 'static) -> Result<Result<(), kv::Error>>
where
    F: Future<Output = rusqlite::Result<()>> + Send + 'static,
{
    let (kv, label) = a.with(|mut x| x.get().table.get(s).map(|store| (store.kv.clone(), store.label.clone())))?;
    let committed = if large { blocking(move || op(&kv, &label)).await? } else { op(&kv, &label) };
    Ok(committed.await.map_err(kv_error))
}

impl kv::Host for SpinView<'_> {}

impl kv::HostStore for SpinView<'_> {
    fn drop(&mut self, s: Resource<KvStore>) -> Result<()> {
        self.table.delete(s)?;
        Ok(())
    }
}

impl<T: 'static> kv::HostStoreWithStore<T> for Spin {
    async fn open(a: &Accessor<T, Self>, label: String) -> Result<Result<Resource<KvStore>, kv::Error>> {
        a.with(|mut x| {
            let view = x.get();
            if !view.ctx.grants.key_value_stores.contains(&label) {
                return Ok(Err(kv::Error::AccessDenied));
            }
            let kv = view.ctx.stores.kv(&label);
            Ok(Ok(view.table.push(KvStore { label, kv })?))
        })
    }

    async fn get(a: &Accessor<T, Self>, s: Resource<KvStore>, key: String) -> Result<Result<Option<Vec<u8>>, kv::Error>> {
        kv_read(a, &s, |kv, store| kv.get(store, &key))
    }

    async fn set(a: &Accessor<T, Self>, s: Resource<KvStore>, key: String, value: Vec<u8>) -> Result<Result<(), kv::Error>> {
        kv_write(a, &s, value.len() > stores::INLINE_MAX, move |kv, store| kv.set(store, &key, &value)).await
    }

    async fn delete(a: &Accessor<T, Self>, s: Resource<KvStore>, key: String) -> Result<Result<(), kv::Error>> {
        kv_write(a, &s, false, move |kv, store| kv.delete(store, &key)).await
    }

    async fn exists(a: &Accessor<T, Self>, s: Resource<KvStore>, key: String) -> Result<Result<bool, kv::Error>> {
        kv_read(a, &s, |kv, store| kv.exists(store, &key))
    }

    async fn get_keys(a: &Accessor<T, Self>, s: Resource<KvStore>) -> Result<(StreamReader<String>, FutureReader<Result<(), kv::Error>>)> {
        let (keys, result) = match kv_read(a, &s, |kv, store| kv.keys(store))? {
            Ok(keys) => (keys, Ok(())),
            Err(e) => (Vec::new(), Err(e)),
        };
        finished_stream(a, keys, result)
    }
}

// ---- spin:variables ----

impl variables::Host for SpinView<'_> {}

impl<T: 'static> variables::HostWithStore<T> for Spin {
    async fn get(a: &Accessor<T, Self>, name: String) -> Result<Result<String, variables::Error>> {
        if !crate::manifest::valid_variable_name(&name) {
            return Ok(Err(variables::Error::InvalidName(name)));
        }
        Ok(a.with(|mut x| x.get().ctx.grants.variables.get(&name).cloned()).ok_or(variables::Error::Undefined(name)))
    }
}
