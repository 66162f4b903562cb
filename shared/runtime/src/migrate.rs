//! Applies `*.sql` migrations, in file-name order, each once, each in its own transaction,
//! recording what ran in `vaultx_migrations`. Rerunning is a no-op, so every start of the
//! runtime may call it.
//!
//! One source of truth for both dialects: the files are written in the subset SQLite, D1 and
//! PostgreSQL share, and PostgreSQL gets them through [`postgres_dialect`] (SQLite's
//! `INTEGER` is 64-bit; PostgreSQL's is 32-bit, so it becomes `BIGINT`). A test applies them
//! to both and compares the schemas (tables, columns, types, nullability, indexes).

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

fn migration_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading migrations in {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    Ok(files)
}

/// A migration as PostgreSQL runs it: every `INTEGER` column is a `BIGINT` (VaultX binds
/// 64-bit integers, and SQLite's INTEGER holds them), and every `TEXT` column compares
/// bytewise (`COLLATE "C"`), as SQLite's do: sort orders, keyset cursors and the
/// `'image/' <= type < 'image0'` ranges of search must not depend on the server's locale.
pub fn postgres_dialect(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 256);
    for line in sql.split_inclusive('\n') {
        if line.trim_start().starts_with("--") {
            out.push_str(line);
            continue;
        }
        let line = replace_word(line, "INTEGER", "BIGINT");
        out.push_str(&replace_word(&line, "TEXT", "TEXT COLLATE \"C\""));
    }
    out
}

/// Replaces `word` where it stands alone (not inside a longer identifier).
fn replace_word(line: &str, word: &str, with: &str) -> String {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find(word) {
        let alone = !rest[..i].ends_with(ident) && !rest[i + word.len()..].starts_with(ident);
        out.push_str(&rest[..i]);
        out.push_str(if alone { with } else { word });
        rest = &rest[i + word.len()..];
    }
    out.push_str(rest);
    out
}

/// Applies the migrations to PostgreSQL, each in its own transaction under an advisory lock,
/// so runtimes starting together against one database apply each exactly once.
pub async fn apply_postgres(url: &str, dir: &Path) -> Result<Vec<String>> {
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.context("connecting to PostgreSQL (database_url)")?;
    let driver = tokio::spawn(connection);
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS vaultx_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)")
        .await
        .context("creating vaultx_migrations")?;
    let mut applied = Vec::new();
    for file in migration_files(dir)? {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let sql = postgres_dialect(&std::fs::read_to_string(&file)?);
        let tx = client.transaction().await?;
        // Any constant will do: it only has to be the same for every VaultX runtime.
        tx.execute("SELECT pg_advisory_xact_lock(7261746)", &[]).await?;
        let done: bool = tx.query_one("SELECT count(*) > 0 FROM vaultx_migrations WHERE name = $1", &[&name]).await?.get(0);
        if done {
            continue;
        }
        tx.batch_execute(&sql).await.with_context(|| format!("migration {name} on PostgreSQL"))?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
        tx.execute("INSERT INTO vaultx_migrations (name, applied_at) VALUES ($1, $2)", &[&name, &now]).await?;
        tx.commit().await?;
        applied.push(name);
    }
    drop(client);
    let _ = driver.await;
    Ok(applied)
}

