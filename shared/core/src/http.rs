//! The platform-neutral request and response every handler speaks. Adapters translate their
//! platform's HTTP types to and from these, so handlers never see spin-sdk or workers-rs.

use crate::problem::{Problem, ProblemKind};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Clone, Debug, Default)]
pub struct ApiRequest {
    /// The method exactly as sent: methods are case-sensitive (RFC 9110 §9.1), so `delete`
    /// is not `DELETE`.
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The client sent `HEAD`, which [`serve`] hands the route as `GET` (the S3 door needs
    /// the method as signed).
    pub sent_as_head: bool,
}

impl ApiRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The non-empty path segments: `/api/files/x` → `["api", "files", "x"]`.
    pub fn segments(&self) -> Vec<&str> {
        self.path.split('/').filter(|s| !s.is_empty()).collect()
    }

    /// Query parameters, percent-decoded (`+` is a space, as in forms).
    pub fn query_params(&self) -> Vec<(String, String)> {
        self.query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }

    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_params().into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// Rejects any method but the listed ones with 405 and an `Allow` header.
    pub fn expect_method(&self, allowed: &[&str]) -> Result<(), Problem> {
        if allowed.contains(&self.method.as_str()) {
            Ok(())
        } else {
            Err(Problem::method_not_allowed(&self.method, allowed))
        }
    }

    /// Parses a JSON object body: 415 unless the content type is JSON, 400 when the bytes are
    /// not JSON, 422 when they are JSON of the wrong shape (an array where an object belongs,
    /// an unknown or missing field, a wrong type), naming the field in `errors[]`. Details are
    /// ours, never a library's message.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        let content_type = self.header("content-type").unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if essence != "application/json" && !(essence.starts_with("application/") && essence.ends_with("+json")) {
            return Err(Problem::new(
                ProblemKind::UnsupportedMediaType,
                format!("expected Content-Type: application/json, got {:?}", content_type),
            ));
        }
        let value: serde_json::Value = serde_json::from_slice(&self.body).map_err(|e| {
            Problem::new(ProblemKind::MalformedJson, format!("the body is not valid JSON (line {}, column {})", e.line(), e.column()))
        })?;
        if !value.is_object() {
            return Err(Problem::validation(vec![crate::problem::FieldError { field: "body".into(), message: "must be a JSON object".into() }]));
        }
        // No text VaultX keeps may hold U+0000: PostgreSQL cannot store it, and SQLite would,
        // so the two backends would disagree (found by schemathesis: a 503 on PostgreSQL).
        if let Some(field) = nul_in(&value, String::new()) {
            return Err(Problem::validation(vec![field_error(field, "must not contain the character U+0000")]));
        }
        serde_path_to_error::deserialize(value).map_err(|e| Problem::validation(vec![field_error(e.path().to_string(), &e.into_inner().to_string())]))
    }

    /// The token of the one `Authorization: Bearer …` header. Two headers (or two values
    /// folded into one, as Fetch does) are a bad request, not "the first one wins".
    pub fn bearer_token(&self) -> Result<&str, Problem> {
        let mut values = self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("authorization"));
        let value = values
            .next()
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| Problem::new(ProblemKind::MissingToken, "send Authorization: Bearer <access token>"))?;
        if values.next().is_some() || value.contains(',') {
            return Err(Problem::new(ProblemKind::BadRequest, "send exactly one Authorization header"));
        }
        let (scheme, token) = value.trim().split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(Problem::new(ProblemKind::MissingToken, "the Authorization header must use the Bearer scheme"));
        }
        Ok(token.trim())
    }
}

