//! Every failure VaultX reports is an RFC 9457 problem document (`application/problem+json`).
//! The `type` is a stable URN per kind of failure, so clients can branch on it without
//! parsing prose; `title` is fixed per type, `detail` says what was wrong with this request.

use serde::Serialize;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// The kinds of failure VaultX reports. The slug is part of the public contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    MalformedJson,
    UnsupportedMediaType,
    PayloadTooLarge,
    Validation,
    MissingToken,
    InvalidToken,
    ExpiredToken,
    InvalidCredentials,
    EmailTaken,
    NotFound,
    MethodNotAllowed,
    NotReady,
    Internal,
    InvalidQuery,
    FileNotUploading,
    FileNotAvailable,
    ChunkOutOfRange,
    WrongChunkSize,
    DigestMismatch,
    ChecksumMismatch,
    InvalidUrl,
    ExpiredUrl,
    Busy,
    /// A strongly replicated write could not reach every target region.
    ReplicaUnavailable,
    /// A store the request needs (the metadata database, a blob store) is unreachable.
    StoreUnavailable,
    /// The home region is deactivated: it takes no new blocks.
    RegionDeactivated,
    RangeNotSatisfiable,
    BadRequest,
    PreconditionFailed,
    FileGone,
    ChunksMissing,
    Forbidden,
    MisdirectedRequest,
    JobNotDead,
    Conflict,
    FileArchived,
    QuotaExceeded,
    /// A per-account limit other than the storage quota (e.g. access keys).
    LimitExceeded,
    /// The deployment has not configured what this request needs.
    NotConfigured,
}

impl ProblemKind {
    pub fn status(self) -> u16 {
        match self {
            Self::MalformedJson => 400,
            Self::UnsupportedMediaType => 415,
            Self::PayloadTooLarge => 413,
            Self::Validation => 422,
            Self::MissingToken | Self::InvalidToken | Self::ExpiredToken => 401,
            Self::InvalidCredentials => 401,
            Self::EmailTaken => 409,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::NotReady => 503,
            Self::Internal => 500,
            Self::InvalidQuery => 400,
            Self::FileNotUploading | Self::FileNotAvailable => 409,
            Self::ChunkOutOfRange | Self::WrongChunkSize | Self::ChecksumMismatch => 422,
            Self::DigestMismatch => 400,
            Self::InvalidUrl | Self::ExpiredUrl => 403,
            Self::Busy | Self::ReplicaUnavailable | Self::StoreUnavailable | Self::RegionDeactivated => 503,
            Self::RangeNotSatisfiable => 416,
            Self::BadRequest => 400,
            Self::PreconditionFailed => 412,
            Self::FileGone => 404,
            Self::ChunksMissing => 409,
            Self::Forbidden => 403,
            Self::MisdirectedRequest => 421,
            Self::JobNotDead => 409,
            Self::Conflict => 409,
            // As S3 answers for an archived (Glacier) object: InvalidObjectState, 403.
            Self::FileArchived => 403,
            // Insufficient Storage (RFC 4918 §11.5): the request is fine, the account is full.
            Self::QuotaExceeded => 507,
            Self::LimitExceeded => 409,
            Self::NotConfigured => 503,
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed-json",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::PayloadTooLarge => "payload-too-large",
            Self::Validation => "validation-failed",
            Self::MissingToken => "missing-token",
            Self::InvalidToken => "invalid-token",
            Self::ExpiredToken => "expired-token",
            Self::InvalidCredentials => "invalid-credentials",
            Self::EmailTaken => "email-taken",
            Self::NotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::NotReady => "not-ready",
            Self::Internal => "internal",
            Self::InvalidQuery => "invalid-query",
            Self::FileNotUploading => "file-not-uploading",
            Self::FileNotAvailable => "file-not-available",
            Self::ChunkOutOfRange => "chunk-out-of-range",
            Self::WrongChunkSize => "wrong-chunk-size",
            Self::DigestMismatch => "digest-mismatch",
            Self::ChecksumMismatch => "checksum-mismatch",
            Self::InvalidUrl => "invalid-signed-url",
            Self::ExpiredUrl => "expired-signed-url",
            Self::Busy => "busy",
            Self::ReplicaUnavailable => "replica-unavailable",
            Self::StoreUnavailable => "store-unavailable",
            Self::RegionDeactivated => "region-deactivated",
            Self::RangeNotSatisfiable => "range-not-satisfiable",
            Self::BadRequest => "bad-request",
            Self::PreconditionFailed => "precondition-failed",
            Self::FileGone => "file-gone",
            Self::ChunksMissing => "chunks-missing",
            Self::Forbidden => "forbidden",
            Self::MisdirectedRequest => "misdirected-request",
            Self::JobNotDead => "job-not-dead",
            Self::Conflict => "conflict",
            Self::FileArchived => "file-archived",
            Self::QuotaExceeded => "quota-exceeded",
            Self::LimitExceeded => "limit-exceeded",
            Self::NotConfigured => "not-configured",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::MalformedJson => "The request body is not valid JSON",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::PayloadTooLarge => "The request body is too large",
            Self::Validation => "The request is not valid",
            Self::MissingToken => "Authentication required",
            Self::InvalidToken => "The access token is not valid",
            Self::ExpiredToken => "The access token has expired",
            Self::InvalidCredentials => "Invalid email or password",
            Self::EmailTaken => "That email is already registered",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::NotReady => "Not ready",
            Self::Internal => "Internal error",
            Self::InvalidQuery => "The query string is not valid",
            Self::FileNotUploading => "The file is no longer accepting chunks",
            Self::FileNotAvailable => "The file is not available yet",
            Self::ChunkOutOfRange => "No such chunk index for this file",
            Self::WrongChunkSize => "The chunk has the wrong size",
            Self::DigestMismatch => "The content does not match its digest",
            Self::ChecksumMismatch => "The file does not match its checksum",
            Self::InvalidUrl => "The signed URL is not valid",
            Self::ExpiredUrl => "The signed URL has expired",
            Self::Busy => "Busy, try again",
            Self::ReplicaUnavailable => "A target region cannot take the write now",
            Self::StoreUnavailable => "A store is unreachable, try again",
            Self::RegionDeactivated => "The region takes no new blocks",
            Self::RangeNotSatisfiable => "The range is outside the file",
            Self::BadRequest => "Bad request",
            Self::PreconditionFailed => "A precondition of the request does not hold",
            Self::FileGone => "The file this URL was issued for no longer exists",
            Self::ChunksMissing => "Chunks are still missing",
            Self::Forbidden => "Not allowed for this account",
            Self::MisdirectedRequest => "This deployment does not serve that host",
            Self::JobNotDead => "Only a dead job can be retried",
            Self::Conflict => "The request conflicts with the file's state",
            Self::FileArchived => "The file is archived",
            Self::QuotaExceeded => "The account's storage quota would be exceeded",
            Self::LimitExceeded => "A limit of the account is reached",
            Self::NotConfigured => "This deployment has not configured what the request needs",
        }
    }

