//! `HeadBucket` (`HEAD /BUCKET`): whether the bucket exists and is the caller's.

use s3s::dto::{HeadBucketInput, HeadBucketOutput};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_core::ports::Platform;

use super::{metadata, own_bucket};
use crate::Cx;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
    let db = metadata(cx).await?;
    own_bucket(cx, &db, &req.input.bucket).await?;
    Ok(S3Response::new(HeadBucketOutput::default()))
}
