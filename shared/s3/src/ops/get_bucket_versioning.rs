//! `GetBucketVersioning` (`GET /BUCKET?versioning`): no status for a bucket whose versioning
//! was never enabled (every bucket, in this release: `PutBucketVersioning` is not supported).

use s3s::dto::{BucketVersioningStatus, GetBucketVersioningInput, GetBucketVersioningOutput};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_core::ports::Platform;

use super::{metadata, own_bucket};
use crate::Cx;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<GetBucketVersioningInput>) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let db = metadata(cx).await?;
    let bucket = own_bucket(cx, &db, &req.input.bucket).await?;
    let status = (!bucket.versioning.is_empty()).then(|| BucketVersioningStatus::from(bucket.versioning.clone()));
    Ok(S3Response::new(GetBucketVersioningOutput { status, mfa_delete: None }))
}
