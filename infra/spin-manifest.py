#!/usr/bin/env python3
"""Writes spin.toml from the route table below: one component per route, each granted only
the stores and variables its route needs. Run after adding a route; tests check the result
is current (tests/run compares)."""
import sys

# The deployment's key-value blob stores: `blobs` (the home store) and one `blobs_<name>` per
# further store a region's node may name (Spin labels are snake_case). Each must also be in
# infra/spin/runtime-config.toml for the Spin CLI.
BLOB_STORES = ["blobs", "blobs_eu", "blobs_ap"]

# component, route, what it does, sqlite?, key-value stores, variables
ROUTES = [
    ("auth-register", "/api/auth/register", "POST: create an account", True, [], []),
    ("auth-login", "/api/auth/login", "POST: email + password -> access token", True, [], ["jwt_secret", "jwt_expiration_time"]),
    ("users-me", "/api/users/me", "GET: the signed-in account", True, [], ["jwt_secret"]),
    # S3 access keys: only this component reads the sealing key (it seals new secrets).
    ("access-keys", "/api/users/me/access-keys", "GET: the caller's S3 access keys; POST: a new one, its secret shown once", True, [], ["jwt_secret", "access_key_sealing_key"]),
    ("access-key", "/api/users/me/access-keys/:keyId", "DELETE: revoke one of the caller's access keys", True, [], ["jwt_secret"]),
    ("files", "/api/files", "POST: create a file entry; GET: list the caller's files", True, ["manifests"], ["jwt_secret", "chunk_size", "quota_bytes", "quota_files", "replication_default_regions", "replication_default_consistency"]),
    ("files-usage", "/api/files/stats/usage", "GET: the caller's storage usage and quota", True, [], ["jwt_secret", "quota_bytes", "quota_files"]),
    ("files-search", "/api/files/search", "GET: search the caller's files (cursor-paginated)", True, [], ["jwt_secret"]),
    ("file", "/api/files/:id", "GET, PATCH, DELETE one file", True, ["manifests", "blobs"], ["jwt_secret"]),
    ("file-chunks", "/api/files/:id/chunks", "GET: which chunks arrived and which are missing", True, [], ["jwt_secret"]),
    ("file-chunk", "/api/files/:id/chunks/:index", "POST: upload one chunk", True, ["manifests"] + BLOB_STORES, ["jwt_secret", "quota_bytes", "quota_files", "version_retention"]),
    ("file-complete", "/api/files/:id/complete", "POST: finish an upload whose chunks have all arrived", True, ["manifests"] + BLOB_STORES, ["jwt_secret", "version_retention"]),
    ("file-versions", "/api/files/:id/versions", "GET: a file's versions; POST: start a new version", True, ["manifests"] + BLOB_STORES, ["jwt_secret", "chunk_size", "quota_bytes", "quota_files", "version_retention"]),
    ("file-version", "/api/files/:id/versions/:version", "GET, DELETE one version", True, ["manifests", "blobs"], ["jwt_secret"]),
    ("file-version-restore", "/api/files/:id/versions/:version/restore", "POST: make an older version current (rollback)", True, ["manifests"], ["jwt_secret"]),
    ("file-archive", "/api/files/:id/archive", "POST: archive a file (kept, not served)", True, ["manifests"], ["jwt_secret"]),
    ("file-restore-archive", "/api/files/:id/restore-archive", "POST: restore an archived file", True, ["manifests"], ["jwt_secret"]),
    ("file-tags", "/api/files/:id/tags", "GET a file's tags; POST: add tags", True, [], ["jwt_secret"]),
    ("file-tag", "/api/files/:id/tags/:tag", "DELETE: remove a tag", True, [], ["jwt_secret"]),
    ("file-metadata", "/api/files/:id/metadata", "GET a file's custom metadata; POST: set, remove or replace keys", True, [], ["jwt_secret"]),
    # The audit log's readers move the download path's spooled events in first (read-your-writes).
    ("file-audit", "/api/files/:id/audit", "GET: the audit log of one of the caller's files", True, ["audit"], ["jwt_secret"]),
    ("file-signed-url", "/api/files/:id/signed-url", "POST: a temporary download URL", True, [], ["jwt_secret", "url_signing_keys", "url_signing_key_id", "public_url"]),
    # The edge download: no database, no JWT secret; reads manifests and blobs only. Its
    # access records go to the audit spool: the Redis stream at redis_address (the one thing it
    # writes, and no disk sync), or the `audit` store when Redis is not there; the verify
    # consumer moves them into SQL.
    ("file-download", "/api/files/download/:token", "GET: download through a signed URL", False, ["manifests", "audit"] + BLOB_STORES, ["url_signing_keys", "url_signing_key_id", "redis_address", "audit_spool"]),
    ("admin-integrity", "/api/admin/integrity", "GET: audit every store's invariants (administrators)", True, ["manifests"] + BLOB_STORES, ["jwt_secret", "admin_emails"]),
    ("admin-jobs", "/api/admin/jobs", "GET: background jobs by state and kind (administrators)", True, [], ["jwt_secret", "admin_emails"]),
    ("admin-job-retry", "/api/admin/jobs/:id/retry", "POST: retry a dead job (administrators)", True, [], ["jwt_secret", "admin_emails"]),
    ("admin-user-quota", "/api/admin/users/:id/quota", "GET, PUT, DELETE a user's quota (administrators)", True, [], ["jwt_secret", "admin_emails", "quota_bytes", "quota_files"]),
    ("admin-audit", "/api/admin/audit", "GET: the audit log (administrators)", True, ["audit"], ["jwt_secret", "admin_emails"]),
    # Regions and nodes name the deployment's blob stores: these routes may open each one (to
    # check that a node names a real store, and to probe it).
    ("storage-regions", "/api/storage/regions", "GET: regions; POST: create a region (administrators)", True, ["manifests"] + BLOB_STORES, ["jwt_secret", "admin_emails"]),
    ("storage-region", "/api/storage/regions/:id", "GET: one region with its nodes and health (administrators)", True, ["manifests"] + BLOB_STORES, ["jwt_secret", "admin_emails"]),
    ("storage-region-deactivate", "/api/storage/regions/:id/deactivate", "PATCH: no new blocks in a region (administrators)", True, ["manifests"] + BLOB_STORES, ["jwt_secret", "admin_emails"]),
    ("storage-region-nodes", "/api/storage/regions/:regionId/nodes", "GET: one region's nodes (administrators)", True, ["manifests"] + BLOB_STORES, ["jwt_secret", "admin_emails"]),
    ("storage-nodes", "/api/storage/nodes", "GET: every node; POST: add a blob store to a region (administrators)", True, ["manifests"] + BLOB_STORES, ["jwt_secret", "admin_emails"]),
    ("replication-policy", "/api/replication/files/:fileId/policy", "POST: keep a file in further regions (strong: copies every block before answering)", True, ["manifests"] + BLOB_STORES, ["jwt_secret"]),
    ("replication-status", "/api/replication/files/:fileId/status", "GET: how far a file is replicated, per region", True, [], ["jwt_secret"]),
    ("health", "/health", "GET: overall health (the metadata store, every region's blob stores)", True, ["manifests"] + BLOB_STORES, []),
    ("health-liveness", "/health/liveness", "GET: the function runs", False, [], []),
    # Prometheus: the stores' figures as gauges (the host adds its request counters); reads
    # SQL and the breakers, opens no blob store.
    ("health-metrics", "/health/metrics", "GET: Prometheus metrics", True, ["manifests"], ["metrics_token", "home_blob_store", "circuit_breaker_failure_threshold", "circuit_breaker_reset_timeout"]),
    ("health-readiness", "/health/readiness", "GET: the metadata store answers", True, [], []),
    ("openapi", "/api/openapi.json", "GET: the OpenAPI 3.1 contract of the API", False, [], []),
    # The catch-all is the S3 door (vaultx-s3): path-style S3 for requests signed with an
    # access key (it opens their secrets: the sealing key), the REST API's 404 for the rest.
    ("s3", "/...", "the S3 API (path-style /BUCKET/KEY, SigV4 with access keys); anything else unsigned: 404 problem+json", True, ["manifests"] + BLOB_STORES, ["access_key_sealing_key", "chunk_size", "quota_bytes", "quota_files", "version_retention", "multipart_max_age_seconds", "replication_default_regions", "replication_default_consistency"]),
]

