//! The compression job (kind `compress`): for a file created with `compressionEnabled`, each
//! block is replaced by its DEFLATE twin (`<key>.deflate`, miniz_oxide) when that saves at
//! least `compression_min_saving` (default 10 %); blocks that do not compress (JPEG, zip,
//! random bytes: detected on a sample first) stay as they are. Downloads inflate blocks on
//! the way out (`BlobSlice::read`), one block at a time, byte-exact at any `Range`; size and
//! ETag never change. The swap is `layout::swap`: a compare-and-set like every state change.

use crate::manifests;
use crate::store::store_failure;
use crate::files::{self, AVAILABLE};
use crate::outbox::Lease;
use crate::layout::{self, Staged, Swapped};
use vaultx_core::Problem;
use vaultx_core::compression::{self, STORED_SUFFIX};
use vaultx_core::ports::{Blobs, Config, Platform};

pub const KIND: &str = crate::outbox::COMPRESS;

/// `compression_min_saving`: the fraction a block must shrink by to be stored compressed.
async fn min_saving(p: &impl Config) -> f64 {
    match p.get("compression_min_saving").await {
        Ok(Some(v)) => v.trim().parse::<f64>().ok().filter(|f| (0.0..1.0).contains(f)).unwrap_or(compression::DEFAULT_MIN_SAVING),
        _ => compression::DEFAULT_MIN_SAVING,
    }
}

pub async fn run<P: Platform>(p: &P, lease: &Lease) -> Result<(), Problem> {
    let job = &lease.job;
    let db = p.metadata().await.map_err(store_failure)?;
    let store = p.blobs().await.map_err(store_failure)?;
    let kv = p.kv().await.map_err(store_failure)?;
    let min_saving = min_saving(p).await;
    for _ in 0..crate::store::ATTEMPTS {
        let Some(f) = files::find(&db, &job.subject).await? else { return Ok(()) };
        if f.status != AVAILABLE || !f.compression_enabled {
            return Ok(());
        }
        let mut blocks = Vec::new();
        let (mut changed, mut reread) = (false, false);
        for (key, len) in layout::current(&db, &f.id).await? {
            lease.keep(&db, p.now_ms()).await?;
            if key.ends_with(STORED_SUFFIX) {
                blocks.push(Staged::kept(&key, len));
                continue;
            }
            let twin = format!("{key}{STORED_SUFFIX}");
            if layout::is_live(&db, &twin).await? {
                blocks.push(Staged::kept(&twin, len));
                changed = true;
                continue;
            }
            let Some(data) = store.get(&key).await.map_err(store_failure)? else {
                layout::discard_written(&db, &store, p.now_ms(), &blocks).await?;
                if let Some(lost) = layout::missing_block(&db, &f, &key).await? {
                    return Err(lost);
                }
                // Swept under us: the file's layout changed since we read it. Read it again.
                reread = true;
                break;
            };
            match compression::compress_block(&data, min_saving) {
                Some(packed) => {
                    blocks.push(layout::store_block(&db, &store, p.now_ms(), &job.id, &twin, len, &packed).await?);
                    changed = true;
                }
                None => blocks.push(Staged::kept(&key, len)),
            }
        }
        if reread {
            continue;
        }
        if !changed {
            // Nothing (more) to compress; a previous attempt may have died before its manifest.
            return manifests::sync(&db, &kv, &f.id).await;
        }
        let replicate_job = vaultx_core::ids::new_id(p);
        match layout::swap(&db, &store, &kv, p.now_ms(), &job.id, &f, &blocks, &replicate_job).await? {
            Swapped::Done => return layout::after_swap(p, &db, &f.id, &replicate_job).await,
            Swapped::Lost => continue,
        }
    }
    Err(crate::store::busy())
}

