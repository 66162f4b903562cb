//! `PutObject` (`PUT /BUCKET/KEY`): stores the body as the key's content (a new file, or a new
//! version of the key's file), checked against `Content-MD5` and `x-amz-checksum-*` (headers or
//! aws-chunked trailers) when sent, with its user metadata
//! (`x-amz-meta-*`) and tags (`x-amz-tagging`). Conditional writes:
//! `If-None-Match: *` refuses to replace an existing key, `If-Match` to replace another
//! content than the one named (`412 PreconditionFailed`).

use s3s::dto::{ETagCondition, PutObjectInput, PutObjectOutput};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_api::objects::{self, NewObject};
use vaultx_core::ports::Platform;

use super::{etag, metadata, own_bucket};
use crate::Cx;
use crate::errors::from_problem;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
    let input = req.input;
    objects::check_key(&input.key).map_err(|why| s3s::s3_error!(KeyTooLongError, "{why}"))?;
    let db = metadata(cx).await?;
    let bucket = own_bucket(cx, &db, &input.bucket).await?;
    let metadata = super::metadata_in(input.metadata)?;
    // A PUT replaces the object whole, as in S3: tags it does not send are gone.
    let tags = super::tagging_header(input.tagging.as_deref())?.unwrap_or_default();
    let body = super::read_body(input.body).await?;
    let md5 = super::check_md5(&body, input.content_md5.as_deref())?;
    let declared = super::Declared { crc32: input.checksum_crc32, crc32c: input.checksum_crc32c, crc64nvme: input.checksum_crc64nvme, sha1: input.checksum_sha1, sha256: input.checksum_sha256 };
    super::check_checksums(&body, declared, req.trailing_headers.as_ref())?;
    if input.if_none_match.is_some() || input.if_match.is_some() {
        let current = objects::find(&db, &bucket.name, &input.key).await.map_err(from_problem)?.filter(|o| o.file.status != vaultx_api::files::UPLOADING);
        if let (Some(ETagCondition::Any), Some(_)) = (&input.if_none_match, &current) {
            return Err(s3s::s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold"));
        }
        if let Some(condition) = &input.if_match {
            let holds = match (condition, &current) {
                (_, None) => false,
                (ETagCondition::Any, Some(_)) => true,
                (ETagCondition::ETag(tag), Some(o)) => tag.value() == o.etag.trim_matches('"'),
            };
            if !holds {
                return Err(if current.is_none() { super::no_such_key() } else { s3s::s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold") });
            }
        }
    }
    let mime_type = input.content_type.as_deref().and_then(|t| vaultx_core::validation::mime_type(t).ok()).unwrap_or_else(|| "application/octet-stream".to_owned());
    let s3_etag = format!("\"{}\"", vaultx_core::digest::hex(&md5));
    let stored = objects::put(&cx.p, &db, &bucket, NewObject { key: &input.key, mime_type, body: &body, s3_etag }).await.map_err(from_problem)?;
    // Writing nothing over nothing is skipped (reads do not wait for the write lock, which the
    // jobs this PUT woke may hold): a new object without metadata or tags.
    let unlabelled = metadata.is_empty() && tags.is_empty() && {
        let id = &stored.file.id;
        vaultx_api::labels::metadata(&db, id).await.map_err(from_problem)?.is_empty() && vaultx_api::labels::tags(&db, id).await.map_err(from_problem)?.is_empty()
    };
    if !unlabelled {
        super::label(&db, &stored.file, &metadata, Some(&tags)).await?;
    }
    Ok(S3Response::new(PutObjectOutput { e_tag: Some(etag(&stored.etag)), size: Some(body.len() as i64), ..Default::default() }))
}
