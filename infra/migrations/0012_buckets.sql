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
-- content written through S3 (the MD5 of a single PUT, S3's own form for a multipart one) and
-- `etag_of` the CRC-64/NVME of the content it belongs to: content written later through the
-- REST API has the file's own ETag. Deleting the
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
-- S3 multipart uploads in progress (shared/api/src/multipart.rs). `file_id` is the staging
-- file row whose chunks hold the parts (a version of itself, so no listing shows it); part n's
-- pieces are its chunks (n - 1) * 8 to (n - 1) * 8 + pieces - 1. The sweep aborts uploads older
-- than multipart_max_age_seconds. `metadata` is the object's user metadata (x-amz-meta-*), as a
-- JSON object, set on the object when the upload completes.
CREATE TABLE IF NOT EXISTS multipart_uploads (
  upload_id TEXT PRIMARY KEY,
  bucket TEXT NOT NULL,
  object_key TEXT NOT NULL,
  owner_id TEXT NOT NULL,
  file_id TEXT NOT NULL UNIQUE,
  mime_type TEXT NOT NULL,
  metadata TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS multipart_uploads_by_bucket ON multipart_uploads (bucket, created_at);
CREATE INDEX IF NOT EXISTS multipart_uploads_by_age ON multipart_uploads (created_at);
-- One row per stored part: its size, its MD5 (hex: S3's part ETag) and how many pieces (chunks
-- of at most 16 MiB) it was stored in.
CREATE TABLE IF NOT EXISTS multipart_parts (
  upload_id TEXT NOT NULL,
  part_number BIGINT NOT NULL,
  size BIGINT NOT NULL,
  etag TEXT NOT NULL,
  pieces BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (upload_id, part_number)
);
