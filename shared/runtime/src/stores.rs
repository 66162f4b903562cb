//! The runtime's persistent stores, under one data directory: each SQLite database a file
//! (`default` is `sqlite_db.db`, as Spin names it), and the key-value stores in one SQLite
//! file (`key_value.db`), keyed by store label — except the audit spool, which has a file of
//! its own (`key_value-audit.db`, see [`OWN_FILE`]).

use anyhow::{Context, Result, bail};
use rusqlite::types::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Stores {
    data_dir: PathBuf,
    kv: Arc<KeyValue>,
    /// The stores of [`OWN_FILE`], each its own `KeyValue`.
    own: Vec<(&'static str, Arc<KeyValue>)>,
    /// Idle SQLite connections by database label: opening a connection costs more than most
    /// queries, so a guest's `open` takes an idle one when there is one.
    idle: Mutex<std::collections::HashMap<String, Vec<rusqlite::Connection>>>,
}

/// The key-value store's write-ahead log may grow to this during a burst of writes before a
/// checkpoint makes writers wait for it to start over.
const WAL_LIMIT: i64 = 64 << 20;

/// Key-value stores with a file (and writer) of their own: the audit spool, which every
/// download writes one small row to. In the shared file each of its commits changed the
/// database the download's reads (its manifest, its blob) come from, so every reader found
/// its page cache stale and read the pages again (10 `pread`s per 4 KiB download); its own
/// file leaves the read path's caches alone. Other stores stay in `key_value.db`.
pub const OWN_FILE: &[&str] = &["audit"];

/// Idle connections kept per database.
const IDLE_PER_DATABASE: usize = 16;

/// Rows as SQLite returned them, columns named.
pub struct QueryOutput {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// How long a writer waits for the metadata database's write lock before it is `busy`.
const BUSY_WAIT: Duration = Duration::from_secs(10);

/// The metadata database's busy handler. SQLite's own (`busy_timeout`) sleeps 1, 2, 5, 10, 15,
/// 20, 25 … 100 ms between tries, so a writer that meets another one's transaction (a
/// request's batch, a job's) sleeps on for up to that long after the lock is free. Try again
/// every 100 µs for the first 10 ms, then every 1 ms, up to [`BUSY_WAIT`].
fn busy_wait(attempt: i32) -> bool {
    let attempt = attempt.max(0) as u64;
    let (waited, step) = if attempt < 100 { (attempt * 100, 100) } else { (10_000 + (attempt - 100) * 1_000, 1_000) };
    if Duration::from_micros(waited) >= BUSY_WAIT {
        return false;
    }
    std::thread::sleep(Duration::from_micros(step));
    true
}

fn tune(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    // WAL lets readers run beside one writer; the busy handler queues writers instead of
    // failing them, as a server database would.
    conn.busy_handler(Some(busy_wait))?;
    // The journal mode is stored in the file: switching costs a write lock, checking does not.
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        conn.pragma_update(None, "journal_mode", "WAL")?;
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Guests send the same few statements again and again: parsing one costs more than
    // running it.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

impl Stores {
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let kv = KeyValue::start(data_dir, None)?;
        let mut own = Vec::new();
        for &label in OWN_FILE {
            let store = KeyValue::start(data_dir, Some(label))?;
            // Data directories from before the store had its own file: its rows move over
            // (copied, then deleted: a crash in between copies them again, to the same keys).
            kv.move_store(label, &store).with_context(|| format!("moving key-value store {label} to its own file"))?;
            own.push((label, store));
        }
        Ok(Self { data_dir: data_dir.to_owned(), kv, own, idle: Mutex::default() })
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

    /// The key-value file holding the store `label`.
    pub fn kv(&self, label: &str) -> Arc<KeyValue> {
        self.own.iter().find(|(l, _)| *l == label).map_or(&self.kv, |(_, kv)| kv).clone()
    }

    /// Empties every key-value file's log into its database (the runtime is stopping).
    pub async fn close_kv(&self) {
        self.kv.close().await;
        for (_, kv) in &self.own {
            kv.close().await;
        }
    }
}

pub fn execute(conn: &rusqlite::Connection, sql: &str, params: Vec<Value>) -> rusqlite::Result<QueryOutput> {
    let mut stmt = conn.prepare_cached(sql)?;
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

/// Values larger than this live in files of their own beside the database (`kv-values/`),
/// the row naming the file: a 512 KiB blob piece is then one `write` into the page cache and
/// one `read` out of it, instead of overflow pages copied through the write-ahead log, the
/// checkpoint and the page cache again. Small values (manifests, markers, the audit spool)
/// stay rows.
pub const INLINE_MAX: usize = 16 * 1024;

/// Read connections kept idle; reads never wait for the writer (WAL).
const IDLE_READERS: usize = 8;

/// One key-value file: a SQLite database (`key_value.db` for most stores, or a store's own
/// file, [`OWN_FILE`]; rows keyed by store label) and a directory of the large values' files. A pool of readers, and one writer thread that
/// commits every change waiting for it in one transaction (group commit): under load, the
/// audit spool's small rows share their pages in the write-ahead log instead of each writing
/// a 4 KiB page of its own, so the log — and the `fsync` of every checkpoint, which stalls
/// writers on this file system — stays small. A change is answered only once it committed.
///
/// A large value's file is written under a name never used before, *then* the row is made to
/// name it, *then* the file the row named before is removed; a reader opens the file the row
/// names, and an open file stays readable after its name is removed. So a reader sees the old
/// value or the new one, never a mix, and a crash leaves at worst a file no row names, which
/// the next start removes.
pub struct KeyValue {
    path: PathBuf,
    /// Small values read lately (the shared file's stores; the spool's events are read once).
    cache: Option<Arc<ReadCache>>,
    /// Where small values are set first, for the writer to move into the database (the
    /// stores of [`OWN_FILE`]: the audit spool).
    log: Option<Arc<AppendLog>>,
    values: PathBuf,
    writer: std::sync::mpsc::Sender<Write>,
    readers: Mutex<Vec<rusqlite::Connection>>,
    /// Unique file names: the process start time and a counter.
    names: (u128, std::sync::atomic::AtomicU64),
}

/// What the writer thread is asked to do.
enum Write {
    Change(Change, tokio::sync::oneshot::Sender<rusqlite::Result<()>>),
    /// Checkpoint and let the log start over (the WAL grew past WAL_LIMIT).
    Restart,
    /// Checkpoint and empty the log: the runtime is stopping, and the next start then has no
    /// log to read through before its first answer.
    Close(tokio::sync::oneshot::Sender<()>),
    /// Answers once the append log's values are in the database (a read is about to look).
    Ingest(std::sync::mpsc::SyncSender<()>),
}

enum Change {
    /// The row's value: the value itself, or the length of the value in `file`.
    Set { store: String, key: String, value: Vec<u8>, file: Option<String> },
    Delete { store: String, key: String },
}

impl Change {
    fn key(&self) -> (&str, &str) {
        match self {
            Self::Set { store, key, .. } | Self::Delete { store, key } => (store, key),
        }
    }
}

/// What the read cache may hold in all (values and keys).
const CACHE_BYTES: usize = 16 << 20;

/// Small values (rows, at most [`INLINE_MAX`]) read lately, in memory. A download reads its
/// manifest and, for a small object, its one blob row on every request; through SQLite each
/// read takes a read connection, a shared lock on the log (`fcntl`s) and a B-tree search.
///
/// The runtime owns its data directory, and every change to a key-value file goes through
/// its writer thread, which drops the changed keys here after committing and before
/// answering: a read that follows a change's answer never finds the value it replaced. A
/// value read from SQLite while a commit was under way may be the replaced one, so it is
/// kept only if no commit ended meanwhile (`generation`). The oldest values go first once
/// [`CACHE_BYTES`] are held.
#[derive(Default)]
struct ReadCache(Mutex<CachedValues>);

#[derive(Default)]
struct CachedValues {
    /// Bumped by every commit.
    generation: u64,
    by_store: std::collections::HashMap<String, std::collections::HashMap<String, Arc<[u8]>>>,
    /// Keys in the order they were kept; a key forgotten and kept again is listed twice, and
    /// goes at the first listing.
    order: std::collections::VecDeque<(String, String)>,
    bytes: usize,
}

impl ReadCache {
    fn get(&self, store: &str, key: &str) -> Option<Vec<u8>> {
        self.0.lock().ok()?.by_store.get(store)?.get(key).map(|value| value.to_vec())
    }

    fn generation(&self) -> u64 {
        self.0.lock().map_or(0, |c| c.generation)
    }

    /// Keeps a value read from SQLite after `generation()` said `generation`.
    fn keep(&self, generation: u64, store: &str, key: &str, value: &[u8]) {
        let Ok(mut c) = self.0.lock() else { return };
        if c.generation != generation || value.len() > INLINE_MAX {
            return;
        }
        let values = c.by_store.entry(store.to_owned()).or_default();
        if values.contains_key(key) {
            return;
        }
        values.insert(key.to_owned(), value.into());
        c.bytes += store.len() + key.len() + value.len();
        c.order.push_back((store.to_owned(), key.to_owned()));
        while c.bytes > CACHE_BYTES {
            let Some((store, key)) = c.order.pop_front() else { break };
            c.remove(&store, &key);
        }
    }

    /// Drops changed keys (after their commit, or their failure).
    fn forget<'a>(&self, keys: impl Iterator<Item = (&'a str, &'a str)>) {
        let Ok(mut c) = self.0.lock() else { return };
        c.generation += 1;
        for (store, key) in keys {
            c.remove(store, key);
        }
    }

    /// Drops everything (the file was changed by another connection: moving a store).
    fn clear(&self) {
        if let Ok(mut c) = self.0.lock() {
            let generation = c.generation + 1;
            *c = CachedValues { generation, ..CachedValues::default() };
        }
    }
}

/// How often the writer moves an append log's values into the database. Under a 16-connection
/// 4 KiB download load, every 100 ms made the slowest 1 % of downloads wait 3.7–4.1 ms behind
/// each move's burst of work; every 10 ms, 2.3–2.4 ms, for the same throughput.
const INGEST_EVERY: Duration = Duration::from_millis(10);

/// A store's small values set first into a file, one `write` on the calling thread, then moved
/// into the database by the writer thread, in one transaction, every [`INGEST_EVERY`]. Every
/// download sets its audit event in the spool before answering; committing each through the
/// writer (a thread hop there and back, a transaction, a log frame) cost a third of a 4 KiB
/// download's CPU time. A value appended is as safe as a committed one here: both are in the
/// page cache, not yet on disk (`synchronous = NORMAL`), and both survive the process.
///
/// Appenders write to the newest file, `<name>.<n>`; the writer starts a new one, then moves
/// the older ones' values in and removes them. A start moves in what the last process left. A
/// record is `A5`, its length (u32), the store's and the key's lengths (u16), store, key, value
/// (little-endian); the first record that does not read whole ends a file (a write a crash cut
/// short, never answered).
struct AppendLog {
    dir: PathBuf,
    name: String,
    /// The newest file's number, the file (none after a write failed: the next append starts
    /// a new one, so no record lands behind the part of one a failed write left), and whether
    /// anything was written to it.
    current: Mutex<(u64, Option<std::fs::File>, bool)>,
    /// No older file is left: the last ingest moved them all in (a start may find some).
    drained: std::sync::atomic::AtomicBool,
}

const RECORD_MARK: u8 = 0xA5;

impl AppendLog {
    fn open(dir: &Path, name: &str) -> Result<Self> {
        let next = Self::files_of(dir, name)?.last().map_or(0, |(n, _)| n + 1);
        let file = Self::create(dir, name, next)?;
        Ok(Self { dir: dir.to_owned(), name: name.to_owned(), current: Mutex::new((next, Some(file), false)), drained: false.into() })
    }

    fn create(dir: &Path, name: &str, n: u64) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new().append(true).create_new(true).open(dir.join(format!("{name}.{n:020}")))
    }

    /// The log's files, oldest first.
    fn files_of(dir: &Path, name: &str) -> std::io::Result<Vec<(u64, PathBuf)>> {
        let prefix = format!("{name}.");
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if let Some(n) = file_name.strip_prefix(&prefix).and_then(|n| n.parse::<u64>().ok()) {
                files.push((n, entry.path()));
            }
        }
        files.sort();
        Ok(files)
    }

    fn append(&self, store: &str, key: &str, value: &[u8]) -> std::io::Result<()> {
        let record = encode_record(store, key, value)?;
        let mut current = self.current.lock().map_err(|_| std::io::Error::other("the key-value log is poisoned"))?;
        if current.1.is_none() {
            let next = current.0 + 1;
            *current = (next, Some(Self::create(&self.dir, &self.name, next)?), false);
        }
        let written = current.1.as_mut().map_or(Ok(()), |file| std::io::Write::write_all(file, &record));
        // Even a failed write may have left part of the record: the file ends there.
        current.2 = true;
        if written.is_err() {
            current.1 = None;
        }
        written
    }

    /// Starts a new file (if anything was written to the newest), then moves every older
    /// file's values into the database, in one transaction, and removes those files.
    fn ingest(&self, conn: &rusqlite::Connection, remove: &impl Fn(Option<Stored>)) -> rusqlite::Result<usize> {
        let newest = {
            let mut current = self.current.lock().map_err(|_| io_error(std::io::Error::other("the key-value log is poisoned")))?;
            if current.2 {
                let next = current.0 + 1;
                *current = (next, Some(Self::create(&self.dir, &self.name, next).map_err(io_error)?), false);
                self.drained.store(false, std::sync::atomic::Ordering::Relaxed);
            }
            current.0
        };
        if self.drained.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(0);
        }
        let older: Vec<(u64, PathBuf)> = Self::files_of(&self.dir, &self.name).map_err(io_error)?.into_iter().filter(|(n, _)| *n < newest).collect();
        if older.is_empty() {
            self.drained.store(true, std::sync::atomic::Ordering::Relaxed);
            return Ok(0);
        }
        let mut changes = Vec::new();
        for (_, path) in &older {
            let bytes = std::fs::read(path).map_err(io_error)?;
            changes.extend(decode_records(&bytes).into_iter().map(|(store, key, value)| Change::Set { store, key, value, file: None }));
        }
        let mut replaced = Vec::new();
        // If this fails, the files stay: the next ingest tries them again, in the same order.
        in_transaction(conn, || {
            for change in &changes {
                replaced.push(KeyValue::apply(conn, change)?);
            }
            Ok(())
        })?;
        replaced.into_iter().for_each(remove);
        let mut removed = true;
        for (_, path) in &older {
            if let Err(e) = std::fs::remove_file(path) {
                eprintln!("vaultx-runtime: removing {}: {e}", path.display());
                removed = false;
            }
        }
        self.drained.store(removed, std::sync::atomic::Ordering::Relaxed);
        Ok(changes.len())
    }
}

