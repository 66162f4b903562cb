//! One module per route. `functions/<name>` binds `routes::<name>` and nothing else.

pub mod auth_login;
pub mod auth_register;
pub mod file;
pub mod file_chunk;
pub mod file_chunks;
pub mod file_download;
pub mod file_signed_url;
pub mod files;
pub mod files_usage;
pub mod health;
pub mod health_liveness;
pub mod health_readiness;
pub mod not_found;
pub mod users_me;

/// The body limit of routes that take a small JSON document.
pub const JSON_BODY_LIMIT: usize = 16 * 1024;
