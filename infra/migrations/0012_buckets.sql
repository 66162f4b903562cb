-- S3 buckets (shared/api/src/buckets.rs): one owner each, names unique in the deployment and
-- checked against S3's naming rules by the API. `versioning` is S3's bucket versioning state:
-- '' (never enabled), 'Enabled' or 'Suspended'.
CREATE TABLE IF NOT EXISTS buckets (
  name TEXT PRIMARY KEY,
  owner_id TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  versioning TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS buckets_by_owner ON buckets (owner_id, name);
-- An object is a file in a bucket (shared/api/src/objects.rs): one row per key, naming the
-- file (its head row) that holds the object's content, versions and tags. `sort_key` is the
-- key's UTF-8 bytes in lower-case hex: S3 lists keys in byte order, which hex text keeps under
-- any collation (PostgreSQL's usual ones are not byte order). `etag` is the S3 ETag of the
-- content written through S3 (the MD5 of a single PUT) and `etag_of` the file checksum it
-- belongs to: content written later through the REST API has the file's own ETag. Deleting the
-- file deletes the row in the same batch (blobs::release).
CREATE TABLE IF NOT EXISTS bucket_objects (
  bucket TEXT NOT NULL,
  sort_key TEXT NOT NULL,
  object_key TEXT NOT NULL,
  file_id TEXT NOT NULL UNIQUE,
  etag TEXT,
  etag_of TEXT,
  PRIMARY KEY (bucket, sort_key)
);