fn encode_record(store: &str, key: &str, value: &[u8]) -> std::io::Result<Vec<u8>> {
    let too_long = || std::io::Error::other("a key-value store name or key over 65535 bytes");
    let store_len = u16::try_from(store.len()).map_err(|_| too_long())?;
    let key_len = u16::try_from(key.len()).map_err(|_| too_long())?;
    let len = 4 + store.len() + key.len() + value.len();
    let mut record = Vec::with_capacity(5 + len);
    record.push(RECORD_MARK);
    record.extend_from_slice(&(len as u32).to_le_bytes());
    record.extend_from_slice(&store_len.to_le_bytes());
    record.extend_from_slice(&key_len.to_le_bytes());
    record.extend_from_slice(store.as_bytes());
    record.extend_from_slice(key.as_bytes());
    record.extend_from_slice(value);
    Ok(record)
}

/// The whole records at the start of `bytes`, in order.
fn decode_records(mut bytes: &[u8]) -> Vec<(String, String, Vec<u8>)> {
    let mut records = Vec::new();
    while let [RECORD_MARK, a, b, c, d, rest @ ..] = bytes {
        let len = u32::from_le_bytes([*a, *b, *c, *d]) as usize;
        let Some(body) = rest.get(..len) else { break };
        let [s0, s1, k0, k1, fields @ ..] = body else { break };
        let (store_len, key_len) = (u16::from_le_bytes([*s0, *s1]) as usize, u16::from_le_bytes([*k0, *k1]) as usize);
        if store_len + key_len > fields.len() {
            break;
        }
        let (Ok(store), Ok(key)) = (std::str::from_utf8(&fields[..store_len]), std::str::from_utf8(&fields[store_len..store_len + key_len])) else { break };
        records.push((store.to_owned(), key.to_owned(), fields[store_len + key_len..].to_vec()));
        bytes = &rest[len..];
    }
    records
}

