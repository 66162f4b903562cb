//! `GET /health/metrics` — the store's state as Prometheus gauges, read from the stores on
//! each scrape (`vaultx_core::metrics` says where each figure lives): files by status,
//! deduplication hits and bytes saved, compression savings, the job queue by kind and state
//! with its oldest age and failed attempts, replication lag and copies per region, regions'
//! status and each store's circuit breaker. The host appends its request families
//! (`vaultx_http_*`). Open like `/health`, unless the variable `metrics_token` is set: then
//! a scrape sends `Authorization: Bearer <metrics_token>` (Prometheus' `authorization`).
//! Always `200` while the function runs: a store that fails is `vaultx_up{store=…} 0`, and
//! the figures it would have given are left out, not zero.

use crate::outbox;
use crate::store::store_failure;
use crate::{jobs, regions};
use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};
use vaultx_core::http::{ApiRequest, ApiResponse, Body, respond};
use vaultx_core::ports::{Platform, Sql, StoreError};
use vaultx_core::problem::ProblemKind;
use vaultx_core::Problem;

pub const MAX_BODY: usize = 0;

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    req.expect_method(&["GET"])?;
    let token = p.get("metrics_token").await.map_err(store_failure)?.filter(|t| !t.is_empty());
    if let Some(token) = token {
        let sent = req.bearer_token()?;
        // Compared as digests: the time taken says nothing about the token.
        use sha2::Digest;
        if sha2::Sha256::digest(sent.as_bytes()) != sha2::Sha256::digest(token.as_bytes()) {
            return Err(Problem::new(ProblemKind::InvalidToken, "the metrics token does not match"));
        }
    }
    let gauges = Gauges::default();
    let up = gauges.vec("vaultx_up", "Whether a store answered this scrape (1) or failed (0).", &["store"]);
    let metadata = match p.metadata().await {
        Ok(db) => domain(p, &db, &gauges).await.map_err(|e| eprintln!("vaultx: metrics: {e}")).is_ok(),
        Err(e) => {
            eprintln!("vaultx: metrics: the metadata store: {e}");
            false
        }
    };
    up.with_label_values(&["metadata"]).set(metadata as i64);
    let mut response = ApiResponse::empty(200).with_header("content-type", vaultx_core::metrics::CONTENT_TYPE).with_header("cache-control", "no-store");
    response.body = Body::Bytes(vaultx_core::metrics::encode(&gauges.registry).into_bytes());
    Ok(response)
}

/// A registry of gauges made on the fly (a fresh one per scrape: these figures are read, not
/// counted).
#[derive(Default)]
struct Gauges {
    registry: Registry,
}

impl Gauges {
    fn vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        let gauge = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
        self.registry.register(Box::new(gauge.clone())).expect("distinct metric names");
        gauge
    }

    /// A gauge without labels, set to `value`.
    fn single(&self, name: &str, help: &str, value: i64) {
        let gauge = IntGauge::new(name, help).expect("valid metric");
        gauge.set(value);
        self.registry.register(Box::new(gauge)).expect("distinct metric names");
    }
}

fn int(rows: &[vaultx_core::ports::Row], row: usize, column: usize) -> Result<i64, StoreError> {
    rows.get(row).map_or(Ok(0), |r| r.int(column))
}

