//! The integrity check: every invariant the metadata, blob and manifest stores must keep
//! between them, checked against what is really stored. It is what the concurrency checker
//! asserts after a run, what the race tests assert after each race, and what an operator
//! runs (`GET /api/admin/integrity`) to audit a deployment. It reads everything, so it costs a
//! full listing of each store: an audit, not a probe.
//!
//! The invariants, for a store at rest (no request in flight):
//! - each blob's `refcount` equals the number of chunks that name it;
//! - every chunk names a `live` blob whose bytes are in the blob store;
//! - no bytes are in the blob store without a `live` row (orphans), and no `live` blob is
//!   unreferenced (a sweep that never ran) — except blocks a background job replaced less than
//!   `blobs::REPLACED_GRACE_MS` ago, kept for downloads under way (`pendingSweeps`);
//! - every `available` file's manifest is in the key-value store and names exactly its chunks;
//!   no other manifest exists (a deleted file's, or one a lost race wrote), except one whose
//!   write is still recorded (`manifest_writes`: in flight, or left by a crash and removed by
//!   the file's next completion or deletion) — unreachable, and counted as `pendingManifests`;
//! - every block copy in another region's store ([`check_replicas`]) has its bytes there,
//!   byte-identical to the home store's, and no bytes are in such a store without a copy's
//!   row; copies nothing needs any more are counted as `pendingReplicaSweeps`.

use crate::manifests;
use crate::store::store_failure;
use crate::files::{self, AVAILABLE};
use crate::regions;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use vaultx_core::Problem;
use vaultx_core::ports::{Blobs, Kv, Platform, Sql};

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub ok: bool,
    pub files: u64,
    pub available_files: u64,
    pub chunks: u64,
    pub live_blobs: u64,
    pub stored_blobs: u64,
    pub manifests: u64,
    pub pending_manifests: u64,
    pub pending_sweeps: u64,
    /// Copies of blocks in other regions' stores (`block_replicas` rows).
    pub replicas: u64,
    /// Copies nothing needs any more, which the replicate job's next sweep removes.
    pub pending_replica_sweeps: u64,
    /// One line per violation, naming the rows or keys involved.
    pub violations: Vec<String>,
}

pub async fn check(db: &impl Sql, blobs: &impl Blobs, kv: &impl Kv, now_ms: i64) -> Result<Report, Problem> {
    let mut report = Report::default();
    let rows = db.query("SELECT blob_key, refcount, state FROM blobs", vec![]).await.map_err(store_failure)?;
    let mut blob_rows: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for r in &rows {
        blob_rows.insert(r.text(0).map_err(store_failure)?.to_owned(), (r.int(1).map_err(store_failure)?, r.text(2).map_err(store_failure)?.to_owned()));
    }
    let rows = db.query("SELECT blob_key FROM replaced_blocks WHERE sweep_after >= ?", vec![now_ms.into()]).await.map_err(store_failure)?;
    let in_grace: BTreeSet<String> = rows.iter().map(|r| r.text(0).map(str::to_owned)).collect::<Result<_, _>>().map_err(store_failure)?;
    let rows = db.query("SELECT file_id, idx, blob_key FROM file_chunks ORDER BY file_id, idx", vec![]).await.map_err(store_failure)?;
    let mut references: BTreeMap<String, i64> = BTreeMap::new();
    let mut chunks_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &rows {
        let (file, key) = (r.text(0).map_err(store_failure)?.to_owned(), r.text(2).map_err(store_failure)?.to_owned());
        *references.entry(key.clone()).or_default() += 1;
        chunks_of.entry(file).or_default().push(key);
        report.chunks += 1;
    }
    let stored: BTreeSet<String> = blobs.list().await.map_err(store_failure)?.into_iter().collect();
    report.stored_blobs = stored.len() as u64;
    let v = &mut report.violations;
    for (key, (refcount, state)) in &blob_rows {
        let refs = references.get(key).copied().unwrap_or(0);
        if *refcount != refs {
            v.push(format!("blob {key}: refcount {refcount}, but {refs} chunks name it"));
        }
        if state == "live" {
            report.live_blobs += 1;
            if !stored.contains(key) {
                v.push(format!("blob {key}: live, but its bytes are not in the blob store"));
            }
            if refs == 0 && in_grace.contains(key) {
                report.pending_sweeps += 1;
            } else if refs == 0 {
                v.push(format!("blob {key}: live and unreferenced (never swept)"));
            }
        } else if refs > 0 {
            v.push(format!("blob {key}: {state}, but {refs} chunks name it"));
        }
    }
    for (key, _) in references.iter().filter(|(k, _)| !blob_rows.contains_key(*k)) {
        v.push(format!("blob {key}: named by chunks, but has no row"));
    }
    for key in stored.iter().filter(|k| blob_rows.get(*k).is_none_or(|(_, state)| state != "live")) {
        v.push(format!("blob {key}: bytes stored without a live row (orphan)"));
    }

    let rows = db.query(&format!("SELECT {} FROM files", files::COLUMNS), vec![]).await.map_err(store_failure)?;
    let mut expected_manifests = BTreeSet::new();
    for r in &rows {
        let f = files::from_row(r).map_err(store_failure)?;
        report.files += 1;
        if f.status != AVAILABLE {
            continue;
        }
        report.available_files += 1;
        let Some(manifest_id) = &f.manifest_id else {
            v.push(format!("file {}: available without a manifest id", f.id));
            continue;
        };
        expected_manifests.insert(f.manifest_key(manifest_id));
        let chunks = chunks_of.get(&f.id).cloned().unwrap_or_default();
        match manifests::read(kv, f.key_file(), manifest_id).await? {
            None => v.push(format!("file {}: available, but manifest {manifest_id} is missing", f.id)),
            Some(m) => {
                let named: Vec<String> = m.chunks.iter().map(|(k, _)| k.clone()).collect();
                if named != chunks || m.size != f.size || Some(&m.etag) != f.etag.as_ref() {
                    v.push(format!("file {}: manifest {manifest_id} does not match the file's chunks, size or ETag", f.id));
                }
            }
        }
    }
    let rows = db.query("SELECT file_id, manifest_id FROM manifest_writes", vec![]).await.map_err(store_failure)?;
    let mut recorded = BTreeSet::new();
    for r in &rows {
        recorded.insert(files::manifest_key(r.text(0).map_err(store_failure)?, r.text(1).map_err(store_failure)?));
    }
    let manifests = kv.list("manifest/").await.map_err(store_failure)?;
    report.manifests = manifests.len() as u64;
    for key in manifests.iter().filter(|k| !expected_manifests.contains(*k)) {
        if recorded.contains(key) {
            report.pending_manifests += 1;
        } else {
            v.push(format!("{key}: a manifest no available file publishes"));
        }
    }
    report.ok = report.violations.is_empty();
    Ok(report)
}

