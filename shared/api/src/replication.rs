//! Replication policies and the copies they ask for. A file's policy names target regions;
//! the `replicate` job (jobs/replicate.rs) copies every block the file's rows reference
//! (its current content and its versions) from the home store to each target region's store
//! (its oldest active node), recording each copy in `block_replicas` after its bytes are
//! there. Every change that gives a replicated file new blocks (a completed upload or
//! version, a dedup or compression re-layout, a policy change) enqueues a `replicate` job in
//! its own batch ([`enqueue_if_replicated`]), so a change is never left unreplicated. A copy
//! stays while its block is live and some file targeting its region references it; the
//! job's sweep removes the rest ([`collect`]), bytes before rows.

use crate::store::store_failure;
use crate::files::{self, AVAILABLE};
use vaultx_core::Problem;
use vaultx_core::guard;
use vaultx_core::ports::{Blobs, Platform, Row, Sql, SqlValue, Statement, StoreError};
use vaultx_core::problem::{FieldError, ProblemKind};

pub const EVENTUAL: &str = "eventual";
pub const STRONG: &str = "strong";
/// The most regions one policy may name.
pub const MAX_TARGETS: usize = 8;
/// Copies the sweep removes per run.
const COLLECT_BATCH: i64 = 256;

/// A target region of a policy, with the store that receives its copies (none while the
/// region has no active node).
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub region_id: String,
    pub code: String,
    pub status: String,
    pub store: Option<(String, String)>,
}

/// The statement that enqueues a `replicate` job for `file_id` if the file has a policy, for
/// the batch of a change that gives the file new blocks. Always a new job, even if one is
/// already queued: on PostgreSQL a batch sees the jobs table as of its start, so "one is
/// queued" may already be false when it commits (claimed, and reading the old blocks); a
/// run that finds every copy in place costs a few reads. Types are spelled out: PostgreSQL
/// cannot infer a bare `?` in a SELECT list.
pub fn enqueue_if_replicated(job_id: &str, file_id: &str, now_ms: i64) -> Statement {
    Statement {
        sql: "INSERT INTO jobs (id, kind, subject, state, attempts, lease_until, next_attempt_at, last_error, created_at, updated_at) \
              SELECT CAST(? AS TEXT), 'replicate', CAST(? AS TEXT), 'queued', 0, NULL, CAST(? AS BIGINT), NULL, CAST(? AS BIGINT), CAST(? AS BIGINT) \
              WHERE EXISTS (SELECT 1 FROM replication_policies WHERE file_id = ?)",
        params: vec![job_id.into(), file_id.into(), SqlValue::Integer(now_ms), SqlValue::Integer(now_ms), SqlValue::Integer(now_ms), file_id.into()],
    }
}

/// Whether the file has a replication policy.
pub async fn is_replicated(db: &impl Sql, file_id: &str) -> Result<bool, Problem> {
    let rows = db.query("SELECT 1 FROM replication_policies WHERE file_id = ?", vec![file_id.into()]).await.map_err(store_failure)?;
    Ok(!rows.is_empty())
}

/// The file's policy: its consistency and targets, or `None`.
pub async fn policy(db: &impl Sql, file_id: &str) -> Result<Option<(String, Vec<Target>)>, Problem> {
    let rows = db.query("SELECT consistency FROM replication_policies WHERE file_id = ?", vec![file_id.into()]).await.map_err(store_failure)?;
    let Some(consistency) = rows.first().map(|r| r.text(0).map(str::to_owned)).transpose().map_err(store_failure)? else {
        return Ok(None);
    };
    let rows = db
        .query(
            "SELECT r.id, r.code, r.status, n.kind, n.store FROM replication_targets t JOIN regions r ON r.id = t.region_id \
             LEFT JOIN storage_nodes n ON n.id = (SELECT m.id FROM storage_nodes m WHERE m.region_id = r.id AND m.status = 'active' ORDER BY m.created_at, m.id LIMIT 1) \
             WHERE t.file_id = ? ORDER BY r.code",
            vec![file_id.into()],
        )
        .await
        .map_err(store_failure)?;
    let targets = rows.iter().map(target).collect::<Result<_, _>>().map_err(store_failure)?;
    Ok(Some((consistency, targets)))
}

