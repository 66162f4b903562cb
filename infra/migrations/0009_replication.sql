-- Replication (shared/api/src/replication.rs, jobs/replicate.rs): which regions keep copies
-- of a file's blocks, and which copies exist.

-- One policy per file (its head: versions share it). `consistency` is 'eventual' (the
-- `replicate` job copies the blocks after each change).
CREATE TABLE IF NOT EXISTS replication_policies (
  file_id TEXT PRIMARY KEY,
  consistency TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS replication_targets (
  file_id TEXT NOT NULL,
  region_id TEXT NOT NULL REFERENCES regions (id),
  PRIMARY KEY (file_id, region_id)
);
CREATE INDEX IF NOT EXISTS replication_targets_by_region ON replication_targets (region_id, file_id);

-- A block's copy in another region's store, written before its row (so a 'present' row
-- always names bytes that are there). A copy stays while some file targeting its region
-- references its block and the block is live; the replicate job's sweep removes the rest:
-- 'deleting' first (no job records the copy again meanwhile), then the bytes, then the row.
CREATE TABLE IF NOT EXISTS block_replicas (
  blob_key TEXT NOT NULL,
  region_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  store TEXT NOT NULL,
  size BIGINT NOT NULL,
  state TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (blob_key, region_id)
);
CREATE INDEX IF NOT EXISTS block_replicas_by_region ON block_replicas (region_id, blob_key);
