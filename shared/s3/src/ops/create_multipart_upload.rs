//! `CreateMultipartUpload` (`POST /BUCKET/KEY?uploads`): starts an upload in parts; the
//! object appears only when it is completed.

use s3s::dto::{CreateMultipartUploadInput, CreateMultipartUploadOutput};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_core::ports::Platform;

use super::{metadata, own_bucket};
use crate::Cx;
use crate::errors::from_problem;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<CreateMultipartUploadInput>) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let input = req.input;
    vaultx_api::objects::check_key(&input.key).map_err(|why| s3s::s3_error!(KeyTooLongError, "{why}"))?;
    let db = metadata(cx).await?;
    let bucket = own_bucket(cx, &db, &input.bucket).await?;
    let mime_type = input.content_type.as_deref().and_then(|t| vaultx_core::validation::mime_type(t).ok()).unwrap_or_else(|| "application/octet-stream".to_owned());
    let metadata = super::metadata_in(input.metadata)?;
    let upload = vaultx_api::multipart::create(&cx.p, &db, &bucket, &input.key, &mime_type, metadata).await.map_err(from_problem)?;
    Ok(S3Response::new(CreateMultipartUploadOutput { bucket: Some(bucket.name), key: Some(input.key), upload_id: Some(upload.id), ..Default::default() }))
}
