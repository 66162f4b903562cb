//! `PutObjectTagging` (`PUT /BUCKET/KEY?tagging`): replaces the object's tags (at most 10,
//! S3's alphabet), stored as the file's tags `key=value`.

use s3s::dto::{PutObjectTaggingInput, PutObjectTaggingOutput};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_core::ports::Platform;

use super::{readable, tags_in};
use crate::Cx;
use crate::errors::from_problem;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<PutObjectTaggingInput>) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let input = req.input;
    let tags = tags_in(input.tagging.tag_set.into_iter().map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default())))?;
    let (db, o) = readable(cx, &input.bucket, &input.key).await?;
    if !vaultx_api::labels::replace_tags(&db, &o.file, &tags).await.map_err(from_problem)? {
        return Err(super::no_such_key());
    }
    Ok(S3Response::new(PutObjectTaggingOutput::default()))
}