# Every component with a database may publish on Redis: the ones that enqueue jobs wake their
# consumers, and any of them may start an overdue sweep (shared/api/src/outbox.rs,
# `sweep_if_due`: Spin has no timer, so the traffic drives it). The edge download publishes
# its access records there (above).

# Background job kinds: component, kind, what it does, key-value stores, variables. Each is
# triggered by messages on its Redis channel (shared/api/src/jobs/<kind>.rs).
JOBS = [
    # Its sweep also moves the download path's spooled audit events into SQL.
    # and completes uploads whose every chunk is stored but whose completion never ran.
    ("job-verify", "verify", "check a file's declared SHA-256 after its combined CRC-64 made it available", ["manifests", "audit"] + BLOB_STORES, ["job_concurrency", "job_lease_seconds", "job_retry_base_ms", "multipart_max_age_seconds"]),
    ("job-dedup", "dedup", "re-cut a file into content-defined blocks (FastCDC) shared with the owner's other files", ["manifests"] + BLOB_STORES, ["job_concurrency", "job_lease_seconds", "job_retry_base_ms"]),
    # Copies blocks into other regions' stores (and its sweep removes copies nothing needs).
    ("job-replicate", "replicate", "copy a replicated file's blocks to its target regions", ["manifests"] + BLOB_STORES, ["job_concurrency", "job_lease_seconds", "job_retry_base_ms"]),
    ("job-compress", "compress", "store each compressible block of a file DEFLATE-compressed", ["manifests"] + BLOB_STORES, ["job_concurrency", "job_lease_seconds", "job_retry_base_ms", "compression_min_saving"]),
]