fn target(r: &Row) -> Result<Target, StoreError> {
    let store = match (&r.0[3], &r.0[4]) {
        (SqlValue::Text(kind), SqlValue::Text(store)) => Some((kind.clone(), store.clone())),
        _ => None,
    };
    Ok(Target { region_id: r.text(0)?.to_owned(), code: r.text(1)?.to_owned(), status: r.text(2)?.to_owned(), store })
}

/// Sets the caller's file's policy (replacing any): `targets` are region codes or ids, each
/// active with an active node; `strong` copies every block to every target first. Enqueues a
/// `replicate` job in the same batch.
pub async fn set_policy<P: Platform>(p: &P, db: &impl Sql, owner_id: &str, file_id: &str, targets: &[String], consistency: &str) -> Result<(String, Vec<Target>), Problem> {
    let f = files::find_head(db, owner_id, file_id).await?;
    let mut problems = Vec::new();
    // Each chosen region with its oldest active node (the one that receives copies).
    let mut chosen: Vec<(crate::regions::Region, crate::regions::Node)> = Vec::new();
    if targets.is_empty() || targets.len() > MAX_TARGETS {
        problems.push(format!("name 1 to {MAX_TARGETS} regions"));
    }
    for t in targets {
        let r = match crate::regions::find(db, t).await {
            Ok(r) => r,
            Err(e) if e.status() == 404 => {
                problems.push(format!("no region {t:?}"));
                continue;
            }
            Err(e) => return Err(e),
        };
        if r.status != crate::regions::ACTIVE {
            problems.push(format!("region {} is {}", r.code, r.status));
            continue;
        }
        match crate::regions::nodes(db, Some(&r.id)).await?.into_iter().find(|n| n.status == crate::regions::ACTIVE) {
            None => problems.push(format!("region {} has no active storage node", r.code)),
            Some(_) if chosen.iter().any(|(c, _)| c.id == r.id) => problems.push(format!("region {} is named twice", r.code)),
            Some(node) => chosen.push((r, node)),
        }
    }
    let mut errors = Vec::new();
    if !problems.is_empty() {
        errors.push(FieldError { field: "targetRegions".into(), message: problems.join("; ") });
    }
    match consistency {
        EVENTUAL => {}
        STRONG => {}
        _ => errors.push(FieldError { field: "consistency".into(), message: "eventual or strong".into() }),
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    if consistency == STRONG {
        // Strong from the moment it is accepted: every block the file has is in every target
        // before the policy exists (503, and no policy, if a target cannot take them).
        let strong_targets: Vec<Target> = chosen
            .iter()
            .map(|(r, n)| Target { region_id: r.id.clone(), code: r.code.clone(), status: r.status.clone(), store: Some((n.kind.clone(), n.store.clone())) })
            .collect();
        copy_now(p, db, &f.id, &strong_targets, &blocks(db, &f.id).await?).await?;
    }
    let now = p.now_ms();
    let mut statements = vec![
        guard!("EXISTS (SELECT 1 FROM files WHERE id = ? AND owner_id = ? AND version_of IS NULL)", &f.id, owner_id),
        Statement {
            sql: "INSERT INTO replication_policies (file_id, consistency, created_at, updated_at) VALUES (?, ?, ?, ?) \
                  ON CONFLICT (file_id) DO UPDATE SET consistency = excluded.consistency, updated_at = excluded.updated_at",
            params: vec![f.id.clone().into(), consistency.into(), SqlValue::Integer(now), SqlValue::Integer(now)],
        },
        Statement { sql: "DELETE FROM replication_targets WHERE file_id = ?", params: vec![f.id.clone().into()] },
    ];
    for (r, _) in &chosen {
        statements.push(guard!("EXISTS (SELECT 1 FROM regions WHERE id = ? AND status = 'active')", &r.id));
        statements.push(Statement { sql: "INSERT INTO replication_targets (file_id, region_id) VALUES (?, ?)", params: vec![f.id.clone().into(), r.id.clone().into()] });
    }
    let job = vaultx_core::ids::new_id(p);
    statements.push(enqueue_if_replicated(&job, &f.id, now));
    match db.batch(statements).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            return Err(Problem::new(ProblemKind::Conflict, format!("file {file_id} or one of its target regions changed meanwhile; send the policy again")));
        }
        Err(e) => return Err(store_failure(e)),
    }
    crate::outbox::wake(p, &[(crate::outbox::REPLICATE, job.as_str())]).await;
    policy(db, &f.id).await?.ok_or_else(|| Problem::not_found(format!("no file {file_id}")))
}