/// The replica invariants (see the module docs), added to `report`: reads every copy and its
/// home original, and lists every node store other than the home store.
pub async fn check_replicas<P: Platform>(p: &P, db: &impl Sql, home: &impl Blobs, report: &mut Report) -> Result<(), Problem> {
    let text = |r: &vaultx_core::ports::Row, i: usize| r.text(i).map(str::to_owned).map_err(store_failure);
    // Copies nothing needs any more: the sweep removes their bytes, then their rows, so one
    // caught between the two has a row and no bytes — pending, not broken.
    let unneeded = db
        .query(&format!("SELECT r.blob_key, r.region_id FROM block_replicas r WHERE r.state = 'deleting' OR {}", crate::replication::UNNEEDED), vec![])
        .await
        .map_err(store_failure)?;
    let unneeded: BTreeSet<(String, String)> = unneeded.iter().map(|r| Ok((text(r, 0)?, text(r, 1)?))).collect::<Result<_, Problem>>()?;
    report.pending_replica_sweeps = unneeded.len() as u64;
    let rows = db.query("SELECT blob_key, region_id, kind, store FROM block_replicas ORDER BY kind, store, blob_key", vec![]).await.map_err(store_failure)?;
    let mut stores = crate::replication::NodeStores::new(p);
    let mut recorded: BTreeSet<(String, String, String)> = BTreeSet::new();
    for r in &rows {
        let (key, region, kind, store) = (text(r, 0)?, text(r, 1)?, text(r, 2)?, text(r, 3)?);
        report.replicas += 1;
        let copy = stores.get(&kind, &store).await?.get(&key).await.map_err(store_failure)?;
        match (copy, home.get(&key).await.map_err(store_failure)?) {
            (None, _) if unneeded.contains(&(key.clone(), region.clone())) => {}
            (None, _) => report.violations.push(format!("replica {key} in region {region}: no bytes in store {store}")),
            (Some(copy), Some(original)) if copy != original => {
                report.violations.push(format!("replica {key} in region {region}: not byte-identical to the home store's"))
            }
            _ => {}
        }
        recorded.insert((kind, store, key));
    }
    let nodes = db.query("SELECT DISTINCT kind, store FROM storage_nodes ORDER BY kind, store", vec![]).await.map_err(store_failure)?;
    let home = regions::home(p).await?;
    for n in &nodes {
        let (kind, store) = (text(n, 0)?, text(n, 1)?);
        if home == (kind.clone(), store.clone()) {
            continue;
        }
        for key in stores.get(&kind, &store).await?.list().await.map_err(store_failure)? {
            if !recorded.contains(&(kind.clone(), store.clone(), key.clone())) {
                report.violations.push(format!("store {store}: bytes of {key} without a replica row (orphan)"));
            }
        }
    }
    report.ok = report.violations.is_empty();
    Ok(())
}
