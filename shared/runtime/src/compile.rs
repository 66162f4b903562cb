//! Compiling components, and the cache of precompiled (`.cwasm`) artefacts that makes a
//! restart cheap: the key is the component's SHA-256 plus the engine's compatibility hash,
//! so a rebuilt component or a different wasmtime never loads a stale artefact.
//!
//! Hashing every component at each start cost more than everything else the start does (46
//! components, 70 MB), so an index maps what `stat` says of the file — path, size,
//! modification time, inode — to that key: [`cached`] finds a component's artefact without
//! reading the component, and a rebuilt file (new modification time) is hashed again.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::Path;
use wasmtime::Engine;
use wasmtime::component::Component;

/// The engine every component runs on; up to `max_instances` instances at once come from its
/// pool ([`instance_pool`]).
pub fn engine(max_instances: u32) -> Result<Engine> {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model_async(true);
    // For `perf record`: the guests' functions by name in /tmp/perf-<pid>.map (components built
    // with their name section, i.e. not stripped).
    if std::env::var_os("VAULTX_PERF_MAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    // The pool reserves its address space up front (terabytes of it, never touched); where
    // that is refused (`ulimit -v`, valgrind), instances get mappings of their own, as Spin
    // and `wasmtime serve` fall back too.
    let mut pooled = config.clone();
    pooled.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(instance_pool(max_instances)));
    match Engine::new(&pooled) {
        Ok(engine) => Ok(engine),
        Err(e) => {
            eprintln!("vaultx-runtime: no instance pool ({e}); each instance maps its own memory");
            Ok(Engine::new(&config)?)
        }
    }
}

/// Instances at once unless `--max-instances` says otherwise: Spin's default pool. A request
/// that needs an instance beyond it is answered 503 (`busy`).
pub const MAX_INSTANCES: u32 = 1000;

/// Instances come from a pool of memories, tables and stacks reserved at start (Spin's
/// default too), not from fresh mappings: an instance retired after its 128 requests hands
/// its slot to the next one. On a fresh mapping per instance, each retirement unmapped its
/// memory and each new instance faulted its pages in again, and every unmapping interrupted
/// the other serving thread's core to flush its TLB (measured: a fresh instance per request cost 409 us
/// of CPU on fresh mappings, 220 us from the pool).
/// - A slot's first MiB of memory and its tables stay resident and are reset in place
///   (only their dirty pages, found by `PAGEMAP_SCAN` where the kernel has it), not decommitted
///   and faulted in again.
/// - At most 16 unused slots keep that memory resident, so what idle slots hold stays under
///   ~20 MiB however many components have run.
fn instance_pool(max_instances: u32) -> wasmtime::PoolingAllocationConfig {
    let [(_, instances), (_, memories), (_, tables), (_, stacks)] = pool_capacity(max_instances);
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        // Three core instances per component (see `pool_capacity`), a slot to spare.
        .total_core_instances(4 * max_instances)
        .total_tables(tables)
        .total_memories(memories)
        .total_stacks(stacks)
        .max_unused_warm_slots(16)
        .linear_memory_keep_resident(1 << 20)
        .table_keep_resident(1 << 20)
        .pagemap_scan(wasmtime::Enabled::Auto);
    pool
}

/// The pool's slots by kind for `max_instances` instances, as `vaultx_instance_pool_capacity`
/// names them. A component here is three core instances (the module and two adapter shims),
/// one memory and up to two tables.
pub fn pool_capacity(max_instances: u32) -> [(&'static str, u32); 4] {
    [("component_instances", max_instances), ("memories", max_instances), ("tables", 4 * max_instances), ("stacks", max_instances)]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    Hit,
    Miss,
}

fn cache_key(engine: &Engine, wasm: &[u8]) -> String {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut engine_hash);
    let digest = Sha256::digest(wasm);
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{hex}-{:016x}", engine_hash.finish())
}

/// The index entry of the file as `stat` describes it now.
fn stat_key(engine: &Engine, wasm_path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(wasm_path).ok()?;
    let path = std::fs::canonicalize(wasm_path).ok()?;
    let mut hasher = Sha256::new();
    hasher.update(path.as_os_str().as_encoded_bytes());
    for n in [meta.len() as i64, meta.mtime(), meta.mtime_nsec(), meta.ino() as i64, meta.dev() as i64] {
        hasher.update(n.to_le_bytes());
    }
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut engine_hash);
    hasher.update(engine_hash.finish().to_le_bytes());
    Some(hasher.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect())
}

/// The precompiled artefact of the component at `wasm_path` as it is now, if the cache has
/// it: found from the index, without reading the component.
pub fn cached(engine: &Engine, wasm_path: &Path, cache_dir: &Path) -> Option<std::path::PathBuf> {
    let key = std::fs::read_to_string(cache_dir.join(format!("{}.key", stat_key(engine, wasm_path)?))).ok()?;
    let artefact = cache_dir.join(format!("{}.cwasm", key.trim()));
    artefact.exists().then_some(artefact)
}

/// Loads an artefact [`cached`] found.
pub fn deserialize(engine: &Engine, artefact: &Path) -> Result<Component> {
    // SAFETY: the file was written by `precompile_component` of an engine with the same
    // compatibility hash (it is in the name), and only this runtime writes the cache.
    unsafe { Component::deserialize_file(engine, artefact) }.map_err(|e| anyhow::anyhow!("loading {}: {e:#}", artefact.display()))
}

pub fn load(engine: &Engine, wasm_path: &Path, cache_dir: &Path) -> Result<(Component, Cache)> {
    if let Some(artefact) = cached(engine, wasm_path, cache_dir)
        && let Ok(component) = deserialize(engine, &artefact)
    {
        return Ok((component, Cache::Hit));
    }
    let wasm = std::fs::read(wasm_path).with_context(|| format!("reading {} (build the components first)", wasm_path.display()))?;
    let key = cache_key(engine, &wasm);
    let cached = cache_dir.join(format!("{key}.cwasm"));
    // Write then rename, so a crash never leaves a truncated file under the real name.
    let write = |path: &Path, bytes: &[u8]| -> Result<()> {
        std::fs::create_dir_all(cache_dir)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    };
    let index = stat_key(engine, wasm_path).map(|k| cache_dir.join(format!("{k}.key")));
    if let Some(index) = &index {
        // Best effort: without it the next start hashes the component again.
        let _ = write(index, key.as_bytes());
    }
    if cached.exists()
        && let Ok(component) = deserialize(engine, &cached)
    {
        return Ok((component, Cache::Hit));
    }
    let artefact = engine
        .precompile_component(&wasm)
        .map_err(|e| anyhow::anyhow!("compiling {}: {e:#}", wasm_path.display()))?;
    write(&cached, &artefact)?;
    drop(artefact);
    // Loaded from the file just written, as a cached artefact is: its code is then mapped
    // from the file, paged in as it runs, instead of a private copy of the whole artefact in
    // anonymous memory (with every component compiled at start, that copy was most of the
    // runtime's resident memory).
    Ok((deserialize(engine, &cached)?, Cache::Miss))
}
