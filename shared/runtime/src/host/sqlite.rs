//! `spin:sqlite@3.1.0`: each open connection is a rusqlite connection of its own
//! (`Stores::open_sqlite`), reused from the database's idle pool, for the databases the
//! component lists in `sqlite_databases`.

use super::spin::sqlite::sqlite;
use super::{HasSpin, Spin, SpinView, blocking, finished_stream};
use crate::stores;
use std::sync::{Arc, Mutex};
use wasmtime::Result;
use wasmtime::component::{Accessor, FutureReader, Linker, Resource, StreamReader};

/// A guest's open SQLite connection: its own rusqlite connection (see `Stores::open_sqlite`),
/// and the database it belongs to, so closing hands it back to that database's idle pool.
pub struct SqliteConnection {
    database: String,
    conn: Arc<Mutex<rusqlite::Connection>>,
}

pub fn add_to_linker<T: HasSpin>(linker: &mut Linker<T>) -> Result<()> {
    sqlite::add_to_linker::<_, Spin>(linker, T::spin)
}

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

