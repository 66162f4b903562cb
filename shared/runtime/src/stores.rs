//! The runtime's persistent stores, under one data directory: each SQLite database a file
//! (`default` is `sqlite_db.db`, as Spin names it), and all key-value stores in one SQLite
//! file (`key_value.db`), keyed by store label.

use anyhow::{Context, Result, bail};
use rusqlite::types::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Stores {
    data_dir: PathBuf,
    kv: Arc<Mutex<rusqlite::Connection>>,
    /// Idle SQLite connections by database label: opening a connection costs more than most
    /// queries, so a guest's `open` takes an idle one when there is one.
    idle: Mutex<std::collections::HashMap<String, Vec<rusqlite::Connection>>>,
}

/// The key-value store's write-ahead log may grow to this during a burst of writes before a
/// checkpoint makes writers wait for it to start over.
const WAL_LIMIT: i64 = 256 << 20;

/// Idle connections kept per database.
const IDLE_PER_DATABASE: usize = 16;

/// Rows as SQLite returned them, columns named.
pub struct QueryOutput {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

fn tune(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    // WAL lets readers run beside one writer; the busy timeout queues writers instead of
    // failing them, as a server database would.
    conn.busy_timeout(Duration::from_secs(10))?;
    // The journal mode is stored in the file: switching costs a write lock, checking does not.
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        conn.pragma_update(None, "journal_mode", "WAL")?;
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")
}

impl Stores {
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let kv = rusqlite::Connection::open(data_dir.join("key_value.db"))?;
        // Blob pieces are 512 KiB: in 64 KiB pages a piece is 8 overflow pages, not 128
        // (each its own WAL frame and checksum). Only a new file takes it; an existing one
        // keeps its page size.
        kv.pragma_update(None, "page_size", 65536)?;
        tune(&kv)?;
        // Checkpoints (copying the WAL into the database file) run on a thread of their own,
        // not inside whichever request's write crosses the threshold while holding the store:
        // a passive one twice a second, which never blocks a writer, and a restarting one
        // (which waits for writers, then lets the log start over) only when a burst of writes
        // has grown the log past WAL_LIMIT.
        kv.pragma_update(None, "wal_autocheckpoint", 0)?;
        // The log restarts once checkpointed; past a burst, it shrinks back to this.
        kv.pragma_update(None, "journal_size_limit", 64 << 20)?;
        let page_size: i64 = kv.pragma_query_value(None, "page_size", |r| r.get(0))?;
        let path = data_dir.join("key_value.db");
        std::thread::Builder::new().name("kv-checkpoint".into()).spawn(move || {
            let Ok(conn) = rusqlite::Connection::open(&path) else { return };
            let _ = conn.busy_timeout(Duration::from_secs(10));
            let checkpoint = |mode: &str| conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| r.get::<_, i64>(1));
            loop {
                std::thread::sleep(Duration::from_millis(500));
                match checkpoint("PASSIVE") {
                    Ok(frames) if frames * page_size > WAL_LIMIT => {
                        if let Err(e) = checkpoint("RESTART") {
                            eprintln!("vaultx-runtime: key-value checkpoint: {e}");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => eprintln!("vaultx-runtime: key-value checkpoint: {e}"),
                }
            }
        })?;
        kv.execute_batch(
            "CREATE TABLE IF NOT EXISTS spin_key_value (store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (store, key))",
        )?;
        Ok(Self { data_dir: data_dir.to_owned(), kv: Arc::new(Mutex::new(kv)), idle: Mutex::default() })
    }

    pub fn sqlite_path(&self, label: &str) -> Result<PathBuf> {
        if label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            bail!("invalid database label {label:?}");
        }
        let file = if label == "default" { "sqlite_db.db".to_owned() } else { format!("{label}.db") };
        Ok(self.data_dir.join(file))
    }

    /// A connection of its own per guest `open`, so one guest's transaction is never
    /// interleaved with another's statements: an idle one if there is one, else a new one.
    pub fn open_sqlite(&self, label: &str) -> Result<rusqlite::Connection> {
        let path = self.sqlite_path(label)?;
        if let Some(conn) = self.idle.lock().map_err(|e| anyhow::anyhow!("{e}"))?.get_mut(label).and_then(Vec::pop) {
            return Ok(conn);
        }
        let conn = rusqlite::Connection::open(path)?;
        tune(&conn)?;
        Ok(conn)
    }

