//! `CopyObject` (`PUT /BUCKET/KEY` with `x-amz-copy-source`): a new object with the content
//! of one of the caller's objects (up to 64 MiB here: larger ones are copied in parts with
//! `UploadPartCopy`, as aws-cli and boto3 do above their multipart threshold), its
//! metadata copied or replaced (`x-amz-metadata-directive`), its tags likewise
//! (`x-amz-tagging-directive`). The copy is a new file; the `dedup` job finds that its blocks
//! are the source's and keeps one copy.

use s3s::dto::{CopyObjectInput, CopyObjectOutput, CopyObjectResult, CopySource};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_api::objects::{self, NewObject};
use vaultx_core::ports::Platform;

use super::{etag, own_bucket, timestamp};
use crate::Cx;
use crate::errors::from_problem;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
    let input = req.input;
    let CopySource::Bucket { bucket: source_bucket, key: source_key, .. } = &input.copy_source else {
        return Err(s3s::s3_error!(NotImplemented, "copying from an access point is not supported"));
    };
    objects::check_key(&input.key).map_err(|why| s3s::s3_error!(KeyTooLongError, "{why}"))?;
    let (db, source) = super::copy_source(cx, &input.copy_source, input.copy_source_if_match.as_ref(), input.copy_source_if_none_match.as_ref(), input.copy_source_if_modified_since.as_ref(), input.copy_source_if_unmodified_since.as_ref()).await?;
    let target = own_bucket(cx, &db, &input.bucket).await?;
    if source.file.size > crate::MAX_BODY as u64 {
        return Err(s3s::s3_error!(InvalidRequest, "objects over {} bytes are copied in parts (UploadPartCopy)", crate::MAX_BODY));
    }
    let replace = |directive: Option<&str>| directive.is_some_and(|d| d.eq_ignore_ascii_case("REPLACE"));
    let same = source_bucket.as_ref() == input.bucket.as_str() && source_key.as_ref() == input.key.as_str();
    if same && !replace(input.metadata_directive.as_ref().map(|d| d.as_str())) && !replace(input.tagging_directive.as_ref().map(|d| d.as_str())) {
        return Err(s3s::s3_error!(InvalidRequest, "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."));
    }
    let content = if source.file.size == 0 { Vec::new() } else { super::read_range(cx, &source, 0, source.file.size - 1).await? };
    let (metadata, mime_type) = if replace(input.metadata_directive.as_ref().map(|d| d.as_str())) {
        let mime = input.content_type.as_deref().and_then(|t| vaultx_core::validation::mime_type(t).ok()).unwrap_or_else(|| "application/octet-stream".to_owned());
        (super::metadata_in(input.metadata)?, mime)
    } else {
        (vaultx_api::labels::metadata(&db, &source.file.id).await.map_err(from_problem)?, source.file.mime_type.clone())
    };
    let tags = if replace(input.tagging_directive.as_ref().map(|d| d.as_str())) {
        super::tagging_header(input.tagging.as_deref())?.unwrap_or_default()
    } else {
        vaultx_api::labels::tags(&db, &source.file.id).await.map_err(from_problem)?.into_iter().collect()
    };
    let s3_etag = if source.etag.contains('-') { format!("\"{}\"", vaultx_core::digest::hex(&super::check_md5(&content, None)?)) } else { source.etag.clone() };
    let copy = objects::put(&cx.p, &db, &target, NewObject { key: &input.key, mime_type, body: &content, s3_etag }).await.map_err(from_problem)?;
    super::label(&db, &copy.file, &metadata, Some(&tags)).await?;
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult { e_tag: Some(etag(&copy.etag)), last_modified: Some(timestamp(copy.file.updated_at_ms)), ..Default::default() }),
        ..Default::default()
    }))
}