HEADER = '''# VaultX as a Spin application: one component per API route, each granted only the stores
# and variables its route needs. Served locally by `vaultx-runtime` (infra/local/up) and
# valid for the Spin CLI (`spin build && spin up`). Generated by infra/spin-manifest.py.
spin_manifest_version = 2

[application]
name = "vaultx"
version = "0.1.0"
description = "An object store as WebAssembly functions at the edge"

[variables]
# The seed's jwt.secret: HS256 signing key, at least 32 bytes. Never in code: set
# SPIN_VARIABLE_JWT_SECRET (infra/local/up generates one per data directory).
jwt_secret = { required = true, secret = true }
# The seed's jwt.expirationTime: access-token lifetime (3600s, 15m, 12h, 7d).
jwt_expiration_time = { default = "3600s" }
# The seed's CHUNK_SIZE, in bytes, for files created from now on (64 KiB to 16 MiB).
chunk_size = { default = "5242880" }
# Signed-URL keys, `id:secret[,id:secret...]` (secrets of at least 32 bytes), and the id of
# the key that signs new URLs. Rotate by adding a key and switching the id; retire by removing.
url_signing_keys = { required = true, secret = true }
url_signing_key_id = { default = "k1" }
# The origin signed URLs are built on, e.g. https://files.example.com (never the request's
# Host). Empty: signed URLs are relative. vaultx-runtime defaults it to its listen address.
public_url = { default = "" }
# Emails of administrator accounts, comma-separated (the only way to the admin role).
admin_emails = { default = "" }
# The key S3 access-key secrets are sealed under at rest (ChaCha20-Poly1305; at least 32
# bytes). Empty: no access key can be created. Changing it makes every existing key unusable.
access_key_sealing_key = { default = "", secret = true }
# The metadata database: empty for the component's SQLite database "default" (the embedded
# default), or PostgreSQL as postgres://user:password@host:port/database (the production
# choice; apply infra/migrations first, see docs/postgresql.md).
database_url = { default = "", secret = true }
# The PostgreSQL server components may reach, postgres://host:port: their one outbound grant
# for metadata (must name database_url's host and port).
database_host = { default = "postgres://127.0.0.1:5432" }
# The Redis the job consumers subscribe to and producers publish wake-ups on. Jobs live in
# the SQL outbox; without Redis they wait for the sweep (see docs/jobs.md).
redis_address = { default = "redis://127.0.0.1:6379" }
# Where the signed download hands its access records (docs/api.md, "Downloads' access records"):
# redis (a stream at redis_address: no disk sync per download) or key-value (the `audit`
# store; vaultx-runtime's default, whose key-value writes are group-committed).
audit_spool = { default = "redis" }
# The seed's BULL_CONCURRENCY: jobs of one kind running at once across all consumers.
job_concurrency = { default = "2" }
# How often the sweep runs by itself (seconds; 0: only from a schedule): the first request or
# job that finds the last one older starts the next (docs/jobs.md).
sweep_interval_seconds = { default = "60" }
# How long a claim holds a job before the sweep gives it to another consumer (seconds).
job_lease_seconds = { default = "300" }
# The first retry's wait after a failed run (ms); each next one doubles, up to 10 minutes.
job_retry_base_ms = { default = "2000" }
# A block is stored compressed only if that saves at least this fraction of it.
compression_min_saving = { default = "0.10" }
# How many versions a file keeps, its current one included; older ones are deleted (0: all).
version_retention = { default = "0" }
# S3 multipart uploads in progress older than this (seconds) are aborted by the sweep.
multipart_max_age_seconds = { default = "604800" }
# Default per-user quotas: bytes stored (declared sizes of every file and version) and number
# of files (0: unlimited). Admins override them per user (PUT /api/admin/users/:id/quota).
quota_bytes = { default = "0" }
quota_files = { default = "0" }
# The home blob store, kind:binding: where chunks are written. key-value:blobs (the embedded
# default) or s3:<name>, a store of s3_stores.
home_blob_store = { default = "key-value:blobs" }
# S3-compatible blob stores (AWS S3, R2's S3 endpoint, Garage, Ceph RGW, MinIO), for the home
# store or a region's node: name=http(s)://host[:port]/bucket[?region=...], comma-separated.
s3_stores = { default = "" }
# Their credentials (never in code): name=access-key-id:secret-access-key, comma-separated.
s3_credentials = { default = "", secret = true }
# The S3 endpoint components may reach, scheme://host:port: their one outbound grant for blobs
# (must name the s3_stores endpoints' host and port).
s3_host = { default = "http://127.0.0.1:9000" }
# The seed's CIRCUIT_BREAKER_FAILURE_THRESHOLD and CIRCUIT_BREAKER_RESET_TIMEOUT (ms): after
# this many failures in a row a blob store is skipped (reads go to another region's copy)
# until the timeout has passed; then one request probes it.
circuit_breaker_failure_threshold = { default = "5" }
circuit_breaker_reset_timeout = { default = "30000" }
# The default replication policy of new files: region codes, comma-separated (empty: none),
# and its consistency (eventual or strong). A file's own policy replaces it.
replication_default_regions = { default = "" }
replication_default_consistency = { default = "eventual" }
# GET /health/metrics is open like /health unless this is set: then a scrape must send
# Authorization: Bearer <metrics_token>.
metrics_token = { default = "", secret = true }

[application.trigger.redis]
address = "{{ redis_address }}"
'''

