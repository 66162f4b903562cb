//! The `wasi:http@0.3` handler of every route component, bound to the WASI types themselves.
//!
//! spin-sdk's `#[http_service]` turns the WASI request into an `http::Request` (a URI
//! builder, a `HeaderMap` filled header by header, host calls for the scheme, the authority,
//! the request options and, once more, the headers for `Content-Length`) and the response
//! back from an `http::Response`; we then copied that request once more into an
//! [`ApiRequest`]. Here the request's method, path and header list (`copy-all`) go straight
//! into the `ApiRequest`, and the response's headers go to the host in one `from-list`.

pub use spin_sdk::wasip3::http::types::{ErrorCode, Request, Response};
use spin_sdk::wasip3::http::types::{Fields, Method};
use spin_sdk::wasip3::wit_bindgen::StreamResult;
use spin_sdk::wasip3::{wit_future, wit_stream};
use vaultx_core::Problem;
use vaultx_core::http::{ApiRequest, ApiResponse, BlobSlice, Body, LogLine, LogOnDrop};
use vaultx_core::ports::AuditLog;
use vaultx_core::problem::ProblemKind;

use crate::SpinPlatform;

/// The most a request body read asks of the host at once.
const READ_SIZE: usize = 64 * 1024;

/// Reads the request, refusing bodies over `max_body` bytes with 413 before reading them
/// when `Content-Length` already tells, and as soon as the limit is crossed otherwise. A
/// route that takes no body (`max_body` 0) ignores one: a body cannot turn its 404 or 405
/// into a 413.
pub async fn read_request(request: Request, max_body: usize) -> Result<ApiRequest, Problem> {
    let method = method_name(request.get_method());
    let path_with_query = request.get_path_with_query().unwrap_or_else(|| "/".to_owned());
    let (path, query) = match path_with_query.split_once('?') {
        Some((path, query)) => (path.to_owned(), query.to_owned()),
        None => (path_with_query, String::new()),
    };
    // Header names come lower-cased from the host (they are `http::HeaderName`s there).
    let headers: Vec<(String, String)> = request
        .get_headers()
        .copy_all()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8(value).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())))
        .collect();
    // The authority (RFC 9112 §3.2: exactly host[:port]), as the bundled runtime checks it
    // before any component runs: a host whose server passes a malformed one on (the Spin
    // CLI's takes `Host: x@y`) must not act on the request.
    let authority = request.get_authority().or_else(|| headers.iter().find(|(name, _)| name == "host").map(|(_, v)| v.clone()));
    if authority.as_deref().is_some_and(|a| !vaultx_core::http::valid_host(a)) {
        return Err(Problem::new(ProblemKind::BadRequest, "the request's Host must be host[:port]"));
    }
    // wasi:http carries the authority apart from the headers; what reads the request as sent
    // (SigV4 signs `host`) finds it as a header, as on every other platform.
    let mut headers = headers;
    if let (Some(a), false) = (&authority, headers.iter().any(|(name, _)| name == "host")) {
        headers.push(("host".into(), a.clone()));
    }
    let declared = headers.iter().find(|(name, _)| name == "content-length").and_then(|(_, v)| v.trim().parse::<u64>().ok());
    if max_body > 0 && declared.is_some_and(|n| n > max_body as u64) {
        return Err(too_large(max_body));
    }
    let body = if max_body == 0 { Vec::new() } else { read_body(request, max_body, declared).await? };
    Ok(ApiRequest { method, path, query, headers, body, sent_as_head: false })
}

fn too_large(max_body: usize) -> Problem {
    Problem::new(ProblemKind::PayloadTooLarge, format!("this route accepts at most {max_body} bytes"))
}

/// As sent: methods are case-sensitive (RFC 9110 §9.1).
fn method_name(method: Method) -> String {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(other) => return other,
    }
    .to_owned()
}

/// The body, read into one buffer sized by `Content-Length` when sent, never past one byte
/// over `max_body`.
async fn read_body(request: Request, max_body: usize, declared: Option<u64>) -> Result<Vec<u8>, Problem> {
    // Kept until the body is read: dropping it tells the host we are done with the request.
    let (_handled, handled_reader) = wit_future::new(|| Ok(()));
    let (mut stream, trailers) = Request::consume_body(request, handled_reader);
    let mut body = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    loop {
        // One byte over the limit is enough to know it was crossed.
        let wanted = (max_body + 1 - body.len()).min(READ_SIZE);
        body.reserve(wanted);
        let (result, read) = stream.read(body).await;
        body = read;
        match result {
            StreamResult::Complete(_) if body.len() > max_body => return Err(too_large(max_body)),
            StreamResult::Complete(_) => {}
            StreamResult::Dropped | StreamResult::Cancelled => break,
        }
    }
    match trailers.await {
        Ok(_) => Ok(body),
        // The cause (a reset, a malformed chunked encoding) goes to our log, not the client.
        Err(e) => {
            eprintln!("vaultx: reading a request body: {e:?}");
            Err(Problem::new(ProblemKind::BadRequest, "the request body could not be read"))
        }
    }
}

