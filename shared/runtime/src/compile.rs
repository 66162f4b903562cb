//! Compiling components, and the cache of precompiled (`.cwasm`) artefacts that makes a
//! restart cheap: the key is the component's SHA-256 plus the engine's compatibility hash,
//! so a rebuilt component or a different wasmtime never loads a stale artefact.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::Path;
use wasmtime::Engine;
use wasmtime::component::Component;

pub fn engine() -> Result<Engine> {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model_async(true);
    Ok(Engine::new(&config)?)
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

pub fn load(engine: &Engine, wasm_path: &Path, cache_dir: &Path) -> Result<(Component, Cache)> {
    let wasm = std::fs::read(wasm_path).with_context(|| format!("reading {} (build the components first)", wasm_path.display()))?;
    let cached = cache_dir.join(format!("{}.cwasm", cache_key(engine, &wasm)));
    if cached.exists() {
        // SAFETY: the file was written by `precompile_component` of an engine with the same
        // compatibility hash (it is in the name), and only this runtime writes the cache.
        if let Ok(component) = unsafe { Component::deserialize_file(engine, &cached) } {
            return Ok((component, Cache::Hit));
        }
    }
    let artefact = engine
        .precompile_component(&wasm)
        .map_err(|e| anyhow::anyhow!("compiling {}: {e:#}", wasm_path.display()))?;
    std::fs::create_dir_all(cache_dir)?;
    // Write then rename, so a crash never leaves a truncated artefact under the real name.
    let tmp = cached.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &artefact)?;
    std::fs::rename(&tmp, &cached)?;
    // SAFETY: produced just now by this engine.
    let component = unsafe { Component::deserialize(engine, &artefact)? };
    Ok((component, Cache::Miss))
}
