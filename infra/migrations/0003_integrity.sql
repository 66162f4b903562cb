-- Every state change is a compare-and-set (shared/api/src/files.rs, blobs.rs):
-- row_version goes up with each change to a file's chunks or status, so a transition computed
-- from a read applies only if nothing changed since; manifest_id names the immutable chunk
-- manifest (key-value `manifest/<file id>/<manifest id>`) the available file serves.
-- Applied once (the runtime and wrangler record what ran; see README for `spin up`).
ALTER TABLE files ADD COLUMN row_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE files ADD COLUMN manifest_id TEXT;

-- Guards (vaultx_core::guard!) insert a NULL here when their condition fails, which aborts
-- the batch they open. No row is ever stored.
CREATE TABLE IF NOT EXISTS cas_guard (
    conflict TEXT NOT NULL
);
