//! A circuit breaker per blob store, shared by every function through the key-value store
//! (`breaker/<kind>:<binding>`), so the edge stops sending requests to a store that keeps
//! failing without asking the central database.
//!
//! Closed: requests go to the store; each failure is counted, a success clears the count.
//! After `circuit_breaker_failure_threshold` failures in a row (the seed's
//! CIRCUIT_BREAKER_FAILURE_THRESHOLD, 5) it opens: readers skip the store. After
//! `circuit_breaker_reset_timeout` ms (CIRCUIT_BREAKER_RESET_TIMEOUT, 30000) it is half-open:
//! the next request probes the store; success closes it, failure opens it for another
//! timeout. Counting is best effort (concurrent failures may count once): a breaker only
//! decides which copy to read first, never whether data is correct.
//!
//! A deactivated region's stores carry a marker (`deactivated/<kind>:<binding>`) that readers
//! treat like an open breaker that never half-opens.

use crate::ports::{Config, Kv, StoreError};
use serde::{Deserialize, Serialize};

pub const THRESHOLD_VARIABLE: &str = "circuit_breaker_failure_threshold";
pub const RESET_VARIABLE: &str = "circuit_breaker_reset_timeout";
pub const DEFAULT_THRESHOLD: u32 = 5;
pub const DEFAULT_RESET_MS: i64 = 30_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    pub threshold: u32,
    pub reset_ms: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { threshold: DEFAULT_THRESHOLD, reset_ms: DEFAULT_RESET_MS }
    }
}

/// The breaker's settings from configuration; a missing or malformed value is the default
/// (a breaker must never be what makes a download fail).
pub async fn settings(config: &impl Config) -> Settings {
    let read = |v: Result<Option<String>, StoreError>| v.ok().flatten().and_then(|s| s.trim().parse::<i64>().ok());
    let threshold = read(config.get(THRESHOLD_VARIABLE).await).filter(|n| (1..=1_000_000).contains(n)).map_or(DEFAULT_THRESHOLD, |n| n as u32);
    let reset_ms = read(config.get(RESET_VARIABLE).await).filter(|n| (1..=86_400_000).contains(n)).unwrap_or(DEFAULT_RESET_MS);
    Settings { threshold, reset_ms }
}

/// The store a breaker guards, as storage nodes name it.
pub fn store_name(kind: &str, binding: &str) -> String {
    format!("{kind}:{binding}")
}

pub fn key(kind: &str, binding: &str) -> String {
    format!("breaker/{}", store_name(kind, binding))
}

pub fn deactivated_key(kind: &str, binding: &str) -> String {
    format!("deactivated/{}", store_name(kind, binding))
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    failures: u32,
    opened_at: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Closed,
    Open { until_ms: i64 },
    HalfOpen,
}

/// A breaker as read at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Breaker {
    pub phase: Phase,
    pub failures: u32,
}

impl Breaker {
    /// Requests may go to the store (closed, or half-open: a probe).
    pub fn allows(&self) -> bool {
        !matches!(self.phase, Phase::Open { .. })
    }

    pub fn state(&self) -> &'static str {
        match self.phase {
            Phase::Closed => "closed",
            Phase::Open { .. } => "open",
            Phase::HalfOpen => "half-open",
        }
    }

    /// The breaker's view for `/health` and region details.
    pub fn view(&self) -> serde_json::Value {
        let mut v = serde_json::json!({ "state": self.state(), "failures": self.failures });
        if let Phase::Open { until_ms } = self.phase {
            v["retryAt"] = crate::time::rfc3339(until_ms).into();
        }
        v
    }
}

