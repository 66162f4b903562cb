//! Applies `*.sql` migrations, in file-name order, to a SQLite database, each once, each in
//! its own transaction, recording what ran in `vaultx_migrations`. Rerunning is a no-op, so
//! every start of the runtime may call it.

use anyhow::{Context, Result};
use std::path::Path;

pub fn apply(conn: &mut rusqlite::Connection, dir: &Path) -> Result<Vec<String>> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS vaultx_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)")?;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading migrations in {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    let mut applied = Vec::new();
    for file in files {
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
}