impl CachedValues {
    fn remove(&mut self, store: &str, key: &str) {
        if let Some(value) = self.by_store.get_mut(store).and_then(|values| values.remove(key)) {
            self.bytes -= store.len() + key.len() + value.len();
        }
    }
}

/// The most changes committed together.
const GROUP_MAX: usize = 256;

/// Runs one statement by its cached prepared form: parsing BEGIN, SAVEPOINT, RELEASE and
/// COMMIT again for every group (rusqlite's `Transaction` and `Savepoint`) cost more than a
/// small change itself.
fn run_cached(conn: &rusqlite::Connection, sql: &str) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql).and_then(|mut s| s.execute([]))
}

/// Runs `body` in one write transaction, committed if it succeeds, rolled back if anything failed.
fn in_transaction(conn: &rusqlite::Connection, body: impl FnOnce() -> rusqlite::Result<()>) -> rusqlite::Result<()> {
    let committed = run_cached(conn, "BEGIN IMMEDIATE").and_then(|_| body()).and_then(|()| run_cached(conn, "COMMIT").map(drop));
    if committed.is_err() && !conn.is_autocommit() {
        let _ = run_cached(conn, "ROLLBACK");
    }
    committed
}

enum Stored {
    Inline(Vec<u8>),
    /// The file's name and the value's length, which the file must have.
    File(String, u64),
}

impl KeyValue {
    /// Opens the shared key-value file (`name` None: `key_value.db`, values in `kv-values/`)
    /// or a store's own (`key_value-<name>.db`, `kv-values-<name>/`), and starts its
    /// checkpoints and the removal of the value files a crash left.
    fn start(data_dir: &Path, name: Option<&str>) -> Result<Arc<Self>> {
        let kv = Arc::new(KeyValue::open(data_dir, name)?);
        KeyValue::start_checkpoints(&kv)?;
        let orphans = kv.clone();
        std::thread::Builder::new().name("kv-orphans".into()).spawn(move || {
            // Background work: it reads every file-backed row and lists the value files (a
            // 1 GiB file is 2048 of them), beside the first requests after a start.
            crate::background_priority();
            if let Err(e) = orphans.collect_orphans() {
                eprintln!("vaultx-runtime: key-value files no row names: {e}");
            }
        })?;
        Ok(kv)
    }

