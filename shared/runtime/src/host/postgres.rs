//! Outbound PostgreSQL, `spin:postgres/postgres@4.2.0`, as Spin's `factor-outbound-pg` does it:
//!
//! - A component opens `postgres://…` only if every host of the address is in its
//!   `allowed_outbound_hosts` as `postgres://host:port` (else `connection-failed`).
//! - Connections come from one pool per address (`deadpool-postgres` over `tokio-postgres`),
//!   shared by every instance of every component; a guest's connection holds one pooled
//!   client until the guest drops it, so `BEGIN … COMMIT` over several calls is one
//!   transaction, as on Spin.
//! - Parameters bind with Spin's types (an `int64` binds only where PostgreSQL expects a
//!   `BIGINT`, a `str` where it expects text, `db-null` anywhere), so SQL that runs here runs
//!   on Spin; rows come back as Spin returns them (`NUMERIC` as a decimal string).
//!
//! Two deliberate differences: a pooled client is recycled with `ROLLBACK`, so a guest that
//! trapped in the middle of a transaction never hands it, still open, to the next one; and
//! each pooled client keeps its prepared statements (`prepare_cached`), so a statement the
//! functions send again costs one round trip instead of two. Neither changes what a guest
//! sees.

use crate::outbound::is_allowed;
use super::spin::postgres::postgres as pg;
use super::{HasSpin, Spin, SpinView, finished_stream};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use wasmtime::Result;
use wasmtime::component::{Accessor, FutureReader, Linker, Resource, StreamReader};

/// Clients per address, across all components: well under PostgreSQL's default of 100
/// connections, and more than a 2-core host keeps busy.
const POOL_SIZE: usize = 32;

pub fn add_to_linker<T: HasSpin>(linker: &mut Linker<T>) -> Result<()> {
    pg::add_to_linker::<_, Spin>(linker, T::spin)
}

/// One pool per address, shared by every instance of every component.
#[derive(Default)]
pub struct Pools(Mutex<HashMap<String, deadpool_postgres::Pool>>);

impl Pools {
    fn pool(&self, address: &str, config: tokio_postgres::Config) -> Result<deadpool_postgres::Pool, pg::Error> {
        let mut pools = self.0.lock().map_err(|e| pg::Error::Other(e.to_string()))?;
        if let Some(p) = pools.get(address) {
            return Ok(p.clone());
        }
        let manager = deadpool_postgres::Manager::from_config(
            config,
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig { recycling_method: deadpool_postgres::RecyclingMethod::Custom("ROLLBACK".into()) },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(5)))
            .wait_timeout(Some(Duration::from_secs(30)))
            .build()
            .map_err(|e| pg::Error::ConnectionFailed(e.to_string()))?;
        pools.insert(address.to_owned(), pool.clone());
        Ok(pool)
    }
}

/// A guest's open connection: one pooled client, held until the guest drops it.
pub struct PgConnection(Arc<deadpool_postgres::Object>);

/// `connection-builder`: the address, until `build`.
pub struct PgConnectionBuilder(String);

/// Whether a component with these `allowed_outbound_hosts` may open `address`: every host
/// of it, as `postgres://host:port`. `Err` says which one is not granted.
pub fn permitted(allowed: &[String], address: &str) -> Result<tokio_postgres::Config, String> {
    let config: tokio_postgres::Config = address.parse().map_err(|e| format!("invalid PostgreSQL address: {e}"))?;
    let ports = config.get_ports();
    for (i, host) in config.get_hosts().iter().enumerate() {
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let granted = match host {
            tokio_postgres::config::Host::Tcp(h) => is_allowed(allowed, "postgres", h, port),
            // A socket path is not a host a manifest can grant.
            _ => false,
        };
        if !granted {
            let host = match host {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                other => format!("{other:?}"),
            };
            return Err(format!("postgres://{host}:{port} is not permitted by allowed_outbound_hosts"));
        }
    }
    Ok(config)
}

