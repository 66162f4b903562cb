//! The VaultX domain. Pure logic and the ports (traits) that platform adapters implement;
//! nothing here touches a network, a disk or a clock on its own, so all of it runs and is
//! tested natively, in a Spin component and in a Cloudflare Worker alike.

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
