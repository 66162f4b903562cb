//! `CompleteMultipartUpload` (`POST /BUCKET/KEY?uploadId=ID`): the parts named, in ascending
//! order with their ETags, become the object's content (`InvalidPart`, `InvalidPartOrder`,
//! `EntityTooSmall` for a part but the last under 5 MiB). The ETag is S3's: the MD5 of the
//! parts' MD5s, a dash, their count.

use s3s::dto::{CompleteMultipartUploadInput, CompleteMultipartUploadOutput};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_api::multipart::Refused;
use vaultx_core::ports::Platform;

use super::{etag, upload_of};
use crate::Cx;
use crate::errors::from_problem;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<CompleteMultipartUploadInput>) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let input = req.input;
    let (db, bucket, upload) = upload_of(cx, &input.bucket, &input.key, &input.upload_id).await?;
    let mut named = Vec::new();
    for part in input.multipart_upload.and_then(|m| m.parts).unwrap_or_default() {
        let number = part.part_number.and_then(|n| u32::try_from(n).ok()).ok_or_else(|| s3s::s3_error!(MalformedXML, "every part names its PartNumber"))?;
        let tag = part.e_tag.map(|t| t.value().to_owned()).ok_or_else(|| s3s::s3_error!(MalformedXML, "every part names its ETag"))?;
        named.push((number, tag));
    }
    if named.is_empty() {
        return Err(s3s::s3_error!(MalformedXML, "The XML you provided was not well-formed or did not validate against our published schema"));
    }
    let object = match vaultx_api::multipart::complete(&cx.p, &db, &bucket, &upload, &named).await.map_err(from_problem)? {
        Ok(object) => object,
        Err(Refused::InvalidPartOrder) => return Err(s3s::s3_error!(InvalidPartOrder, "The list of parts was not in ascending order. The parts list must be specified in order by part number.")),
        Err(Refused::InvalidPart(n)) => return Err(s3s::s3_error!(InvalidPart, "One or more of the specified parts could not be found (part {n}), or its entity tag did not match.")),
        Err(Refused::TooSmall(n)) => return Err(s3s::s3_error!(EntityTooSmall, "Part {n} is smaller than the minimum allowed object size (5 MiB); only the last part may be.")),
    };
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(bucket.name.clone()),
        key: Some(object.key.clone()),
        e_tag: Some(etag(&object.etag)),
        location: Some(format!("/{}/{}", bucket.name, object.key)),
        ..Default::default()
    }))
}