/// Checks the address against the component's grants, then takes a client from its pool.
async fn connect(allowed: &[String], pools: &Pools, address: &str) -> Result<PgConnection, pg::Error> {
    let config = permitted(allowed, address).map_err(|e| {
        eprintln!("vaultx-runtime: outbound {e}");
        pg::Error::ConnectionFailed(e)
    })?;
    let pool = pools.pool(address, config)?;
    let client = pool.get().await.map_err(|e| pg::Error::ConnectionFailed(e.to_string()))?;
    Ok(PgConnection(Arc::new(client)))
}

// ---- values ----

/// `db-null`: binds to a parameter of any type, as Spin's does.
#[derive(Debug)]
struct PgNull;

impl ToSql for PgNull {
    fn to_sql(&self, _: &Type, _: &mut bytes::BytesMut) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

type Param = Box<dyn ToSql + Send + Sync>;

fn to_sql(value: pg::ParameterValue) -> Result<Param, pg::Error> {
    use pg::ParameterValue as P;
    Ok(match value {
        P::Boolean(v) => Box::new(v),
        P::Int8(v) => Box::new(v),
        P::Int16(v) => Box::new(v),
        P::Int32(v) => Box::new(v),
        P::Int64(v) => Box::new(v),
        P::Floating32(v) => Box::new(v),
        P::Floating64(v) => Box::new(v),
        P::Str(v) => Box::new(v),
        P::Binary(v) => Box::new(v),
        P::DbNull => Box::new(PgNull),
        other => return Err(pg::Error::BadParameter(format!("vaultx-runtime does not bind {other:?} parameters"))),
    })
}

fn data_type(t: &Type) -> pg::DbDataType {
    use pg::DbDataType as D;
    match *t {
        Type::BOOL => D::Boolean,
        Type::BYTEA => D::Binary,
        Type::FLOAT4 => D::Floating32,
        Type::FLOAT8 => D::Floating64,
        Type::INT2 => D::Int16,
        Type::INT4 => D::Int32,
        Type::INT8 => D::Int64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => D::Str,
        Type::NUMERIC => D::Decimal,
        _ => D::Other(t.name().to_owned()),
    }
}

/// `NUMERIC` in PostgreSQL's binary format, as the decimal string Spin returns for it (what
/// `sum(bigint)` gives).
struct Numeric(String);

impl<'a> FromSql<'a> for Numeric {
    fn from_sql(_: &Type, raw: &'a [u8]) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let word = |i: usize| -> std::result::Result<u16, Box<dyn std::error::Error + Sync + Send>> {
            Ok(u16::from_be_bytes(raw.get(i..i + 2).ok_or("short NUMERIC")?.try_into()?))
        };
        let (ndigits, weight, sign, dscale) = (word(0)? as usize, word(2)? as i16, word(4)?, word(6)? as usize);
        if sign == 0xC000 {
            return Ok(Numeric("NaN".into()));
        }
        let digits = (0..ndigits).map(|i| word(8 + 2 * i)).collect::<std::result::Result<Vec<_>, _>>()?;
        // Base-10000 digits; digit i is worth 10000^(weight - i).
        let mut int = String::new();
        for w in 0..=weight.max(-1) {
            let d = digits.get(w as usize).copied().unwrap_or(0);
            if int.is_empty() { int = d.to_string() } else { int.push_str(&format!("{d:04}")) }
        }
        if int.is_empty() {
            int.push('0');
        }
        let mut frac = String::new();
        let mut i = weight as i32 + 1;
        while frac.len() < dscale {
            let d = if i < 0 { 0 } else { digits.get(i as usize).copied().unwrap_or(0) };
            frac.push_str(&format!("{d:04}"));
            i += 1;
        }
        frac.truncate(dscale);
        let sign = if sign == 0x4000 { "-" } else { "" };
        Ok(Numeric(if frac.is_empty() { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") }))
    }
    fn accepts(t: &Type) -> bool {
        *t == Type::NUMERIC
    }
}

/// Any other type, as its raw bytes (Spin's `unsupported`).
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

fn value(row: &tokio_postgres::Row, i: usize) -> Result<pg::DbValue, tokio_postgres::Error> {
    use pg::DbValue as V;
    fn get<'a, T: FromSql<'a>>(row: &'a tokio_postgres::Row, i: usize, f: impl Fn(T) -> V) -> Result<V, tokio_postgres::Error> {
        Ok(row.try_get::<_, Option<T>>(i)?.map_or(V::DbNull, f))
    }
    match *row.columns()[i].type_() {
        Type::BOOL => get(row, i, V::Boolean),
        Type::BYTEA => get(row, i, V::Binary),
        Type::FLOAT4 => get(row, i, V::Floating32),
        Type::FLOAT8 => get(row, i, V::Floating64),
        Type::INT2 => get(row, i, V::Int16),
        Type::INT4 => get(row, i, V::Int32),
        Type::INT8 => get(row, i, V::Int64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => get(row, i, V::Str),
        Type::NUMERIC => get(row, i, |n: Numeric| V::Decimal(n.0)),
        _ => get(row, i, |r: Raw| V::Unsupported(r.0)),
    }
}

fn query_failed(e: tokio_postgres::Error) -> pg::Error {
    let text = e.to_string();
    pg::Error::QueryFailed(match e.as_db_error() {
        None => pg::QueryError::Text(text),
        Some(db) => pg::QueryError::DbError(pg::DbError {
            as_text: format!("{db}"),
            severity: db.severity().to_owned(),
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
            detail: db.detail().map(str::to_owned),
            extras: [("constraint", db.constraint()), ("table", db.table()), ("column", db.column()), ("hint", db.hint())]
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
                .collect(),
        }),
    })
}

fn bind(params: Vec<pg::ParameterValue>) -> Result<Vec<Param>, pg::Error> {
    params.into_iter().map(to_sql).collect()
}

fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect()
}

async fn query(client: &deadpool_postgres::Object, statement: &str, params: Vec<pg::ParameterValue>) -> Result<(Vec<pg::Column>, Vec<Vec<pg::DbValue>>), pg::Error> {
    let params = bind(params)?;
    let prepared = client.prepare_cached(statement).await.map_err(query_failed)?;
    let columns = prepared.columns().iter().map(|c| pg::Column { name: c.name().to_owned(), data_type: data_type(c.type_()) }).collect();
    let rows = client.query(&prepared, &refs(&params)).await.map_err(query_failed)?;
    let rows = rows
        .iter()
        .map(|row| (0..row.len()).map(|i| value(row, i)).collect::<Result<Vec<_>, _>>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pg::Error::ValueConversionFailed(e.to_string()))?;
    Ok((columns, rows))
}

async fn execute(client: &deadpool_postgres::Object, statement: &str, params: Vec<pg::ParameterValue>) -> Result<u64, pg::Error> {
    let params = bind(params)?;
    let prepared = client.prepare_cached(statement).await.map_err(query_failed)?;
    client.execute(&prepared, &refs(&params)).await.map_err(query_failed)
}

/// The synchronous functions of the interface (spin-sdk 7 calls the `-async` ones) run the
/// same code on a thread of their own, with its own runtime, while this one waits: a serving
/// thread is a single-threaded runtime, which cannot block in place. Pooled connections
/// opened this way live on that runtime and end with the call, so the pool drops them.
fn block_on<F: Future + Send>(f: F) -> F::Output
where
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime for one call").block_on(f))
            .join()
            .expect("the call's thread does not panic")
    })
}

