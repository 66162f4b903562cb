//! The VaultX API: one module per route under [`routes`], each exposing `handle` and the
//! largest request body it accepts (`MAX_BODY`). A platform adapter binds a module to its
//! platform's HTTP entry point; nothing here knows which platform that is.
//!
//! # In detail
//!
//! In detail (depends on vaultx-core, multer): One module per route in `routes/` (`handle` +
//! `MAX_BODY`; `health_metrics` reads the store's figures for Prometheus, `openapi` serves
//! `shared/api/openapi.json`, the contract `infra/openapi.py` writes and a unit test checks against
//! the route table), plus `accounts`, `files` (file rows, immutable manifests, completion and
//! deletion as compare-and-sets), `blobs` (reference counting, guarded attach, sweeps, discards,
//! the periodic garbage collection), `integrity` (every cross-store invariant, checked against the
//! stores), `jobs/` (the outbox — enqueue, leased claims within `job_concurrency`, backoff, dead,
//! sweep, `consume` — and one module per job kind: `dedup.rs`, `compress.rs`), `layout` (how a
//! file's blocks are stored, and the one compare-and-set that changes it), `versions` (versions as
//! rows whose contents swap with the file's, never copied), `archive` (status change, then the
//! key-value store made to agree), `labels` (tags and metadata, limits re-checked inside the
//! write), `search` (criteria → SQL over partial indexes, keyset cursors, rare-or-common planning),
//! `quotas` (reservation at creation inside the insert's batch, re-check per chunk), `audit` (the
//! wrapper every route runs in: the request id, the problem document's `requestId`, the request's
//! log line, and the audit event — SQL, or for the download the audit spool (`ports::Spool`), which
//! `drain` moves into SQL 500 rows a transaction when the verify consumer gets `audit` or `sweep`,
//! and the audit log's readers before they read), `replication` (policies and the default policy,
//! the copies each target region must hold, strong copies before an acknowledgement
//! (`ensure_strong`) and the completion guard that checks them, where the copies are for the
//! manifests (`placement`), the conditional enqueue every block-changing batch carries, the sweep
//! of unneeded copies, and the revival of replication jobs that died in an outage), `regions`
//! (regions and storage nodes: a node names one of the deployment's blob stores by kind and
//! binding, checked by opening it through `Platform::node_blobs`, and probed for its health;
//! deactivation writes the edge's `deactivated/` markers), `auth` (incl. `admin_emails`),
//! `settings`. Written against the ports only; tested natively on real SQLite, races replayed
//! deterministically (`race_tests.rs`).

// Layers, bottom first: a module uses only modules declared before it (tests/module-graph
// checks it). Each numbered group is one layer.

// 0. Stores and settings.
pub mod store;
pub mod settings;
// 1. Who is calling.
pub mod accounts;
pub mod auth;
// 2. Limits, places, and the outbox (jobs by name only).
pub mod quotas;
pub mod regions;
pub mod outbox;
// 3. A file's rows, and what hangs off them.
pub mod files;
pub mod blobs;
pub mod labels;
pub mod replication;
// 4. What the edge reads, and how rows are found.
pub mod manifests;
pub mod search;
// 5. Operations on a file's content and history.
pub mod layout;
pub mod versions;
pub mod archive;
pub mod lifecycle;
// 6. Cross-cutting records and checks.
pub mod audit;
pub mod integrity;
// 7. The doors: background work and the REST routes (the S3 operations will sit beside them).
pub mod jobs;
pub mod routes;

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod files_tests;

#[cfg(test)]
mod race_tests;

#[cfg(test)]
mod jobs_tests;

#[cfg(test)]
mod file_api_tests;

#[cfg(test)]
mod operations_tests;
