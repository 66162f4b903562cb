//! `POST /api/files/:id/chunks/:index` — upload one chunk, as `multipart/form-data` with the
//! field `chunk` (the seed's `curl -F chunk=@part`) or as a raw `application/octet-stream`
//! body. Every chunk but the last must be exactly the file's chunk size, the last the
//! remainder. An RFC 9530 `Content-Digest: sha-256=:…:` over the request content, if sent, must
//! match, or nothing is stored. Chunks may arrive in any order and in parallel; re-sending one
//! is harmless. When the last missing chunk arrives the file is verified and becomes
//! `available`.
//!
//! Response: `201` (stored) or `200` (already had it) with `{fileId, index, size, sha256,
//! digest, status, receivedChunks, totalChunks}`; `digest` is the server's `sha-256=:…:`.

use super::Call;
use crate::lifecycle;
use crate::store::store_failure;
use crate::files::{self, UPLOADING};
use bytes::Bytes;
use serde::Serialize;
use vaultx_core::chunks::MAX_CHUNK_SIZE;
use vaultx_core::digest::{content_digest, hex, parse_sha256_member, sha256};
use vaultx_core::http::{ApiRequest, ApiResponse, respond};
use vaultx_core::ports::{Platform, Sql, SqlValue};
use vaultx_core::problem::{FieldError, ProblemKind};
use vaultx_core::{Problem, validation};

/// The largest chunk size we allow, plus room for multipart framing.
pub const MAX_BODY: usize = MAX_CHUNK_SIZE as usize + 64 * 1024;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    file_id: String,
    index: u64,
    size: u64,
    sha256: String,
    digest: String,
    status: String,
    received_chunks: u64,
    total_chunks: u64,
}

pub async fn handle<P: Platform>(p: &P, req: ApiRequest) -> ApiResponse {
    respond(run(p, req).await)
}

