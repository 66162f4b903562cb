//! VaultX's S3 door: the S3 API, path-style (`/BUCKET/KEY`), over the same domain operations
//! as the REST routes (`vaultx_api::buckets`, `vaultx_api::objects`). An object written here is
//! a VaultX file: deduplicated, compressed, versioned and replicated by the same jobs, and
//! visible through `/api/files`.
//!
//! The S3 surface — parsing every operation, SigV4 (headers, presigned queries, aws-chunked
//! bodies), XML, S3's errors — is the `s3s` crate's. This crate gives it:
//! - [`handle`]: the component's entry point. It shares the host with `/api/…` and
//!   `/health…` (Spin routes those first; bucket names `api` and `health` are refused), so it is
//!   the deployment's catch-all: a request with no S3 signature at all gets the REST API's
//!   `404 not-found` problem document, as before.
//! - `auth`: access keys (`vaultx_api::access_keys`) as s3s's secret-key lookup.
//! - `ops/`: one module per S3 operation, named as s3s names it (`ops::put_object`).
//! - `errors`: a VaultX problem as S3's `<Error>`.
//!
//! Requests are read whole (up to [`MAX_BODY`]); objects stream out as blob slices, as the
//! edge download does.

mod auth;
mod errors;
mod ops;

use std::cell::RefCell;
use std::rc::Rc;

use s3s::{S3, S3Request, S3Response, S3Result};
use s3s::dto::*;
use send_wrapper::SendWrapper;
use vaultx_core::http::{ApiRequest, ApiResponse, Body};
use vaultx_core::ports::Platform;

/// The largest request body (a PutObject's content, a part's, or an XML document), in bytes.
/// Larger objects go up in parts (S3 clients switch to multipart uploads at 8 MiB by default).
pub const MAX_BODY: usize = 64 * 1024 * 1024 + 64 * 1024;

/// The route the door answers: the deployment's catch-all (`/api/…` and `/health…` are
/// matched first).
pub const ROUTE: &str = "/...";

/// The longest a presigned URL may live: 7 days, as S3.
pub const MAX_PRESIGNED_SECS: u64 = 7 * 24 * 3600;

/// What one request's operations share: the platform, and what the door learns on the way.
pub(crate) struct Cx<P> {
    pub p: P,
    /// The account whose access key signed the request (set by `auth`).
    pub owner: RefCell<Option<String>>,
    /// An object's content to stream instead of the body s3s serialised (GetObject).
    pub streamed: RefCell<Option<Body>>,
}

impl<P> Cx<P> {
    /// The signer's account: every operation but the anonymous ones (none here) has one.
    pub fn owner(&self) -> S3Result<String> {
        self.owner.borrow().clone().ok_or_else(|| s3s::s3_error!(AccessDenied, "sign the request with a VaultX access key"))
    }
}

/// s3s's operations on VaultX. s3s wants `Send` futures; a guest is single-threaded, and
/// `SendWrapper` checks at run time that nothing crosses threads.
struct VaultS3<P> {
    cx: SendWrapper<Rc<Cx<P>>>,
}

macro_rules! operations {
    ($($op:ident: $input:ident => $output:ident),* $(,)?) => {
        #[async_trait::async_trait]
        impl<P: Platform + 'static> S3 for VaultS3<P> {
            $(
                async fn $op(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    SendWrapper::new(ops::$op::run(&self.cx, req)).await
                }
            )*
        }
    };
}

operations! {
    list_buckets: ListBucketsInput => ListBucketsOutput,
    create_bucket: CreateBucketInput => CreateBucketOutput,
    head_bucket: HeadBucketInput => HeadBucketOutput,
    delete_bucket: DeleteBucketInput => DeleteBucketOutput,
    get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput,
    list_objects_v2: ListObjectsV2Input => ListObjectsV2Output,
    list_objects: ListObjectsInput => ListObjectsOutput,
    put_object: PutObjectInput => PutObjectOutput,
    get_object: GetObjectInput => GetObjectOutput,
    head_object: HeadObjectInput => HeadObjectOutput,
    delete_object: DeleteObjectInput => DeleteObjectOutput,
    delete_objects: DeleteObjectsInput => DeleteObjectsOutput,
    create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput,
    upload_part: UploadPartInput => UploadPartOutput,
    upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput,
    complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput,
    abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput,
    list_parts: ListPartsInput => ListPartsOutput,
    list_multipart_uploads: ListMultipartUploadsInput => ListMultipartUploadsOutput,
    copy_object: CopyObjectInput => CopyObjectOutput,
    get_object_tagging: GetObjectTaggingInput => GetObjectTaggingOutput,
    put_object_tagging: PutObjectTaggingInput => PutObjectTaggingOutput,
    delete_object_tagging: DeleteObjectTaggingInput => DeleteObjectTaggingOutput,
    get_bucket_versioning: GetBucketVersioningInput => GetBucketVersioningOutput,
    list_object_versions: ListObjectVersionsInput => ListObjectVersionsOutput,
}

