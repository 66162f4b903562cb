//! `POST /sha256`: hashes the request body as it streams in with the same SHA-256 code the
//! upload path uses, and reports the bytes and the time spent hashing (not reading), so the
//! benchmark knows the most a guest could ever hash per second. It also times the chunk
//! CRC-64/NVME the upload path computes (`crcNanos`), to show what that second pass costs.

use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;
use std::time::{Duration, Instant};

#[http_service]
async fn hash(request: Request) -> impl IntoResponse {
    let mut body = request.into_body();
    let mut hasher = Sha256::new();
    let (mut bytes, mut hashing, mut crcing) = (0u64, Duration::ZERO, Duration::ZERO);
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme);
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            let t = Instant::now();
            hasher.update(&data);
            hashing += t.elapsed();
            let t = Instant::now();
            crc.update(&data);
            crcing += t.elapsed();
            bytes += data.len() as u64;
        }
    }
    let digest: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{{\"bytes\":{bytes},\"hashNanos\":{},\"crcNanos\":{},\"sha256\":\"{digest}\",\"crc64nvme\":{}}}",
        hashing.as_nanos(),
        crcing.as_nanos(),
        crc.finalize()
    )
}
