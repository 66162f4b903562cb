-- The rest of the file API (shared/api/src/versions.rs, routes/files_search.rs, quotas.rs,
-- audit.rs).

-- Versions. The file's own row (`version_of` NULL, the *head*) always holds the current
-- version's content, so downloads, jobs, search and usage read one row as before. Every other
-- version is a row of its own with `version_of` = the head's id, holding that version's
-- chunks. Making a version current (a new version's completion, or a restore) swaps the two
-- rows' contents — chunk rows and content columns — in one guarded batch: no byte is copied.
-- Manifests of every version live under the head's id (`manifest/<head id>/<manifest id>`).
ALTER TABLE files ADD COLUMN version_of TEXT;
-- The version number of the content the row holds now.
ALTER TABLE files ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
-- On a head: how many complete versions the file has (itself included).
ALTER TABLE files ADD COLUMN version_count BIGINT NOT NULL DEFAULT 1;
-- On a head: the highest version number given so far (numbers are never reused).
ALTER TABLE files ADD COLUMN last_version BIGINT NOT NULL DEFAULT 1;
-- When the content the row holds was created (moves with it; 0: the row's created_at).
ALTER TABLE files ADD COLUMN content_created_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS files_versions ON files (version_of, version);

-- Search (routes/files_search.rs) walks one of these in its sort order, from the cursor on;
-- only heads are searched, hence the partial indexes (SQLite, D1 and PostgreSQL all have them).
CREATE INDEX IF NOT EXISTS files_heads_by_created ON files (owner_id, created_at, id) WHERE version_of IS NULL;
CREATE INDEX IF NOT EXISTS files_heads_by_updated ON files (owner_id, updated_at, id) WHERE version_of IS NULL;
CREATE INDEX IF NOT EXISTS files_heads_by_name ON files (owner_id, name, id) WHERE version_of IS NULL;
CREATE INDEX IF NOT EXISTS files_heads_by_size ON files (owner_id, size, id) WHERE version_of IS NULL;
CREATE INDEX IF NOT EXISTS files_heads_by_type ON files (owner_id, mime_type, created_at, id) WHERE version_of IS NULL;
-- Usage and quotas add up a user's rows by status.
CREATE INDEX IF NOT EXISTS files_usage ON files (owner_id, status, size);

-- The trigrams of each file's name (ASCII letters lower-cased), so a name-substring search
-- starts from the files that have the query's rarest trigram instead of walking them all
-- (shared/api/src/search.rs). Written with the name, in the same batch; heads only.
CREATE TABLE IF NOT EXISTS file_name_grams (
    owner_id TEXT NOT NULL,
    gram     TEXT NOT NULL,
    file_id  TEXT NOT NULL REFERENCES files (id),
    PRIMARY KEY (owner_id, gram, file_id)
);
CREATE INDEX IF NOT EXISTS file_name_grams_by_file ON file_name_grams (file_id);
-- Files named before this migration get theirs here.
INSERT INTO file_name_grams (owner_id, gram, file_id)
WITH RECURSIVE g (id, owner_id, name, i) AS (
    SELECT id, owner_id, lower(name), 1 FROM files WHERE version_of IS NULL AND length(name) >= 3
    UNION ALL
    SELECT id, owner_id, name, i + 1 FROM g WHERE i + 3 <= length(name)
)
SELECT DISTINCT owner_id, substr(name, i, 3), id FROM g WHERE 1 = 1
ON CONFLICT DO NOTHING;

-- Tags: short labels, at most 10 per file (routes/file_tags.rs). owner_id is repeated so a
-- search by tag reads only the caller's part of the index.
CREATE TABLE IF NOT EXISTS file_tags (
    file_id  TEXT NOT NULL REFERENCES files (id),
    owner_id TEXT NOT NULL,
    tag      TEXT NOT NULL,
    PRIMARY KEY (file_id, tag)
);
CREATE INDEX IF NOT EXISTS file_tags_by_tag ON file_tags (owner_id, tag, file_id);

-- Custom metadata: key → value, 2 KiB per file in all (routes/file_metadata.rs).
CREATE TABLE IF NOT EXISTS file_metadata (
    file_id  TEXT NOT NULL REFERENCES files (id),
    owner_id TEXT NOT NULL,
    meta_key TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (file_id, meta_key)
);
CREATE INDEX IF NOT EXISTS file_metadata_by_pair ON file_metadata (owner_id, meta_key, value, file_id);

-- Per-user quotas set by an admin; users without a row get the configured defaults
-- (`quota_bytes`, `quota_files`; 0 = unlimited).
CREATE TABLE IF NOT EXISTS user_quotas (
    user_id   TEXT PRIMARY KEY REFERENCES users (id),
    max_bytes BIGINT NOT NULL,
    max_files BIGINT NOT NULL
);

-- The audit log: every state-changing call and every download (shared/api/src/audit.rs).
-- (`at`, `id`) orders events for cursors; the id makes a replayed event (the download path's,
-- drained from the key-value store) land once.
CREATE TABLE IF NOT EXISTS audit_events (
    id         TEXT PRIMARY KEY,
    at         BIGINT NOT NULL,
    user_id    TEXT,
    action     TEXT NOT NULL,
    file_id    TEXT,
    address    TEXT,
    result     BIGINT NOT NULL,
    request_id TEXT,
    detail     TEXT
);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit_events (at, id);
CREATE INDEX IF NOT EXISTS audit_by_user ON audit_events (user_id, at, id);
CREATE INDEX IF NOT EXISTS audit_by_file ON audit_events (file_id, at, id);