/// A field error for a JSON body that has the wrong shape, in our words: serde's messages
/// name Rust types (`u64`, `struct NewFile`), which are none of the client's business.
fn field_error(path: String, message: &str) -> crate::problem::FieldError {
    let quoted = |m: &str| m.split('`').nth(1).map(str::to_owned);
    let at = |name: Option<String>| match (path.as_str(), name) {
        (".", Some(n)) => n,
        (p, Some(n)) => format!("{p}.{n}"),
        (p, None) => p.to_owned(),
    };
    let (field, message) = if message.starts_with("missing field") {
        (at(quoted(message)), "is required".to_owned())
    } else if message.starts_with("unknown field") {
        (path.clone(), "is not a field of this request".to_owned())
    } else if message.starts_with("duplicate field") {
        (path.clone(), "appears more than once".to_owned())
    } else {
        let expected = message.split(", expected ").nth(1).unwrap_or("");
        let what = if ["u64", "u32", "i64", "i32", "usize"].iter().any(|t| expected.starts_with(t)) {
            "must be a whole number in range"
        } else if expected.contains("bool") {
            "must be true or false"
        } else if expected.contains("string") || expected.contains("str") {
            "must be a string"
        } else if expected.contains("sequence") {
            "must be an array"
        } else if expected.contains("struct") || expected.contains("map") {
            "must be an object"
        } else {
            "has a value of the wrong type"
        };
        (path.clone(), what.to_owned())
    };
    crate::problem::FieldError { field: if field == "." { "body".into() } else { field }, message }
}

/// Whether `text` is a Host value we accept: `host[:port]`, the host a DNS name, an IPv4
/// address or a bracketed IPv6 literal (RFC 9112 §3.2, RFC 3986 §3.2.2). No userinfo, no path,
/// no query: the path a component acts on comes from the request line, never from here.
pub fn valid_host(text: &str) -> bool {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((literal, after)) = rest.split_once(']') else { return false };
        if literal.is_empty() || !literal.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("x", port),
                None => return false,
            },
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, port),
            None => (text, "0"),
        }
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        && !host.starts_with(['.', '-']);
    let port_ok = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u32>().is_ok_and(|p| p <= 65535);
    host_ok && port_ok
}

/// A slice `[start, end)` of one stored blob.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlobSlice {
    pub key: String,
    pub start: u64,
    pub end: u64,
    /// The stores holding the blob, `(kind, binding)`, in the order to read them
    /// ([`crate::failover`]); empty: the home store only.
    pub from: Vec<(String, String)>,
}

impl BlobSlice {
    pub fn new(key: impl Into<String>, start: u64, end: u64) -> Self {
        Self { key: key.into(), start, end, from: Vec::new() }
    }

    /// Reads the slice's bytes from `blobs`, or says why they cannot be had (a download is
    /// already under way by then: the adapter can only cut the body short).
    pub async fn read(&self, blobs: &impl crate::ports::Blobs) -> Result<Vec<u8>, String> {
        match blobs.get(&self.key).await {
            Ok(stored) => self.cut(stored),
            Err(e) => Err(format!("blob {}: {e}", self.key)),
        }
    }

    /// The slice out of the blob as stored (`None`: not there). A compressed block
    /// ([`crate::compression::STORED_SUFFIX`]) is inflated up to the slice's end, never
    /// further.
    pub fn cut(&self, stored: Option<Vec<u8>>) -> Result<Vec<u8>, String> {
        match stored {
            Some(packed) if self.key.ends_with(crate::compression::STORED_SUFFIX) => {
                let mut bytes = crate::compression::inflate_prefix(&packed, self.end as usize).map_err(|e| format!("blob {}: {e}", self.key))?;
                bytes.drain(..self.start as usize);
                Ok(bytes)
            }
            Some(mut bytes) if bytes.len() as u64 >= self.end => {
                bytes.truncate(self.end as usize);
                bytes.drain(..self.start as usize);
                Ok(bytes)
            }
            _ => Err(format!("blob {} is missing or short", self.key)),
        }
    }
}

/// A response body: bytes in hand, or blob slices the adapter streams one at a time, so a
/// large download never sits in memory whole.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    Bytes(Vec<u8>),
    Blobs(Vec<BlobSlice>),
}

impl Body {
    pub fn len(&self) -> u64 {
        match self {
            Self::Bytes(b) => b.len() as u64,
            Self::Blobs(slices) => slices.iter().map(|s| s.end - s.start).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of a `Bytes` body (empty for streamed ones). For tests and small bodies.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Self::Bytes(b) => b,
            Self::Blobs(_) => &[],
        }
    }
}

pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => {
                    out.push(b);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 3986 percent-encoding of everything but unreserved characters (for RFC 8187 values).
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// The request's log line (`vaultx_api::audit::audited` writes one for every request),
    /// which the adapter records once the body has been sent, with what was really sent:
    /// `bytesOut` (a count) and `complete` (false when the body was cut short).
    pub log: Option<LogLine>,
}