/// The statements that give a new file the deployment's default policy, for its creating
/// batch: `replication_default_regions` (region codes, comma-separated; empty: none) with
/// `replication_default_consistency` (`eventual` unless `strong`). Regions that are unknown or
/// deactivated when the file is created are left out: a default never stops an upload.
pub async fn default_policy<P: Platform>(p: &P, file_id: &str, now_ms: i64) -> Result<Vec<Statement>, Problem> {
    let regions = p.get(DEFAULT_REGIONS).await.map_err(store_failure)?.unwrap_or_default();
    let codes: Vec<&str> = regions.split(',').map(str::trim).filter(|c| !c.is_empty()).take(MAX_TARGETS).collect();
    if codes.is_empty() {
        return Ok(Vec::new());
    }
    let consistency = match p.get(DEFAULT_CONSISTENCY).await.map_err(store_failure)?.as_deref().map(str::trim) {
        Some(STRONG) => STRONG,
        _ => EVENTUAL,
    };
    let mut statements = vec![Statement {
        sql: "INSERT INTO replication_policies (file_id, consistency, created_at, updated_at) VALUES (?, ?, ?, ?)",
        params: vec![file_id.into(), consistency.into(), SqlValue::Integer(now_ms), SqlValue::Integer(now_ms)],
    }];
    for code in codes {
        statements.push(Statement {
            sql: "INSERT INTO replication_targets (file_id, region_id) SELECT CAST(? AS TEXT), r.id FROM regions r WHERE r.code = ? AND r.status = 'active' \
                  ON CONFLICT (file_id, region_id) DO NOTHING",
            params: vec![file_id.into(), code.into()],
        });
    }
    Ok(statements)
}

/// The variables of the default policy ([`default_policy`]).
pub const DEFAULT_REGIONS: &str = "replication_default_regions";
pub const DEFAULT_CONSISTENCY: &str = "replication_default_consistency";

/// Every distinct block the file's rows (its head and its versions) reference, with its
/// stored size: what a replica region must hold.
pub async fn blocks(db: &impl Sql, head_id: &str) -> Result<Vec<(String, i64)>, Problem> {
    let rows = db
        .query(
            "SELECT c.blob_key, MAX(c.size) FROM file_chunks c JOIN files f ON f.id = c.file_id \
             WHERE f.id = ? OR f.version_of = ? GROUP BY c.blob_key ORDER BY c.blob_key",
            vec![head_id.into(), head_id.into()],
        )
        .await
        .map_err(store_failure)?;
    rows.iter().map(|r| Ok((r.text(0)?.to_owned(), r.int(1)?))).collect::<Result<_, StoreError>>().map_err(store_failure)
}

/// The blocks of `blocks` with a copy in `region_id`.
pub async fn present(db: &impl Sql, head_id: &str, region_id: &str) -> Result<Vec<String>, Problem> {
    let rows = db
        .query(
            "SELECT DISTINCT r.blob_key FROM block_replicas r JOIN file_chunks c ON c.blob_key = r.blob_key JOIN files f ON f.id = c.file_id \
             WHERE r.region_id = ? AND r.state = 'present' AND (f.id = ? OR f.version_of = ?)",
            vec![region_id.into(), head_id.into(), head_id.into()],
        )
        .await
        .map_err(store_failure)?;
    rows.iter().map(|r| r.text(0).map(str::to_owned)).collect::<Result<_, _>>().map_err(store_failure)
}

fn unavailable(message: String) -> Problem {
    let mut p = Problem::new(ProblemKind::ReplicaUnavailable, message);
    p.headers.push(("retry-after", "1".into()));
    p
}

