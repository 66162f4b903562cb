//! The outbox: work that is never lost. Enqueue, claim, lease, settle, retry — the rows of
//! `jobs`, and the wake-ups that tell a consumer to look. It knows the job kinds by name only
//! ([`VERIFY`], [`DEDUP`], [`COMPRESS`], [`REPLICATE`]), so a change's batch can carry a job
//! without importing the kinds; what each kind does is `crate::jobs`.
//!
//! - **Enqueue** with [`enqueue`]: a statement to put in the same guarded batch as the change
//!   that causes the job, so the change and its job commit together or not at all.
//! - **Claim** with [`claim`]: a compare-and-set that moves a due `queued` job (or a `running`
//!   one whose lease expired: its consumer died) to `running` with a fresh lease, and counts the
//!   attempt. The attempt number is the claim's fencing token.
//! - **Finish** with [`succeed`] or [`fail`], each guarded on the token: a consumer whose lease
//!   expired and whose job was claimed again can no longer change it. A failure is retried with
//!   exponential backoff ([`backoff_ms`]) and parked as `dead` after [`MAX_ATTEMPTS`].
//! - **Sweep** with [`due`]: the jobs to wake again — due and queued, or running past their
//!   lease — so a lost wake-up or a dead consumer delays a job, never loses it; [`sweep_if_due`]
//!   sends the sweep from traffic.
//! - **Retry** a dead job with [`retry`] (an administrator's action).
//!
//! Consumers must be idempotent: a job may run more than once (a consumer can die after doing
//! the work and before recording it).

use crate::store::store_failure;
use vaultx_core::Problem;
use vaultx_core::guard;
use vaultx_core::ports::{Config, Platform, Queue, Row, Sql, SqlValue, Statement, StoreError};

/// Checks a file's declared SHA-256 against its content (`jobs::verify`).
pub const VERIFY: &str = "verify";
/// Re-cuts a file into content-defined blocks and shares the ones already stored (`jobs::dedup`).
pub const DEDUP: &str = "dedup";
/// Stores a file's blocks compressed where that saves space (`jobs::compress`).
pub const COMPRESS: &str = "compress";
/// Copies a file's blocks to its replication policy's regions (`jobs::replicate`).
pub const REPLICATE: &str = "replicate";
/// Every job kind, in the order their consumers are swept.
pub const KINDS: &[&str] = &[VERIFY, DEDUP, COMPRESS, REPLICATE];

/// The message that asks a consumer to run whatever of its kind is due.
pub const SWEEP: &[u8] = b"sweep";

/// How jobs run, from configuration: `job_concurrency` (the seed's `BULL_CONCURRENCY`: jobs
/// of one kind running at once across all consumers), `job_lease_seconds` (how long a claim
/// holds a job before a sweep hands it to another consumer: longer than the longest run),
/// `job_retry_base_ms` (the first retry's wait; each next one doubles).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tuning {
    pub concurrency: i64,
    pub lease_ms: i64,
    pub backoff_base_ms: i64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning { concurrency: 2, lease_ms: LEASE_MS, backoff_base_ms: BASE_BACKOFF_MS }
    }
}

impl Tuning {
    pub async fn from_config(p: &impl Config) -> Tuning {
        async fn number(p: &impl Config, name: &str, range: std::ops::RangeInclusive<i64>, default: i64) -> i64 {
            match p.get(name).await {
                Ok(Some(v)) if !v.trim().is_empty() => v.trim().parse().ok().filter(|n| range.contains(n)).unwrap_or_else(|| {
                    eprintln!("vaultx: {name} {v:?} is not a whole number from {} to {}; using {default}", range.start(), range.end());
                    default
                }),
                _ => default,
            }
        }
        let d = Tuning::default();
        Tuning {
            concurrency: number(p, "job_concurrency", 1..=64, d.concurrency).await,
            lease_ms: number(p, "job_lease_seconds", 1..=86_400, d.lease_ms / 1000).await * 1000,
            backoff_base_ms: number(p, "job_retry_base_ms", 1..=3_600_000, d.backoff_base_ms).await,
        }
    }
}

