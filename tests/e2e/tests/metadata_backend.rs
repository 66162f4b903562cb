//! The metadata really is where the deployment was told to keep it. tests/run runs the whole
//! suite on the local runtime twice, on SQLite and on PostgreSQL (VAULTX_DATABASE_URL names
//! the database for the second run); a runtime that quietly fell back to its SQLite file would
//! pass every other test, so this one looks in both stores.

use vaultx_e2e::{Client, target};

#[test]
fn accounts_land_in_the_configured_metadata_store() {
    if target() != "runtime" {
        vaultx_e2e::not_applicable("looks into the local runtime's data directory and database; the platform keeps its metadata itself");
        return;
    }
    let c = Client::new();
    let (email, _, _) = c.signed_in_user();
    let data_dir = std::env::var("VAULTX_DATA_DIR").expect("set VAULTX_DATA_DIR to the local runtime's --data-dir");
    let sqlite = rusqlite::Connection::open(format!("{data_dir}/sqlite_db.db")).unwrap();
    let in_sqlite: i64 = sqlite.query_row("SELECT count(*) FROM users WHERE email = ?", [&email], |r| r.get(0)).unwrap();
    match std::env::var("VAULTX_DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        Some(url) => {
            let mut pg = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let in_pg: i64 = pg.query_one("SELECT count(*) FROM users WHERE email = $1", &[&email]).unwrap().get(0);
            assert_eq!((in_pg, in_sqlite), (1, 0), "{email}: on PostgreSQL, and not in the SQLite file");
        }
        None => assert_eq!(in_sqlite, 1, "{email}: in the SQLite file"),
    }
}
