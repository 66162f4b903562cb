//! `AbortMultipartUpload` (`DELETE /BUCKET/KEY?uploadId=ID`): ends an upload and frees its
//! parts.

use s3s::dto::{AbortMultipartUploadInput, AbortMultipartUploadOutput};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_core::ports::Platform;

use super::upload_of;
use crate::Cx;
use crate::errors::from_problem;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<AbortMultipartUploadInput>) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let input = req.input;
    let (db, _bucket, upload) = upload_of(cx, &input.bucket, &input.key, &input.upload_id).await?;
    vaultx_api::multipart::abort(&cx.p, &db, &upload).await.map_err(from_problem)?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}
