//! `ListBuckets` (`GET /`): the caller's buckets, by name.

use s3s::dto::{Bucket, ListBucketsInput, ListBucketsOutput, Owner};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_core::ports::Platform;

use super::{metadata, timestamp};
use crate::Cx;
use crate::errors::from_problem;

pub async fn run<P: Platform>(cx: &Cx<P>, _req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
    let owner = cx.owner()?;
    let db = metadata(cx).await?;
    let buckets = vaultx_api::buckets::list(&db, &owner).await.map_err(from_problem)?;
    let buckets = buckets.into_iter().map(|b| Bucket { name: Some(b.name), creation_date: Some(timestamp(b.created_at)), bucket_region: None }).collect();
    Ok(S3Response::new(ListBucketsOutput { buckets: Some(buckets), owner: Some(Owner { id: Some(owner.clone()), display_name: Some(owner) }), ..Default::default() }))
}
