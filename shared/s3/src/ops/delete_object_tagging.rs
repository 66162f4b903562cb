//! `DeleteObjectTagging` (`DELETE /BUCKET/KEY?tagging`): removes every tag of the object.

use s3s::dto::{DeleteObjectTaggingInput, DeleteObjectTaggingOutput};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_core::ports::Platform;

use super::readable;
use crate::Cx;
use crate::errors::from_problem;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<DeleteObjectTaggingInput>) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let (db, o) = readable(cx, &req.input.bucket, &req.input.key).await?;
    vaultx_api::labels::replace_tags(&db, &o.file, &Default::default()).await.map_err(from_problem)?;
    Ok(S3Response::new(DeleteObjectTaggingOutput::default()))
}