/// Whether the request claims to be an S3 request: signed in its headers or its query (a
/// presigned URL), with SigV4 or the SigV2 that boto3 and aws-cli still presign with by
/// default. Anything else is not S3's to answer.
pub fn is_signed(req: &ApiRequest) -> bool {
    req.header("authorization").is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 ") || a.starts_with("AWS "))
        || req.query.split('&').any(|p| p.starts_with("X-Amz-Signature=") || p.starts_with("Signature="))
}

/// The S3 door: answers a signed request with s3s over VaultX, anything else with the REST
/// API's `404`.
pub async fn handle<P: Platform + Clone + 'static>(p: &P, req: ApiRequest) -> ApiResponse {
    if !is_signed(&req) {
        return vaultx_api::routes::not_found::handle(p, req).await;
    }
    // S3's longest presigned URL is a week; s3s takes any X-Amz-Expires.
    let expires = req.query_params().into_iter().find(|(k, _)| k == "X-Amz-Expires").map(|(_, v)| v);
    if expires.is_some_and(|v| v.parse::<u64>().is_ok_and(|secs| secs > MAX_PRESIGNED_SECS)) {
        return errors::response(400, "AuthorizationQueryParametersError", "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds");
    }
    let cx = Rc::new(Cx { p: p.clone(), owner: RefCell::default(), streamed: RefCell::default() });
    let mut builder = s3s::service::S3ServiceBuilder::new(VaultS3 { cx: SendWrapper::new(cx.clone()) });
    builder.set_auth(auth::Keys { cx: SendWrapper::new(cx.clone()) });
    let service = builder.build();
    // A host may rewrite Accept-Encoding before the request reaches us (workerd turns `gzip`
    // into `br, gzip`), which breaks a signature that covers it (Go's S3 clients sign it: rclone,
    // restic). Such a request failing its signature is checked once more with `gzip`, the
    // value those clients send; it still needs a valid signature, and the header changes no
    // operation.
    let again = signs_accept_encoding(&req).then(|| req.clone());
    let (mut parts, mut body) = match call(&service, req).await {
        Ok(answer) => answer,
        Err(response) => return response,
    };
    let bad_signature = parts.status == http::StatusCode::FORBIDDEN && contains(&body, b"<Code>SignatureDoesNotMatch</Code>");
    if let Some(mut again) = again.filter(|a| bad_signature && a.header("accept-encoding") != Some("gzip")) {
        again.headers.retain(|(name, _)| name != "accept-encoding");
        again.headers.push(("accept-encoding".into(), "gzip".into()));
        cx.streamed.borrow_mut().take();
        (parts, body) = match call(&service, again).await {
            Ok(answer) => answer,
            Err(response) => return response,
        };
    }
    // A 304 has no body (RFC 9110 §15.4.5): s3s writes its error document anyway, which some
    // hosts (workerd) refuse to send.
    if parts.status == http::StatusCode::NOT_MODIFIED {
        let headers = parts.headers.iter().filter(|(name, _)| *name != http::header::CONTENT_LENGTH && *name != http::header::CONTENT_TYPE);
        let headers = headers.map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned())).collect();
        return ApiResponse { status: 304, headers, body: Body::Bytes(Vec::new()), log: None };
    }
    let body = match cx.streamed.borrow_mut().take() {
        Some(streamed) => streamed,
        None => Body::Bytes(body),
    };
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| *name != http::header::CONTENT_LENGTH && *name != http::header::TRANSFER_ENCODING)
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    // The length is the body's, as on every route (a HEAD's is kept by the adapter).
    let declared = parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut response = ApiResponse { status: parts.status.as_u16(), headers, body, log: None };
    if let (Some(length), true) = (declared, response.body.is_empty()) {
        if length != "0" {
            response.headers.push(("content-length".into(), length));
        }
    }
    response
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether the request's SigV4 signature covers `Accept-Encoding`.
fn signs_accept_encoding(req: &ApiRequest) -> bool {
    let signed = |list: &str| list.split(';').any(|h| h.trim().eq_ignore_ascii_case("accept-encoding"));
    req.header("authorization").and_then(|a| a.split("SignedHeaders=").nth(1)).is_some_and(|rest| signed(rest.split(',').next().unwrap_or("")))
        || req.query_params().iter().any(|(k, v)| k == "X-Amz-SignedHeaders" && signed(v))
}

