//! One outbound Redis connection per instance and address. Spin opens a new TCP connection
//! (and handshake) for every `open`; an instance answers many requests, so it keeps the one it
//! opened, and forgets it when a command fails (Redis restarted), retrying once on a new one.

use spin_sdk::redis::{Connection, RedisParameter, RedisResult};
use std::sync::{Arc, Mutex};
use vaultx_core::ports::StoreError;

static KEPT: Mutex<Option<(String, Arc<Connection>)>> = Mutex::new(None);

fn error(address: &str, e: spin_sdk::redis::Error) -> StoreError {
    StoreError::Unavailable(format!("redis {address}: {e:?}"))
}

async fn connection(address: &str, fresh: bool) -> Result<Arc<Connection>, StoreError> {
    if !fresh
        && let Some((kept_address, conn)) = KEPT.lock().ok().and_then(|k| k.clone())
        && kept_address == address
    {
        return Ok(conn);
    }
    let conn = Arc::new(Connection::open(address).await.map_err(|e| error(address, e))?);
    if let Ok(mut kept) = KEPT.lock() {
        *kept = Some((address.to_owned(), conn.clone()));
    }
    Ok(conn)
}

fn forget() {
    if let Ok(mut kept) = KEPT.lock() {
        *kept = None;
    }
}

/// Runs `command` on the kept connection, or once more on a new one if that failed (a kept
/// connection may have died with a Redis restart; a command that reached Redis and failed
/// there fails again the same way).
pub async fn execute(address: &str, command: &str, args: Vec<RedisParameter>) -> Result<Vec<RedisResult>, StoreError> {
    let conn = connection(address, false).await?;
    match conn.execute(command, args.clone()).await {
        Ok(reply) => Ok(reply),
        Err(_) => {
            forget();
            let conn = connection(address, true).await?;
            conn.execute(command, args).await.map_err(|e| {
                forget();
                error(address, e)
            })
        }
    }
}

pub async fn publish(address: &str, channel: &str, payload: &[u8]) -> Result<(), StoreError> {
    let args = vec![RedisParameter::Binary(channel.as_bytes().to_vec()), RedisParameter::Binary(payload.to_vec())];
    execute(address, "PUBLISH", args).await.map(drop)
}