async fn record(kv: &impl Kv, kind: &str, binding: &str) -> Result<Option<Record>, StoreError> {
    Ok(kv.get(&key(kind, binding)).await?.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

fn phase_of(r: &Record, now_ms: i64, s: Settings) -> Phase {
    match r.opened_at {
        Some(at) if now_ms < at + s.reset_ms => Phase::Open { until_ms: at + s.reset_ms },
        Some(_) => Phase::HalfOpen,
        None => Phase::Closed,
    }
}

/// The store's breaker now.
pub async fn read(kv: &impl Kv, kind: &str, binding: &str, now_ms: i64, s: Settings) -> Result<Breaker, StoreError> {
    let r = record(kv, kind, binding).await?.unwrap_or_default();
    Ok(Breaker { phase: phase_of(&r, now_ms, s), failures: r.failures })
}

/// A request to the store failed: count it, and open (or re-open, after a failed probe) the
/// breaker at the threshold.
pub async fn failed(kv: &impl Kv, kind: &str, binding: &str, now_ms: i64, s: Settings) -> Result<Breaker, StoreError> {
    let mut r = record(kv, kind, binding).await?.unwrap_or_default();
    r.failures = r.failures.saturating_add(1);
    let reopen = matches!(phase_of(&r, now_ms, s), Phase::HalfOpen);
    if r.failures >= s.threshold && (r.opened_at.is_none() || reopen) {
        r.opened_at = Some(now_ms);
    }
    kv.set(&key(kind, binding), &serde_json::to_vec(&r).unwrap_or_default()).await?;
    Ok(Breaker { phase: phase_of(&r, now_ms, s), failures: r.failures })
}

/// A request to the store succeeded: the breaker closes (written only if it was not already).
pub async fn succeeded(kv: &impl Kv, kind: &str, binding: &str, was: &Breaker) -> Result<(), StoreError> {
    if was.failures > 0 || was.phase != Phase::Closed {
        kv.delete(&key(kind, binding)).await?;
    }
    Ok(())
}

/// Whether the store belongs to a deactivated region (no new blocks, no reads).
pub async fn deactivated(kv: &impl Kv, kind: &str, binding: &str) -> Result<bool, StoreError> {
    Ok(kv.get(&deactivated_key(kind, binding)).await?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct MemKv(RefCell<BTreeMap<String, Vec<u8>>>);
    impl Kv for MemKv {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.0.borrow().get(key).cloned())
        }
        async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
            self.0.borrow_mut().insert(key.into(), value.into());
            Ok(())
        }
        async fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.0.borrow_mut().remove(key);
            Ok(())
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
            Ok(self.0.borrow().keys().filter(|k| k.starts_with(prefix)).cloned().collect())
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[test]
    fn opens_at_the_threshold_half_opens_after_the_timeout_and_closes_on_success() {
        block_on(async {
            let kv = MemKv::default();
            let s = Settings { threshold: 3, reset_ms: 1000 };
            for n in 1..=2 {
                let b = failed(&kv, "s3", "home", 100, s).await.unwrap();
                assert_eq!((b.phase, b.failures), (Phase::Closed, n));
            }
            let b = failed(&kv, "s3", "home", 100, s).await.unwrap();
            assert_eq!(b.phase, Phase::Open { until_ms: 1100 });
            assert!(!read(&kv, "s3", "home", 1099, s).await.unwrap().allows());
            // Another store is not affected.
            assert!(read(&kv, "key-value", "blobs_eu", 1099, s).await.unwrap().allows());
            let probe = read(&kv, "s3", "home", 1100, s).await.unwrap();
            assert_eq!(probe.phase, Phase::HalfOpen);
            // A failed probe opens it for another timeout.
            assert_eq!(failed(&kv, "s3", "home", 1200, s).await.unwrap().phase, Phase::Open { until_ms: 2200 });
            let probe = read(&kv, "s3", "home", 2200, s).await.unwrap();
            succeeded(&kv, "s3", "home", &probe).await.unwrap();
            assert_eq!(read(&kv, "s3", "home", 2200, s).await.unwrap(), Breaker { phase: Phase::Closed, failures: 0 });
            assert!(kv.0.borrow().is_empty(), "a closed breaker leaves nothing behind");
        });
    }
}