/// One pass through s3s: the response head and its body (s3s's, read whole), or the answer
/// when s3s could not make one.
async fn call(service: &s3s::service::S3Service, req: ApiRequest) -> Result<(http::response::Parts, Vec<u8>), ApiResponse> {
    let request = to_http(req).map_err(|message| errors::response(400, "InvalidRequest", &message))?;
    let response = service.call(request).await.map_err(|e| {
        eprintln!("vaultx: s3: {e:?}");
        errors::response(500, "InternalError", "We encountered an internal error. Please try again.")
    })?;
    let (parts, body) = response.into_parts();
    match http_body_util::BodyExt::collect(body).await {
        Ok(collected) => Ok((parts, collected.to_bytes().to_vec())),
        Err(e) => {
            eprintln!("vaultx: s3: reading the response: {e}");
            Err(errors::response(500, "InternalError", "We encountered an internal error. Please try again."))
        }
    }
}

fn to_http(req: ApiRequest) -> Result<http::Request<s3s::Body>, String> {
    let uri = if req.query.is_empty() { req.path.clone() } else { format!("{}?{}", req.path, req.query) };
    // SigV4 signs the method as sent.
    let method = if req.sent_as_head { "HEAD" } else { req.method.as_str() };
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in &req.headers {
        // The host's own headers are not the client's.
        if name.starts_with("spin-") {
            continue;
        }
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder.body(s3s::Body::from(bytes::Bytes::from(req.body))).map_err(|e| format!("the request cannot be read: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str, authorization: Option<&str>) -> ApiRequest {
        ApiRequest { method: "GET".into(), path: "/b/k".into(), query: query.into(), headers: authorization.map(|a| vec![("authorization".into(), a.into())]).unwrap_or_default(), ..Default::default() }
    }

    #[test]
    fn only_a_signed_request_is_s3s() {
        assert!(is_signed(&request("", Some("AWS4-HMAC-SHA256 Credential=VX/20261207/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"))));
        assert!(is_signed(&request("", Some("AWS VX:c2ln"))));
        assert!(is_signed(&request("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00", None)));
        assert!(is_signed(&request("AWSAccessKeyId=VX&Expires=1&Signature=c2ln", None)));
        assert!(!is_signed(&request("", None)));
        assert!(!is_signed(&request("", Some("Bearer eyJ"))));
        assert!(!is_signed(&request("list-type=2", None)));
    }

    #[test]
    fn a_signature_over_accept_encoding_is_recognised_in_headers_and_queries() {
        let header = |signed: &str| request("", Some(&format!("AWS4-HMAC-SHA256 Credential=VX/20261207/us-east-1/s3/aws4_request, SignedHeaders={signed}, Signature=00")));
        assert!(signs_accept_encoding(&header("accept-encoding;host;x-amz-date")));
        assert!(!signs_accept_encoding(&header("host;x-amz-content-sha256;x-amz-date")));
        assert!(signs_accept_encoding(&request("X-Amz-SignedHeaders=accept-encoding%3Bhost&X-Amz-Signature=00", None)));
        assert!(!signs_accept_encoding(&request("X-Amz-SignedHeaders=host&X-Amz-Signature=00", None)));
    }

    #[test]
    fn listed_keys_are_url_encoded_as_s3_clients_decode_them() {
        assert_eq!(ops::url_encoded("a b/c+d%é.txt", true), "a%20b/c%2Bd%25%C3%A9.txt");
        assert_eq!(ops::url_encoded("a b", false), "a b");
    }
}