fn essence(req: &ApiRequest) -> String {
    let content_type = req.header("content-type").unwrap_or("application/octet-stream");
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Whether the body is the chunk itself (not a form around it).
fn is_raw(req: &ApiRequest) -> bool {
    essence(req) == "application/octet-stream"
}

fn check_digest(actual: [u8; 32], claimed: [u8; 32]) -> Result<(), Problem> {
    if actual == claimed {
        return Ok(());
    }
    Err(Problem::new(
        ProblemKind::DigestMismatch,
        format!("the content's SHA-256 is {}, not {}; nothing was stored", content_digest(&actual), content_digest(&claimed)),
    ))
}

/// The chunk's bytes from a multipart form (field `chunk`) or a raw body.
async fn chunk_bytes(req: ApiRequest) -> Result<Bytes, Problem> {
    let content_type = req.header("content-type").unwrap_or("application/octet-stream").to_owned();
    let essence = essence(&req);
    match essence.as_str() {
        "multipart/form-data" => {
            let boundary = multer::parse_boundary(&content_type)
                .map_err(|_| Problem::validation(vec![FieldError { field: "content-type".into(), message: "multipart/form-data needs a boundary parameter".into() }]))?;
            let body = Bytes::from(req.body);
            let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
            let mut form = multer::Multipart::new(stream, boundary);
            let malformed = |_: multer::Error| Problem::validation(vec![FieldError { field: "body".into(), message: "is not a well-formed multipart/form-data body".into() }]);
            let mut chunk = None;
            while let Some(field) = form.next_field().await.map_err(malformed)? {
                if field.name() == Some("chunk") {
                    let bytes = field.bytes().await.map_err(malformed)?;
                    if chunk.replace(bytes).is_some() {
                        return Err(Problem::validation(vec![FieldError { field: "chunk".into(), message: "appears more than once; send one chunk per request".into() }]));
                    }
                }
            }
            chunk.ok_or_else(|| Problem::validation(vec![FieldError { field: "chunk".into(), message: "the multipart form has no field named chunk".into() }]))
        }
        "application/octet-stream" => Ok(Bytes::from(req.body)),
        _ => Err(Problem::new(
            ProblemKind::UnsupportedMediaType,
            format!("send the chunk as multipart/form-data (field chunk) or application/octet-stream, not {content_type:?}"),
        )),
    }
}

async fn run<P: Platform>(p: &P, req: ApiRequest) -> Result<ApiResponse, Problem> {
    let call = Call::user(p, req, &["POST", "PUT"]).await?;
    let segments = call.req.segments();
    let (id, index_text) = (segments.get(2).copied().unwrap_or(""), segments.get(4).copied().unwrap_or(""));
    let file = files::find_owned(&call.db, &call.user.user_id, id).await?;
    if file.status != UPLOADING {
        return Err(Problem::new(ProblemKind::FileNotUploading, format!("file {id} is {}; its chunks can no longer change", file.status)));
    }
    let index = validation::chunk_index(index_text)
        .ok_or_else(|| Problem::new(ProblemKind::ChunkOutOfRange, format!("chunk index {index_text:?} is not a whole number in canonical form (0, 1, 2, …)")))?;
    let expected = file.plan().expected_len(index).map_err(|m| Problem::new(ProblemKind::ChunkOutOfRange, m))?;

    // Content-Digest covers the request content as sent (RFC 9530). For a raw body that is
    // the chunk itself, so one hash serves both checks; a multipart body is hashed as sent.
    let claimed = match call.req.header("content-digest") {
        Some(field) => match parse_sha256_member(field).map_err(|m| Problem::new(ProblemKind::DigestMismatch, format!("Content-Digest: {m}")))? {
            Some(claimed) => Some(claimed),
            None => return Err(Problem::new(ProblemKind::DigestMismatch, "Content-Digest must include sha-256")),
        },
        None => None,
    };
    let raw = is_raw(&call.req);
    if let Some(claimed) = claimed.filter(|_| !raw) {
        check_digest(sha256(&call.req.body), claimed)?;
    }
    let data = chunk_bytes(call.req).await?;
    let digest = sha256(&data);
    if let Some(claimed) = claimed.filter(|_| raw) {
        check_digest(digest, claimed)?;
    }
    if data.len() as u64 != expected {
        return Err(Problem::new(
            ProblemKind::WrongChunkSize,
            format!("chunk {index} must be exactly {expected} bytes (chunk size {}), got {}", file.chunk_size, data.len()),
        ));
    }
    // The file reserved its size at creation; this stops uploads when a quota was lowered
    // since (before a byte is stored).
    crate::quotas::check_chunk(p, &call.db, &call.user.user_id).await?;
    let kv = p.kv().await.map_err(store_failure)?;
    let store = p.blobs().await.map_err(store_failure)?;
    let had_it = lifecycle::store_chunk(p, &call.db, &kv, &store, &file, index, &data, &digest).await?;

    let count = call.db
        .query("SELECT count(*) FROM file_chunks WHERE file_id = ?", vec![SqlValue::Text(file.id.clone())])
        .await
        .map_err(store_failure)?;
    let received = count.first().map(|r| r.int(0)).transpose().map_err(store_failure)?.unwrap_or(0) as u64;
    let mut status = file.status.clone();
    if received == file.plan().count() {
        // Also when this chunk was already there: re-sending one is how a client whose
        // completion was interrupted (a crash between the last chunk and the flip) finishes.
        if let lifecycle::Completion::Available(done) = lifecycle::complete(&call.db, &store, &kv, p, p.now_ms(), &file.id).await? {
            status = done.status;
        }
    }
    let stored = Stored {
        file_id: file.id.clone(),
        index,
        size: expected,
        sha256: hex(&digest),
        digest: content_digest(&digest),
        status,
        received_chunks: received,
        total_chunks: file.plan().count(),
    };
    Ok(ApiResponse::json(if had_it { 200 } else { 201 }, &stored))
}