/// For a file whose policy is `strong`: makes every active target region hold each of
/// `blocks` (copied from the home store, recorded after the bytes are there) before the
/// caller acknowledges anything. A region that cannot take them — its store failing, its
/// circuit breaker open, no active node — is `503 replica-unavailable`: the caller answers
/// that and publishes nothing, and what was copied stays recorded (a retry copies the rest).
/// Eventual or no policy: nothing to do here (the `replicate` job does it). Returns how many
/// copies it made (0: every target already held every block).
pub async fn ensure_strong<P: Platform>(p: &P, db: &impl Sql, head_id: &str, blocks: &[(String, i64)]) -> Result<usize, Problem> {
    let Some((consistency, targets)) = policy(db, head_id).await? else { return Ok(0) };
    if consistency != STRONG {
        return Ok(0);
    }
    copy_now(p, db, head_id, &targets, blocks).await
}

/// Copies `blocks` to every active region of `targets` now (see [`ensure_strong`]); how many
/// copies it recorded.
async fn copy_now<P: Platform>(p: &P, db: &impl Sql, head_id: &str, targets: &[Target], blocks: &[(String, i64)]) -> Result<usize, Problem> {
    let mut recorded = 0;
    if blocks.is_empty() {
        return Ok(recorded);
    }
    let home = crate::regions::home(p).await?;
    let mut home_blobs = None;
    let kv = p.kv().await.map_err(store_failure)?;
    let settings = vaultx_core::breaker::settings(p).await;
    for t in targets.iter().filter(|t| t.status == crate::regions::ACTIVE) {
        let Some((kind, store)) = &t.store else {
            return Err(unavailable(format!("region {} has no active storage node", t.code)));
        };
        if (kind.clone(), store.clone()) == home {
            continue;
        }
        let here: std::collections::HashSet<String> = present(db, head_id, &t.region_id).await?.into_iter().collect();
        let missing: Vec<(String, i64)> = blocks.iter().filter(|(k, _)| !here.contains(k)).cloned().collect();
        if missing.is_empty() {
            continue;
        }
        let breaker = vaultx_core::breaker::read(&kv, kind, store, p.now_ms(), settings).await.map_err(store_failure)?;
        if !breaker.allows() {
            return Err(unavailable(format!("region {}: its store's circuit breaker is open after {} failures; try again later", t.code, breaker.failures)));
        }
        let kv = &kv;
        let failed = |e: StoreError| async move {
            let _ = vaultx_core::breaker::failed(kv, kind, store, p.now_ms(), settings).await;
            unavailable(format!("region {}: its store cannot be written ({e}); nothing was acknowledged, send it again", t.code))
        };
        let dest = match p.node_blobs(kind, store).await {
            Ok(dest) => dest,
            Err(e) => return Err(failed(e).await),
        };
        if home_blobs.is_none() {
            home_blobs = Some(p.blobs().await.map_err(store_failure)?);
        }
        let source = home_blobs.as_ref().expect("opened above");
        let copied = copy_blocks(p, db, source, &dest, t, &missing, async || Ok(())).await?;
        if let Some(e) = copied.write_failed {
            return Err(failed(e).await);
        }
        if !copied.being_removed.is_empty() {
            return Err(crate::store::busy());
        }
        recorded += copied.recorded;
        let _ = vaultx_core::breaker::succeeded(kv, kind, store, &breaker).await;
    }
    Ok(recorded)
}

/// What [`copy_blocks`] did for one target region.
#[derive(Debug, Default)]
pub struct Copied {
    /// Copies recorded (now present in the region).
    pub recorded: usize,
    /// The target's store refused a write: copying stopped there.
    pub write_failed: Option<StoreError>,
    /// Blocks whose copy the sweep was removing (to copy again once it is done).
    pub being_removed: Vec<String>,
}