def component(c, sqlite, stores, variables):
    # A component that wakes jobs also gets the Redis address: as a variable and as its one
    # outbound host.
    outbound = []
    if sqlite:
        # Metadata: SQLite, or PostgreSQL when database_url is set.
        variables, outbound = variables + ["database_url"], outbound + ["{{ database_host }}"]
    if any(store in BLOB_STORES for store in stores):
        # Blobs: the home store may be an S3-compatible bucket, and so may a region's node.
        variables = variables + ["home_blob_store", "s3_stores", "s3_credentials", "circuit_breaker_failure_threshold", "circuit_breaker_reset_timeout"]
        outbound = outbound + ["{{ s3_host }}"]
    if sqlite:
        variables = variables + ["redis_address", "sweep_interval_seconds"]
    if "redis_address" in variables:
        outbound = outbound + ["{{ redis_address }}"]
    crate_name = c.replace("-", "_")
    stores_list = ", ".join(f'"{s}"' for s in stores)
    hosts = ", ".join(f'"{h}"' for h in outbound)
    out = [f'''
[component.{c}]
source = "target/wasm32-wasip2/dist/{crate_name}.wasm"
sqlite_databases = [{'"default"' if sqlite else ''}]
key_value_stores = [{stores_list}]
allowed_outbound_hosts = [{hosts}]
''']
    if variables:
        out.append(f"[component.{c}.variables]\n" + "".join(f'{v} = "{{{{ {v} }}}}"\n' for v in variables))
    out.append(f'''[component.{c}.build]
command = "cargo build --profile dist --target wasm32-wasip2 -p {c}"
watch = ["functions/{c}/src/**/*.rs", "shared/**/*.rs"]
''')
    return "".join(out)