impl SpinView<'_> {
    fn pg_target(&self) -> (Arc<Vec<String>>, Arc<Pools>) {
        (Arc::new(self.ctx.grants.allowed_outbound_hosts.clone()), self.ctx.pg.clone())
    }

    fn pg_client(&self, c: &Resource<PgConnection>) -> Result<Arc<deadpool_postgres::Object>> {
        Ok(self.table.get(c)?.0.clone())
    }
}

impl pg::Host for SpinView<'_> {}

impl pg::HostConnection for SpinView<'_> {
    fn open(&mut self, address: String) -> Result<Result<Resource<PgConnection>, pg::Error>> {
        let (allowed, pools) = self.pg_target();
        match block_on(connect(&allowed, &pools, &address)) {
            Ok(c) => Ok(Ok(self.table.push(c)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    fn query(&mut self, c: Resource<PgConnection>, statement: String, params: Vec<pg::ParameterValue>) -> Result<Result<pg::RowSet, pg::Error>> {
        let client = self.pg_client(&c)?;
        Ok(block_on(query(&client, &statement, params)).map(|(columns, rows)| pg::RowSet { columns, rows }))
    }

    fn execute(&mut self, c: Resource<PgConnection>, statement: String, params: Vec<pg::ParameterValue>) -> Result<Result<u64, pg::Error>> {
        let client = self.pg_client(&c)?;
        Ok(block_on(execute(&client, &statement, params)))
    }

    fn drop(&mut self, c: Resource<PgConnection>) -> Result<()> {
        // The client goes back to its pool (recycled with ROLLBACK) when the last holder lets go.
        self.table.delete(c)?;
        Ok(())
    }
}

impl<T: 'static> pg::HostConnectionWithStore<T> for Spin {
    async fn open_async(a: &Accessor<T, Self>, address: String) -> Result<Result<Resource<PgConnection>, pg::Error>> {
        let (allowed, pools) = a.with(|mut x| x.get().pg_target());
        match connect(&allowed, &pools, &address).await {
            Ok(c) => a.with(|mut x| Ok(Ok(x.get().table.push(c)?))),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn query_async(
        a: &Accessor<T, Self>,
        c: Resource<PgConnection>,
        statement: String,
        params: Vec<pg::ParameterValue>,
    ) -> Result<Result<(Vec<pg::Column>, StreamReader<Vec<pg::DbValue>>, FutureReader<Result<(), pg::Error>>), pg::Error>> {
        let client = a.with(|mut x| x.get().pg_client(&c))?;
        let (columns, rows) = match query(&client, &statement, params).await {
            Ok(out) => out,
            Err(e) => return Ok(Err(e)),
        };
        let (rows, done) = finished_stream(a, rows, Ok(()))?;
        Ok(Ok((columns, rows, done)))
    }

    async fn execute_async(a: &Accessor<T, Self>, c: Resource<PgConnection>, statement: String, params: Vec<pg::ParameterValue>) -> Result<Result<u64, pg::Error>> {
        let client = a.with(|mut x| x.get().pg_client(&c))?;
        Ok(execute(&client, &statement, params).await)
    }
}

impl pg::HostConnectionBuilder for SpinView<'_> {
    fn new(&mut self, address: String) -> Result<Resource<PgConnectionBuilder>> {
        Ok(self.table.push(PgConnectionBuilder(address))?)
    }

    fn set_ca_root(&mut self, _: Resource<PgConnectionBuilder>, _: String) -> Result<Result<(), pg::Error>> {
        // The local runtime connects without TLS (like its outbound HTTP); say so rather than
        // pretend a root was installed.
        Ok(Err(pg::Error::Other("vaultx-runtime connects to PostgreSQL without TLS; custom CA roots are not supported".into())))
    }

    fn build(&mut self, b: Resource<PgConnectionBuilder>) -> Result<Result<Resource<PgConnection>, pg::Error>> {
        let address = self.table.get(&b)?.0.clone();
        pg::HostConnection::open(self, address)
    }

    fn drop(&mut self, b: Resource<PgConnectionBuilder>) -> Result<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

impl<T: 'static> pg::HostConnectionBuilderWithStore<T> for Spin {
    async fn build_async(a: &Accessor<T, Self>, b: Resource<PgConnectionBuilder>) -> Result<Result<Resource<PgConnection>, pg::Error>> {
        let (address, allowed, pools) = a.with(|mut x| {
            let view = x.get();
            let (allowed, pools) = view.pg_target();
            Ok::<_, wasmtime::Error>((view.table.get(&b)?.0.clone(), allowed, pools))
        })?;
        match connect(&allowed, &pools, &address).await {
            Ok(c) => a.with(|mut x| Ok(Ok(x.get().table.push(c)?))),
            Err(e) => Ok(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> String {
        let mut raw = Vec::new();
        for w in [ndigits, weight as u16, sign, dscale].iter().chain(digits) {
            raw.extend_from_slice(&w.to_be_bytes());
        }
        Numeric::from_sql(&Type::NUMERIC, &raw).unwrap().0
    }

    #[test]
    fn numerics_read_as_spin_returns_them() {
        assert_eq!(numeric(0, 0, 0, 0, &[]), "0");
        assert_eq!(numeric(1, 0, 0, 0, &[42]), "42");
        // 123456789 = 1|2345|6789
        assert_eq!(numeric(3, 2, 0, 0, &[1, 2345, 6789]), "123456789");
        // 10000 = 1 at weight 1, trailing zero digits dropped
        assert_eq!(numeric(1, 1, 0, 0, &[1]), "10000");
        assert_eq!(numeric(1, 0, 0x4000, 0, &[7]), "-7");
        // 1.5 = 1 . 5000
        assert_eq!(numeric(2, 0, 0, 1, &[1, 5000]), "1.5");
        // 0.0001
        assert_eq!(numeric(1, -1, 0, 4, &[1]), "0.0001");
    }

    #[test]
    fn postgres_addresses_are_checked_by_host_and_port() {
        let allowed = vec!["postgres://127.0.0.1:5432".to_owned()];
        let pools = Pools::default();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for denied in ["postgres://127.0.0.1:5433/x", "postgres://10.0.0.1:5432/x", "host=/var/run/postgresql dbname=x"] {
            match rt.block_on(connect(&allowed, &pools, denied)) {
                Err(pg::Error::ConnectionFailed(m)) => assert!(m.contains("not permitted"), "{denied}: {m}"),
                _ => panic!("{denied} was let through"),
            }
        }
    }

    /// infra/spin/postgres.env (the Spin CLI's PostgreSQL settings) names real variables of
    /// spin.toml, and with it every component that has metadata is granted its server.
    #[test]
    fn the_spin_cli_postgres_settings_grant_their_own_server() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let text = std::fs::read_to_string(root.join("infra/spin/postgres.env")).unwrap();
        let settings: HashMap<String, String> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                (k.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        assert!(settings.contains_key("SPIN_VARIABLE_DATABASE_URL") && settings.contains_key("SPIN_VARIABLE_DATABASE_HOST"), "{settings:?}");
        let app = crate::manifest::load(&root.join("spin.toml"), &|k| {
            settings.get(k).cloned().or_else(|| matches!(k, "SPIN_VARIABLE_JWT_SECRET" | "SPIN_VARIABLE_URL_SIGNING_KEYS").then(|| "x".repeat(40)))
        })
        .unwrap();
        for name in settings.keys() {
            let variable = name.strip_prefix("SPIN_VARIABLE_").unwrap().to_ascii_lowercase();
            assert!(app.variables.contains_key(&variable), "{name} names no variable of spin.toml");
        }
        let url = &settings["SPIN_VARIABLE_DATABASE_URL"];
        let with_metadata: Vec<_> = app.components.values().filter(|c| !c.sqlite_databases.is_empty()).collect();
        assert!(with_metadata.len() > 20);
        for c in with_metadata {
            assert_eq!(c.variables.get("database_url"), Some(url), "component {}", c.id);
            permitted(&c.allowed_outbound_hosts, url).unwrap_or_else(|e| panic!("component {}: {e}", c.id));
        }
    }
}
