-- Background jobs that rewrite how a file's content is stored (compression, content-defined
-- deduplication; shared/api/src/layout.rs) stage the new block list here, a few rows per
-- statement, then swap it in with one set-based compare-and-set: the swap's size does not
-- grow with the file, which D1 (bound-parameter limits) and PostgreSQL both need.
-- Rows live only between a job's staging and its swap; a job that died leaves rows that its
-- next attempt (same job id) replaces.
CREATE TABLE IF NOT EXISTS layout_staging (
    job_id      TEXT NOT NULL,
    idx         BIGINT NOT NULL,
    blob_key    TEXT NOT NULL,
    size        BIGINT NOT NULL,
    stored_size BIGINT NOT NULL,
    gen         BIGINT NOT NULL,
    PRIMARY KEY (job_id, idx)
);

-- Live blobs nothing references: what a crash between a release and its sweep leaves, found
-- by the jobs' periodic sweep (blobs::collect_garbage) without scanning every blob.
CREATE INDEX IF NOT EXISTS blobs_unreferenced ON blobs (refcount, state);

-- Blocks a layout swap stopped referencing, kept until `sweep_after` so a download that read
-- the old manifest can finish; the periodic sweep removes them then (unless referenced again).
CREATE TABLE IF NOT EXISTS replaced_blocks (
    blob_key    TEXT PRIMARY KEY,
    sweep_after BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS replaced_blocks_due ON replaced_blocks (sweep_after);

-- Blobs a job is about to write, recorded before the bytes (layout::store_block): if the job
-- dies before its swap, the sweep finds them and removes what no live row claims.
CREATE TABLE IF NOT EXISTS job_writes (
    job_id   TEXT NOT NULL,
    blob_key TEXT NOT NULL,
    PRIMARY KEY (job_id, blob_key)
);
