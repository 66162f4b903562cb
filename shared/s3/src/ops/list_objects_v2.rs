//! `ListObjectsV2` (`GET /BUCKET?list-type=2`): keys in byte order, with `prefix`,
//! `delimiter` (common prefixes), `start-after`, `max-keys` (1,000 at most) and continuation
//! tokens (the last key or prefix given, base64: opaque to clients), `encoding-type=url`.

use base64::Engine;
use s3s::dto::{ListObjectsV2Input, ListObjectsV2Output};
use s3s::{S3Request, S3Response, S3Result};
use vaultx_core::ports::Platform;

use super::url_encoded;
use crate::Cx;

pub async fn run<P: Platform>(cx: &Cx<P>, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = req.input;
    let token = match &input.continuation_token {
        Some(t) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| s3s::s3_error!(InvalidArgument, "The continuation token provided is incorrect"))?,
        ),
        None => None,
    };
    let marker = token.clone().or_else(|| input.start_after.clone().filter(|s| !s.is_empty()));
    let super::Listing { bucket, max, prefix, encode, page } =
        super::listing(cx, &input.bucket, input.max_keys, input.prefix.as_deref(), input.delimiter.as_deref(), marker.as_deref(), input.encoding_type.as_ref()).await?;
    let key_count = (page.objects.len() + page.prefixes.len()) as i32;
    let (contents, prefixes) = super::entries(&page, encode);
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(bucket.name),
        prefix: Some(url_encoded(&prefix, encode)),
        delimiter: input.delimiter.map(|d| url_encoded(&d, encode)),
        max_keys: Some(max as i32),
        key_count: Some(key_count),
        is_truncated: Some(page.next.is_some()),
        continuation_token: input.continuation_token,
        next_continuation_token: page.next.map(|n| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n)),
        start_after: input.start_after.map(|s| url_encoded(&s, encode)),
        encoding_type: input.encoding_type,
        contents: Some(contents),
        common_prefixes: Some(prefixes),
        ..Default::default()
    }))
}