pub fn apply(conn: &mut rusqlite::Connection, dir: &Path) -> Result<Vec<String>> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS vaultx_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)")?;
    let mut applied = Vec::new();
    for file in migration_files(dir)? {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let done: bool = conn.query_row("SELECT count(*) > 0 FROM vaultx_migrations WHERE name = ?", [&name], |r| r.get(0))?;
        if done {
            continue;
        }
        let sql = std::fs::read_to_string(&file)?;
        let tx = conn.transaction()?;
        tx.execute_batch(&sql).with_context(|| format!("migration {name}"))?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
        tx.execute("INSERT INTO vaultx_migrations (name, applied_at) VALUES (?, ?)", rusqlite::params![name, now])?;
        tx.commit()?;
        applied.push(name);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_in_order() {
        let dir = std::env::temp_dir().join(format!("vaultx-mig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("0002_b.sql"), "ALTER TABLE t ADD COLUMN b TEXT;").unwrap();
        std::fs::write(dir.join("0001_a.sql"), "CREATE TABLE t (a TEXT);").unwrap();
        std::fs::write(dir.join("notes.txt"), "not sql").unwrap();
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        assert_eq!(apply(&mut conn, &dir).unwrap(), ["0001_a.sql", "0002_b.sql"]);
        assert!(apply(&mut conn, &dir).unwrap().is_empty());
        conn.execute("INSERT INTO t (a, b) VALUES ('x', 'y')", []).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failing_migration_leaves_nothing_half_applied() {
        let dir = std::env::temp_dir().join(format!("vaultx-mig-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("0001_bad.sql"), "CREATE TABLE t (a TEXT); THIS IS NOT SQL;").unwrap();
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        assert!(apply(&mut conn, &dir).is_err());
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master WHERE name = 't'", [], |r| r.get(0)).unwrap();
        assert_eq!(tables, 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn postgres_gets_bigints_where_sqlite_has_integers() {
        let sql = "-- an INTEGER here stays\nCREATE TABLE t (a INTEGER NOT NULL, b INTEGERS, c_INTEGER TEXTS, d integer);\nALTER TABLE t ADD COLUMN e TEXT;\n";
        assert_eq!(
            postgres_dialect(sql),
            "-- an INTEGER here stays\nCREATE TABLE t (a BIGINT NOT NULL, b INTEGERS, c_INTEGER TEXTS, d integer);\nALTER TABLE t ADD COLUMN e TEXT COLLATE \"C\";\n"
        );
    }

    /// A column as both dialects describe it: name, type class, nullable.
    type Columns = std::collections::BTreeSet<(String, String, String, bool)>;
    type Indexes = std::collections::BTreeSet<(String, String)>;

    fn sqlite_schema(conn: &rusqlite::Connection) -> (Columns, Indexes) {
        let mut columns = Columns::new();
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for t in tables {
            let mut stmt = conn.prepare(&format!("SELECT name, type, \"notnull\", pk FROM pragma_table_info('{t}')")).unwrap();
            for c in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, bool>(2)?, r.get::<_, i64>(3)?))).unwrap() {
                let (name, ty, not_null, pk) = c.unwrap();
                let class = match ty.to_ascii_uppercase().as_str() {
                    "INTEGER" | "BIGINT" => "bigint",
                    "TEXT" => "text",
                    other => panic!("{t}.{name}: type {other} has no PostgreSQL counterpart here"),
                };
                // PRIMARY KEY columns are NOT NULL in PostgreSQL (and should be in SQLite).
                columns.insert((t.clone(), name, class.to_owned(), !(not_null || pk > 0)));
            }
        }
        let indexes = conn
            .prepare("SELECT tbl_name, name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex_%'")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        (columns, indexes)
    }

    #[tokio::test]
    async fn both_dialects_get_the_same_schema() {
        // tests/run points this at the PostgreSQL server it started; a fresh database per run.
        let Ok(server) = std::env::var("VAULTX_TEST_POSTGRES_URL") else {
            eprintln!("both_dialects_get_the_same_schema: VAULTX_TEST_POSTGRES_URL is not set; not run");
            return;
        };
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/migrations");
        let (admin, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let db = format!("vaultx_schema_{}", std::process::id());
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db}")).await.unwrap();
        admin.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
        let mut config: tokio_postgres::Config = server.parse().unwrap();
        config.dbname(&db);
        let url = format!(
            "postgres://{}@{}:{}/{db}",
            config.get_user().unwrap_or("postgres"),
            match &config.get_hosts()[0] {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                other => panic!("{other:?}"),
            },
            config.get_ports().first().copied().unwrap_or(5432)
        );
        let applied = apply_postgres(&url, &dir).await.unwrap();
        assert!(applied.len() >= 7, "{applied:?}");
        assert!(apply_postgres(&url, &dir).await.unwrap().is_empty(), "a second run applies nothing");

        let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let mut pg_columns = Columns::new();
        for r in client
            .query("SELECT table_name, column_name, data_type, is_nullable = 'YES' FROM information_schema.columns WHERE table_schema = 'public'", &[])
            .await
            .unwrap()
        {
            let (t, c, ty, nullable): (String, String, String, bool) = (r.get(0), r.get(1), r.get(2), r.get(3));
            pg_columns.insert((t, c, ty, nullable));
        }
        let pg_indexes: Indexes = client
            .query("SELECT tablename, indexname FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key'", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        drop(client);

        let mut sqlite = rusqlite::Connection::open_in_memory().unwrap();
        apply(&mut sqlite, &dir).unwrap();
        let (sqlite_columns, sqlite_indexes) = sqlite_schema(&sqlite);
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db}")).await.unwrap();

        assert_eq!(sqlite_columns, pg_columns, "tables and columns differ between SQLite and PostgreSQL");
        assert_eq!(sqlite_indexes, pg_indexes, "indexes differ between SQLite and PostgreSQL");
    }
}