/// Copies each of `missing` from the home store to the target's store and records it
/// ([`record`]): the bytes first, the row only while the block is live (else the bytes go
/// again). A block gone from the home store was replaced meanwhile (its own change copies
/// the new one) and is skipped. `before_each` runs before every block (a job renews its
/// lease there). Shared by the `replicate` job and strong writes.
pub async fn copy_blocks<P: Platform>(
    p: &P,
    db: &impl Sql,
    home: &impl Blobs,
    dest: &impl Blobs,
    t: &Target,
    missing: &[(String, i64)],
    mut before_each: impl AsyncFnMut() -> Result<(), Problem>,
) -> Result<Copied, Problem> {
    let mut copied = Copied::default();
    let Some((kind, store)) = &t.store else { return Ok(copied) };
    for (key, size) in missing {
        before_each().await?;
        let Some(bytes) = home.get(key).await.map_err(store_failure)? else { continue };
        if let Err(e) = dest.put(key, &bytes).await {
            copied.write_failed = Some(e);
            break;
        }
        match record(db, p.now_ms(), key, *size, t, kind, store).await? {
            Recorded::Yes => copied.recorded += 1,
            Recorded::BlockGone => {
                let _ = dest.delete(key).await;
            }
            Recorded::BeingRemoved => copied.being_removed.push(key.clone()),
        }
    }
    Ok(copied)
}

/// The guard a strongly replicated file's publication carries: every chunk of row `row_id`
/// has a present copy in every active target region of the head's strong policy, except the
/// home store's region (which holds them all).
pub fn strong_copies_present(row_id: &str, head_id: &str, home: &(String, String)) -> Statement {
    guard!(
        "NOT EXISTS (SELECT 1 FROM replication_policies pol \
         JOIN replication_targets t ON t.file_id = pol.file_id \
         JOIN regions g ON g.id = t.region_id AND g.status = 'active' \
         JOIN file_chunks c ON c.file_id = ? \
         WHERE pol.file_id = ? AND pol.consistency = 'strong' \
           AND NOT EXISTS (SELECT 1 FROM storage_nodes n WHERE n.region_id = t.region_id AND n.kind = ? AND n.store = ?) \
           AND NOT EXISTS (SELECT 1 FROM block_replicas r WHERE r.blob_key = c.blob_key AND r.region_id = t.region_id AND r.state = 'present'))",
        row_id,
        head_id,
        &home.0,
        &home.1,
    )
}

/// Where the copies of a manifest's chunks are, for the edge: the stores of the file's target
/// regions holding a present copy of some chunk (in region-code order: the order a reader
/// tries them), and per chunk the indexes of those holding it. Both empty without copies.
pub async fn placement(db: &impl Sql, head_id: &str, chunks: &[(String, u64)]) -> Result<(Vec<(String, String)>, Vec<Vec<u16>>), Problem> {
    let rows = db
        .query(
            "SELECT r.blob_key, r.kind, r.store FROM block_replicas r JOIN replication_targets t ON t.region_id = r.region_id AND t.file_id = ? \
             JOIN regions g ON g.id = r.region_id \
             WHERE r.state = 'present' AND r.blob_key IN (SELECT c.blob_key FROM file_chunks c JOIN files f ON f.id = c.file_id WHERE f.id = ? OR f.version_of = ?) \
             ORDER BY g.code, r.blob_key",
            vec![head_id.into(), head_id.into(), head_id.into()],
        )
        .await
        .map_err(store_failure)?;
    let mut stores: Vec<(String, String)> = Vec::new();
    let mut holders: std::collections::HashMap<String, Vec<u16>> = std::collections::HashMap::new();
    for r in &rows {
        let (key, kind, store) = (r.text(0), r.text(1), r.text(2));
        let (Ok(key), Ok(kind), Ok(store)) = (key, kind, store) else { return Err(Problem::internal()) };
        let at = match stores.iter().position(|(k, s)| k == kind && s == store) {
            Some(at) => at,
            None => {
                stores.push((kind.to_owned(), store.to_owned()));
                stores.len() - 1
            }
        };
        holders.entry(key.to_owned()).or_default().push(at as u16);
    }
    if holders.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let replicas = chunks.iter().map(|(key, _)| holders.get(key).cloned().unwrap_or_default()).collect();
    Ok((stores, replicas))
}

/// What [`record`] did with a copy whose bytes were just written.
#[derive(Debug, PartialEq)]
pub enum Recorded {
    /// The copy is recorded (now, or already).
    Yes,
    /// The block is no longer live: the bytes written must go again.
    BlockGone,
    /// The sweep is removing this copy: try again once it is done (the bytes are its to remove).
    BeingRemoved,
}

