//! The VaultX API: one module per route under [`routes`], each exposing `handle` and the
//! largest request body it accepts (`MAX_BODY`). A platform adapter binds a module to its
//! platform's HTTP entry point; nothing here knows which platform that is.

pub mod accounts;
pub mod archive;
pub mod audit;
pub mod labels;
pub mod quotas;
pub mod regions;
pub mod replication;
pub mod auth;
pub mod blobs;
pub mod files;
pub mod integrity;
pub mod jobs;
pub mod layout;
pub mod routes;
pub mod search;
pub mod settings;
pub mod versions;

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
