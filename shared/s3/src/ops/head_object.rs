//! `HeadObject` (`HEAD /BUCKET/KEY`): what `GetObject` would answer, without the body.

use s3s::dto::{HeadObjectInput, HeadObjectOutput};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_core::ports::Platform;

use super::{etag, preconditions, readable, timestamp};
use crate::Cx;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
    let input = req.input;
    let (db, o) = readable(cx, &input.bucket, &input.key).await?;
    preconditions(&o, input.if_match.as_ref(), input.if_none_match.as_ref(), input.if_modified_since.as_ref(), input.if_unmodified_since.as_ref())?;
    Ok(S3Response::new(HeadObjectOutput {
        content_length: Some(o.file.size as i64),
        content_type: Some(o.file.mime_type.clone()),
        e_tag: Some(etag(&o.etag)),
        last_modified: Some(timestamp(o.file.updated_at_ms)),
        accept_ranges: Some("bytes".into()),
        metadata: super::metadata_out(&db, &o.file.id).await?,
        ..Default::default()
    }))
}