/// Wakes each job's consumer after the batch that enqueued it committed. A failed wake-up
/// is logged, not returned: the job is in the outbox and the next sweep runs it.
pub async fn wake(p: &impl Queue, woken: &[(&str, &str)]) {
    for (kind, id) in woken {
        if let Err(e) = p.wake(kind, id).await {
            eprintln!("vaultx: waking the {kind} consumer for job {id} failed ({e}); the sweep will run it");
        }
    }
}

/// The setting that says how often the sweep runs by itself, in seconds (0: never by itself,
/// only from a schedule: the local runtime's timer, a cron `PUBLISH`, the Worker's Cron
/// Trigger).
pub const SWEEP_INTERVAL: &str = "sweep_interval_seconds";
/// Its default: a minute, as the Worker's Cron Trigger.
pub const DEFAULT_SWEEP_INTERVAL_S: i64 = 60;

/// The sweep, driven by traffic: a request or job that finds the last sweep older than
/// [`SWEEP_INTERVAL`] moves `sweep_clock` forward with a compare-and-set and, if it won,
/// wakes every job kind with [`SWEEP`]. So lost wake-ups, retries after backoff, the audit
/// spool, stalled completions and garbage are handled on every platform with nothing but the
/// platform running (Spin has no timer), and by one sweep per interval however many instances
/// see it due. Each instance asks the database at most once per interval (a clock it keeps in
/// memory), so a request pays for it once a minute, not every time. Best effort: a failure is
/// logged and the next request or the shipped schedule tries again.
pub async fn sweep_if_due<P: Platform>(p: &P) {
    use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
    // When this instance next asks the database (instances answer many requests).
    static NEXT_CHECK_MS: AtomicI64 = AtomicI64::new(0);
    let now = p.now_ms();
    if now < NEXT_CHECK_MS.load(Relaxed) {
        return;
    }
    let interval_ms = match p.get(SWEEP_INTERVAL).await {
        Ok(Some(v)) if !v.trim().is_empty() => v.trim().parse::<i64>().ok().filter(|s| (0..=86_400).contains(s)).unwrap_or(DEFAULT_SWEEP_INTERVAL_S) * 1000,
        _ => DEFAULT_SWEEP_INTERVAL_S * 1000,
    };
    if interval_ms == 0 {
        return;
    }
    NEXT_CHECK_MS.store(now + interval_ms, Relaxed);
    let Ok(db) = p.metadata().await else { return };
    match db
        .execute("UPDATE sweep_clock SET swept_at = ? WHERE id = 1 AND swept_at <= ?", vec![SqlValue::Integer(now), SqlValue::Integer(now - interval_ms)])
        .await
    {
        Ok(1) => {
            for kind in KINDS {
                if let Err(e) = p.wake(kind, "sweep").await {
                    eprintln!("vaultx: starting the {kind} sweep failed ({e}); the next due check or the schedule starts it");
                }
            }
        }
        Ok(_) => {}
        Err(e) => eprintln!("vaultx: the sweep clock could not be read ({e})"),
    }
}

pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const DONE: &str = "done";
pub const DEAD: &str = "dead";
pub const STATES: &[&str] = &[QUEUED, RUNNING, DONE, DEAD];

/// Attempts before a job is parked as `dead`.
pub const MAX_ATTEMPTS: i64 = 5;
/// The first retry waits this long; each next one twice as long, up to [`MAX_BACKOFF_MS`].
pub const BASE_BACKOFF_MS: i64 = 2_000;
pub const MAX_BACKOFF_MS: i64 = 10 * 60 * 1000;
/// How long a claim holds a job before a sweep may hand it to another consumer.
pub const LEASE_MS: i64 = 5 * 60 * 1000;

