//! The VaultX API: one module per route under [`routes`], each exposing `handle` and the
//! largest request body it accepts (`MAX_BODY`). A platform adapter binds a module to its
//! platform's HTTP entry point; nothing here knows which platform that is.
//!
//! # In detail
//!
//! In detail (depends on vaultx-core, multer): the domain in layers, declared below bottom first
//! (a module uses only those above it; `tests/module-graph` checks it), then its doors:
//!
//! - `store`: how a store failure becomes an answer (`store_failure`, `busy`, `ATTEMPTS`);
//!   `settings`: named configuration.
//! - `accounts`, `auth` (incl. `admin_emails`), `access_keys` (S3 access keys: created, listed and
//!   revoked by their owner; secrets sealed under `access_key_sealing_key`).
//! - `quotas` (reservation at creation inside the insert's batch, re-check per chunk);
//!   `regions` (regions and storage nodes: a node names one of the deployment's blob stores by
//!   kind and binding, probed for its health; deactivation writes the edge's `deactivated/`
//!   markers); `outbox` (enqueue, leased claims within `job_concurrency`, backoff, dead, the
//!   traffic-driven sweep; job kinds by name only).
//! - `files` (a file's rows, statuses, lookups, and its keys in the key-value store); `blobs`
//!   (reference counting, guarded attach, sweeps, discards, the periodic garbage collection);
//!   `labels` (tags and metadata, limits re-checked inside the write); `replication` (policies,
//!   the copies each target region must hold, strong copies before an acknowledgement, where
//!   the copies are for the manifests (`placement`), the conditional enqueue every
//!   block-changing batch carries, the sweep of unneeded copies, the revival of jobs that died
//!   in an outage).
//! - `manifests` (immutable manifests written before the transition that publishes them,
//!   `sync` to name where the blocks are now); `search` (criteria → SQL over partial indexes,
//!   keyset cursors, rare-or-common planning).
//! - `layout` (how a file's blocks are stored, and the one compare-and-set that changes it);
//!   `versions` (versions as rows whose contents swap with the file's, never copied); `archive`
//!   (status change, then the key-value store made to agree); `lifecycle` (completion and
//!   deletion as compare-and-sets, and the sweep's stalled completions).
//! - `audit` (the wrapper every route runs in: the request id, the problem document's
//!   `requestId`, the request's log line, and the audit event — SQL, or for the download the
//!   audit spool (`ports::Spool`), which `drain` moves into SQL 500 rows a transaction);
//!   `integrity` (every cross-store invariant, checked against the stores).
//! - The doors: `jobs/` (the consumer, `consume`, and one module per kind) and `routes/` (one
//!   module per route, `handle` + `MAX_BODY`; `routes::Call` is the signed-in prologue;
//!   `openapi` serves `shared/api/openapi.json`, which a unit test checks against the route
//!   table).
//!
//! Tested natively on real SQLite, races replayed deterministically (`race_tests.rs`).

// Layers, bottom first: a module uses only modules declared before it (tests/module-graph
// checks it). Each numbered group is one layer.

// 0. Stores and settings.
pub mod store;
pub mod settings;
// 1. Who is calling.
pub mod accounts;
pub mod auth;
pub mod access_keys;
// 2. Limits, places, and the outbox (jobs by name only).
pub mod quotas;
pub mod regions;
pub mod outbox;
// 3. A file's rows, and what hangs off them.
pub mod files;
pub mod blobs;
pub mod labels;
pub mod replication;
pub mod buckets;
// 4. What the edge reads, and how rows are found.
pub mod manifests;
pub mod search;
// 5. Operations on a file's content and history.
pub mod layout;
pub mod versions;
pub mod archive;
pub mod lifecycle;
pub mod objects;
pub mod multipart;
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
#[cfg(test)]
mod objects_tests;