    fn open(data_dir: &Path, name: Option<&str>) -> Result<Self> {
        let path = data_dir.join(name.map_or("key_value.db".to_owned(), |n| format!("key_value-{n}.db")));
        let values = data_dir.join(name.map_or("kv-values".to_owned(), |n| format!("kv-values-{n}")));
        std::fs::create_dir_all(&values).with_context(|| format!("creating {}", values.display()))?;
        let kv = rusqlite::Connection::open(&path)?;
        tune(&kv)?;
        kv.pragma_update(None, "wal_autocheckpoint", 0)?;
        // The log starts over once checkpointed, writing over its own blocks. Shrinking it
        // (ftruncate, in the writer's commit) and growing it again stalled every write for
        // milliseconds — the slowest 1 % of downloads took 20 ms — so it keeps its size,
        // shrinking only after a burst took it past twice the checkpoint threshold.
        kv.pragma_update(None, "journal_size_limit", 2 * WAL_LIMIT)?;
        kv.execute_batch(
            "CREATE TABLE IF NOT EXISTS spin_key_value (store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (store, key))",
        )?;
        // Data directories from before large values had files: their rows stay inline.
        let has_file: bool = kv.query_row("SELECT count(*) FROM pragma_table_info('spin_key_value') WHERE name = 'file'", [], |r| r.get::<_, i64>(0))? > 0;
        if !has_file {
            kv.execute_batch("ALTER TABLE spin_key_value ADD COLUMN file TEXT")?;
        }
        // The start's orphan check reads the rows naming files, not the whole table.
        kv.execute_batch("CREATE INDEX IF NOT EXISTS spin_key_value_files ON spin_key_value (file) WHERE file IS NOT NULL")?;
        let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let (writer, changes) = std::sync::mpsc::channel();
        let files = values.clone();
        let cache = name.is_none().then(|| Arc::new(ReadCache::default()));
        let log = match name {
            Some(n) => Some(Arc::new(AppendLog::open(data_dir, &format!("key_value-{n}.log"))?)),
            None => None,
        };
        let (forget, ingest) = (cache.clone(), log.clone());
        std::thread::Builder::new()
            .name("kv-writer".into())
            .spawn(move || Self::write_changes(kv, changes, &files, forget.as_deref(), ingest.as_deref()))?;
        Ok(Self { path, cache, log, values, writer, readers: Mutex::default(), names: (started, Default::default()) })
    }

