//! `DeleteObjects` (`POST /BUCKET?delete`): up to 1,000 keys in one request, each deleted as
//! `DeleteObject` does; the answer lists each key as deleted or with its error (only the
//! errors when `Quiet`).

use s3s::dto::{DeleteObjectsInput, DeleteObjectsOutput, DeletedObject, Error};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_core::ports::Platform;

use super::{metadata, own_bucket};
use crate::Cx;

/// S3's limit on one request's keys.
pub const MAX_KEYS: usize = 1000;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let db = metadata(cx).await?;
    let bucket = own_bucket(cx, &db, &req.input.bucket).await?;
    let objects = req.input.delete.objects;
    if objects.len() > MAX_KEYS {
        return Err(s3s::s3_error!(MalformedXML, "a DeleteObjects request names at most {MAX_KEYS} keys"));
    }
    let quiet = req.input.delete.quiet.unwrap_or(false);
    let (mut deleted, mut errors) = (Vec::new(), Vec::new());
    for object in objects {
        match vaultx_api::objects::delete(&cx.p, &db, &bucket, &object.key).await {
            Ok(()) if quiet => {}
            Ok(()) => deleted.push(DeletedObject { key: Some(object.key), ..Default::default() }),
            Err(problem) => {
                let e = crate::errors::from_problem(problem);
                errors.push(Error { code: Some(e.code().as_str().to_owned()), key: Some(object.key), message: e.message().map(str::to_owned), version_id: None });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput { deleted: Some(deleted), errors: Some(errors), ..Default::default() }))
}
