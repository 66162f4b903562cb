//! Outbound `spin:redis@3.0.0`, as Spin does it: a component opens `redis://host:port` only
//! if the manifest lists that address in its `allowed_outbound_hosts` (else
//! `invalid-address`, as Spin answers a denied address). Connections are real (`redis` crate,
//! multiplexed) and shared per address across instances ([`Clients`]). Replies reach the
//! guest flattened, as Spin flattens them.

use crate::outbound::is_allowed;
use super::{HasSpin, Spin, SpinView};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use wasmtime::Result;
use wasmtime::component::{Accessor, Linker, Resource};

use super::spin::redis::redis as r;

pub fn add_to_linker<T: HasSpin>(linker: &mut Linker<T>) -> Result<()> {
    r::add_to_linker::<_, Spin>(linker, T::spin)
}

/// Multiplexed connections by address, shared by every instance of every component.
#[derive(Default)]
pub struct Clients(Mutex<HashMap<String, redis::aio::MultiplexedConnection>>);

impl Clients {
    async fn connect(&self, address: &str) -> Result<redis::aio::MultiplexedConnection, r::Error> {
        if let Some(c) = self.0.lock().map_err(|e| r::Error::Other(e.to_string()))?.get(address) {
            return Ok(c.clone());
        }
        let client = redis::Client::open(address).map_err(|_| r::Error::InvalidAddress)?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(10)));
        let conn = client.get_multiplexed_async_connection_with_config(&config).await.map_err(other)?;
        self.0.lock().map_err(|e| r::Error::Other(e.to_string()))?.insert(address.to_owned(), conn.clone());
        Ok(conn)
    }

    fn forget(&self, address: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(address);
        }
    }
}

/// A guest's open connection: the address (to forget a broken connection) and the connection.
pub struct RedisConnection {
    address: String,
    conn: redis::aio::MultiplexedConnection,
}

fn other(e: redis::RedisError) -> r::Error {
    r::Error::Other(e.to_string())
}

/// `redis://host[:port][/db]` → (host, port), for the outbound check.
fn host_port(address: &str) -> Option<(String, u16)> {
    let rest = address.strip_prefix("redis://")?;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h.to_owned(), p.parse().ok()?)),
        None => Some((authority.to_owned(), 6379)),
    }
}

impl r::Host for SpinView<'_> {}

impl r::HostConnection for SpinView<'_> {
    fn drop(&mut self, c: Resource<RedisConnection>) -> Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

/// Runs one command on the guest's connection; a broken connection is forgotten, so the
/// next `open` reconnects.
async fn run<T: 'static, R: redis::FromRedisValue + Send>(a: &Accessor<T, Spin>, c: &Resource<RedisConnection>, cmd: redis::Cmd) -> Result<Result<R, r::Error>> {
    let (address, mut conn, clients) = a.with(|mut x| {
        let view = x.get();
        let c = view.table.get(c)?;
        Ok::<_, wasmtime::Error>((c.address.clone(), c.conn.clone(), view.ctx.redis.clone()))
    })?;
    let result: redis::RedisResult<R> = cmd.query_async(&mut conn).await;
    Ok(result.map_err(|e| {
        if e.is_io_error() || e.is_connection_dropped() {
            clients.forget(&address);
        }
        match e.kind() {
            redis::ErrorKind::UnexpectedReturnType => r::Error::TypeError,
            _ => other(e),
        }
    }))
}

