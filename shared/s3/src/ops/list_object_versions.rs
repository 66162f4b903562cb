//! `ListObjectVersions` (`GET /BUCKET?versions`): in a bucket without versioning each object
//! has one version, `null`, the latest; tools that clean a bucket by its versions list them
//! here. Prefix, delimiter, key marker and max-keys as `ListObjects`.

use s3s::dto::{ListObjectVersionsInput, ListObjectVersionsOutput, ObjectVersion};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_core::ports::Platform;

use super::{etag, timestamp, url_encoded};
use crate::Cx;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<ListObjectVersionsInput>) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let input = req.input;
    let super::Listing { bucket, max, prefix, encode, page } =
        super::listing(cx, &input.bucket, input.max_keys, input.prefix.as_deref(), input.delimiter.as_deref(), input.key_marker.as_deref(), input.encoding_type.as_ref()).await?;
    let (_, prefixes) = super::entries(&page, encode);
    let versions = page
        .objects
        .iter()
        .map(|o| ObjectVersion {
            key: Some(url_encoded(&o.key, encode)),
            version_id: Some("null".into()),
            is_latest: Some(true),
            size: Some(o.file.size as i64),
            e_tag: Some(etag(&o.etag)),
            last_modified: Some(timestamp(o.file.updated_at_ms)),
            storage_class: Some(s3s::dto::ObjectVersionStorageClass::from_static(s3s::dto::ObjectVersionStorageClass::STANDARD)),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(bucket.name),
        prefix: Some(url_encoded(&prefix, encode)),
        delimiter: input.delimiter.as_ref().map(|d| url_encoded(d, encode)),
        key_marker: input.key_marker,
        version_id_marker: input.version_id_marker,
        max_keys: Some(max as i32),
        is_truncated: Some(page.next.is_some()),
        next_key_marker: page.next.clone().map(|n| url_encoded(&n, encode)),
        next_version_id_marker: page.next.map(|_| "null".to_owned()),
        encoding_type: input.encoding_type,
        versions: Some(versions),
        common_prefixes: Some(prefixes),
        ..Default::default()
    }))
}