#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub subject: String,
    pub state: String,
    /// Attempts so far; while `running`, the fencing token of the current claim.
    pub attempts: i64,
    pub lease_until: Option<i64>,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

const COLUMNS: &str = "id, kind, subject, state, attempts, lease_until, next_attempt_at, last_error, created_at, updated_at";

fn from_row(r: &Row) -> Result<Job, StoreError> {
    let opt_int = |i: usize| match r.0.get(i) {
        Some(SqlValue::Integer(n)) => Ok(Some(*n)),
        Some(SqlValue::Null) | None => Ok(None),
        other => Err(StoreError::Decode(format!("column {i}: expected integer or null, got {other:?}"))),
    };
    Ok(Job {
        id: r.text(0)?.to_owned(),
        kind: r.text(1)?.to_owned(),
        subject: r.text(2)?.to_owned(),
        state: r.text(3)?.to_owned(),
        attempts: r.int(4)?,
        lease_until: opt_int(5)?,
        next_attempt_at: r.int(6)?,
        last_error: match r.0.get(7) {
            Some(SqlValue::Text(s)) => Some(s.clone()),
            _ => None,
        },
        created_at_ms: r.int(8)?,
        updated_at_ms: r.int(9)?,
    })
}

/// The wait before attempt `attempts + 1`, after `attempts` failed ones: 2 s, 4 s, 8 s, …,
/// capped at ten minutes.
pub fn backoff_ms(attempts: i64, base_ms: i64) -> i64 {
    let doublings = (attempts - 1).clamp(0, 30) as u32;
    base_ms.saturating_mul(1i64 << doublings).min(MAX_BACKOFF_MS)
}

/// The statement that enqueues a job, for the batch that makes the change it follows.
pub fn enqueue(id: &str, kind: &str, subject: &str, now_ms: i64) -> Statement {
    Statement {
        sql: "INSERT INTO jobs (id, kind, subject, state, attempts, lease_until, next_attempt_at, last_error, created_at, updated_at) \
              VALUES (?, ?, ?, 'queued', 0, NULL, ?, NULL, ?, ?)",
        params: vec![id.into(), kind.into(), subject.into(), SqlValue::Integer(now_ms), SqlValue::Integer(now_ms), SqlValue::Integer(now_ms)],
    }
}

pub async fn find(db: &impl Sql, id: &str) -> Result<Option<Job>, Problem> {
    let rows = db.query(&format!("SELECT {COLUMNS} FROM jobs WHERE id = ?"), vec![id.into()]).await.map_err(store_failure)?;
    rows.first().map(from_row).transpose().map_err(store_failure)
}

/// Claims the job if it is due (queued and its time has come, or running past its lease):
/// `Some(job)` with the claim's token in `attempts`, or `None` when someone else holds it or
/// it is not due. The compare-and-set makes two consumers woken for one job run it once.
pub async fn claim(db: &impl Sql, id: &str, kind: &str, now_ms: i64, tuning: &Tuning) -> Result<Option<Job>, Problem> {
    let now = SqlValue::Integer(now_ms);
    let result = db
        .batch(vec![
            guard!(
                "EXISTS (SELECT 1 FROM jobs WHERE id = ? AND kind = ? AND ((state = 'queued' AND next_attempt_at <= ?) OR (state = 'running' AND lease_until < ?)))",
                id,
                kind,
                now.clone(),
                now.clone()
            ),
            // At most `concurrency` live claims of this kind, whoever holds them.
            guard!("(SELECT count(*) FROM jobs WHERE kind = ? AND state = 'running' AND lease_until >= ?) < ?", kind, now.clone(), tuning.concurrency),
            Statement {
                sql: "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = ?, updated_at = ? WHERE id = ?",
                params: vec![SqlValue::Integer(now_ms + tuning.lease_ms), now, id.into()],
            },
        ])
        .await;
    match result {
        Ok(()) => find(db, id).await,
        // Contended: not claimed now; the next wake-up or sweep tries again.
        Err(StoreError::Conflict | StoreError::Contended) => Ok(None),
        Err(e) => Err(store_failure(e)),
    }
}

