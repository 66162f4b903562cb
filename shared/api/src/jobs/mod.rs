//! The job kinds (one module each, bound by `functions/job-<kind>` on Spin and by the
//! Worker's queue consumer) and the consumer that runs them ([`consume`]): a message names a
//! job (a wake-up), asks for a sweep, or asks to drain the audit spool. The rows, claims and
//! leases are the outbox's (`crate::outbox`), below every module that enqueues.

pub mod compress;
pub mod dedup;
pub mod replicate;
pub mod verify;

use crate::outbox::{self, Lease, MAX_ATTEMPTS, SWEEP, Tuning, claim, due, fail, succeed};
use crate::store::store_failure;
use vaultx_core::Problem;
use vaultx_core::ports::Platform;

pub use crate::outbox::KINDS;

/// Runs one message for the consumer of `kind` ([`consume`] with that kind's `run`).
pub async fn dispatch<P: Platform>(p: &P, kind: &str, message: &[u8]) -> Result<(), Problem> {
    match kind {
        outbox::VERIFY => consume(p, kind, message, verify::run).await,
        outbox::DEDUP => consume(p, kind, message, dedup::run).await,
        outbox::COMPRESS => consume(p, kind, message, compress::run).await,
        outbox::REPLICATE => consume(p, kind, message, replicate::run).await,
        _ => Err(Problem::not_found(format!("no job kind {kind}"))),
    }
}

/// The kind whose sweep also moves the download path's spooled audit events into SQL
/// (`audit::drain`; one kind, so one consumer per sweep does it). The adapters know it by
/// the same name (`vaultx_core::ports::AUDIT_DRAINER`; a unit test ties the two).
pub const AUDIT_DRAINER: &str = verify::KIND;

/// The message that asks [`AUDIT_DRAINER`]'s consumer to move the audit spool into SQL now:
/// the download's wake-up (at most one a second per instance, `vaultx_spin`'s spool).
pub const AUDIT: &[u8] = vaultx_core::ports::AUDIT_MESSAGE;

#[cfg(test)]
#[test]
fn the_adapters_wake_the_kind_that_drains_the_audit_spool() {
    assert_eq!(vaultx_core::ports::AUDIT_DRAINER, AUDIT_DRAINER);
}
/// What a consumer does with one message: the message names a job (a wake-up), or is
/// [`SWEEP`] (run what is due). Each job is claimed first — within `job_concurrency` running
/// jobs of its kind — run, and settled; each run is one log line.
pub async fn consume<P, F>(p: &P, kind: &str, message: &[u8], run: F) -> Result<(), Problem>
where
    P: Platform,
    F: AsyncFn(&P, &Lease) -> Result<(), Problem>,
{
    if message == AUDIT {
        crate::audit::drain(p).await?;
        return Ok(());
    }
    let db = p.metadata().await.map_err(store_failure)?;
    let tuning = Tuning::from_config(p).await;
    let ids = if message == SWEEP {
        crate::blobs::collect_garbage(&db, &p.blobs().await.map_err(store_failure)?, p.now_ms()).await?;
        if kind == AUDIT_DRAINER {
            crate::audit::drain(p).await?;
            crate::lifecycle::finish_stalled(p, &db).await?;
            crate::multipart::abort_stale(p, &db).await?;
        }
        if kind == replicate::KIND {
            crate::replication::collect(p, &db).await?;
            crate::replication::revive(p, &db).await?;
        }
        due(&db, kind, p.now_ms(), tuning.concurrency as u32).await?
    } else {
        match std::str::from_utf8(message) {
            Ok(id) if vaultx_core::ids::is_id(id) => vec![id.to_owned()],
            _ => return Err(Problem::new(vaultx_core::problem::ProblemKind::BadRequest, "a job message is a job id, \"sweep\" or \"audit\"")),
        }
    };
    let runs = ids.iter().map(|id| drain(p, &db, kind, id, &tuning, &run));
    let outcomes = futures_util::future::join_all(runs).await;
    // A consumer is traffic too: retries whose backoff ends while nothing else happens are
    // swept from here (a sweep message finds the clock just moved and sends nothing).
    outbox::sweep_if_due(p).await;
    for outcome in outcomes {
        outcome?;
    }
    Ok(())
}

/// Jobs one consumer runs in a row before it returns (others wait for the next message).
const DRAIN: usize = 64;

/// Runs `first`, then keeps taking the next due job of the kind while it can claim one: a
/// consumer that finishes a job goes on with the backlog, so `job_concurrency` consumers work
/// through a burst at their own pace, not at the sweep's. A wake-up refused by the
/// concurrency bound returns at once (the consumers holding the slots will get to its job).
async fn drain<P: Platform, F: AsyncFn(&P, &Lease) -> Result<(), Problem>>(p: &P, db: &P::Metadata, kind: &str, first: &str, tuning: &Tuning, run: &F) -> Result<(), Problem> {
    if !run_one(p, db, kind, first, tuning, run).await? {
        return Ok(());
    }
    for _ in 0..DRAIN {
        let Some(next) = due(db, kind, p.now_ms(), 1).await?.pop() else { return Ok(()) };
        if !run_one(p, db, kind, &next, tuning, run).await? {
            return Ok(());
        }
    }
    Ok(())
}

/// Claims and runs one job; `false` if it could not be claimed (not due, or held).
async fn run_one<P: Platform, F: AsyncFn(&P, &Lease) -> Result<(), Problem>>(p: &P, db: &P::Metadata, kind: &str, id: &str, tuning: &Tuning, run: &F) -> Result<bool, Problem> {
    let started = p.now_ms();
    let Some(job) = claim(db, id, kind, started, tuning).await? else { return Ok(false) };
    let lease = Lease::new(job, tuning.lease_ms, started);
    let result = run(p, &lease).await;
    let job = lease.job;
    let now = p.now_ms();
    let (outcome, settled) = match &result {
        Ok(()) => ("done", succeed(db, &job, now).await?),
        Err(problem) => {
            let error = format!("{}: {}", problem.kind.slug(), problem.detail);
            let outcome = if job.attempts >= MAX_ATTEMPTS { "dead" } else { "retry" };
            (outcome, fail(db, &job, now, &error, tuning).await?)
        }
    };
    p.record(&serde_json::json!({
        "event": "job",
        "job": job.id,
        "kind": job.kind,
        "subject": job.subject,
        "attempt": job.attempts,
        "durationMs": now - started,
        "outcome": if settled { outcome } else { "lease-lost" },
        "error": result.err().map(|e| e.detail),
    }));
    Ok(true)
}