    /// Takes back a connection a guest closed. One left inside a transaction is dropped
    /// (closing it rolls the transaction back) rather than handed to someone else.
    pub fn release_sqlite(&self, label: &str, conn: rusqlite::Connection) {
        if !conn.is_autocommit() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            let pool = idle.entry(label.to_owned()).or_default();
            if pool.len() < IDLE_PER_DATABASE {
                pool.push(conn);
            }
        }
    }

    pub fn kv(&self) -> Arc<Mutex<rusqlite::Connection>> {
        self.kv.clone()
    }
}

pub fn execute(conn: &rusqlite::Connection, sql: &str, params: Vec<Value>) -> rusqlite::Result<QueryOutput> {
    let mut stmt = conn.prepare(sql)?;
    let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let n = columns.len();
    let mut rows = Vec::new();
    let mut cursor = stmt.query(rusqlite::params_from_iter(params))?;
    while let Some(row) = cursor.next()? {
        rows.push((0..n).map(|i| row.get::<_, Value>(i)).collect::<rusqlite::Result<_>>()?);
    }
    drop(cursor);
    Ok(QueryOutput { columns, rows })
}

pub mod kv {
    use rusqlite::OptionalExtension;

    pub fn get(conn: &rusqlite::Connection, store: &str, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
        conn.query_row("SELECT value FROM spin_key_value WHERE store = ? AND key = ?", [store, key], |r| r.get(0)).optional()
    }

    pub fn set(conn: &rusqlite::Connection, store: &str, key: &str, value: &[u8]) -> rusqlite::Result<()> {
        conn.execute(
            "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3) ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
            rusqlite::params![store, key, value],
        )
        .map(drop)
    }

    pub fn delete(conn: &rusqlite::Connection, store: &str, key: &str) -> rusqlite::Result<()> {
        conn.execute("DELETE FROM spin_key_value WHERE store = ? AND key = ?", [store, key]).map(drop)
    }

    pub fn keys(conn: &rusqlite::Connection, store: &str) -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare("SELECT key FROM spin_key_value WHERE store = ? ORDER BY key")?;
        stmt.query_map([store], |r| r.get(0))?.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_stores_are_separate_namespaces() {
        let dir = std::env::temp_dir().join(format!("vaultx-kv-{}", std::process::id()));
        let stores = Stores::open(&dir).unwrap();
        let kv = stores.kv();
        let conn = kv.lock().unwrap();
        kv::set(&conn, "a", "k", b"1").unwrap();
        kv::set(&conn, "a", "k", b"2").unwrap();
        kv::set(&conn, "b", "k", b"3").unwrap();
        assert_eq!(kv::get(&conn, "a", "k").unwrap(), Some(b"2".to_vec()));
        assert_eq!(kv::keys(&conn, "b").unwrap(), ["k"]);
        kv::delete(&conn, "a", "k").unwrap();
        assert_eq!(kv::get(&conn, "a", "k").unwrap(), None);
        drop(conn);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn closed_connections_are_reused_unless_a_transaction_is_open() {
        let dir = std::env::temp_dir().join(format!("vaultx-pool-{}", std::process::id()));
        let stores = Stores::open(&dir).unwrap();
        let conn = stores.open_sqlite("default").unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        stores.release_sqlite("default", conn);
        assert_eq!(stores.idle.lock().unwrap()["default"].len(), 1);
        let conn = stores.open_sqlite("default").unwrap();
        assert!(stores.idle.lock().unwrap()["default"].is_empty(), "the idle one was taken");
        conn.execute_batch("BEGIN; INSERT INTO t VALUES (1)").unwrap();
        stores.release_sqlite("default", conn);
        assert!(stores.idle.lock().unwrap()["default"].is_empty(), "mid-transaction: not reused");
        let conn = stores.open_sqlite("default").unwrap();
        let n: i64 = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0, "the abandoned transaction was rolled back");
        drop(conn);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn database_labels_cannot_escape_the_data_directory() {
        let stores = Stores {
            data_dir: "/data".into(),
            kv: Arc::new(Mutex::new(rusqlite::Connection::open_in_memory().unwrap())),
            idle: Mutex::default(),
        };
        assert_eq!(stores.sqlite_path("default").unwrap(), Path::new("/data/sqlite_db.db"));
        assert!(stores.sqlite_path("../etc").is_err());
        assert!(stores.sqlite_path("").is_err());
    }
}
