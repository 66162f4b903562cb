//! S3's errors: a VaultX problem as S3's `<Error><Code>…`, and the few answers the door gives
//! before s3s runs.

use s3s::{S3Error, S3ErrorCode};
use vaultx_core::Problem;
use vaultx_core::http::ApiResponse;
use vaultx_core::problem::ProblemKind;

/// The S3 error for a problem the domain raised, by its kind; the detail is the message.
pub fn from_problem(problem: Problem) -> S3Error {
    let code = match problem.kind {
        ProblemKind::NotFound => S3ErrorCode::NoSuchKey,
        ProblemKind::QuotaExceeded => S3ErrorCode::Custom("QuotaExceeded".into()),
        ProblemKind::PayloadTooLarge => S3ErrorCode::EntityTooLarge,
        ProblemKind::Busy => S3ErrorCode::SlowDown,
        ProblemKind::Conflict => S3ErrorCode::OperationAborted,
        ProblemKind::FileArchived => S3ErrorCode::InvalidObjectState,
        ProblemKind::NotConfigured => S3ErrorCode::NotImplemented,
        ProblemKind::StoreUnavailable | ProblemKind::NotReady | ProblemKind::RegionDeactivated | ProblemKind::ReplicaUnavailable => S3ErrorCode::ServiceUnavailable,
        ProblemKind::Internal => S3ErrorCode::InternalError,
        ProblemKind::ChecksumMismatch | ProblemKind::DigestMismatch => S3ErrorCode::BadDigest,
        ProblemKind::Forbidden => S3ErrorCode::AccessDenied,
        _ => S3ErrorCode::InvalidRequest,
    };
    let mut error = S3Error::with_message(code, problem.detail.clone());
    if let Ok(status) = http::StatusCode::from_u16(problem.kind.status()) {
        error.set_status_code(status);
    }
    error
}

/// An `<Error>` document, for what fails before s3s has the request.
pub fn response(status: u16, code: &str, message: &str) -> ApiResponse {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message></Error>", escape(message));
    ApiResponse { status, headers: vec![("content-type".into(), "application/xml".into())], body: vaultx_core::http::Body::Bytes(body.into_bytes()), log: None }
}
