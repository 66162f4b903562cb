//! `UploadPartCopy` (`PUT /BUCKET/KEY?partNumber=N&uploadId=ID` with `x-amz-copy-source`):
//! stores one part whose content is one of the caller's objects, whole or the bytes
//! `x-amz-copy-source-range: bytes=FIRST-LAST` name (at most 64 MiB here), after the source's
//! `x-amz-copy-source-if-*` preconditions. aws-cli and boto3 copy objects above their multipart
//! threshold this way. Its ETag is the part's MD5, as for `UploadPart`.

use s3s::dto::{CopyPartResult, UploadPartCopyInput, UploadPartCopyOutput};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_api::multipart;
use vaultx_core::ports::Platform;

use super::{etag, timestamp, upload_of};
use crate::Cx;
use crate::errors::from_problem;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<UploadPartCopyInput>) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let input = req.input;
    let number = super::part_number(input.part_number)?;
    let (db, _bucket, upload) = upload_of(cx, &input.bucket, &input.key, &input.upload_id).await?;
    let (_, source) = super::copy_source(cx, &input.copy_source, input.copy_source_if_match.as_ref(), input.copy_source_if_none_match.as_ref(), input.copy_source_if_modified_since.as_ref(), input.copy_source_if_unmodified_since.as_ref()).await?;
    let (first, last) = match input.copy_source_range.as_deref() {
        None => (0, source.file.size.saturating_sub(1)),
        Some(range) => copy_range(range, source.file.size)?,
    };
    let len = if source.file.size == 0 { 0 } else { last - first + 1 };
    if len > multipart::MAX_PART_SIZE {
        return Err(s3s::s3_error!(EntityTooLarge, "a part copied here has at most {} bytes: name a smaller x-amz-copy-source-range", multipart::MAX_PART_SIZE));
    }
    let content = if len == 0 { Vec::new() } else { super::read_range(cx, &source, first, last).await? };
    let md5 = super::check_md5(&content, None)?;
    let md5 = multipart::put_part(&cx.p, &db, &upload, number, &content, md5).await.map_err(from_problem)?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult { e_tag: Some(etag(&md5)), last_modified: Some(timestamp(cx.p.now_ms())), ..Default::default() }),
        ..Default::default()
    }))
}

/// `bytes=FIRST-LAST`, both inclusive and inside an object of `size` bytes: the only form
/// S3 takes here (no suffix or open ranges).
fn copy_range(range: &str, size: u64) -> S3Result<(u64, u64)> {
    let malformed = || s3s::s3_error!(InvalidArgument, "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy");
    let (first, last) = range.strip_prefix("bytes=").and_then(|r| r.split_once('-')).ok_or_else(malformed)?;
    let digits = |s: &str| (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u64>().ok()).flatten();
    let (first, last) = (digits(first).ok_or_else(malformed)?, digits(last).ok_or_else(malformed)?);
    if first > last || last >= size {
        return Err(s3s::s3_error!(InvalidRange, "Range specified is not valid for source object of size: {size}"));
    }
    Ok((first, last))
}

#[cfg(test)]
mod tests {
    use super::copy_range;

    #[test]
    fn a_copy_range_names_both_ends_inside_the_source() {
        assert_eq!(copy_range("bytes=0-9", 10).unwrap(), (0, 9));
        assert_eq!(copy_range("bytes=5-5", 10).unwrap(), (5, 5));
        for bad in ["0-9", "bytes=-9", "bytes=0-", "bytes=a-9", "bytes=+1-9", "bytes=0-9,10-11"] {
            assert_eq!(*copy_range(bad, 10).unwrap_err().code(), s3s::S3ErrorCode::InvalidArgument, "{bad}");
        }
        for outside in ["bytes=0-10", "bytes=9-8", "bytes=10-10"] {
            assert_eq!(*copy_range(outside, 10).unwrap_err().code(), s3s::S3ErrorCode::InvalidRange, "{outside}");
        }
    }
}
