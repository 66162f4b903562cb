-- The job outbox (shared/api/src/jobs.rs). A job row is written in the same guarded batch as
-- the change that causes it, so a committed change never lacks its job; consumers claim a job
-- with a lease (a compare-and-set), and `attempts` is the fencing token: only the holder of
-- the latest claim can finish or fail it.
-- state: queued (waiting for next_attempt_at), running (lease_until), done, dead (gave up).
CREATE TABLE IF NOT EXISTS jobs (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    lease_until     BIGINT,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS jobs_by_subject ON jobs (kind, subject);
