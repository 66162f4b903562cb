//! The audit spool on Spin: the download's access records go to a Redis stream (`XADD`, no
//! disk sync on the request path; Spin's key-value store commits every `set` with its own
//! syncs), and the verify consumer is woken at most once a second to move them into SQL in
//! batches (`vaultx_api::audit::drain`). Where no Redis is configured, while the configured
//! one does not answer, or where `audit_spool` is `key-value` (vaultx-runtime's default: its
//! key-value writes are group-committed), records go to the `audit` key-value store instead;
//! the drain takes from both, so a record is never dropped because Redis is down.

use crate::{AUDIT_STORE, SpinKv, open_store};
use spin_sdk::redis::{RedisParameter, RedisResult};
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use vaultx_core::ports::{KvSpool, Spool, StoreError};

/// The Redis stream holding access records until the drain moved them into SQL.
pub const AUDIT_STREAM: &str = "vaultx-audit";
/// The most undelivered records the stream keeps (`XADD … MAXLEN ~`): a bound on Redis's
/// memory (about 300 MB) should nothing drain it for a long time; older records are trimmed.
pub const AUDIT_STREAM_MAX: i64 = 1_000_000;
/// How long an instance spools to the key-value store after Redis failed it (no connection
/// attempt per download while Redis is down).
const REDIS_PAUSE_MS: i64 = 5_000;
/// A drainer is woken at most this often.
const WAKE_EVERY_MS: i64 = 1_000;
/// Receipts of records taken from the stream start with this; the rest are key-value keys.
const STREAM_RECEIPT: &str = "stream:";

pub struct SpinSpool {
    /// `redis_address`, when set: where records are taken from, and appended to unless
    /// `audit_spool` says `key-value`.
    pub(crate) redis: Option<String>,
    pub(crate) append_to_redis: bool,
}

/// Appends a record to the stream and, if no drainer was woken in the last second (a key
/// that expires), wakes one: one round trip per download, at most one wake-up a second
/// whatever the number of instances. KEYS: stream, wake key; ARGV: record, max length,
/// channel, message, wake period (ms).
const APPEND: &str = "redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[1]) \
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[5]) then redis.call('PUBLISH', ARGV[3], ARGV[4]) end \
return 1";
/// The key that says a drainer was woken within the last second.
const WAKE_KEY: &str = "vaultx-audit-woken";

/// Until when (Unix ms) this instance leaves Redis alone.
static REDIS_PAUSED_UNTIL_MS: AtomicI64 = AtomicI64::new(0);

fn now_ms() -> i64 {
    vaultx_core::ports::Clock::now_ms(&crate::SpinPlatform)
}

impl SpinSpool {
    async fn key_value(&self) -> Result<KvSpool<SpinKv>, StoreError> {
        open_store(AUDIT_STORE).await.map(|store| KvSpool(SpinKv(store)))
    }

    async fn append_to_stream(address: &str, record: &[u8]) -> Result<(), StoreError> {
        let text = |s: &str| RedisParameter::Binary(s.as_bytes().to_vec());
        let args = vec![
            text(APPEND),
            RedisParameter::Int64(2),
            text(AUDIT_STREAM),
            text(WAKE_KEY),
            RedisParameter::Binary(record.to_vec()),
            RedisParameter::Int64(AUDIT_STREAM_MAX),
            text(&vaultx_core::ports::job_channel(vaultx_core::ports::AUDIT_DRAINER)),
            RedisParameter::Binary(vaultx_core::ports::AUDIT_MESSAGE.to_vec()),
            RedisParameter::Int64(WAKE_EVERY_MS),
        ];
        crate::redis_link::execute(address, "EVAL", args).await.map(drop)
    }

    /// `XRANGE vaultx-audit - + COUNT n`, which Spin flattens to id, field, value, id, …
    async fn take_from_stream(address: &str, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let args = vec![
            RedisParameter::Binary(AUDIT_STREAM.into()),
            RedisParameter::Binary(b"-".to_vec()),
            RedisParameter::Binary(b"+".to_vec()),
            RedisParameter::Binary(b"COUNT".to_vec()),
            RedisParameter::Int64(limit as i64),
        ];
        // The wake key goes first: a record appended from now on wakes a drainer again, so
        // none waits behind a wake-up that this drain has already answered.
        crate::redis_link::execute(address, "DEL", vec![RedisParameter::Binary(WAKE_KEY.into())]).await?;
        let reply = crate::redis_link::execute(address, "XRANGE", args).await?;
        let mut records = Vec::new();
        for entry in reply.chunks(3) {
            match entry {
                [RedisResult::Binary(id), _field, RedisResult::Binary(value)] => {
                    records.push((format!("{STREAM_RECEIPT}{}", String::from_utf8_lossy(id)), value.clone()));
                }
                other => return Err(StoreError::Decode(format!("{AUDIT_STREAM}: an entry of {} values, not id, field, value", other.len()))),
            }
        }
        Ok(records)
    }
}

impl Spool for SpinSpool {
    async fn append(&self, key: &str, record: &[u8]) -> Result<(), StoreError> {
        if let (Some(address), true) = (&self.redis, self.append_to_redis)
            && now_ms() >= REDIS_PAUSED_UNTIL_MS.load(Relaxed)
        {
            match Self::append_to_stream(address, record).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    REDIS_PAUSED_UNTIL_MS.store(now_ms() + REDIS_PAUSE_MS, Relaxed);
                    eprintln!("vaultx: audit stream unavailable ({e}); records go to the key-value store for {REDIS_PAUSE_MS} ms");
                }
            }
        }
        self.key_value().await?.append(key, record).await
    }

    async fn take(&self, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut records = Vec::new();
        if let Some(address) = &self.redis {
            match Self::take_from_stream(address, limit).await {
                Ok(taken) => records = taken,
                // The key-value store's records still move.
                Err(e) => eprintln!("vaultx: audit stream not read ({e}); moving the key-value store's records"),
            }
        }
        if records.len() < limit {
            records.extend(self.key_value().await?.take(limit - records.len()).await?);
        }
        Ok(records)
    }

    async fn remove(&self, receipts: &[String]) -> Result<(), StoreError> {
        let (stream, key_value): (Vec<&String>, Vec<&String>) = receipts.iter().partition(|r| r.starts_with(STREAM_RECEIPT));
        if let (Some(address), false) = (&self.redis, stream.is_empty()) {
            let mut args = vec![RedisParameter::Binary(AUDIT_STREAM.into())];
            args.extend(stream.iter().map(|r| RedisParameter::Binary(r[STREAM_RECEIPT.len()..].as_bytes().to_vec())));
            crate::redis_link::execute(address, "XDEL", args).await?;
        }
        if !key_value.is_empty() {
            let keys: Vec<String> = key_value.into_iter().cloned().collect();
            self.key_value().await?.remove(&keys).await?;
        }
        Ok(())
    }
}