async fn domain<P: Platform>(p: &P, db: &impl Sql, g: &Gauges) -> Result<(), StoreError> {
    let now = p.now_ms();

    // Files (heads; versions apart) by status.
    let files = g.vec("vaultx_files", "Files (not counting versions) by status.", &["status"]);
    let file_bytes = g.vec("vaultx_file_bytes", "Declared size of files (not counting versions) by status.", &["status"]);
    for status in [crate::files::UPLOADING, crate::files::AVAILABLE, crate::files::ARCHIVED, crate::files::INVALID] {
        files.with_label_values(&[status]).set(0);
        file_bytes.with_label_values(&[status]).set(0);
    }
    for r in db.query("SELECT status, COUNT(*), COALESCE(SUM(size), 0) FROM files WHERE version_of IS NULL GROUP BY status", vec![]).await? {
        files.with_label_values(&[r.text(0)?]).set(r.int(1)?);
        file_bytes.with_label_values(&[r.text(0)?]).set(r.int(2)?);
    }
    g.single("vaultx_users", "Registered users.", int(&db.query("SELECT COUNT(*) FROM users", vec![]).await?, 0, 0)?);

    // Deduplication and compression, from the references and the stored blocks: every
    // reference beyond a block's first is a dedup hit that stored nothing; a compressed
    // block stores fewer bytes than it holds.
    let refs = db.query("SELECT COUNT(*), COUNT(DISTINCT blob_key), COALESCE(SUM(size), 0) FROM file_chunks", vec![]).await?;
    let (references, blocks, referenced) = (int(&refs, 0, 0)?, int(&refs, 0, 1)?, int(&refs, 0, 2)?);
    let unique = int(&db.query("SELECT COALESCE(SUM(s), 0) FROM (SELECT MAX(size) AS s FROM file_chunks GROUP BY blob_key) blocks", vec![]).await?, 0, 0)?;
    let stored = int(
        &db.query("SELECT COALESCE(SUM(size), 0) FROM blobs WHERE state = 'live' AND refcount > 0", vec![]).await?,
        0,
        0,
    )?;
    let single = |name: &str, help: &str, value: i64| g.single(name, help, value);
    single("vaultx_block_references", "References from files and versions to stored blocks.", references);
    single("vaultx_blocks", "Distinct blocks referenced.", blocks);
    single("vaultx_referenced_bytes", "Bytes of content files and versions reference (a shared block counts each time).", referenced);
    single("vaultx_stored_bytes", "Bytes the home blob store holds for referenced blocks (after deduplication and compression).", stored);
    single("vaultx_dedup_hits", "References served by a block that was already stored.", references - blocks);
    single("vaultx_dedup_saved_bytes", "Bytes deduplication kept from being stored again.", (referenced - unique).max(0));
    single("vaultx_compression_saved_bytes", "Bytes compression saved on the distinct blocks.", (unique - stored).max(0));

    // The job queue: depth by kind and state, the oldest unfinished job's age, failed attempts.
    let depth = g.vec("vaultx_jobs", "Jobs by kind and state (queued, running, done, dead).", &["kind", "state"]);
    let oldest = g.vec("vaultx_job_oldest_age_seconds", "Age of the oldest queued or running job, 0 when none.", &["kind"]);
    let failed = g.vec("vaultx_job_failed_attempts", "Attempts that failed, over the jobs still recorded.", &["kind"]);
    for kind in jobs::KINDS {
        for state in outbox::STATES {
            depth.with_label_values(&[kind, state]).set(0);
        }
        oldest.with_label_values(&[kind]).set(0);
        failed.with_label_values(&[kind]).set(0);
    }
    let rows = db.query("SELECT kind, state, COUNT(*), MIN(created_at), COALESCE(SUM(attempts), 0) FROM jobs GROUP BY kind, state", vec![]).await?;
    for r in &rows {
        let (kind, state, count, first, attempts) = (r.text(0)?, r.text(1)?, r.int(2)?, r.int(3)?, r.int(4)?);
        depth.with_label_values(&[kind, state]).set(count);
        // Every attempt of a queued or dead job failed; a done or running job's last did not (yet).
        let failures = if state == outbox::DONE || state == outbox::RUNNING { attempts - count } else { attempts };
        failed.with_label_values(&[kind]).add(failures.max(0));
        if state == outbox::QUEUED || state == outbox::RUNNING {
            let age = ((now - first).max(0) + 999) / 1000;
            let gauge = oldest.with_label_values(&[kind]);
            gauge.set(gauge.get().max(age));
        }
    }

    // Regions: status, copies held, replication lag (the oldest change a target still lacks),
    // and each store's breaker as the edge's readers see it.
    let active = g.vec("vaultx_region_active", "Whether a region takes new blocks (1) or is deactivated (0).", &["region"]);
    let replica_bytes = g.vec("vaultx_replica_bytes", "Bytes of block copies a region holds for replication.", &["region"]);
    let pending = g.vec("vaultx_replication_pending_files", "Replicated files a target region does not hold every block of yet.", &["region"]);
    let lag = g.vec("vaultx_replication_lag_seconds", "Time since the oldest change a target region still lacks, 0 when in sync.", &["region"]);
    let breaker = g.vec("vaultx_blob_store_breaker", "Circuit breaker of each region's blob store: 1 for its current state.", &["region", "kind", "store", "state"]);
    let home = p.home_store().await?;
    let listed = regions::list(db).await.map_err(|e| StoreError::Unavailable(e.detail))?;
    for r in &listed {
        active.with_label_values(&[&r.code]).set((r.status == regions::ACTIVE) as i64);
        replica_bytes.with_label_values(&[&r.code]).set(0);
        pending.with_label_values(&[&r.code]).set(0);
        lag.with_label_values(&[&r.code]).set(0);
    }
    let code = |id: &str| listed.iter().find(|r| r.id == id).map(|r| r.code.clone());
    for r in db.query("SELECT region_id, COALESCE(SUM(size), 0) FROM block_replicas WHERE state = 'present' GROUP BY region_id", vec![]).await? {
        if let Some(c) = code(r.text(0)?) {
            replica_bytes.with_label_values(&[&c]).set(r.int(1)?);
        }
    }
    // A target region lacks a block when no present copy of it is recorded there — unless the
    // region is the home store's, which holds every block.
    let behind = db
        .query(
            "SELECT t.region_id, COUNT(DISTINCT h.id), MIN(h.updated_at) FROM replication_targets t \
             JOIN files h ON h.id = t.file_id AND h.status = 'available' \
             JOIN files f ON f.id = h.id OR f.version_of = h.id \
             JOIN file_chunks c ON c.file_id = f.id \
             WHERE NOT EXISTS (SELECT 1 FROM block_replicas r WHERE r.blob_key = c.blob_key AND r.region_id = t.region_id AND r.state = 'present') \
             AND NOT EXISTS (SELECT 1 FROM storage_nodes n WHERE n.region_id = t.region_id AND n.kind = ? AND n.store = ?) \
             GROUP BY t.region_id",
            vec![home.0.clone().into(), home.1.clone().into()],
        )
        .await?;
    for r in &behind {
        if let Some(c) = code(r.text(0)?) {
            pending.with_label_values(&[&c]).set(r.int(1)?);
            lag.with_label_values(&[&c]).set((now - r.int(2)?).max(0) / 1000);
        }
    }
    for r in &listed {
        for n in regions::nodes(db, Some(&r.id)).await.map_err(|e| StoreError::Unavailable(e.detail))? {
            let view = regions::breaker_view(p, &n.kind, &n.store).await;
            let current = view["state"].as_str().unwrap_or("unknown");
            for state in ["closed", "open", "half-open"] {
                breaker.with_label_values(&[&r.code, &n.kind, &n.store, state]).set((state == current) as i64);
            }
        }
    }
    Ok(())
}