/// A request's log line: one JSON object per request on the platform's log (stdout on Spin,
/// the console on Workers). A struct, not a `serde_json::Value`: every request writes one,
/// and building a map of sixteen owned keys and values to serialise it was a tenth of a
/// small download's instructions in the guest.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    /// Always `request`.
    pub event: &'static str,
    /// RFC 3339, milliseconds, UTC.
    pub at: String,
    pub request_id: String,
    pub component: String,
    /// The route's pattern (`/api/files/download/:token`), never the path, which may hold a
    /// signed URL's token.
    pub route: &'static str,
    pub method: String,
    pub status: u16,
    pub duration_ms: f64,
    pub user_id: Option<String>,
    pub client: Option<String>,
    pub bytes_in: usize,
    /// The problem type's slug of a refusal.
    pub problem: Option<String>,
    /// What the download adds (its route sets them; the other routes' lines have no such
    /// members): the file, the `Range` asked for and the client's `User-Agent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// What the adapter adds once the body went out ([`log_done`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete: Option<bool>,
}

impl ApiResponse {
    pub fn json<T: Serialize>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self { status, headers: vec![("content-type".into(), "application/json".into())], body: Body::Bytes(body), log: None },
            Err(_) => Self::problem(&Problem::internal()),
        }
    }

    pub fn problem(problem: &Problem) -> Self {
        let mut headers = vec![("content-type".to_owned(), crate::problem::CONTENT_TYPE.to_owned())];
        headers.extend(problem.headers.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        Self { status: problem.status(), headers, body: Body::Bytes(problem.to_json()), log: None }
    }

    pub fn empty(status: u16) -> Self {
        Self { status, headers: Vec::new(), body: Body::Bytes(Vec::new()), log: None }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl From<Problem> for ApiResponse {
    fn from(p: Problem) -> Self {
        Self::problem(&p)
    }
}

/// A response's log line as recorded after its body went out: `sent` bytes, and whether
/// that was the whole body (a stream cut short by a missing blob or a client that left is not).
pub fn log_done(mut line: LogLine, sent: u64, complete: bool) -> LogLine {
    line.bytes_out = Some(sent);
    line.complete = Some(complete);
    line
}

/// Whether a response header's name is one the hosts take: a token (RFC 9110 §5.1), as
/// `http::HeaderName::from_bytes` checks it, but in place: that copies every name it checks,
/// and adapters check every header of every response before handing the list over (one
/// invalid name would make the host refuse the whole list).
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= u16::MAX as usize && name.bytes().all(|b| TOKEN[b as usize])
}

/// The bytes of a token, as a table: one load per byte in the guest.
static TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric() || matches!(b as u8, b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~');
        b += 1;
    }
    table
};

/// Whether a response header's value is one the hosts take: no control character but tab
/// (so no CR or LF: no header injection), as `http::HeaderValue::from_str` checks it, in place.
/// Eight bytes at a time: a word with no byte under 0x20 and none equal to 0x7f is fine as it
/// is (the test may flag a fine word, never pass a bad one; a flagged word is checked byte by
/// byte).
pub fn is_header_value(value: &str) -> bool {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    let allowed = |b: &u8| (*b >= 0x20 && *b != 0x7f) || *b == b'\t';
    let (words, rest) = value.as_bytes().as_chunks::<8>();
    words.iter().all(|word| {
        let x = u64::from_le_bytes(*word);
        let under_0x20 = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let del = x ^ (ONES * 0x7f);
        let is_del = del.wrapping_sub(ONES) & !del & HIGH;
        under_0x20 | is_del == 0 || word.iter().all(allowed)
    }) && rest.iter().all(allowed)
}

/// Records a response's log line when dropped: adapters keep one beside a streamed body,
/// count what they send into `sent`, and the line says how much really went out, whether the
/// stream ended, failed or the client went away.
pub struct LogOnDrop<F: FnMut(&LogLine)> {
    event: Option<LogLine>,
    pub sent: u64,
    total: u64,
    record: F,
}

impl<F: FnMut(&LogLine)> LogOnDrop<F> {
    pub fn new(event: Option<LogLine>, total: u64, record: F) -> Self {
        Self { event, sent: 0, total, record }
    }