impl<T: 'static> r::HostConnectionWithStore<T> for Spin {
    async fn open(a: &Accessor<T, Self>, address: String) -> Result<Result<Resource<RedisConnection>, r::Error>> {
        let (allowed, clients) = a.with(|mut x| {
            let view = x.get();
            (view.ctx.grants.allowed_outbound_hosts.clone(), view.ctx.redis.clone())
        });
        let Some((host, port)) = host_port(&address) else {
            return Ok(Err(r::Error::InvalidAddress));
        };
        if !is_allowed(&allowed, "redis", &host, port) {
            eprintln!("vaultx-runtime: outbound redis to {host}:{port} is not in allowed_outbound_hosts");
            return Ok(Err(r::Error::InvalidAddress));
        }
        let conn = match clients.connect(&address).await {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        a.with(|mut x| Ok(Ok(x.get().table.push(RedisConnection { address, conn })?)))
    }

    async fn publish(a: &Accessor<T, Self>, c: Resource<RedisConnection>, channel: String, payload: Vec<u8>) -> Result<Result<(), r::Error>> {
        run::<_, i64>(a, &c, redis::cmd("PUBLISH").arg(channel).arg(payload).clone()).await.map(|r| r.map(drop))
    }

    async fn get(a: &Accessor<T, Self>, c: Resource<RedisConnection>, key: String) -> Result<Result<Option<Vec<u8>>, r::Error>> {
        run(a, &c, redis::cmd("GET").arg(key).clone()).await
    }

    async fn set(a: &Accessor<T, Self>, c: Resource<RedisConnection>, key: String, value: Vec<u8>) -> Result<Result<(), r::Error>> {
        run::<_, ()>(a, &c, redis::cmd("SET").arg(key).arg(value).clone()).await
    }

    async fn incr(a: &Accessor<T, Self>, c: Resource<RedisConnection>, key: String) -> Result<Result<i64, r::Error>> {
        run(a, &c, redis::cmd("INCR").arg(key).clone()).await
    }

    async fn del(a: &Accessor<T, Self>, c: Resource<RedisConnection>, keys: Vec<String>) -> Result<Result<u32, r::Error>> {
        run(a, &c, redis::cmd("DEL").arg(keys).clone()).await
    }

    async fn sadd(a: &Accessor<T, Self>, c: Resource<RedisConnection>, key: String, values: Vec<String>) -> Result<Result<u32, r::Error>> {
        run(a, &c, redis::cmd("SADD").arg(key).arg(values).clone()).await
    }

    async fn smembers(a: &Accessor<T, Self>, c: Resource<RedisConnection>, key: String) -> Result<Result<Vec<String>, r::Error>> {
        run(a, &c, redis::cmd("SMEMBERS").arg(key).clone()).await
    }

    async fn srem(a: &Accessor<T, Self>, c: Resource<RedisConnection>, key: String, values: Vec<String>) -> Result<Result<u32, r::Error>> {
        run(a, &c, redis::cmd("SREM").arg(key).arg(values).clone()).await
    }

    async fn execute(
        a: &Accessor<T, Self>,
        c: Resource<RedisConnection>,
        command: String,
        arguments: Vec<r::RedisParameter>,
    ) -> Result<Result<Vec<r::RedisResult>, r::Error>> {
        let mut cmd = redis::cmd(&command);
        for arg in arguments {
            match arg {
                r::RedisParameter::Int64(n) => cmd.arg(n),
                r::RedisParameter::Binary(b) => cmd.arg(b),
            };
        }
        let value = match run::<_, redis::Value>(a, &c, cmd).await? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        Ok(results(value))
    }
}

/// A reply as Spin's `execute` returns it: nested arrays flattened depth first (an `XRANGE`
/// entry's id, field and value follow one another), as Spin does.
fn results(value: redis::Value) -> Result<Vec<r::RedisResult>, r::Error> {
    fn append(out: &mut Vec<r::RedisResult>, v: redis::Value) -> Result<(), r::Error> {
        out.push(match v {
            redis::Value::Array(items) | redis::Value::Set(items) => return items.into_iter().try_for_each(|item| append(out, item)),
            redis::Value::Nil => r::RedisResult::Nil,
            redis::Value::Int(n) => r::RedisResult::Int64(n),
            redis::Value::BulkString(b) => r::RedisResult::Binary(b),
            redis::Value::SimpleString(s) => r::RedisResult::Status(s),
            redis::Value::Okay => r::RedisResult::Status("OK".into()),
            redis::Value::Boolean(b) => r::RedisResult::Int64(b as i64),
            redis::Value::Double(d) => r::RedisResult::Binary(d.to_string().into_bytes()),
            redis::Value::ServerError(e) => return Err(r::Error::Other(format!("{e:?}"))),
            other => return Err(r::Error::Other(format!("unsupported reply {other:?}"))),
        });
        Ok(())
    }
    let mut out = Vec::new();
    append(&mut out, value)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_addresses_are_checked_by_host_and_port() {
        assert_eq!(host_port("redis://127.0.0.1:6379"), Some(("127.0.0.1".into(), 6379)));
        assert_eq!(host_port("redis://cache.internal"), Some(("cache.internal".into(), 6379)));
        assert_eq!(host_port("redis://user:pw@cache:6380/2"), Some(("cache".into(), 6380)));
        assert_eq!(host_port("http://cache:6379"), None);
        let allowed = vec!["redis://127.0.0.1:6379".to_owned()];
        assert!(is_allowed(&allowed, "redis", "127.0.0.1", 6379));
        assert!(!is_allowed(&allowed, "redis", "127.0.0.1", 6380));
    }

    #[test]
    fn an_xrange_reply_reaches_the_guest_flattened_as_spin_flattens_it() {
        use redis::Value::{Array, BulkString, Int};
        let entry = |id: &str, v: &str| Array(vec![BulkString(id.into()), Array(vec![BulkString(b"e".to_vec()), BulkString(v.into())])]);
        let flat = results(Array(vec![entry("1-0", "a"), entry("1-1", "b")])).unwrap();
        let bin = |s: &str| r::RedisResult::Binary(s.into());
        let debug = |v: &[r::RedisResult]| format!("{v:?}");
        assert_eq!(debug(&flat), debug(&[bin("1-0"), bin("e"), bin("a"), bin("1-1"), bin("e"), bin("b")]));
        assert_eq!(debug(&results(Int(3)).unwrap()), debug(&[r::RedisResult::Int64(3)]));
    }
}
