//! The VaultX domain. Pure logic and the ports (traits) that platform adapters implement;
//! nothing here touches a network, a disk or a clock on its own, so all of it runs and is
//! tested natively, in a Spin component and in a Cloudflare Worker alike.
//!
//! # In detail
//!
//! In detail (depends on argon2, jwt-compact, hmac, sha2, serde_path_to_error, miniz_oxide,
//! fastcdc): Domain, no I/O: problem+json errors (`problem`), request/response types (`http`,
//! bodies may be blob slices to stream), validation, Argon2id passwords, HS256 tokens, signed-URL
//! tokens (`signed_url`), chunk plans (`chunks`), a blob's layout on key-value (`kv_blob`: pieces
//! and a header, small blobs inline), block compression (`compression`: DEFLATE, `<key>.deflate`
//! blobs, bounded inflate) and content-defined chunking (`cdc`: FastCDC) for the jobs, digests,
//! `Range` parsing, ids, `s3` (feature `s3`: S3-compatible stores from configuration, AWS SigV4
//! presigned requests by `rusty-s3`, ListObjectsV2 parsing — sans-IO), `breaker` (a circuit breaker
//! per blob store, its state in the key-value store every function shares), `failover` (a
//! download's reader: each blob slice from the first of its stores that serves it, skipping
//! deactivated or broken stores), `http::serve` (what every adapter does around a handler: HEAD as
//! GET, `nosniff`), `http::LogLine` (a request's log line, typed) and `LogOnDrop` (records it once
//! the body went out), `http::is_header_name`/`is_header_value` (the adapters' in-place check of
//! response headers), `http::valid_host`, `small_blocks` (a free list per size class in front of an
//! allocator: the components' allocator), `metrics` (feature `metrics`: the hosts' request families
//! and the Prometheus text encoding, by the `prometheus` crate), `config::check` (every setting of
//! a deployment checked at once, for `vaultx-runtime` and its `check-config`), and the **ports**
//! (`ports`: `Sql` with guarded batches — `guard!`, `StoreError::Conflict` — `Blobs`, `Kv`, `Queue`
//! (job wake-ups), `AuditLog`, `Clock`, `Entropy`, `Config`, bundled as `Platform`), and `postgres`
//! (what every PostgreSQL adapter shares: `?` → `$n`, SERIALIZABLE batches, which SQLSTATEs are a
//! concurrent change and may re-run).

pub mod breaker;
pub mod cdc;
pub mod chunks;
pub mod compression;
pub mod config;
pub mod digest;
pub mod failover;
pub mod http;
pub mod ids;
pub mod kv_blob;
pub mod password;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod ports;
pub mod postgres;
pub mod problem;
pub mod range;
pub mod router;
#[cfg(feature = "s3")]
pub mod s3;
pub mod sealed;
pub mod signed_url;
pub mod small_blocks;
pub mod token;
pub mod time;
pub mod validation;

pub use problem::Problem;

/// Deterministic test data shared by the unit tests.
#[cfg(test)]
pub(crate) mod test_data {
    /// Incompressible, repeatable bytes (xorshift64).
    pub fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }
}
