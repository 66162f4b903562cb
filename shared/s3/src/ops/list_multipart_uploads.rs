//! `ListMultipartUploads` (`GET /BUCKET?uploads`): uploads in progress, by key then start,
//! with `prefix`, `key-marker` / `upload-id-marker`, at most `max-uploads` (1,000).

use s3s::dto::{ListMultipartUploadsInput, ListMultipartUploadsOutput, MultipartUpload};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_core::ports::Platform;

use super::{metadata, own_bucket, timestamp};
use crate::Cx;
use crate::errors::from_problem;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<ListMultipartUploadsInput>) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let input = req.input;
    let db = metadata(cx).await?;
    let bucket = own_bucket(cx, &db, &input.bucket).await?;
    let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
    let prefix = input.prefix.clone().unwrap_or_default();
    let after = input.key_marker.as_deref().filter(|k| !k.is_empty()).map(|k| (k, input.upload_id_marker.as_deref().unwrap_or("")));
    let mut uploads = vaultx_api::multipart::list(&db, &bucket.name, &prefix, after, max as u64 + 1).await.map_err(from_problem)?;
    let truncated = uploads.len() > max;
    uploads.truncate(max);
    let last = uploads.last().map(|u| (u.key.clone(), u.id.clone()));
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(bucket.name),
        prefix: input.prefix,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        next_key_marker: last.as_ref().filter(|_| truncated).map(|l| l.0.clone()),
        next_upload_id_marker: last.filter(|_| truncated).map(|l| l.1),
        uploads: Some(uploads.into_iter().map(|u| MultipartUpload { key: Some(u.key), upload_id: Some(u.id), initiated: Some(timestamp(u.created_at)), ..Default::default() }).collect()),
        ..Default::default()
    }))
}
