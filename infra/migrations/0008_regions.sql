-- Regions and their storage nodes (shared/api/src/regions.rs, routes/storage_*.rs).
-- A region is a place blocks live (`us-west-1`); a node is one blob store of a region, named
-- by its binding in the deployment (a Spin key-value label `blobs` / `blobs_<name>`, an S3
-- store, a Workers R2 binding `BLOBS` / `BLOBS_<NAME>`). Which stores exist is the
-- deployment's; which region each serves is these rows. Only administrators change them.
CREATE TABLE IF NOT EXISTS regions (
  id TEXT PRIMARY KEY,
  code TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  -- 'active', or 'deactivated': no new blocks are written there; reads fail over.
  status TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS storage_nodes (
  id TEXT PRIMARY KEY,
  region_id TEXT NOT NULL REFERENCES regions (id),
  name TEXT NOT NULL,
  -- 'key-value', 's3' or 'r2'; with `store`, the binding, it names one store of the deployment.
  kind TEXT NOT NULL,
  -- A store serves one node, so one region.
  store TEXT NOT NULL UNIQUE,
  capacity_bytes BIGINT NOT NULL,
  status TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS storage_nodes_by_region ON storage_nodes (region_id, created_at, id);
