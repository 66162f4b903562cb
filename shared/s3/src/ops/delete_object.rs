//! `DeleteObject` (`DELETE /BUCKET/KEY`): deletes the key's file and its versions. A key that
//! does not exist is deleted already (`204`, as S3).

use s3s::dto::{DeleteObjectInput, DeleteObjectOutput};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_core::ports::Platform;

use super::{metadata, own_bucket};
use crate::Cx;
use crate::errors::from_problem;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
    let db = metadata(cx).await?;
    let bucket = own_bucket(cx, &db, &req.input.bucket).await?;
    vaultx_api::objects::delete(&cx.p, &db, &bucket, &req.input.key).await.map_err(from_problem)?;
    Ok(S3Response::new(DeleteObjectOutput::default()))
}