/// A claimed job, as its kind's `run` gets it: the job, and its hold on the lease. Long jobs
/// call [`Lease::keep`] as they make progress, which renews the lease once a quarter of it has
/// passed (guarded on the claim's token, like every outcome), and stops the job if another
/// consumer took it over (its work would be fenced off anyway).
pub struct Lease {
    pub job: Job,
    lease_ms: i64,
    renewed_at: std::cell::Cell<i64>,
}

impl Lease {
    /// The lease a claim just took (at `now_ms`), held for `lease_ms` and renewed by [`Lease::keep`].
    pub fn new(job: Job, lease_ms: i64, now_ms: i64) -> Lease {
        Lease { job, lease_ms, renewed_at: std::cell::Cell::new(now_ms) }
    }

    pub async fn keep(&self, db: &impl Sql, now_ms: i64) -> Result<(), Problem> {
        if now_ms - self.renewed_at.get() < self.lease_ms / 4 {
            return Ok(());
        }
        let renew = Statement {
            sql: "UPDATE jobs SET lease_until = ? WHERE id = ?",
            params: vec![SqlValue::Integer(now_ms + self.lease_ms), self.job.id.clone().into()],
        };
        if !settle(db, &self.job, renew).await? {
            return Err(Problem::new(vaultx_core::problem::ProblemKind::Busy, format!("job {} was taken over by another consumer", self.job.id)));
        }
        self.renewed_at.set(now_ms);
        Ok(())
    }
}

/// Records the claimed run's outcome, only while the claim is still the job's latest.
async fn settle(db: &impl Sql, job: &Job, set: Statement) -> Result<bool, Problem> {
    let result = db
        .batch(vec![guard!("EXISTS (SELECT 1 FROM jobs WHERE id = ? AND state = 'running' AND attempts = ?)", &job.id, job.attempts), set])
        .await;
    match result {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict) => Ok(false),
        Err(e) => Err(store_failure(e)),
    }
}

/// Marks the claimed job done. `false`: the claim was lost (the lease expired and another
/// consumer took the job), and nothing changed.
pub async fn succeed(db: &impl Sql, job: &Job, now_ms: i64) -> Result<bool, Problem> {
    settle(
        db,
        job,
        Statement {
            sql: "UPDATE jobs SET state = 'done', lease_until = NULL, last_error = NULL, updated_at = ? WHERE id = ?",
            params: vec![SqlValue::Integer(now_ms), job.id.clone().into()],
        },
    )
    .await
}

/// Records a failed run: queued again after [`backoff_ms`], or `dead` once the job has had
/// [`MAX_ATTEMPTS`]. `false`: the claim was lost, and nothing changed.
pub async fn fail(db: &impl Sql, job: &Job, now_ms: i64, error: &str, tuning: &Tuning) -> Result<bool, Problem> {
    let error: String = error.chars().take(1000).collect();
    let set = if job.attempts >= MAX_ATTEMPTS {
        Statement {
            sql: "UPDATE jobs SET state = 'dead', lease_until = NULL, last_error = ?, updated_at = ? WHERE id = ?",
            params: vec![error.into(), SqlValue::Integer(now_ms), job.id.clone().into()],
        }
    } else {
        Statement {
            sql: "UPDATE jobs SET state = 'queued', lease_until = NULL, next_attempt_at = ?, last_error = ?, updated_at = ? WHERE id = ?",
            params: vec![SqlValue::Integer(now_ms + backoff_ms(job.attempts, tuning.backoff_base_ms)), error.into(), SqlValue::Integer(now_ms), job.id.clone().into()],
        }
    };
    settle(db, job, set).await
}

