//! `spin:key-value@3.0.0`: the stores the component lists in `key_value_stores`, each a
//! SQLite file of its own (`stores::KeyValue`): reads on the calling thread, writes
//! group-committed by the store's writer.

use super::spin::key_value::key_value as kv;
use super::{HasSpin, Spin, SpinView, blocking, finished_stream};
use crate::stores;
use std::sync::Arc;
use wasmtime::Result;
use wasmtime::component::{Accessor, FutureReader, Linker, Resource, StreamReader};

/// A guest's open key-value store: its label and the file that holds it (`Stores::kv`), found once
/// at `open` rather than at every call.
pub struct KvStore {
    label: String,
    kv: Arc<stores::KeyValue>,
}

pub fn add_to_linker<T: HasSpin>(linker: &mut Linker<T>) -> Result<()> {
    kv::add_to_linker::<_, Spin>(linker, T::spin)
}

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

