//! The host side of the `spin:*` interfaces, one module per capability, as Spin's factors:
//! [`sqlite`] (`spin:sqlite@3.1.0`), [`key_value`] (`spin:key-value@3.0.0`), [`variables`]
//! (`spin:variables@3.0.0`), [`redis`] (outbound `spin:redis@3.0.0`) and [`postgres`]
//! (`spin:postgres@4.2.0`). Each owns its resource types, its state and its linker
//! registration, and checks every call against what the manifest granted the calling
//! component ([`Grants`]): a component that did not list a store gets `access-denied`, as on
//! Spin. This module holds what they share: the generated bindings, the per-instance context
//! ([`SpinCtx`]) and the view a host call gets ([`SpinView`]). Outbound HTTP is
//! `crate::outbound`; the Redis trigger (inbound) is `crate::redis_trigger`.

pub mod key_value;
pub mod postgres;
pub mod redis;
pub mod sqlite;
pub mod variables;

use crate::stores::Stores;
use std::collections::HashMap;
use std::sync::Arc;
use wasmtime::component::{Accessor, FutureReader, HasData, Lift, Linker, Lower, ResourceTable, StreamReader};
use wasmtime::Result;

wasmtime::component::bindgen!({
    path: "wit",
    world: "spin-host",
    imports: { default: trappable },
    with: {
        "spin:sqlite/sqlite.connection": sqlite::SqliteConnection,
        "spin:key-value/key-value.store": key_value::KvStore,
        "spin:redis/redis.connection": redis::RedisConnection,
        "spin:postgres/postgres.connection": postgres::PgConnection,
        "spin:postgres/postgres.connection-builder": postgres::PgConnectionBuilder,
    },
});


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
    pub redis: Arc<redis::Clients>,
    pub pg: Arc<postgres::Pools>,
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

/// Every capability's interface, as a component's linker needs them (each capability adds its
/// own).
pub fn add_to_linker<T: HasSpin>(linker: &mut Linker<T>) -> Result<()> {
    sqlite::add_to_linker(linker)?;
    key_value::add_to_linker(linker)?;
    variables::add_to_linker(linker)?;
    redis::add_to_linker(linker)?;
    postgres::add_to_linker(linker)?;
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
pub(crate) async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Result<R> {
    Ok(tokio::task::spawn_blocking(f).await?)
}
