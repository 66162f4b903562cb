-- When the last sweep started (shared/api/src/jobs/mod.rs, `sweep_if_due`). Any request or job
-- that finds it older than `sweep_interval_seconds` moves it forward with a compare-and-set and,
-- if it won, wakes every job kind with `sweep`: the sweep runs itself on every platform (Spin
-- has no timer), one at a time, however many instances see it due.
CREATE TABLE IF NOT EXISTS sweep_clock (
  id INTEGER PRIMARY KEY,
  swept_at BIGINT NOT NULL
);
INSERT INTO sweep_clock (id, swept_at) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;

-- Chunk bytes being written before their row exists: a request that dies between the write
-- and its batch leaves bytes nothing references. The chunk's batch deletes its row; the sweep
-- discards the bytes of a row older than the longest request (shared/api/src/blobs.rs).
CREATE TABLE IF NOT EXISTS chunk_writes (
  blob_key TEXT NOT NULL,
  request_id TEXT NOT NULL,
  started_at BIGINT NOT NULL,
  PRIMARY KEY (blob_key, request_id)
);
CREATE INDEX IF NOT EXISTS chunk_writes_by_age ON chunk_writes (started_at);