    /// Removes the files no row names: what a crash between writing a value's file and
    /// committing its row leaves. Runs beside serving (`Stores::open` starts it on a thread),
    /// so a large store does not delay the first answer; it only considers files of earlier
    /// processes (named with their start time), which no row can come to name any more, so a
    /// file this process is writing is never taken for an orphan.
    pub fn collect_orphans(&self) -> rusqlite::Result<usize> {
        let ours = format!("{:x}-", self.names.0);
        let named: std::collections::HashSet<String> = self.read(|c| {
            c.prepare("SELECT file FROM spin_key_value INDEXED BY spin_key_value_files WHERE file IS NOT NULL")?.query_map([], |r| r.get(0))?.collect()
        })?;
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.values).map_err(io_error)? {
            let name = entry.map_err(io_error)?.file_name().to_string_lossy().into_owned();
            if !name.starts_with(&ours) && !named.contains(&name) && std::fs::remove_file(self.values.join(&name)).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The writer thread: takes the first change waiting, then every other one already
    /// waiting (up to GROUP_MAX), applies each inside a savepoint of one transaction (so one
    /// failing change fails alone), commits, drops the changed keys from the read cache, and
    /// answers each; then removes the files of the values the commit replaced or deleted.
    ///
    /// With an append log, it also moves the log's values into the database every
    /// [`INGEST_EVERY`], and before anything else it is asked: a change, a read, a stop.
    fn write_changes(conn: rusqlite::Connection, changes: std::sync::mpsc::Receiver<Write>, files: &Path, cache: Option<&ReadCache>, log: Option<&AppendLog>) {
        let remove = |stored: Option<Stored>| {
            if let Some(Stored::File(name, _)) = stored
                && let Err(e) = std::fs::remove_file(files.join(&name))
            {
                eprintln!("vaultx-runtime: removing key-value file {name}: {e}");
            }
        };
        loop {
            let first = match log {
                Some(_) => match changes.recv_timeout(INGEST_EVERY) {
                    Ok(write) => Some(write),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                },
                None => match changes.recv() {
                    Ok(write) => Some(write),
                    Err(_) => break,
                },
            };
            let mut group = Vec::new();
            let mut restart = false;
            let mut closed = None;
            let mut reads = Vec::new();
            for write in first.into_iter().chain(std::iter::from_fn(|| changes.try_recv().ok())).take(GROUP_MAX) {
                match write {
                    Write::Change(change, done) => group.push((change, done)),
                    Write::Restart => restart = true,
                    Write::Close(done) => closed = Some(done),
                    Write::Ingest(done) => reads.push(done),
                }
            }
            // Every value in the log was answered before any change or read taken above was
            // asked for: the log's values go in first.
            if let Some(log) = log
                && let Err(e) = log.ingest(&conn, &remove)
            {
                eprintln!("vaultx-runtime: key-value log {}: {e}", log.name);
            }
            for done in reads {
                let _ = done.send(());
            }
            if !group.is_empty() {
                let mut results = Vec::with_capacity(group.len());
                let run = |sql: &str| run_cached(&conn, sql);
                let committed = in_transaction(&conn, || {
                    for (change, _) in &group {
                        run("SAVEPOINT change")?;
                        match Self::apply(&conn, change) {
                            Ok(replaced) => {
                                run("RELEASE change")?;
                                results.push(Ok(replaced));
                            }
                            // This one change is undone; the others stand.
                            Err(e) => {
                                run("ROLLBACK TO change")?;
                                run("RELEASE change")?;
                                results.push(Err(e));
                            }
                        }
                    }
                    Ok(())
                });
                // Before any change is answered: a read after the answer finds the new value.
                if let Some(cache) = cache {
                    cache.forget(group.iter().map(|(change, _)| change.key()));
                }
                match committed {
                    Ok(()) => {
                        for ((change, done), result) in group.into_iter().zip(results) {
                            match result {
                                Ok(replaced) => {
                                    remove(replaced);
                                    let _ = done.send(Ok(()));
                                }
                                Err(e) => {
                                    Self::abandon(&change, files);
                                    let _ = done.send(Err(e));
                                }
                            }
                        }
                    }
                    Err(e) => {
                        let why = e.to_string();
                        for (change, done) in group {
                            Self::abandon(&change, files);
                            let _ = done.send(Err(io_error(std::io::Error::other(why.clone()))));
                        }
                    }
                }
            }
            if restart && let Err(e) = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0)) {
                eprintln!("vaultx-runtime: key-value checkpoint: {e}");
            }
            if let Some(done) = closed {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)) {
                    eprintln!("vaultx-runtime: key-value checkpoint: {e}");
                }
                let _ = done.send(());
            }
        }
    }

    /// One change, inside the group's transaction; returns what it replaced or removed.
    fn apply(conn: &rusqlite::Connection, change: &Change) -> rusqlite::Result<Option<Stored>> {
        match change {
            Change::Set { store, key, value, file } => {
                // Most keys written are new (every audit event, every block): a plain insert
                // finds that out in the same search of the index that stores the row. Only
                // when the key is there is it looked up (for the file its value may have had)
                // and replaced; the failed insert changed nothing.
                let inserted = conn
                    .prepare_cached("INSERT INTO spin_key_value (store, key, value, file) VALUES (?1, ?2, ?3, ?4)")?
                    .execute(rusqlite::params![store, key, value, file]);
                match inserted {
                    Ok(_) => return Ok(None),
                    Err(rusqlite::Error::SqliteFailure(e, _)) if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {}
                    Err(e) => return Err(e),
                }
                let replaced = Self::stored(conn, store, key)?;
                conn.prepare_cached(
                    "INSERT INTO spin_key_value (store, key, value, file) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (store, key) DO UPDATE SET value = excluded.value, file = excluded.file",
                )?
                .execute(rusqlite::params![store, key, value, file])?;
                Ok(replaced)
            }
            Change::Delete { store, key } => {
                let removed = Self::stored(conn, store, key)?;
                conn.prepare_cached("DELETE FROM spin_key_value WHERE store = ? AND key = ?")?.execute([store, key])?;
                Ok(removed)
            }
        }
    }

    /// A change that did not commit: the file it wrote for its value is nobody's.
    fn abandon(change: &Change, files: &Path) {
        if let Change::Set { file: Some(name), .. } = change {
            let _ = std::fs::remove_file(files.join(name));
        }
    }

    /// Checkpoints (copying the WAL into the database file) run on a thread of their own, not
    /// inside whichever request's write crosses a threshold: a passive one twice a second,
    /// which never blocks a writer, and a restarting one (which lets the log start over) only
    /// when a burst of writes has grown the log past WAL_LIMIT. That one runs on the writer
    /// thread, between two groups, so writers wait in its queue and go on the moment it is
    /// done, instead of finding the database busy and sleeping in SQLite's busy handler
    /// (1, 2, 5, 10 … ms).
    fn start_checkpoints(kv: &Arc<Self>) -> Result<()> {
        let conn = rusqlite::Connection::open(&kv.path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
        let kv = Arc::downgrade(kv);
        std::thread::Builder::new().name("kv-checkpoint".into()).spawn(move || {
            // Copying the log into the database is background work.
            crate::background_priority();
            let checkpoint = |conn: &rusqlite::Connection, mode: &str| conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| r.get::<_, i64>(1));
            loop {
                std::thread::sleep(Duration::from_millis(500));
                let Some(kv) = kv.upgrade() else { return };
                match checkpoint(&conn, "PASSIVE") {
                    Ok(frames) if frames * page_size > WAL_LIMIT => {
                        let _ = kv.writer.send(Write::Restart);
                    }
                    Ok(_) => {}
                    Err(e) => eprintln!("vaultx-runtime: key-value checkpoint: {e}"),
                }
            }
        })?;
        Ok(())
    }

    /// Runs `f` on an idle read connection (opening one if none is idle).
    fn read<R>(&self, f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>) -> rusqlite::Result<R> {
        let idle = self.readers.lock().ok().and_then(|mut r| r.pop());
        let conn = match idle {
            Some(c) => c,
            None => {
                let c = rusqlite::Connection::open_with_flags(&self.path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
                c.busy_timeout(Duration::from_secs(10))?;
                c.set_prepared_statement_cache_capacity(16);
                // Rows here are small (large values are files): a 512 KiB page cache per
                // reader instead of SQLite's 2 MB default.
                c.pragma_update(None, "cache_size", -512)?;
                c
            }
        };
        let out = f(&conn);
        if let Ok(mut readers) = self.readers.lock()
            && readers.len() < IDLE_READERS
        {
            readers.push(conn);
        }
        out
    }

    fn stored(conn: &rusqlite::Connection, store: &str, key: &str) -> rusqlite::Result<Option<Stored>> {
        use rusqlite::OptionalExtension;
        conn.prepare_cached("SELECT value, file FROM spin_key_value WHERE store = ? AND key = ?")?
            .query_row([store, key], |r| {
                let value: Vec<u8> = r.get(0)?;
                Ok(match r.get::<_, Option<String>>(1)? {
                    None => Stored::Inline(value),
                    Some(file) => Stored::File(file, u64::from_le_bytes(value.try_into().unwrap_or_default())),
                })
            })
            .optional()
    }

    pub fn exists(&self, store: &str, key: &str) -> rusqlite::Result<bool> {
        self.ingest_log();
        self.read(|c| c.prepare_cached("SELECT 1 FROM spin_key_value WHERE store = ? AND key = ?")?.exists([store, key]))
    }

    pub fn get(&self, store: &str, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
        self.ingest_log();
        if let Some(value) = self.cache.as_ref().and_then(|c| c.get(store, key)) {
            return Ok(Some(value));
        }
        let generation = self.cache.as_ref().map_or(0, |c| c.generation());
        // A file can be replaced between reading its name and opening it; the row then names
        // the new one, so read again (a value rewritten that often is a livelock, not a read).
        for _ in 0..8 {
            let (file, len) = match self.read(|c| Self::stored(c, store, key))? {
                None => return Ok(None),
                Some(Stored::Inline(value)) => {
                    if let Some(cache) = &self.cache {
                        cache.keep(generation, store, key, &value);
                    }
                    return Ok(Some(value));
                }
                Some(Stored::File(file, len)) => (file, len),
            };
            match std::fs::File::open(self.values.join(&file)) {
                Ok(mut f) => {
                    let mut value = Vec::with_capacity(len as usize);
                    std::io::Read::read_to_end(&mut f, &mut value).map_err(io_error)?;
                    if value.len() as u64 != len {
                        return Err(io_error(std::io::Error::other(format!("key-value file {file}: {} bytes, expected {len}", value.len()))));
                    }
                    return Ok(Some(value));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(e)),
            }
        }
        Err(io_error(std::io::Error::other(format!("key {key:?} is being rewritten faster than it can be read"))))
    }

    /// Sets a value: a large one's file is written first, on the calling thread; the row is
    /// then committed by the writer thread, and the returned future resolves when it is.
    /// A small value of a store with an append log is answered once appended there.
    pub fn set(&self, store: &str, key: &str, value: &[u8]) -> impl Future<Output = rusqlite::Result<()>> + Send + use<> {
        match self.log.as_ref().filter(|_| value.len() <= INLINE_MAX) {
            Some(log) => futures::future::Either::Left(std::future::ready(log.append(store, key, value).map_err(io_error))),
            None => futures::future::Either::Right(self.set_in_database(store, key, value)),
        }
    }

    fn set_in_database(&self, store: &str, key: &str, value: &[u8]) -> impl Future<Output = rusqlite::Result<()>> + Send + use<> {
        let change = if value.len() > INLINE_MAX {
            let n = self.names.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let name = format!("{:x}-{n:x}", self.names.0);
            match std::fs::write(self.values.join(&name), value) {
                Ok(()) => Ok(Change::Set { store: store.into(), key: key.into(), value: (value.len() as u64).to_le_bytes().to_vec(), file: Some(name) }),
                Err(e) => {
                    let _ = std::fs::remove_file(self.values.join(&name));
                    Err(io_error(e))
                }
            }
        } else {
            Ok(Change::Set { store: store.into(), key: key.into(), value: value.to_vec(), file: None })
        };
        self.commit(change)
    }

    pub fn delete(&self, store: &str, key: &str) -> impl Future<Output = rusqlite::Result<()>> + Send + use<> {
        self.commit(Ok(Change::Delete { store: store.into(), key: key.into() }))
    }

    /// Waits for the append log's values to be in the database, so a read sees every value
    /// set before it (the stores that have one are read rarely: the spool, by its drain).
    fn ingest_log(&self) {
        if self.log.is_some() {
            let (done, ingested) = std::sync::mpsc::sync_channel(1);
            if self.writer.send(Write::Ingest(done)).is_ok() {
                let _ = ingested.recv();
            }
        }
    }

    /// Empties the write-ahead log into the database, after every write already queued.
    pub async fn close(&self) {
        let (done, closed) = tokio::sync::oneshot::channel();
        if self.writer.send(Write::Close(done)).is_ok() {
            let _ = closed.await;
        }
    }

    fn commit(&self, change: rusqlite::Result<Change>) -> impl Future<Output = rusqlite::Result<()>> + Send + use<> {
        let (done, committed) = tokio::sync::oneshot::channel();
        let queued = change.and_then(|change| {
            self.writer.send(Write::Change(change, done)).map_err(|_| io_error(std::io::Error::other("the key-value writer has stopped")))
        });
        async move {
            queued?;
            committed.await.map_err(|_| io_error(std::io::Error::other("the key-value writer has stopped")))?
        }
    }

    /// Moves every value of `store` into `to`: copied there (committed) before deleted here,
    /// so a crash half-way leaves values in both files, never in neither, and the next start
    /// moves them again to the same keys.
    fn move_store(&self, store: &str, to: &KeyValue) -> rusqlite::Result<()> {
        let any = self.read(|c| c.prepare_cached("SELECT 1 FROM spin_key_value WHERE store = ? LIMIT 1")?.exists([store]))?;
        if !any {
            return Ok(());
        }
        // A value in a file of its own (none in the audit spool, whose events are small) is
        // written anew under `to`'s directory.
        let in_files: Vec<String> =
            self.read(|c| c.prepare("SELECT key FROM spin_key_value WHERE store = ? AND file IS NOT NULL")?.query_map([store], |r| r.get(0))?.collect())?;
        for key in &in_files {
            if let Some(value) = self.get(store, key)? {
                futures::executor::block_on(to.set(store, key, &value))?;
            }
            futures::executor::block_on(self.delete(store, key))?;
        }
        // The rows, by SQL: one statement copies them all, the next deletes them here.
        let conn = rusqlite::Connection::open(&self.path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.execute("ATTACH DATABASE ?1 AS own", [to.path.to_string_lossy()])?;
        let moved = conn.execute(
            "INSERT INTO own.spin_key_value (store, key, value, file) SELECT store, key, value, NULL FROM main.spin_key_value WHERE store = ?1 AND file IS NULL \
             ON CONFLICT (store, key) DO UPDATE SET value = excluded.value, file = NULL",
            [store],
        )?;
        conn.execute("DELETE FROM main.spin_key_value WHERE store = ?1 AND file IS NULL", [store])?;
        for cache in [&self.cache, &to.cache].into_iter().flatten() {
            cache.clear();
        }
        eprintln!("vaultx-runtime: moved {} values of key-value store {store} to its own file", moved + in_files.len());
        Ok(())
    }

    pub fn keys(&self, store: &str) -> rusqlite::Result<Vec<String>> {
        self.ingest_log();
        self.read(|c| c.prepare_cached("SELECT key FROM spin_key_value WHERE store = ? ORDER BY key")?.query_map([store], |r| r.get(0))?.collect())
    }
}

fn io_error(e: std::io::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Removes a test's data directory. The stores' background threads (the orphan check,
    /// the checkpoints) may still open files in it for a moment after the test is done, and a
    /// file they create mid-removal leaves the directory not empty: try again.
    fn remove(dir: &Path) {
        for _ in 0..100 {
            if std::fs::remove_dir_all(dir).is_ok() || !dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} could not be removed", dir.display());
    }

    fn block<R>(f: impl Future<Output = R>) -> R {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn key_value_stores_are_separate_namespaces() {
        let dir = std::env::temp_dir().join(format!("vaultx-kv-{}", std::process::id()));
        let stores = Stores::open(&dir).unwrap();
        let kv = stores.kv("blobs");
        block(kv.set("a", "k", b"1")).unwrap();
        block(kv.set("a", "k", b"2")).unwrap();
        block(kv.set("b", "k", b"3")).unwrap();
        assert_eq!(kv.get("a", "k").unwrap(), Some(b"2".to_vec()));
        assert_eq!(kv.keys("b").unwrap(), ["k"]);
        assert!(kv.exists("b", "k").unwrap());
        block(kv.delete("a", "k")).unwrap();
        assert_eq!(kv.get("a", "k").unwrap(), None);
        assert!(!kv.exists("a", "k").unwrap());
        remove(&dir);
    }

    #[test]
    fn the_audit_spool_has_a_file_of_its_own_and_an_older_data_directory_s_spool_moves_there() {
        let dir = std::env::temp_dir().join(format!("vaultx-kv-own-{}", std::process::id()));
        {
            // A data directory from before: the spool's rows in key_value.db.
            let old = KeyValue::open(&dir, None).unwrap();
            block(old.set("audit", "audit/1/a", b"event a")).unwrap();
            block(old.set("audit", "audit/2/b", b"event b")).unwrap();
            block(old.set("manifests", "m", b"manifest")).unwrap();
            block(old.close());
        }
        let stores = Stores::open(&dir).unwrap();
        let (spool, shared) = (stores.kv("audit"), stores.kv("manifests"));
        assert!(!Arc::ptr_eq(&spool, &shared));
        assert_eq!(spool.keys("audit").unwrap(), ["audit/1/a", "audit/2/b"]);
        assert_eq!(spool.get("audit", "audit/2/b").unwrap().as_deref(), Some(&b"event b"[..]));
        assert!(shared.keys("audit").unwrap().is_empty(), "moved, not copied");
        assert_eq!(shared.get("manifests", "m").unwrap().as_deref(), Some(&b"manifest"[..]), "other stores stay");
        block(spool.set("audit", "audit/3/c", b"event c")).unwrap();
        block(stores.close_kv());
        drop(stores);
        let stores = Stores::open(&dir).unwrap();
        assert_eq!(stores.kv("audit").keys("audit").unwrap().len(), 3, "a restart finds the spool in its file");
        assert!(dir.join("key_value-audit.db").exists());
        remove(&dir);
    }

    fn value_files(dir: &Path) -> usize {
        std::fs::read_dir(dir.join("kv-values")).unwrap().count()
    }

    #[test]
    fn a_value_read_again_comes_from_memory_until_it_is_changed() {
        let dir = std::env::temp_dir().join(format!("vaultx-kv-cache-{}", std::process::id()));
        let stores = Stores::open(&dir).unwrap();
        let kv = stores.kv("manifests");
        block(kv.set("manifests", "m", b"v1")).unwrap();
        assert_eq!(kv.get("manifests", "m").unwrap(), Some(b"v1".to_vec()));
        assert_eq!(kv.cache.as_ref().unwrap().get("manifests", "m"), Some(b"v1".to_vec()), "kept after the first read");
        // Each change is answered only after its key left the cache.
        block(kv.set("manifests", "m", b"v2")).unwrap();
        assert_eq!(kv.get("manifests", "m").unwrap(), Some(b"v2".to_vec()));
        block(kv.delete("manifests", "m")).unwrap();
        assert_eq!(kv.get("manifests", "m").unwrap(), None);
        // The spool's events are read once: its file keeps no cache.
        assert!(stores.kv("audit").cache.is_none());
        remove(&dir);
    }

    #[test]
    fn the_spool_answers_a_set_once_appended_and_a_read_sees_every_value_set_before_it() {
        let dir = std::env::temp_dir().join(format!("vaultx-kv-log-{}", std::process::id()));
        let stores = Stores::open(&dir).unwrap();
        let spool = stores.kv("audit");
        block(spool.set("audit", "audit/1", b"one")).unwrap();
        block(spool.set("audit", "audit/2", b"two")).unwrap();
        assert_eq!(AppendLog::files_of(&dir, "key_value-audit.log").unwrap().len(), 1, "appended, not yet moved in");
        assert_eq!(spool.keys("audit").unwrap(), ["audit/1", "audit/2"]);
        assert_eq!(spool.get("audit", "audit/2").unwrap(), Some(b"two".to_vec()));
        // A delete after a set, and a set after a delete, keep their order.
        block(spool.set("audit", "audit/3", b"three")).unwrap();
        block(spool.delete("audit", "audit/3")).unwrap();
        assert_eq!(spool.get("audit", "audit/3").unwrap(), None);
        block(spool.delete("audit", "audit/1")).unwrap();
        block(spool.set("audit", "audit/1", b"again")).unwrap();
        assert_eq!(spool.get("audit", "audit/1").unwrap(), Some(b"again".to_vec()));
        // The files moved in are gone; the newest, empty one waits for appenders.
        let files = AppendLog::files_of(&dir, "key_value-audit.log").unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(std::fs::metadata(&files[0].1).unwrap().len(), 0);
        drop(stores);
        remove(&dir);
    }

    #[test]
    fn values_a_process_appended_and_never_moved_in_are_moved_in_by_the_next_start() {
        let dir = std::env::temp_dir().join(format!("vaultx-kv-log-crash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // What a killed process left: two whole records and one a crash cut short.
        let mut left = encode_record("audit", "audit/a", b"first").unwrap();
        left.extend(encode_record("audit", "audit/b", b"second").unwrap());
        let torn = encode_record("audit", "audit/c", b"never answered").unwrap();
        left.extend(&torn[..torn.len() - 3]);
        std::fs::write(dir.join(format!("key_value-audit.log.{:020}", 7)), &left).unwrap();
        let stores = Stores::open(&dir).unwrap();
        let spool = stores.kv("audit");
        assert_eq!(spool.keys("audit").unwrap(), ["audit/a", "audit/b"]);
        assert_eq!(spool.get("audit", "audit/b").unwrap(), Some(b"second".to_vec()));
        // Later appends go to a newer file than the one found.
        block(spool.set("audit", "audit/d", b"later")).unwrap();
        assert_eq!(spool.get("audit", "audit/d").unwrap(), Some(b"later".to_vec()));
        assert!(AppendLog::files_of(&dir, "key_value-audit.log").unwrap().iter().all(|(n, _)| *n > 7));
        drop(stores);
        remove(&dir);
    }

    #[test]
    fn a_value_appended_after_a_failed_write_is_not_lost_behind_its_remains() {
        let dir = std::env::temp_dir().join(format!("vaultx-kv-log-fail-{}", std::process::id()));
        let stores = Stores::open(&dir).unwrap();
        let spool = stores.kv("audit");
        block(spool.set("audit", "audit/1", b"before")).unwrap();
        // What `append` leaves when a write fails half-way: part of a record, and no file to go on with.
        {
            let log = spool.log.as_ref().unwrap();
            let mut current = log.current.lock().unwrap();
            let part = encode_record("audit", "audit/2", b"failed").unwrap();
            std::io::Write::write_all(current.1.as_mut().unwrap(), &part[..part.len() / 2]).unwrap();
            current.1 = None;
        }
        block(spool.set("audit", "audit/3", b"after")).unwrap();
        assert_eq!(spool.keys("audit").unwrap(), ["audit/1", "audit/3"]);
        assert_eq!(spool.get("audit", "audit/3").unwrap(), Some(b"after".to_vec()));
        drop(stores);
        remove(&dir);
    }

    #[test]
    fn records_read_back_as_written_up_to_the_first_one_cut_short() {
        let mut bytes = encode_record("s", "k", b"").unwrap();
        bytes.extend(encode_record("store", "key/with/slashes", &[0xA5; 40]).unwrap());
        assert_eq!(decode_records(&bytes), [("s".into(), "k".into(), vec![]), ("store".into(), "key/with/slashes".into(), vec![0xA5; 40])]);
        for cut in 0..bytes.len() {
            assert!(decode_records(&bytes[..cut]).len() < 2, "cut at {cut}");
        }
        // Zeros where a crash left the file longer than what was written end it too.
        bytes.extend([0u8; 64]);
        assert_eq!(decode_records(&bytes).len(), 2);
    }

    #[test]
    fn a_value_read_while_a_commit_ended_is_not_kept() {
        let cache = ReadCache::default();
        let before = cache.generation();
        // A commit replaced the key while the value (the old one, maybe) was being read.
        cache.forget([("blobs", "k")].into_iter());
        cache.keep(before, "blobs", "k", b"old");
        assert_eq!(cache.get("blobs", "k"), None);
        cache.keep(cache.generation(), "blobs", "k", b"new");
        assert_eq!(cache.get("blobs", "k"), Some(b"new".to_vec()));
    }

    #[test]
    fn the_cache_holds_at_most_its_budget_and_lets_the_oldest_go() {
        let cache = ReadCache::default();
        let value = vec![7u8; INLINE_MAX];
        let n = 2 * CACHE_BYTES / INLINE_MAX;
        for i in 0..n {
            cache.keep(cache.generation(), "blobs", &format!("k{i}"), &value);
        }
        let bytes = cache.0.lock().unwrap().bytes;
        assert!(bytes <= CACHE_BYTES && bytes > CACHE_BYTES - 2 * INLINE_MAX, "{bytes}");
        assert_eq!(cache.get("blobs", "k0"), None);
        assert_eq!(cache.get("blobs", &format!("k{}", n - 1)), Some(value.clone()));
        // A value over a row's size is never kept.
        cache.keep(cache.generation(), "blobs", "big", &vec![0u8; INLINE_MAX + 1]);
        assert_eq!(cache.get("blobs", "big"), None);
    }

    #[test]
    fn large_values_live_in_one_file_each_and_replacing_or_deleting_removes_it() {
        let dir = std::env::temp_dir().join(format!("vaultx-kv-files-{}", std::process::id()));
        let stores = Stores::open(&dir).unwrap();
        let kv = stores.kv("blobs");
        let big: Vec<u8> = (0..INLINE_MAX * 3).map(|i| (i * 7) as u8).collect();
        block(kv.set("blobs", "b/0", &big)).unwrap();
        assert_eq!(value_files(&dir), 1);
        assert_eq!(kv.get("blobs", "b/0").unwrap().as_deref(), Some(&big[..]));
        let bigger = vec![9u8; INLINE_MAX * 4];
        block(kv.set("blobs", "b/0", &bigger)).unwrap();
        assert_eq!(value_files(&dir), 1, "the replaced value's file is gone");
        assert_eq!(kv.get("blobs", "b/0").unwrap(), Some(bigger));
        block(kv.set("blobs", "b/0", b"small now")).unwrap();
        assert_eq!(value_files(&dir), 0, "a small value is a row again");
        assert_eq!(kv.get("blobs", "b/0").unwrap().as_deref(), Some(&b"small now"[..]));
        block(kv.set("blobs", "b/1", &big)).unwrap();
        block(kv.delete("blobs", "b/1")).unwrap();
        assert_eq!(value_files(&dir), 0);
        assert_eq!(kv.get("blobs", "b/1").unwrap(), None);
        remove(&dir);
    }

    #[test]
    fn a_value_file_no_row_names_is_removed_at_start_and_a_short_one_is_an_error() {
        let dir = std::env::temp_dir().join(format!("vaultx-kv-crash-{}", std::process::id()));
        let big = vec![1u8; INLINE_MAX + 1];
        {
            let stores = Stores::open(&dir).unwrap();
            block(stores.kv("blobs").set("blobs", "kept", &big)).unwrap();
        }
        // What a crash between writing a file and committing its row leaves.
        std::fs::write(dir.join("kv-values").join("orphan"), b"half a value").unwrap();
        let stores = Stores::open(&dir).unwrap();
        let kv = stores.kv("blobs");
        kv.collect_orphans().unwrap();
        assert_eq!(value_files(&dir), 1);
        assert_eq!(kv.get("blobs", "kept").unwrap(), Some(big));
        let file = std::fs::read_dir(dir.join("kv-values")).unwrap().next().unwrap().unwrap().path();
        std::fs::write(&file, b"truncated").unwrap();
        assert!(kv.get("blobs", "kept").is_err(), "a file of the wrong length is never served as the value");
        remove(&dir);
    }

    #[test]
    fn readers_see_the_old_value_or_the_new_one_while_a_large_value_is_rewritten() {
        let dir = std::env::temp_dir().join(format!("vaultx-kv-race-{}", std::process::id()));
        let stores = Stores::open(&dir).unwrap();
        let kv = stores.kv("blobs");
        let values: Vec<Vec<u8>> = (0..4u8).map(|v| vec![v; INLINE_MAX * 2]).collect();
        block(kv.set("blobs", "k", &values[0])).unwrap();
        std::thread::scope(|s| {
            let writer = kv.clone();
            let values_w = values.clone();
            s.spawn(move || {
                for i in 0..200 {
                    block(writer.set("blobs", "k", &values_w[i % 4])).unwrap();
                }
            });
            for _ in 0..200 {
                let got = kv.get("blobs", "k").unwrap().unwrap();
                assert!(values.contains(&got), "a whole value, never a mix");
            }
        });
        assert_eq!(value_files(&dir), 1);
        remove(&dir);
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
        remove(&dir);
    }

    #[test]
    fn database_labels_cannot_escape_the_data_directory() {
        let stores = Stores {
            data_dir: "/data".into(),
            kv: Arc::new(KeyValue::open(&std::env::temp_dir().join(format!("vaultx-labels-{}", std::process::id())), None).unwrap()),
            own: Vec::new(),
            idle: Mutex::default(),
        };
        assert_eq!(stores.sqlite_path("default").unwrap(), Path::new("/data/sqlite_db.db"));
        assert!(stores.sqlite_path("../etc").is_err());
        assert!(stores.sqlite_path("").is_err());
    }
}