    pub fn type_uri(self) -> String {
        format!("urn:vaultx:problem:{}", self.slug())
    }
}

/// One field that failed validation (the `errors` extension member).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Extra response headers the problem implies (`Allow`, `WWW-Authenticate`, …).
    pub headers: Vec<(&'static str, String)>,
}

#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'static str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

impl Problem {
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        let mut problem = Self { kind, detail: detail.into(), errors: Vec::new(), headers: Vec::new() };
        if kind.status() == 401 {
            // RFC 6750 §3: a 401 names the scheme the client should use.
            let error = if kind == ProblemKind::MissingToken { "" } else { ", error=\"invalid_token\"" };
            problem.headers.push(("www-authenticate", format!("Bearer realm=\"vaultx\"{error}")));
        }
        problem
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
        Self { errors, ..Self::new(ProblemKind::Validation, detail) }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::NotFound, detail)
    }

    /// 405 with `Allow`. Wherever GET is allowed HEAD is too (adapters answer HEAD by running
    /// GET and dropping the body), so it is listed. Methods are case-sensitive (RFC 9110 §9.1).
    pub fn method_not_allowed(method: &str, allowed: &[&str]) -> Self {
        let mut allow: Vec<&str> = allowed.to_vec();
        if allow.contains(&"GET") && !allow.contains(&"HEAD") {
            allow.insert(allow.iter().position(|m| *m == "GET").unwrap_or(0) + 1, "HEAD");
        }
        let printable: String = method.chars().filter(|c| c.is_ascii_graphic()).take(32).collect();
        let mut p = Self::new(ProblemKind::MethodNotAllowed, format!("{printable} is not supported here; use {}", allow.join(", ")));
        p.headers.push(("allow", allow.join(", ")));
        p
    }

    /// A failure of ours, not the client's. The detail stays generic on purpose: store
    /// errors can carry SQL or paths that are none of the client's business.
    pub fn internal() -> Self {
        Self::new(ProblemKind::Internal, "the server could not complete the request")
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    pub fn to_json(&self) -> Vec<u8> {
        let doc = Document {
            type_: self.kind.type_uri(),
            title: self.kind.title(),
            status: self.status(),
            detail: &self.detail,
            errors: &self.errors,
        };
        serde_json::to_vec(&doc).unwrap_or_else(|_| b"{\"type\":\"about:blank\"}".to_vec())
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.kind.slug(), self.status(), self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_document_has_the_rfc9457_members() {
        let p = Problem::validation(vec![FieldError { field: "email".into(), message: "is not an email address".into() }]);
        let v: serde_json::Value = serde_json::from_slice(&p.to_json()).unwrap();
        assert_eq!(v["type"], "urn:vaultx:problem:validation-failed");
        assert_eq!(v["status"], 422);
        assert_eq!(v["title"], "The request is not valid");
        assert_eq!(v["detail"], "email: is not an email address");
        assert_eq!(v["errors"][0]["field"], "email");
    }

    #[test]
    fn unauthorized_problems_carry_a_bearer_challenge() {
        let p = Problem::new(ProblemKind::ExpiredToken, "expired");
        assert_eq!(p.status(), 401);
        assert!(p.headers.iter().any(|(k, v)| *k == "www-authenticate" && v.contains("invalid_token")));
    }

    #[test]
    fn internal_problems_do_not_leak_details() {
        let v: serde_json::Value = serde_json::from_slice(&Problem::internal().to_json()).unwrap();
        assert_eq!(v["status"], 500);
        assert!(v.get("errors").is_none());
    }
}