/// Records a copy whose bytes are in the target store, only while the block is live and the
/// sweep is not removing a copy of it there.
pub async fn record(db: &impl Sql, now_ms: i64, key: &str, size: i64, t: &Target, kind: &str, store: &str) -> Result<Recorded, Problem> {
    let outcome = db
        .batch(vec![
            guard!("EXISTS (SELECT 1 FROM blobs WHERE blob_key = ? AND state = 'live')", key),
            guard!("NOT EXISTS (SELECT 1 FROM block_replicas WHERE blob_key = ? AND region_id = ? AND state = 'deleting')", key, &t.region_id),
            Statement {
                sql: "INSERT INTO block_replicas (blob_key, region_id, kind, store, size, state, created_at) VALUES (?, ?, ?, ?, ?, 'present', ?) \
                      ON CONFLICT (blob_key, region_id) DO NOTHING",
                params: vec![key.into(), t.region_id.clone().into(), kind.into(), store.into(), SqlValue::Integer(size), SqlValue::Integer(now_ms)],
            },
        ])
        .await;
    match outcome {
        Ok(()) => Ok(Recorded::Yes),
        Err(StoreError::Conflict) => {
            let rows = db
                .query("SELECT 1 FROM block_replicas WHERE blob_key = ? AND region_id = ? AND state = 'deleting'", vec![key.into(), t.region_id.clone().into()])
                .await
                .map_err(store_failure)?;
            Ok(if rows.is_empty() { Recorded::BlockGone } else { Recorded::BeingRemoved })
        }
        Err(e) => Err(store_failure(e)),
    }
}

/// The condition under which the copy of `r.blob_key` in `r.region_id` is needed by nobody:
/// its block is not live, or no file targeting its region references it.
pub const UNNEEDED: &str = "(NOT EXISTS (SELECT 1 FROM blobs b WHERE b.blob_key = r.blob_key AND b.state = 'live') \
     OR NOT EXISTS (SELECT 1 FROM file_chunks c JOIN files f ON f.id = c.file_id \
                    JOIN replication_targets t ON t.file_id = COALESCE(f.version_of, f.id) \
                    WHERE c.blob_key = r.blob_key AND t.region_id = r.region_id))";

/// Removes copies nothing needs any more (see [`UNNEEDED`]) in three steps: the row becomes
/// `deleting` only while the copy is still unneeded (from then on no job records it again),
/// then the bytes go, then the row. A crash between leaves a `deleting` row, which the next
/// sweep finishes whatever the need by then (the job copies again afterwards). Up to a batch
/// per run.
pub async fn collect<P: Platform>(p: &P, db: &impl Sql) -> Result<usize, Problem> {
    let rows = db
        .query(
            &format!("SELECT r.blob_key, r.region_id, r.kind, r.store FROM block_replicas r WHERE r.state = 'deleting' OR {UNNEEDED} LIMIT ?"),
            vec![SqlValue::Integer(COLLECT_BATCH)],
        )
        .await
        .map_err(store_failure)?;
    let mut stores = NodeStores::new(p);
    let mut removed = 0;
    for r in &rows {
        let (key, region, kind, store) = (r.text(0), r.text(1), r.text(2), r.text(3));
        let (Ok(key), Ok(region), Ok(kind), Ok(store)) = (key, region, kind, store) else { continue };
        let claimed = db
            .execute(
                &format!("UPDATE block_replicas AS r SET state = 'deleting' WHERE r.blob_key = ? AND r.region_id = ? AND (r.state = 'deleting' OR {UNNEEDED})"),
                vec![key.into(), region.into()],
            )
            .await
            .map_err(store_failure)?;
        if claimed == 0 {
            // Needed again since we looked.
            continue;
        }
        stores.get(kind, store).await?.delete(key).await.map_err(store_failure)?;
        db.execute("DELETE FROM block_replicas WHERE blob_key = ? AND region_id = ? AND state = 'deleting'", vec![key.into(), region.into()])
            .await
            .map_err(store_failure)?;
        removed += 1;
    }
    Ok(removed)
}

