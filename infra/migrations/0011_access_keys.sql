-- S3 access keys (shared/api/src/access_keys.rs): an id, its owner, a name, and its secret
-- sealed under access_key_sealing_key (ChaCha20-Poly1305, bound to the id), so neither a dump
-- of this table nor a log holds a usable secret. SigV4 signs with the secret itself, which is
-- why it is sealed rather than hashed. Deleting the row revokes the key.
CREATE TABLE IF NOT EXISTS access_keys (
  id TEXT PRIMARY KEY,
  owner_id TEXT NOT NULL,
  name TEXT NOT NULL,
  sealed_secret TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS access_keys_by_owner ON access_keys (owner_id, created_at);
