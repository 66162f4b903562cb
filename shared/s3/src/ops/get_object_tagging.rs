//! `GetObjectTagging` (`GET /BUCKET/KEY?tagging`): the object's tags (its file's tags, read
//! as `key=value`).

use s3s::dto::{GetObjectTaggingInput, GetObjectTaggingOutput};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_core::ports::Platform;

use super::{readable, tag_set};
use crate::Cx;
use crate::errors::from_problem;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<GetObjectTaggingInput>) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let (db, o) = readable(cx, &req.input.bucket, &req.input.key).await?;
    let tags = vaultx_api::labels::tags(&db, &o.file.id).await.map_err(from_problem)?;
    Ok(S3Response::new(GetObjectTaggingOutput { tag_set: tag_set(tags), version_id: None }))
}
