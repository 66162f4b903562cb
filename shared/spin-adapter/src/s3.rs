//! Blobs in an S3-compatible bucket, over Spin's outbound HTTP. The requests are presigned
//! with AWS Signature V4 by `vaultx_core::s3`; the endpoint must be in the component's
//! `allowed_outbound_hosts` (`{{ s3_host }}` in `spin.toml`).

use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{EmptyBody, FullBody};
use vaultx_core::ports::{Blobs, Clock, StoreError};
use vaultx_core::s3::{S3Store, SignedRequest};

use crate::SpinPlatform;

pub struct S3Blobs(pub S3Store);

fn failed(store: &S3Store, what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("s3 store {:?}: {what}: {detail}", store.name))
}

/// Tries per request: a connection reset or a 5xx is retried (every request VaultX sends is
/// idempotent: content-addressed puts, gets, deletes), as S3 clients do.
const ATTEMPTS: u32 = 3;

impl S3Blobs {
    /// Sends a signed request, retrying transient failures; the status and the body, or why
    /// nothing came back.
    async fn send(&self, request: SignedRequest, body: Option<&[u8]>) -> Result<(u16, bytes::Bytes), StoreError> {
        let mut attempt = 1;
        loop {
            match self.send_once(&request, body).await {
                Ok((status, bytes)) if status < 500 || attempt == ATTEMPTS => return Ok((status, bytes)),
                Err(e) if attempt == ATTEMPTS => return Err(e),
                Ok((status, _)) => eprintln!("vaultx: s3 store {:?}: {} answered {status}; retrying", self.0.name, request.method),
                Err(e) => eprintln!("vaultx: {e}; retrying"),
            }
            // 10 ms, then 40 ms: the instance serves this one request, blocking it blocks no one else.
            std::thread::sleep(std::time::Duration::from_millis(10 * 4u64.pow(attempt - 1)));
            attempt += 1;
        }
    }

    async fn send_once(&self, request: &SignedRequest, body: Option<&[u8]>) -> Result<(u16, bytes::Bytes), StoreError> {
        let builder = http::Request::builder().method(request.method).uri(&request.url);
        let sent = match body {
            Some(bytes) => {
                let request = builder
                    .header("content-length", bytes.len())
                    .body(FullBody::new(bytes::Bytes::copy_from_slice(bytes)))
                    .map_err(|e| failed(&self.0, request.method, e))?;
                spin_sdk::http::send(request).await
            }
            None => {
                // Said outright: a body of unknown length goes out chunked, and an S3 server
                // may wait for its terminator (a chunked empty GET took s3s-fs ~45 ms more).
                let request = builder.header("content-length", 0).body(EmptyBody::new()).map_err(|e| failed(&self.0, request.method, e))?;
                spin_sdk::http::send(request).await
            }
        };
        let response = sent.map_err(|e| failed(&self.0, request.method, format!("{e:?}")))?;
        let status = response.status().as_u16();
        let bytes = response.into_body().bytes().await.map_err(|e| failed(&self.0, request.method, format!("reading the body: {e:?}")))?;
        Ok((status, bytes))
    }

    fn refused(&self, what: &str, status: u16, body: &[u8]) -> StoreError {
        // S3's error document names the cause (SignatureDoesNotMatch, NoSuchBucket, …).
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        failed(&self.0, what, format!("HTTP {status} {text}"))
    }

    /// The bucket answers and accepts the credentials.
    pub async fn probe(&self) -> Result<(), StoreError> {
        match self.send(self.0.head_bucket(SpinPlatform.now_ms()), None).await? {
            (200, _) => Ok(()),
            (status, body) => Err(self.refused("HeadBucket", status, &body)),
        }
    }
}

impl Blobs for S3Blobs {
    async fn put(&self, key: &str, data: &[u8]) -> Result<(), StoreError> {
        match self.send(self.0.put(key, SpinPlatform.now_ms()), Some(data)).await? {
            (200, _) => Ok(()),
            (status, body) => Err(self.refused("PutObject", status, &body)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.send(self.0.get(key, SpinPlatform.now_ms()), None).await? {
            (200, bytes) => Ok(Some(bytes.into())),
            (404, _) => Ok(None),
            (status, body) => Err(self.refused("GetObject", status, &body)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.send(self.0.delete(key, SpinPlatform.now_ms()), None).await? {
            (200 | 204 | 404, _) => Ok(()),
            (status, body) => Err(self.refused("DeleteObject", status, &body)),
        }
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let (status, body) = self.send(self.0.list(token.as_deref(), SpinPlatform.now_ms()), None).await?;
            if status != 200 {
                return Err(self.refused("ListObjectsV2", status, &body));
            }
            let (page, next) = vaultx_core::s3::parse_list(&String::from_utf8_lossy(&body)).map_err(|e| failed(&self.0, "ListObjectsV2", e))?;
            keys.extend(page);
            match next {
                Some(next) => token = Some(next),
                None => return Ok(keys),
            }
        }
    }
}
