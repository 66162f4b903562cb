//! The content-defined deduplication job (kind `dedup`): for a file created with
//! `deduplicationEnabled`, the content is re-cut with FastCDC (`vaultx_core::cdc`: 32 / 128 /
//! 512 KiB) into content-addressed blocks, keyed like chunks (`u.<owner>.<sha-256>`, so the
//! owner's other files and versions share them), and the layout is swapped to them
//! (`layout::swap`, a compare-and-set): the upload's 5 MiB chunk blobs are released, and an
//! edited or shifted copy stores only the blocks its edit touched. A block already stored —
//! plain or compressed by the compression job (`<key>.deflate`) — is referenced, not written.
//! When the file also has `compressionEnabled`, the swap enqueues the compression job.
//!
//! Memory: the content streams through one buffer of at most one stored chunk plus one
//! maximum block; a cut is made only once `BLOCK_MAX` bytes past it are known (or at the end),
//! so the blocks are exactly those FastCDC finds on the whole content at once.

use crate::accounts::store_failure;
use crate::files::{self, AVAILABLE, FileRecord};
use crate::jobs::{self, Job, compress};
use crate::layout::{self, Staged, Swapped};
use vaultx_core::Problem;
use vaultx_core::cdc::{BLOCK_MAX, first_block};
use vaultx_core::compression::STORED_SUFFIX;
use vaultx_core::digest::sha256;
use vaultx_core::http::BlobSlice;
use vaultx_core::ports::{Blobs, Platform, Sql};

pub const KIND: &str = "dedup";

/// Cuts and stores the blocks of `buffer[*start..]`: all of it when `last`, else every block
/// FastCDC can already be sure of.
async fn cut(
    db: &impl Sql,
    store: &impl Blobs,
    now_ms: i64,
    job_id: &str,
    f: &FileRecord,
    buffer: &[u8],
    start: &mut usize,
    last: bool,
    blocks: &mut Vec<Staged>,
) -> Result<(), Problem> {
    while *start < buffer.len() && (last || buffer.len() - *start >= BLOCK_MAX) {
        let rest = &buffer[*start..];
        let length = first_block(rest);
        let block = &rest[..length];
        let key = f.blob_key(&sha256(block));
        let twin = format!("{key}{STORED_SUFFIX}");
        blocks.push(if layout::is_live(db, &twin).await? {
            compress::kept(db, &twin, length as u64).await?
        } else {
            layout::store_block(db, store, now_ms, job_id, &key, length as u64, block).await?
        });
        *start += length;
    }
    Ok(())
}

/// Enqueues the compression job for a file whose layout this job left as it was, unless one
/// exists (a re-run must not queue it twice), and wakes it.
async fn hand_over<P: Platform>(p: &P, db: &impl Sql, file_id: &str) -> Result<(), Problem> {
    let id = vaultx_core::ids::new_id(p);
    let result = db
        .batch(vec![
            vaultx_core::guard!("NOT EXISTS (SELECT 1 FROM jobs WHERE kind = 'compress' AND subject = ?)", file_id),
            jobs::enqueue(&id, compress::KIND, file_id, p.now_ms()),
        ])
        .await;
    match result {
        Ok(()) => {
            jobs::wake(p, &[(compress::KIND, id.as_str())]).await;
            Ok(())
        }
        Err(vaultx_core::ports::StoreError::Conflict) => Ok(()),
        Err(e) => Err(store_failure(e)),
    }
}

pub async fn run<P: Platform>(p: &P, job: &Job) -> Result<(), Problem> {
    let db = p.metadata().await.map_err(store_failure)?;
    let store = p.blobs().await.map_err(store_failure)?;
    let kv = p.kv().await.map_err(store_failure)?;
    let lease = jobs::Lease::of(p, job).await;
    'attempt: for _ in 0..crate::blobs::ATTEMPTS {
        let Some(f) = files::find(&db, &job.subject).await? else { return Ok(()) };
        if f.status != AVAILABLE || !f.deduplication_enabled {
            return Ok(());
        }
        let current = layout::current(&db, &f.id).await?;
        let mut blocks: Vec<Staged> = Vec::new();
        let (mut buffer, mut start) = (Vec::new(), 0);
        for (key, len) in &current {
            lease.keep(&db, p.now_ms()).await?;
            let slice = BlobSlice { key: key.clone(), start: 0, end: *len };
            let Ok(data) = slice.read(&store).await else {
                layout::discard_written(&db, &store, p.now_ms(), &blocks).await?;
                if let Some(lost) = layout::missing_block(&db, &f, key).await? {
                    return Err(lost);
                }
                // Swept under us: the layout changed since we read it. Start over.
                continue 'attempt;
            };
            buffer.drain(..start);
            start = 0;
            buffer.extend_from_slice(&data);
            cut(&db, &store, p.now_ms(), &job.id, &f, &buffer, &mut start, false, &mut blocks).await?;
        }
        cut(&db, &store, p.now_ms(), &job.id, &f, &buffer, &mut start, true, &mut blocks).await?;
        let unchanged = blocks.len() == current.len() && blocks.iter().zip(&current).all(|(b, (k, _))| &b.key == k);
        if unchanged {
            // Already cut (a small file is one block; or an earlier attempt swapped, then died
            // before its manifest or before waking the compression job).
            layout::sync_manifest(&db, &kv, &f.id).await?;
            if f.compression_enabled {
                hand_over(p, &db, &f.id).await?;
            }
            return Ok(());
        }
        let mut follow_up = Vec::new();
        let mut woken = Vec::new();
        if f.compression_enabled {
            let id = vaultx_core::ids::new_id(p);
            follow_up.push(jobs::enqueue(&id, compress::KIND, &f.id, p.now_ms()));
            woken.push(id);
        }
        match layout::swap(&db, &store, &kv, p.now_ms(), &job.id, &f, &blocks, follow_up).await? {
            Swapped::Done => {
                let woken: Vec<(&str, &str)> = woken.iter().map(|id| (compress::KIND, id.as_str())).collect();
                jobs::wake(p, &woken).await;
                return Ok(());
            }
            Swapped::Lost => continue,
        }
    }
    Err(crate::blobs::busy())
}
