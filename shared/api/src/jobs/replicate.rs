//! The replication job (kind `replicate`): brings a file's target regions in sync with its
//! blocks (crate::replication). For each active target region with an active node, every
//! block the file's rows reference that the region lacks is read from the home store,
//! written to the region's store, then recorded (only while the block is live; otherwise the
//! bytes written go again). Idempotent: a re-run copies only what is still missing. A store
//! that cannot be written fails the run, which retries with backoff (the outbox's rules) and
//! says so in the file's replication status. Its sweep also removes copies nothing needs.

use crate::manifests;
use crate::store::store_failure;
use crate::outbox::Lease;
use crate::{files, regions, replication};
use vaultx_core::Problem;
use vaultx_core::ports::Platform;
use vaultx_core::problem::ProblemKind;

pub const KIND: &str = crate::outbox::REPLICATE;

pub async fn run<P: Platform>(p: &P, lease: &Lease) -> Result<(), Problem> {
    let job = &lease.job;
    let db = p.metadata().await.map_err(store_failure)?;
    if files::find(&db, &job.subject).await?.is_none() {
        // Deleted: its copies are now unneeded.
        replication::collect(p, &db).await?;
        return Ok(());
    }
    let Some((_, targets)) = replication::policy(&db, &job.subject).await? else {
        let kv = p.kv().await.map_err(store_failure)?;
        return manifests::sync_family(&db, &kv, &job.subject).await;
    };
    let home = p.blobs().await.map_err(store_failure)?;
    let blocks = replication::blocks(&db, &job.subject).await?;
    let mut failures = Vec::new();
    // The targets this run copied to, checked once all are done.
    let mut copied = Vec::new();
    let home_store = regions::home(p).await?;
    for t in targets.iter().filter(|t| t.status == regions::ACTIVE) {
        let Some((kind, store)) = &t.store else {
            failures.push(format!("region {} has no active storage node", t.code));
            continue;
        };
        if home_store == (kind.clone(), store.clone()) {
            continue;
        }
        let dest = match p.node_blobs(kind, store).await {
            Ok(dest) => dest,
            Err(e) => {
                failures.push(format!("region {}: store {store} does not open ({e})", t.code));
                continue;
            }
        };
        let here: std::collections::HashSet<String> = replication::present(&db, &job.subject, &t.region_id).await?.into_iter().collect();
        let missing: Vec<(String, i64)> = blocks.iter().filter(|(k, _)| !here.contains(k)).cloned().collect();
        let done = replication::copy_blocks(p, &db, &home, &dest, t, &missing, async || lease.keep(&db, p.now_ms()).await).await?;
        if let Some(e) = done.write_failed {
            failures.push(format!("region {}: writing to store {store} failed ({e})", t.code));
        }
        for key in done.being_removed {
            failures.push(format!("region {}: the copy of {key} is being removed; copying it again after", t.code));
        }
        copied.push(t);
    }
    // A copy the sweep removed after we saw it (its block was unneeded a moment before a file
    // of this policy referenced it again): the run is done only when every block it read that
    // the file still references is there. (Blocks newer than its read came with a change that
    // enqueued its own run.)
    if !copied.is_empty() {
        let current: std::collections::HashSet<String> = replication::blocks(&db, &job.subject).await?.into_iter().map(|(k, _)| k).collect();
        for t in copied {
            let now_present: std::collections::HashSet<String> = replication::present(&db, &job.subject, &t.region_id).await?.into_iter().collect();
            if blocks.iter().any(|(k, _)| current.contains(k) && !now_present.contains(k)) {
                failures.push(format!("region {}: copies were removed while replicating; copying them again", t.code));
            }
        }
    }
    // The edge reads copies only through the manifests: name the ones there are now (also
    // after a partial run — what is recorded is there).
    let kv = p.kv().await.map_err(store_failure)?;
    manifests::sync_family(&db, &kv, &job.subject).await?;
    if failures.is_empty() { Ok(()) } else { Err(Problem::new(ProblemKind::Busy, failures.join("; "))) }
}