/// Replication outlives an outage: a `replicate` job that died (its target region's store
/// down through every attempt) is queued again for one more attempt once per breaker reset
/// timeout (`circuit_breaker_reset_timeout`) while its file still has a policy, so an eventual
/// file catches up by itself once the store is back. The dead state stays visible to admins
/// between tries; attempts keep counting (they are the claims' fencing tokens).
pub async fn revive<P: Platform>(p: &P, db: &impl Sql) -> Result<u64, Problem> {
    let settings = vaultx_core::breaker::settings(p).await;
    let now = p.now_ms();
    db.execute(
        "UPDATE jobs SET state = 'queued', next_attempt_at = ?, updated_at = ? \
         WHERE kind = 'replicate' AND state = 'dead' AND updated_at < ? \
           AND EXISTS (SELECT 1 FROM replication_policies pol WHERE pol.file_id = jobs.subject)",
        vec![SqlValue::Integer(now), SqlValue::Integer(now), SqlValue::Integer(now - settings.reset_ms)],
    )
    .await
    .map_err(store_failure)
}

/// The node stores a pass over many copies reads, each opened once however many copies
/// name it (opening a store is a host call, and on Spin a probe read).
pub struct NodeStores<'a, P: Platform> {
    p: &'a P,
    open: std::collections::HashMap<(String, String), P::Blobs>,
}

impl<'a, P: Platform> NodeStores<'a, P> {
    pub fn new(p: &'a P) -> Self {
        Self { p, open: std::collections::HashMap::new() }
    }

    pub async fn get(&mut self, kind: &str, store: &str) -> Result<&P::Blobs, Problem> {
        let key = (kind.to_owned(), store.to_owned());
        if !self.open.contains_key(&key) {
            let blobs = self.p.node_blobs(kind, store).await.map_err(store_failure)?;
            self.open.insert(key.clone(), blobs);
        }
        Ok(&self.open[&key])
    }
}

/// A file's replication, per target region: `state` (`in-sync`: every block it references is
/// there; else `replicating` while a `replicate` job runs, `failed` when the last one is
/// dead, `pending` otherwise), `bytesPresent` of `bytesTotal`, and `lagMs` (0 in sync, else
/// the time since the file last changed).
pub async fn status<P: Platform>(p: &P, db: &impl Sql, owner_id: &str, file_id: &str) -> Result<serde_json::Value, Problem> {
    let f = files::find_head(db, owner_id, file_id).await?;
    let Some((consistency, targets)) = policy(db, &f.id).await? else {
        return Ok(serde_json::json!({ "fileId": f.id, "policy": null, "regions": [] }));
    };
    let blocks = blocks(db, &f.id).await?;
    let total: i64 = blocks.iter().map(|(_, s)| s).sum();
    let jobs = db
        .query(
            "SELECT state FROM jobs WHERE kind = 'replicate' AND subject = ? ORDER BY updated_at DESC, id LIMIT 1",
            vec![f.id.clone().into()],
        )
        .await
        .map_err(store_failure)?;
    let last_job = jobs.first().map(|r| r.text(0).map(str::to_owned)).transpose().map_err(store_failure)?;
    let mut regions = Vec::new();
    let home = crate::regions::home(p).await?;
    for t in &targets {
        let here: std::collections::HashSet<String> = if t.store.as_ref() == Some(&home) {
            // The home store's region holds every block already.
            blocks.iter().map(|(k, _)| k.clone()).collect()
        } else {
            present(db, &f.id, &t.region_id).await?.into_iter().collect()
        };
        let bytes_present: i64 = blocks.iter().filter(|(k, _)| here.contains(k)).map(|(_, s)| s).sum();
        let in_sync = f.status == AVAILABLE && blocks.iter().all(|(k, _)| here.contains(k));
        let state = match (in_sync, last_job.as_deref()) {
            (true, _) => "in-sync",
            (false, Some("running")) => "replicating",
            (false, Some("dead")) => "failed",
            _ => "pending",
        };
        regions.push(serde_json::json!({
            "region": t.code,
            "regionStatus": t.status,
            "state": state,
            "bytesPresent": bytes_present,
            "bytesTotal": total,
            "lagMs": if in_sync { 0 } else { (p.now_ms() - f.updated_at_ms).max(0) },
        }));
    }
    Ok(serde_json::json!({ "fileId": f.id, "policy": { "consistency": consistency, "targetRegions": targets.iter().map(|t| &t.code).collect::<Vec<_>>() }, "regions": regions }))
}