/// The ids of jobs a sweep should wake: queued and due, or running past their lease, oldest
/// first.
pub async fn due(db: &impl Sql, kind: &str, now_ms: i64, limit: u32) -> Result<Vec<String>, Problem> {
    let rows = db
        .query(
            "SELECT id FROM jobs WHERE kind = ? AND ((state = 'queued' AND next_attempt_at <= ?) OR (state = 'running' AND lease_until < ?)) \
             ORDER BY next_attempt_at, id LIMIT ?",
            vec![kind.into(), SqlValue::Integer(now_ms), SqlValue::Integer(now_ms), SqlValue::Integer(i64::from(limit))],
        )
        .await
        .map_err(store_failure)?;
    rows.iter().map(|r| r.text(0).map(str::to_owned)).collect::<Result<_, _>>().map_err(store_failure)
}

/// Jobs by state and kind (either may be left open), most recently changed first.
pub async fn list(db: &impl Sql, state: Option<&str>, kind: Option<&str>, limit: i64) -> Result<Vec<Job>, Problem> {
    let rows = db
        .query(
            &format!("SELECT {COLUMNS} FROM jobs WHERE (CAST(? AS TEXT) IS NULL OR state = ?) AND (CAST(? AS TEXT) IS NULL OR kind = ?) ORDER BY updated_at DESC, id LIMIT ?"),
            vec![state.into(), state.into(), kind.into(), kind.into(), SqlValue::Integer(limit)],
        )
        .await
        .map_err(store_failure)?;
    rows.iter().map(from_row).collect::<Result<_, _>>().map_err(store_failure)
}

