//! `GetObject` (`GET /BUCKET/KEY`): the content, whole or one `Range`, after S3's
//! preconditions. The bytes stream from the blob stores slice by slice (not through s3s's
//! body), as the edge download's do.

use s3s::dto::{GetObjectInput, GetObjectOutput};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_core::ports::Platform;

use super::{etag, preconditions, readable, timestamp};
use crate::Cx;
use crate::errors::from_problem;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
    let input = req.input;
    let (db, o) = readable(cx, &input.bucket, &input.key).await?;
    preconditions(&o, input.if_match.as_ref(), input.if_none_match.as_ref(), input.if_modified_since.as_ref(), input.if_unmodified_since.as_ref())?;
    let size = o.file.size;
    let (start, end, content_range) = match &input.range {
        None => (0, size.saturating_sub(1), None),
        Some(range) => {
            let r = range.check(size).map_err(|_| s3s::s3_error!(InvalidRange, "The requested range is not satisfiable"))?;
            (r.start, r.end - 1, Some(format!("bytes {}-{}/{size}", r.start, r.end - 1)))
        }
    };
    let length = if size == 0 { 0 } else { end - start + 1 };
    let body = vaultx_api::objects::content(&cx.p, &o, start, end).await.map_err(from_problem)?;
    *cx.streamed.borrow_mut() = Some(body);
    let mut response = S3Response::new(GetObjectOutput {
        content_length: Some(length as i64),
        content_type: Some(o.file.mime_type.clone()),
        e_tag: Some(etag(&o.etag)),
        last_modified: Some(timestamp(o.file.updated_at_ms)),
        accept_ranges: Some("bytes".into()),
        metadata: super::metadata_out(&db, &o.file.id).await?,
        content_range: content_range.clone(),
        ..Default::default()
    });
    if content_range.is_some() {
        response.status = Some(http::StatusCode::PARTIAL_CONTENT);
    }
    Ok(response)
}