def render():
    out = [HEADER]
    for c, route, what, sqlite, stores, variables in ROUTES:
        out.append(f'''
# {what}
[[trigger.http]]
route = "{route}"
component = "{c}"
''')
        out.append(component(c, sqlite, stores, variables))
    for c, kind, what, stores, variables in JOBS:
        out.append(f'''
# Job `{kind}`: {what}
[[trigger.redis]]
channel = "vaultx-jobs-{kind}"
component = "{c}"
''')
        out.append(component(c, True, stores, variables))
    return "".join(out)

def env_example():
    """.env.example: every setting of [variables] above, with its default and meaning, as the
    environment variables `vaultx-runtime` and `spin up` read (SPIN_VARIABLE_<NAME>)."""
    out = ["# Every VaultX setting, with its default and meaning (generated from spin.toml's [variables]",
           "# by infra/spin-manifest.py). `spin up` and vaultx-runtime read SPIN_VARIABLE_<NAME>; on",
           "# Cloudflare Workers the same names in upper case are [vars] or secrets (wrangler.toml).",
           "# Check a configuration before serving: vaultx-runtime check-config.", ""]
    block = HEADER.split("[variables]\n", 1)[1].split("\n[", 1)[0]
    comments = []
    for line in block.splitlines():
        if line.startswith("#"):
            comments.append(line)
        elif "=" in line:
            name, spec = (part.strip() for part in line.split("=", 1))
            required = "required = true" in spec
            default = spec.split('default = "', 1)[1].split('"', 1)[0] if 'default = "' in spec else ""
            out.extend(comments)
            if required:
                out.append("# Required, a secret: no default.")
            elif "secret = true" in spec:
                out.append("# A secret.")
            out.append(f"SPIN_VARIABLE_{name.upper()}={default}")
            out.append("")
            comments = []
    return "\n".join(out).rstrip("\n") + "\n"


if __name__ == "__main__":
    text = render()
    env = env_example()
    if sys.argv[1:] == ["--check"]:
        current = open("spin.toml").read()
        if current != text:
            sys.exit("spin.toml is out of date: run infra/spin-manifest.py")
        if open(".env.example").read() != env:
            sys.exit(".env.example is out of date: run infra/spin-manifest.py")
    else:
        open("spin.toml", "w").write(text)
        open(".env.example", "w").write(env)
