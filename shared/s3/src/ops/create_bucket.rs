//! `CreateBucket` (`PUT /BUCKET`): a bucket for the caller, named by S3's rules.

use s3s::dto::{CreateBucketInput, CreateBucketOutput};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_api::buckets::{self, Created};
use vaultx_core::ports::Platform;

use super::metadata;
use crate::Cx;
use crate::errors::from_problem;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
    let owner = cx.owner()?;
    let name = req.input.bucket;
    buckets::check_name(&name).map_err(|why| s3s::s3_error!(InvalidBucketName, "{why}"))?;
    let db = metadata(cx).await?;
    match buckets::create(&db, &owner, &name, cx.p.now_ms()).await.map_err(from_problem)? {
        Created::Created => Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{name}")), ..Default::default() })),
        Created::AlreadyYours => Err(s3s::s3_error!(BucketAlreadyOwnedByYou, "Your previous request to create the named bucket succeeded and you already own it.")),
        Created::Taken => Err(s3s::s3_error!(BucketAlreadyExists, "The requested bucket name is not available. Please select a different name and try again.")),
    }
}
