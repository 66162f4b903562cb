//! `ListObjects` (`GET /BUCKET`, version 1): as `ListObjectsV2`, resumed by `marker`; with a
//! delimiter, `NextMarker` is the last key or prefix given.

use s3s::dto::{ListObjectsInput, ListObjectsOutput};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_core::ports::Platform;

use super::url_encoded;
use crate::Cx;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = req.input;
    let super::Listing { bucket, max, prefix, encode, page } =
        super::listing(cx, &input.bucket, input.max_keys, input.prefix.as_deref(), input.delimiter.as_deref(), input.marker.as_deref(), input.encoding_type.as_ref()).await?;
    let (contents, prefixes) = super::entries(&page, encode);
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(bucket.name),
        prefix: Some(url_encoded(&prefix, encode)),
        delimiter: input.delimiter.as_ref().map(|d| url_encoded(d, encode)),
        marker: input.marker.map(|m| url_encoded(&m, encode)),
        max_keys: Some(max as i32),
        is_truncated: Some(page.next.is_some()),
        next_marker: page.next.filter(|_| input.delimiter.is_some()).map(|n| url_encoded(&n, encode)),
        encoding_type: input.encoding_type,
        contents: Some(contents),
        common_prefixes: Some(prefixes),
        ..Default::default()
    }))
}
