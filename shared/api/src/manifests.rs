//! Manifests: what the download path reads instead of the database. A file's manifest lives
//! in the key-value store under `manifest/<file id>/<manifest id>` ([`files::manifest_key`]),
//! names the file's blocks in order and the other regions' stores holding copies of them, and
//! never changes once published except to name where its blocks are now ([`sync`]: same id,
//! same size, same ETag, so signed URLs already handed out keep working).
//!
//! A manifest is written under a new id *before* the transition that publishes it
//! ([`write()`], recorded in `manifest_writes`); a transition that loses its race discards it
//! ([`remove_dead`]); every writer checks the row after writing, so a deleted file's manifest
//! never comes back.

use crate::blobs::STALE_SWEEP_MS;
use crate::files::{self, AVAILABLE, FileRecord};
use crate::store::store_failure;
use serde::{Deserialize, Serialize};
use vaultx_core::Problem;
use vaultx_core::digest::{hex, sha256};
use vaultx_core::ports::{Entropy, Kv, Sql, SqlValue};

/// What the download path needs, stored in the key-value store under
/// `manifest/<file id>/<manifest id>` before the file becomes available. It never changes:
/// chunk contents are content-addressed, and the name and media type a download is served
/// with travel in the signed URL. So it can be cached anywhere, forever.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub id: String,
    pub size: u64,
    pub etag: String,
    /// (blob key, length) per chunk, in order.
    pub chunks: Vec<(String, u64)>,
    /// The other regions' stores holding copies of chunks, `(kind, binding)`: where the edge
    /// reads when the home store is deactivated, failing, or its breaker is open.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stores: Vec<(String, String)>,
    /// Per chunk, the indexes in `stores` holding a copy of it, in the order to try them
    /// (empty when the file has no copies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<Vec<u16>>,
    /// The whole content of a file of at most [`INLINE_MAX`] bytes (base64 in the stored
    /// JSON), so its download reads the manifest and nothing else. The blocks stay the source
    /// of truth (jobs, replication, integrity); a manifest rewritten by [`sync`] keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "inline_base64")]
    pub inline: Option<Vec<u8>>,
}

/// Files up to this size travel inside their manifest (as Garage keeps objects under 3 KiB in
/// its object table and MinIO small ones in their metadata): one key-value read per download
/// instead of two, and no blob-store read at all (on Workers, no R2 operation).
pub const INLINE_MAX: u64 = 8 * 1024;

mod inline_base64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => s.serialize_str(&STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| STANDARD.decode(t).map_err(serde::de::Error::custom)).transpose()
    }
}

/// A strong validator from the chunk contents: the SHA-256 of the chunks' blob keys in order.
pub fn etag(chunks: &[(String, u64)]) -> String {
    let joined = chunks.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(",");
    format!("\"{}\"", &hex(&sha256(joined.as_bytes()))[..32])
}

/// Writes a new manifest for the file and returns its id. Nothing can reach it until a
/// transition publishes the id in the file's row. The write is recorded first
/// (`manifest_writes`), so a manifest whose writer died before publishing or deleting it can
/// be found and removed ([`remove_dead`]); the publishing batch clears the record
/// ([`published`]). `inline` is the whole content of a small file (at most [`INLINE_MAX`]
/// bytes), or `None`.
pub async fn write(db: &impl Sql, kv: &impl Kv, entropy: &impl Entropy, now_ms: i64, f: &FileRecord, chunks: Vec<(String, u64)>, inline: Option<Vec<u8>>) -> Result<(String, Manifest), Problem> {
    let manifest_id = vaultx_core::ids::new_id(entropy);
    db.execute(
        "INSERT INTO manifest_writes (file_id, manifest_id, started_at) VALUES (?, ?, ?)",
        vec![f.key_file().into(), manifest_id.clone().into(), SqlValue::Integer(now_ms)],
    )
    .await
    .map_err(store_failure)?;
    let (stores, replicas) = crate::replication::placement(db, f.key_file(), &chunks).await?;
    let inline = inline.filter(|b| b.len() as u64 == f.size && f.size <= INLINE_MAX);
    let manifest = Manifest { id: f.key_file().to_owned(), size: f.size, etag: etag(&chunks), chunks, stores, replicas, inline };
    let bytes = serde_json::to_vec(&manifest).map_err(|_| Problem::internal())?;
    kv.set(&f.manifest_key(&manifest_id), &bytes).await.map_err(store_failure)?;
    Ok((manifest_id, manifest))
}

pub use crate::files::published;

/// Deletes a manifest that was never published (or no longer is) and its write record.
pub async fn discard(db: &impl Sql, kv: &impl Kv, file_id: &str, manifest_id: &str) -> Result<(), Problem> {
    kv.delete(&files::manifest_key(file_id, manifest_id)).await.map_err(store_failure)?;
    let p = published(file_id, manifest_id);
    db.execute(p.sql, p.params).await.map_err(store_failure)?;
    Ok(())
}

