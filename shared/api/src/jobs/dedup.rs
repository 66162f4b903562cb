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

use crate::manifests;
use crate::outbox;
use crate::store::store_failure;
use crate::files::{self, AVAILABLE, FileRecord};
use crate::jobs::compress;
use crate::outbox::Lease;
use crate::layout::{self, Staged, Swapped};
use vaultx_core::Problem;
use vaultx_core::cdc::{BLOCK_MAX, first_block};
use vaultx_core::compression::STORED_SUFFIX;
use vaultx_core::digest::sha256;
use vaultx_core::http::BlobSlice;
use vaultx_core::ports::{Blobs, Platform, Sql};

pub const KIND: &str = crate::outbox::DEDUP;

/// The content of one file, re-cut as it streams through: a buffer of at most one stored
/// block plus one maximum block, and the blocks cut so far (stored, or found stored).
struct Recut<'a, D, B> {
    db: &'a D,
    store: &'a B,
    job_id: &'a str,
    file: &'a FileRecord,
    buffer: Vec<u8>,
    start: usize,
    blocks: Vec<Staged>,
}

impl<D: Sql, B: Blobs> Recut<'_, D, B> {
    /// Takes the next stored block of the content and cuts what can be cut already.
    async fn push(&mut self, data: &[u8], now_ms: i64) -> Result<(), Problem> {
        self.buffer.drain(..self.start);
        self.start = 0;
        self.buffer.extend_from_slice(data);
        self.cut(now_ms, false).await
    }

    /// Cuts and stores the blocks of what is buffered: all of it when `last`, else every block
    /// FastCDC can already be sure of.
    async fn cut(&mut self, now_ms: i64, last: bool) -> Result<(), Problem> {
        while self.start < self.buffer.len() && (last || self.buffer.len() - self.start >= BLOCK_MAX) {
            let rest = &self.buffer[self.start..];
            let length = first_block(rest);
            let block = &rest[..length];
            let key = self.file.blob_key(&sha256(block));
            let twin = format!("{key}{STORED_SUFFIX}");
            let staged = if layout::is_live(self.db, &twin).await? {
                Staged::kept(&twin, length as u64)
            } else {
                layout::store_block(self.db, self.store, now_ms, self.job_id, &key, length as u64, block).await?
            };
            self.blocks.push(staged);
            self.start += length;
        }
        Ok(())
    }
}

/// Enqueues the compression job for the file, unless one exists, and wakes it. Run after the
/// swap (or when there was nothing to swap): a consumer that dies before it leaves the dedup
/// job unfinished, and the job's next run finds the layout cut and hands over then; so the
/// compression job is never lost, and never queued twice.
async fn hand_over<P: Platform>(p: &P, db: &impl Sql, file_id: &str) -> Result<(), Problem> {
    let id = vaultx_core::ids::new_id(p);
    let result = db
        .batch(vec![
            vaultx_core::guard!("NOT EXISTS (SELECT 1 FROM jobs WHERE kind = 'compress' AND subject = ?)", file_id),
            outbox::enqueue(&id, compress::KIND, file_id, p.now_ms()),
        ])
        .await;
    match result {
        Ok(()) => {
            outbox::wake(p, &[(compress::KIND, id.as_str())]).await;
            Ok(())
        }
        Err(vaultx_core::ports::StoreError::Conflict) => Ok(()),
        Err(e) => Err(store_failure(e)),
    }
}

pub async fn run<P: Platform>(p: &P, lease: &Lease) -> Result<(), Problem> {
    let job = &lease.job;
    let db = p.metadata().await.map_err(store_failure)?;
    let store = p.blobs().await.map_err(store_failure)?;
    let kv = p.kv().await.map_err(store_failure)?;
    'attempt: for _ in 0..crate::store::ATTEMPTS {
        let Some(f) = files::find(&db, &job.subject).await? else { return Ok(()) };
        if f.status != AVAILABLE || !f.deduplication_enabled {
            return Ok(());
        }
        let current = layout::current(&db, &f.id).await?;
        let mut recut = Recut { db: &db, store: &store, job_id: &job.id, file: &f, buffer: Vec::new(), start: 0, blocks: Vec::new() };
        for (key, len) in &current {
            lease.keep(&db, p.now_ms()).await?;
            let slice = BlobSlice::new(key.clone(), 0, *len);
            let Ok(data) = slice.read(&store).await else {
                layout::discard_written(&db, &store, p.now_ms(), &recut.blocks).await?;
                if let Some(lost) = layout::missing_block(&db, &f, key).await? {
                    return Err(lost);
                }
                // Swept under us: the layout changed since we read it. Start over.
                continue 'attempt;
            };
            recut.push(&data, p.now_ms()).await?;
        }
        recut.cut(p.now_ms(), true).await?;
        let blocks = recut.blocks;
        let unchanged = blocks.len() == current.len() && blocks.iter().zip(&current).all(|(b, (k, _))| &b.key == k);
        if unchanged {
            // Already cut (a small file is one block; or an earlier attempt swapped, then died
            // before its manifest or its handover).
            manifests::sync(&db, &kv, &f.id).await?;
        } else {
            let replicate_job = vaultx_core::ids::new_id(p);
            if layout::swap(&db, &store, &kv, p.now_ms(), &job.id, &f, &blocks, &replicate_job).await? == Swapped::Lost {
                continue;
            }
            layout::after_swap(p, &db, &f.id, &replicate_job).await?;
        }
        if f.compression_enabled {
            hand_over(p, &db, &f.id).await?;
        }
        return Ok(());
    }
    Err(crate::store::busy())
}