/// Puts a dead job back in the queue with a fresh set of attempts. `false` if it is not dead.
pub async fn retry(db: &impl Sql, id: &str, now_ms: i64) -> Result<bool, Problem> {
    let changed = db
        .execute(
            "UPDATE jobs SET state = 'queued', attempts = 0, next_attempt_at = ?, updated_at = ? WHERE id = ? AND state = 'dead'",
            vec![SqlValue::Integer(now_ms), SqlValue::Integer(now_ms), id.into()],
        )
        .await
        .map_err(store_failure)?;
    Ok(changed == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestDb, TestPlatform, run};

    const T: Tuning = Tuning { concurrency: 10, lease_ms: LEASE_MS, backoff_base_ms: BASE_BACKOFF_MS };

    fn queued(p: &TestPlatform, id: &str, now: i64) -> TestDb {
        let db = TestDb(p.conn.clone());
        run(db.batch(vec![enqueue(id, "compress", "file-1", now)])).unwrap();
        db
    }

    #[test]
    fn one_claim_wins_and_the_attempt_is_its_token() {
        let p = TestPlatform::new();
        let db = queued(&p, "j1", 1000);
        let first = run(claim(&db, "j1", "compress", 1000, &T)).unwrap().unwrap();
        assert_eq!((first.state.as_str(), first.attempts, first.lease_until), (RUNNING, 1, Some(1000 + LEASE_MS)));
        assert_eq!(run(claim(&db, "j1", "compress", 1001, &T)).unwrap(), None, "held");
        assert!(run(succeed(&db, &first, 1002)).unwrap());
        assert_eq!(run(find(&db, "j1")).unwrap().unwrap().state, DONE);
        assert_eq!(run(claim(&db, "j1", "compress", 1003, &T)).unwrap(), None, "done is done");
    }

    #[test]
    fn an_expired_lease_is_taken_over_and_fences_the_old_holder() {
        let p = TestPlatform::new();
        let db = queued(&p, "j1", 0);
        let stale = run(claim(&db, "j1", "compress", 0, &T)).unwrap().unwrap();
        assert_eq!(run(due(&db, "compress", LEASE_MS - 1, 10)).unwrap(), Vec::<String>::new());
        assert_eq!(run(due(&db, "compress", LEASE_MS + 1, 10)).unwrap(), ["j1"], "a sweep finds the dead consumer's job");
        let fresh = run(claim(&db, "j1", "compress", LEASE_MS + 1, &T)).unwrap().unwrap();
        assert_eq!(fresh.attempts, 2);
        assert!(!run(succeed(&db, &stale, LEASE_MS + 2)).unwrap(), "the old holder cannot finish it");
        assert!(!run(fail(&db, &stale, LEASE_MS + 2, "late", &T)).unwrap(), "nor fail it");
        assert!(run(succeed(&db, &fresh, LEASE_MS + 3)).unwrap());
    }

    #[test]
    fn failures_back_off_then_park_the_job_dead_until_retried() {
        let p = TestPlatform::new();
        let db = queued(&p, "j1", 0);
        let mut now = 0;
        for attempt in 1..=MAX_ATTEMPTS {
            let job = run(claim(&db, "j1", "compress", now, &T)).unwrap().unwrap();
            assert_eq!(job.attempts, attempt);
            assert!(run(fail(&db, &job, now, "boom", &T)).unwrap());
            let after = run(find(&db, "j1")).unwrap().unwrap();
            if attempt < MAX_ATTEMPTS {
                assert_eq!((after.state.as_str(), after.next_attempt_at), (QUEUED, now + backoff_ms(attempt, BASE_BACKOFF_MS)));
                assert_eq!(run(claim(&db, "j1", "compress", now + backoff_ms(attempt, BASE_BACKOFF_MS) - 1, &T)).unwrap(), None, "not before its time");
                now += backoff_ms(attempt, BASE_BACKOFF_MS);
            } else {
                assert_eq!((after.state.as_str(), after.last_error.as_deref()), (DEAD, Some("boom")));
            }
        }
        assert_eq!(run(due(&db, "compress", now + MAX_BACKOFF_MS, 10)).unwrap(), Vec::<String>::new(), "dead jobs are not woken");
        assert!(run(retry(&db, "j1", now)).unwrap());
        assert!(!run(retry(&db, "j1", now)).unwrap(), "only a dead job is retried");
        let again = run(claim(&db, "j1", "compress", now, &T)).unwrap().unwrap();
        assert_eq!(again.attempts, 1);
    }

    #[test]
    fn a_lease_is_renewed_only_under_the_current_claim() {
        let p = TestPlatform::new();
        let db = queued(&p, "j1", 0);
        let lease = |job: Job| Lease { job, lease_ms: LEASE_MS, renewed_at: std::cell::Cell::new(0) };
        let stale = lease(run(claim(&db, "j1", "compress", 0, &T)).unwrap().unwrap());
        run(stale.keep(&db, LEASE_MS / 8)).unwrap();
        assert_eq!(run(find(&db, "j1")).unwrap().unwrap().lease_until, Some(LEASE_MS), "renewed only once a quarter has passed");
        run(stale.keep(&db, LEASE_MS - 1)).unwrap();
        assert_eq!(run(due(&db, "compress", LEASE_MS + 1, 10)).unwrap(), Vec::<String>::new(), "renewed: not due");
        let fresh = lease(run(claim(&db, "j1", "compress", 3 * LEASE_MS, &T)).unwrap().unwrap());
        assert!(run(stale.keep(&db, 3 * LEASE_MS)).is_err(), "the old holder cannot renew, and stops");
        run(fresh.keep(&db, 3 * LEASE_MS)).unwrap();
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        assert_eq!([1, 2, 3, 4].map(|a| backoff_ms(a, BASE_BACKOFF_MS)), [2_000, 4_000, 8_000, 16_000]);
        assert_eq!(backoff_ms(40, BASE_BACKOFF_MS), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(0, BASE_BACKOFF_MS), BASE_BACKOFF_MS);
    }

    #[test]
    fn a_job_commits_with_its_change_or_not_at_all() {
        let p = TestPlatform::new();
        let db = TestDb(p.conn.clone());
        let lost = run(db.batch(vec![guard!("1 = 0"), enqueue("j1", "compress", "file-1", 0)]));
        assert_eq!(lost, Err(StoreError::Conflict));
        assert_eq!(run(find(&db, "j1")).unwrap(), None);
    }
}