/// Removes the manifests of the file whose writers died before publishing them: recorded
/// writes older than any request can run ([`STALE_SWEEP_MS`]), or all of them
/// when `all` (the file is being deleted: whatever is in flight will lose its race anyway).
pub async fn remove_dead(db: &impl Sql, kv: &impl Kv, now_ms: i64, file_id: &str, all: bool) -> Result<(), Problem> {
    let before = if all { i64::MAX } else { now_ms - STALE_SWEEP_MS };
    let rows = db
        .query("SELECT manifest_id FROM manifest_writes WHERE file_id = ? AND started_at < ?", vec![file_id.into(), SqlValue::Integer(before)])
        .await
        .map_err(store_failure)?;
    for row in &rows {
        discard(db, kv, file_id, row.text(0).map_err(store_failure)?).await?;
    }
    Ok(())
}

pub async fn read(kv: &impl Kv, file_id: &str, manifest_id: &str) -> Result<Option<Manifest>, Problem> {
    match kv.get(&files::manifest_key(file_id, manifest_id)).await.map_err(store_failure)? {
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            eprintln!("vaultx: manifest {file_id}/{manifest_id}: {e}");
            Problem::internal()
        }),
        None => Ok(None),
    }
}

/// The manifests the rows publish.
pub fn keys(rows: &[FileRecord]) -> Vec<String> {
    rows.iter().filter_map(|r| r.manifest_id.as_deref().map(|m| r.manifest_key(m))).collect()
}

pub async fn delete_all(kv: &impl Kv, keys: &[String]) -> Result<(), Problem> {
    for key in keys {
        kv.delete(key).await.map_err(store_failure)?;
    }
    Ok(())
}

/// Makes the file's published manifest name exactly its current blocks (its rows) and the
/// other regions' copies of them, keeping its id, size and ETag. Idempotent. Like every
/// manifest writer it checks the file after writing: a delete that ran meanwhile had removed
/// the manifest before our write, so the write is undone — a deleted file's manifest never
/// comes back.
pub async fn sync(db: &impl Sql, kv: &impl Kv, file_id: &str) -> Result<(), Problem> {
    let Some(f) = files::find(db, file_id).await? else { return Ok(()) };
    let (Some(manifest_id), Some(etag)) = (f.manifest_id.clone(), f.etag.clone()) else { return Ok(()) };
    if f.status != AVAILABLE {
        return Ok(());
    }
    let chunks: Vec<(String, u64)> = files::received(db, &f.id).await?.into_iter().map(|(_, key, size)| (key, size)).collect();
    let (stores, replicas) = crate::replication::placement(db, f.key_file(), &chunks).await?;
    // The content never changes under a manifest id: what it inlined, it keeps.
    let published = read(kv, f.key_file(), &manifest_id).await?;
    let inline = published.as_ref().and_then(|m| m.inline.clone()).filter(|b| b.len() as u64 == f.size);
    let manifest = Manifest { id: f.key_file().to_owned(), size: f.size, etag, chunks, stores, replicas, inline };
    if published.as_ref() == Some(&manifest) {
        return Ok(());
    }
    let bytes = serde_json::to_vec(&manifest).map_err(|_| Problem::internal())?;
    let key = f.manifest_key(&manifest_id);
    kv.set(&key, &bytes).await.map_err(store_failure)?;
    if files::find(db, file_id).await?.is_none_or(|now| now.manifest_id.as_deref() != Some(&manifest_id) || now.status != AVAILABLE) {
        kv.delete(&key).await.map_err(store_failure)?;
    }
    Ok(())
}

/// Makes the key-value store hold exactly the manifests the file's rows (head and versions)
/// publish, naming the copies there are now ([`sync`] for each).
pub async fn sync_family(db: &impl Sql, kv: &impl Kv, head_id: &str) -> Result<(), Problem> {
    for row in files::family(db, head_id).await? {
        sync(db, kv, &row.id).await?;
    }
    Ok(())
}

/// The slices of `[start, end]`, each naming where to read it when the file has copies in
/// other regions: the home store first, then the copies in the manifest's order
/// (`vaultx_core::failover` skips a deactivated or broken store at read time).
pub async fn slices<P: vaultx_core::ports::Platform>(p: &P, manifest: &Manifest, start: u64, end: u64) -> Result<Vec<vaultx_core::http::BlobSlice>, Problem> {
    let mut cut = vaultx_core::chunks::slices(&manifest.chunks, start, end);
    if manifest.replicas.is_empty() {
        return Ok(cut);
    }
    let home = p.home_store().await.map_err(crate::store::store_failure)?;
    let mut sources: std::collections::HashMap<&str, Vec<(String, String)>> = std::collections::HashMap::new();
    for ((key, _), holders) in manifest.chunks.iter().zip(&manifest.replicas) {
        let from = std::iter::once(home.clone()).chain(holders.iter().filter_map(|&i| manifest.stores.get(i as usize).cloned()));
        sources.insert(key, from.collect());
    }
    for slice in &mut cut {
        slice.from = sources.get(slice.key.as_str()).cloned().unwrap_or_default();
    }
    Ok(cut)
}
