//! `GET /floor?gets=N`: the least a request that serves stored bytes can cost on a host,
//! measured with nothing of VaultX in it. It reads the key `floor-4k` from the key-value store
//! `blobs` N times (opened once per instance, as VaultX does) and answers the last value.
//! `gets=0` is an empty request: the host's own per-request cost. `PUT /floor` stores the body
//! as `floor-4k`.
//!
//! tests/bench/edge-hosts runs it on each host beside VaultX's own download.

use bytes::Bytes;
use http_body_util::Full;
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{IntoResponse, Request, StatusCode};
use spin_sdk::http_service;
use spin_sdk::key_value::Store;
use std::sync::{Arc, Mutex};

static STORE: Mutex<Option<Arc<Store>>> = Mutex::new(None);
const KEY: &str = "floor-4k";

async fn store() -> Arc<Store> {
    if let Some(s) = STORE.lock().unwrap().clone() {
        return s;
    }
    let s = Arc::new(Store::open("blobs").await.expect("the blobs store is granted"));
    *STORE.lock().unwrap() = Some(s.clone());
    s
}

fn param(query: &str, name: &str) -> u32 {
    query.split('&').filter_map(|p| p.split_once('=')).find(|(k, _)| *k == name).and_then(|(_, v)| v.parse().ok()).unwrap_or(0)
}

#[http_service]
async fn floor(request: Request) -> impl IntoResponse {
    let query = request.uri().query().unwrap_or("").to_owned();
    if request.method() == "PUT" {
        let bytes = request.into_body().bytes().await.unwrap_or_default();
        store().await.set(KEY, &bytes).await.expect("stored");
        return (StatusCode::NO_CONTENT, Full::new(Bytes::new()));
    }
    let mut body = Vec::new();
    for _ in 0..param(&query, "gets") {
        body = store().await.get(KEY).await.ok().flatten().unwrap_or_default();
    }
    (StatusCode::OK, Full::new(Bytes::from(body)))
}