/// The response for the host: status, headers (with `Content-Length`, so the host need not
/// chunk) and a body written by a task of its own, which goes on after the handler returns.
/// Headers the host would refuse are left out, as `http::HeaderMap` left them out before.
pub async fn into_response(api: ApiResponse) -> Result<Response, ErrorCode> {
    let length = api.body.len();
    let mut entries: Vec<(String, Vec<u8>)> = Vec::with_capacity(api.headers.len() + 1);
    if !api.headers.iter().any(|(name, _)| name == "content-length") {
        entries.push(("content-length".to_owned(), length.to_string().into_bytes()));
    }
    for (name, value) in api.headers {
        if vaultx_core::http::is_header_name(&name) && vaultx_core::http::is_header_value(&value) {
            entries.push((name, value.into_bytes()));
        }
    }
    let fields = Fields::from_list(&entries).map_err(|e| ErrorCode::InternalError(Some(format!("response headers: {e:?}"))))?;
    let audit = LogOnDrop::new(api.log, length, |line: &LogLine| SpinPlatform.record(line));
    // The writer's default, what the host sees when the body task drops it: the body ended
    // whole, with no trailers.
    let (ended, trailers) = wit_future::new(|| Ok(None));
    let response = match api.body {
        Body::Bytes(bytes) if bytes.is_empty() => {
            audit.sent_whole();
            drop(ended);
            Response::new(fields, None, trailers).0
        }
        Body::Bytes(bytes) => {
            audit.sent_whole();
            let (mut writer, contents) = wit_stream::new();
            spin_sdk::wasip3::spawn(async move {
                // What a client that left did not take is of no further use.
                let _ = writer.write_all(bytes).await;
                drop(writer);
                drop(ended);
            });
            Response::new(fields, Some(contents), trailers).0
        }
        Body::Blobs(slices) => {
            // The first blob is read before the response is handed over, so the host has the
            // head and the first bytes of the body at once: one segment for a small file. Spin's
            // server leaves Nagle's algorithm on, so a body that follows the head in a write of
            // its own waits for the client's delayed ACK (40 ms) before it leaves.
            let mut reader = vaultx_core::failover::Reader::new(SpinPlatform);
            let mut slices = slices.into_iter();
            let first = match slices.next() {
                Some(slice) => Some(reader.read(&slice).await),
                None => None,
            };
            let (writer, contents) = wit_stream::new();
            let response = Response::new(fields, Some(contents), trailers).0;
            spin_sdk::wasip3::spawn(stream_blobs(first, slices, reader, writer, ended, audit));
            // Let the writer offer its first bytes before the response is handed over.
            spin_sdk::wit_bindgen::yield_async().await;
            response
        }
    };
    // A new response's status is 200 (wasi:http `response.new`): most answers need no call.
    if api.status != 200 && response.set_status_code(api.status).is_err() {
        let _ = response.set_status_code(500);
    }
    Ok(response)
}

/// Streams blob slices, the first already read, one blob at a time while the next is read:
/// memory stays at two chunks however large the file. Each slice comes from the first of its
/// stores that serves it (`vaultx_core::failover`). The audit event goes out when the stream
/// ends or is dropped, with the bytes really sent.
async fn stream_blobs<F: FnMut(&LogLine)>(
    first: Option<Result<Vec<u8>, String>>,
    mut slices: std::vec::IntoIter<BlobSlice>,
    mut reader: vaultx_core::failover::Reader<SpinPlatform>,
    mut writer: spin_sdk::wasip3::wit_bindgen::StreamWriter<u8>,
    ended: spin_sdk::wasip3::wit_bindgen::FutureWriter<Result<Option<spin_sdk::wasip3::http::types::Trailers>, ErrorCode>>,
    mut audit: LogOnDrop<F>,
) {
    let mut current = first;
    while let Some(read) = current.take() {
        match read {
            Ok(bytes) => {
                let length = bytes.len();
                // The next blob is read while this one goes out.
                let next = slices.next();
                let (unsent, next) = futures_util::future::join(writer.write_all(bytes), async {
                    match &next {
                        Some(slice) => Some(reader.read(slice).await),
                        None => None,
                    }
                })
                .await;
                audit.sent += (length - unsent.len()) as u64;
                if !unsent.is_empty() {
                    // The client went away.
                    return;
                }
                current = next;
            }
            Err(e) => {
                // The response is already under way: a blob no store serves can only cut it
                // short, which the client sees as a body shorter than Content-Length (and the
                // audit event as incomplete).
                eprintln!("vaultx: download cut short: {e}");
                drop(writer);
                let _ = ended.write(Err(ErrorCode::InternalError(Some("download cut short".to_owned())))).await;
                return;
            }
        }
    }
    drop(writer);
    drop(ended);
}