    /// Records the event for a body handed over whole (bytes in hand, not a stream).
    pub fn sent_whole(mut self) {
        self.sent = self.total;
    }
}

impl<F: FnMut(&LogLine)> Drop for LogOnDrop<F> {
    fn drop(&mut self) {
        if let Some(event) = self.event.take() {
            (self.record)(&log_done(event, self.sent, self.sent == self.total));
        }
    }
}

/// The path (`tags[2]`, `set.key`) of the first key or string in `value` holding U+0000.
fn nul_in(value: &serde_json::Value, path: String) -> Option<String> {
    let join = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Some(if path.is_empty() { "body".into() } else { path }),
        serde_json::Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| nul_in(v, format!("{}[{i}]", if path.is_empty() { "body" } else { &path }))),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(k, v)| if k.contains('\0') { Some(join(&k.replace('\0', "\\u0000"))) } else { nul_in(v, join(k)) }),
        _ => None,
    }
}

/// Handlers return `Result<ApiResponse, Problem>` so `?` works; this folds it into a response.
pub fn respond(result: Result<ApiResponse, Problem>) -> ApiResponse {
    result.unwrap_or_else(|p| ApiResponse::problem(&p))
}

/// Runs a route handler the way every adapter does, on the request the adapter read (or the
/// problem reading it raised): `HEAD` is `GET` without the body (RFC 9110 §9.3.2), so no route
/// has to remember it, and the length of the body that would have been sent is kept as
/// `Content-Length`. Every response says `X-Content-Type-Options: nosniff`: user content must
/// never be sniffed into HTML.
pub async fn serve<F, Fut>(read: Result<ApiRequest, Problem>, handler: F) -> ApiResponse
where
    F: FnOnce(ApiRequest) -> Fut,
    Fut: std::future::Future<Output = ApiResponse>,
{
    let mut req = match read {
        Ok(req) => req,
        Err(problem) => return ApiResponse::problem(&problem).with_header("x-content-type-options", "nosniff"),
    };
    let head = req.method == "HEAD";
    if head {
        req.method = "GET".into();
        req.sent_as_head = true;
    }
    let mut response = handler(req).await.with_header("x-content-type-options", "nosniff");
    if head {
        if response.header("content-length").is_none() {
            let length = response.body.len().to_string();
            response.headers.push(("content-length".into(), length));
        }
        response.body = Body::Bytes(Vec::new());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(content_type: &str, body: &str) -> ApiRequest {
        ApiRequest {
            method: "POST".into(),
            headers: vec![("content-type".into(), content_type.into())],
            body: body.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Login {
        email: String,
    }

    #[test]
    fn json_bodies_need_a_json_content_type() {
        let err = req("text/plain", "{}").json::<Login>().unwrap_err();
        assert_eq!(err.status(), 415);
        assert!(req("application/json; charset=utf-8", r#"{"email":"a@b.c"}"#).json::<Login>().is_ok());
        assert!(req("application/merge-patch+json", r#"{"email":"a@b.c"}"#).json::<Login>().is_ok());
    }

    #[test]
    fn broken_json_is_400_and_wrong_shapes_are_422() {
        assert_eq!(req("application/json", "{\"email\":").json::<Login>().unwrap_err().status(), 400);
        assert_eq!(req("application/json", "{\"email\":3}").json::<Login>().unwrap_err().status(), 422);
        assert_eq!(req("application/json", "{}").json::<Login>().unwrap_err().status(), 422);
    }

    #[test]
    fn one_authorization_header_only() {
        let mut r = ApiRequest::default();
        r.headers.push(("authorization".into(), "Bearer a".into()));
        r.headers.push(("authorization".into(), "Bearer b".into()));
        assert_eq!(r.bearer_token().unwrap_err().status(), 400);
        r.headers.pop();
        r.headers[0].1 = "Bearer a, Bearer b".into();
        assert_eq!(r.bearer_token().unwrap_err().status(), 400, "two values folded into one");
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let mut r = ApiRequest::default();
        assert_eq!(r.bearer_token().unwrap_err().kind, ProblemKind::MissingToken);
        r.headers.push(("authorization".into(), "Basic abc".into()));
        assert_eq!(r.bearer_token().unwrap_err().kind, ProblemKind::MissingToken);
        r.headers[0].1 = "bearer  abc.def ".into();
        assert_eq!(r.bearer_token().unwrap(), "abc.def");
    }

    struct OneBlob;
    impl crate::ports::Blobs for OneBlob {
        async fn put(&self, _: &str, _: &[u8]) -> Result<(), crate::ports::StoreError> {
            Ok(())
        }
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, crate::ports::StoreError> {
            Ok((key == "b").then(|| b"0123456789".to_vec()))
        }
        async fn delete(&self, _: &str) -> Result<(), crate::ports::StoreError> {
            Ok(())
        }
        async fn list(&self) -> Result<Vec<String>, crate::ports::StoreError> {
            Ok(vec!["b".into()])
        }
    }

    #[test]
    fn blob_slices_read_their_bytes_or_fail() {
        let read = |key: &str, start, end| {
            let slice = BlobSlice::new(key, start, end);
            std::pin::pin!(slice.read(&OneBlob)).as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
        };
        use std::future::Future as _;
        assert_eq!(read("b", 2, 5), std::task::Poll::Ready(Ok(b"234".to_vec())));
        assert_eq!(read("b", 0, 10), std::task::Poll::Ready(Ok(b"0123456789".to_vec())));
        assert!(matches!(read("b", 5, 11), std::task::Poll::Ready(Err(_))), "short");
        assert!(matches!(read("x", 0, 1), std::task::Poll::Ready(Err(_))), "missing");
    }

    #[test]
    fn query_strings_are_decoded() {
        let r = ApiRequest { query: "sort=name&q=a%20b+c&bad=%zz&end=%4".into(), ..Default::default() };
        assert_eq!(r.query_param("sort").as_deref(), Some("name"));
        assert_eq!(r.query_param("q").as_deref(), Some("a b c"));
        assert_eq!(r.query_param("bad").as_deref(), Some("%zz"));
        assert_eq!(r.query_param("end").as_deref(), Some("%4"));
        assert_eq!(percent_encode("rapport été.pdf"), "rapport%20%C3%A9t%C3%A9.pdf");
    }

    #[test]
    fn a_log_line_says_what_was_really_sent() {
        let recorded = std::cell::RefCell::new(Vec::new());
        {
            let line = LogLine { event: "request", status: 200, ..Default::default() };
            let mut audit = LogOnDrop::new(Some(line), 100, |e: &LogLine| recorded.borrow_mut().push(serde_json::to_value(e).unwrap()));
            audit.sent += 40; // one blob went out, then the next was missing: the stream ends here
        }
        {
            let mut audit = LogOnDrop::new(Some(LogLine { event: "request", ..Default::default() }), 100, |e: &LogLine| recorded.borrow_mut().push(serde_json::to_value(e).unwrap()));
            audit.sent = 100;
        }
        let recorded = recorded.into_inner();
        assert_eq!((recorded[0]["bytesOut"].as_u64(), recorded[0]["complete"].as_bool()), (Some(40), Some(false)));
        assert_eq!((recorded[1]["bytesOut"].as_u64(), recorded[1]["complete"].as_bool()), (Some(100), Some(true)));
        assert_eq!(recorded[0]["status"], 200);
        // A route's own members are left out of a line whose route did not set them.
        assert!(recorded[0].get("fileId").is_none() && recorded[0].get("requestId").is_some(), "{}", recorded[0]);
    }

    #[test]
    fn header_names_and_values_are_checked_as_the_http_crate_checks_them() {
        for b in 0..=255u8 {
            let one = [b];
            let text = String::from_utf8_lossy(&one).into_owned();
            assert_eq!(is_header_name(&text), http::HeaderName::from_bytes(text.as_bytes()).is_ok(), "name byte {b}");
            assert_eq!(is_header_value(&text), http::HeaderValue::from_str(&text).is_ok(), "value byte {b}");
        }
        for name in ["content-type", "X-VaultX-File-Id", "", "bad name", "a:b", "é", &"a".repeat(70_000)] {
            assert_eq!(is_header_name(name), http::HeaderName::from_bytes(name.as_bytes()).is_ok(), "{name:.20}");
        }
        for value in ["attachment; filename=\"a.txt\"; filename*=UTF-8''%C3%A9", "a\r\nset-cookie: x", "tab\there", "rapport été", ""] {
            assert_eq!(is_header_value(value), http::HeaderValue::from_str(value).is_ok(), "{value:?}");
        }
        // Every byte at every place of a word and of the tail, between fine bytes of every
        // kind (ASCII, UTF-8, a tab).
        for filler in ["abcdefghijklmnopqrstuvw", "ééééééééééé", "\t\t\t\t\t\t\t\t\t\t\t\t"] {
            for at in 0..filler.len() {
                for b in (0..=255u8).filter(|b| b.is_ascii()) {
                    let mut bytes = filler.as_bytes().to_vec();
                    if !filler.is_char_boundary(at) || !filler.is_char_boundary(at + 1) {
                        continue;
                    }
                    bytes[at] = b;
                    let value = String::from_utf8(bytes).unwrap();
                    assert_eq!(is_header_value(&value), http::HeaderValue::from_str(&value).is_ok(), "{value:?}");
                }
            }
        }
    }

    #[test]
    fn json_text_may_not_hold_u0000() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Body {
            tags: Vec<String>,
        }
        let req = |body: &str| ApiRequest { headers: vec![("content-type".into(), "application/json".into())], body: body.as_bytes().to_vec(), ..Default::default() };
        let refused = req(r#"{"tags":["a","b\u0000c"]}"#).json::<Body>().unwrap_err();
        assert_eq!((refused.status(), refused.errors[0].field.as_str()), (422, "tags[1]"));
        assert!(req(r#"{"tags":["a","b\\u0000c"]}"#).json::<Body>().is_ok(), "an escaped backslash is not U+0000");
    }

    #[test]
    fn head_is_get_without_the_body() {
        let req = ApiRequest { method: "HEAD".into(), ..Default::default() };
        let seen = std::cell::RefCell::new(String::new());
        let run = serve(Ok(req), |r| {
            *seen.borrow_mut() = r.method.clone();
            async { ApiResponse::json(200, &serde_json::json!({"a": 1})) }
        });
        let r = std::pin::pin!(run).as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
        let std::task::Poll::Ready(r) = r else { panic!() };
        assert_eq!(seen.into_inner(), "GET");
        assert_eq!((r.body.len(), r.header("content-length"), r.header("x-content-type-options")), (0, Some("7"), Some("nosniff")));
    }

    #[test]
    fn json_bodies_are_objects_and_errors_are_in_our_words() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct New {
            name: String,
            size: u64,
        }
        let errors = |body: &str| req("application/json", body).json::<New>().unwrap_err().errors;
        assert_eq!(errors(r#"["a", 1]"#)[0].message, "must be a JSON object");
        assert_eq!(errors(r#"{"name":"a","size":1,"status":"x"}"#)[0].field, "status");
        assert_eq!(errors(r#"{"name":"a"}"#)[0], crate::problem::FieldError { field: "size".into(), message: "is required".into() });
        assert_eq!(errors(r#"{"name":"a","size":-1}"#)[0], crate::problem::FieldError { field: "size".into(), message: "must be a whole number in range".into() });
        let detail = req("application/json", "{\"name\":").json::<New>().unwrap_err().detail;
        assert_eq!(detail, "the body is not valid JSON (line 1, column 8)");
    }

    #[test]
    fn host_headers_name_a_host_and_nothing_else() {
        for good in ["localhost", "127.0.0.1:3000", "files.example.com", "[::1]:8080", "[::1]", "a-b.c_d:1"] {
            assert!(valid_host(good), "{good}");
        }
        for bad in ["", "x/api/files/C?", "x@y", "evil.example/", "a b", "h:", "h:99999", "h:+1", ":80", "[::1", "[zz]", "h?q", "h#f", ".x", "-x"] {
            assert!(!valid_host(bad), "{bad}");
        }
    }

    #[test]
    fn wrong_methods_get_405_with_allow() {
        let lower = ApiRequest { method: "delete".into(), ..Default::default() };
        assert_eq!(lower.expect_method(&["DELETE"]).unwrap_err().status(), 405, "methods are case-sensitive");
        let r = ApiRequest { method: "GET".into(), ..Default::default() };
        let p = r.expect_method(&["POST"]).unwrap_err();
        assert_eq!(p.status(), 405);
        assert_eq!(ApiResponse::problem(&p).header("allow"), Some("POST"));
    }
}
