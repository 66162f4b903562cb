-- Files, their chunks, and the content-addressed blobs the chunks point at.
-- Statements are idempotent (IF NOT EXISTS); migrations are applied once each, in name order.

CREATE TABLE IF NOT EXISTS files (
    id                    TEXT PRIMARY KEY,
    owner_id              TEXT NOT NULL REFERENCES users (id),
    name                  TEXT NOT NULL,
    original_name         TEXT NOT NULL,
    mime_type             TEXT NOT NULL,
    size                  BIGINT NOT NULL,
    chunk_size            BIGINT NOT NULL,
    checksum              TEXT,
    compression_enabled   INTEGER NOT NULL,
    deduplication_enabled INTEGER NOT NULL,
    -- uploading: chunks still arriving, never served; available: complete and verified.
    status                TEXT NOT NULL,
    etag                  TEXT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS files_by_owner ON files (owner_id, created_at);

-- One row per received chunk; `blob_key` names the blob holding its bytes.
CREATE TABLE IF NOT EXISTS file_chunks (
    file_id  TEXT NOT NULL REFERENCES files (id),
    idx      BIGINT NOT NULL,
    blob_key TEXT NOT NULL,
    size     BIGINT NOT NULL,
    PRIMARY KEY (file_id, idx)
);
CREATE INDEX IF NOT EXISTS file_chunks_by_blob ON file_chunks (blob_key);

-- Blobs and their reference counts (one per file_chunks row that names them).
-- state: live (bytes complete in the blob store), deleting (a sweep is removing the bytes),
-- deleted (tombstone). gen counts deletions, so an upload that wrote bytes can tell whether a
-- sweep ran since it looked (see shared/api/src/blobs.rs).
CREATE TABLE IF NOT EXISTS blobs (
    blob_key   TEXT PRIMARY KEY,
    size       BIGINT NOT NULL,
    refcount   BIGINT NOT NULL,
    state      TEXT NOT NULL,
    gen        BIGINT NOT NULL,
    changed_at BIGINT NOT NULL
);
