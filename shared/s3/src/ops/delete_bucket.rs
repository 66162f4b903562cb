//! `DeleteBucket` (`DELETE /BUCKET`): only an empty one (`409 BucketNotEmpty`).

use s3s::dto::{DeleteBucketInput, DeleteBucketOutput};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_api::buckets::{self, Deleted};
use vaultx_core::ports::Platform;

use super::{metadata, own_bucket};
use crate::Cx;
use crate::errors::from_problem;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
    let db = metadata(cx).await?;
    let bucket = own_bucket(cx, &db, &req.input.bucket).await?;
    match buckets::delete(&db, &bucket.owner_id, &bucket.name).await.map_err(from_problem)? {
        Deleted::Deleted => Ok(S3Response::new(DeleteBucketOutput::default())),
        Deleted::NotEmpty => Err(s3s::s3_error!(BucketNotEmpty, "The bucket you tried to delete is not empty")),
        Deleted::NoSuchBucket => Err(s3s::s3_error!(NoSuchBucket, "The specified bucket does not exist")),
    }
}
