//! `GetBucketLocation` (`GET /BUCKET?location`): the region the request was signed for. A
//! VaultX deployment answers for any region name its clients use (its own regions are where
//! blocks live, `/api/storage/regions`, not where a bucket is).

use s3s::dto::{BucketLocationConstraint, GetBucketLocationInput, GetBucketLocationOutput};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_core::ports::Platform;

use super::{metadata, own_bucket};
use crate::Cx;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<GetBucketLocationInput>) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let db = metadata(cx).await?;
    own_bucket(cx, &db, &req.input.bucket).await?;
    // S3 says nothing for us-east-1.
    let region = req.region.map(|r| r.as_str().to_owned()).filter(|r| r != "us-east-1");
    Ok(S3Response::new(GetBucketLocationOutput { location_constraint: region.map(BucketLocationConstraint::from) }))
}
