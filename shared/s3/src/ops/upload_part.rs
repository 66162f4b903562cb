//! `UploadPart` (`PUT /BUCKET/KEY?partNumber=N&uploadId=ID`): stores one part (1 to 10,000,
//! at most 64 MiB here), checked against `Content-MD5` and `x-amz-checksum-*` when sent; its ETag is its MD5.

use s3s::dto::{UploadPartInput, UploadPartOutput};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_core::ports::Platform;

use super::{etag, upload_of};
use crate::Cx;
use crate::errors::from_problem;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
    let input = req.input;
    let number = super::part_number(input.part_number)?;
    let (db, _bucket, upload) = upload_of(cx, &input.bucket, &input.key, &input.upload_id).await?;
    let body = super::read_body(input.body).await?;
    let md5 = super::check_md5(&body, input.content_md5.as_deref())?;
    let declared = super::Declared { crc32: input.checksum_crc32, crc32c: input.checksum_crc32c, crc64nvme: input.checksum_crc64nvme, sha1: input.checksum_sha1, sha256: input.checksum_sha256 };
    super::check_checksums(&body, declared, req.trailing_headers.as_ref())?;
    let md5 = vaultx_api::multipart::put_part(&cx.p, &db, &upload, number, &body, md5).await.map_err(from_problem)?;
    Ok(S3Response::new(UploadPartOutput { e_tag: Some(etag(&md5)), ..Default::default() }))
}
