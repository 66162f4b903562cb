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

-- Manifests being written: a completion records its manifest id here before writing the
-- manifest and removes it in the transaction that publishes it (or after deleting it, when it
-- loses). A row left behind is a completion that died in between: its manifest is unreachable
-- (no signed URL names an unpublished manifest), and the file's next completion or deletion
-- removes it once it is older than any request can be.
CREATE TABLE IF NOT EXISTS manifest_writes (
    file_id     TEXT NOT NULL,
    manifest_id TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    PRIMARY KEY (file_id, manifest_id)
);
