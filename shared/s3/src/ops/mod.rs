//! One module per S3 operation, named as s3s names it: `PutObject` is `put_object.rs`. Each
//! has `run(cx, request)`, written against `vaultx_api`'s buckets and objects.

pub mod create_bucket;
pub mod delete_bucket;
pub mod delete_object;
pub mod delete_objects;
pub mod get_bucket_location;
pub mod get_object;
pub mod head_bucket;
pub mod head_object;
pub mod list_buckets;
pub mod list_objects;
pub mod list_objects_v2;
pub mod put_object;
pub mod create_multipart_upload;
pub mod upload_part;
pub mod upload_part_copy;
pub mod complete_multipart_upload;
pub mod abort_multipart_upload;
pub mod list_parts;
pub mod list_multipart_uploads;
pub mod copy_object;
pub mod get_object_tagging;
pub mod put_object_tagging;
pub mod delete_object_tagging;
pub mod get_bucket_versioning;
pub mod list_object_versions;

use s3s::S3Result;
use s3s::dto::Timestamp;
use vaultx_api::buckets::{self, Bucket};
use vaultx_core::ports::Platform;

use crate::Cx;
use crate::errors::from_problem;

/// The metadata store, as an S3 error when it fails.
pub(crate) async fn metadata<P: Platform>(cx: &Cx<P>) -> S3Result<P::Metadata> {
    cx.p.metadata().await.map_err(|e| from_problem(vaultx_api::store::store_failure(e)))
}

/// The caller's bucket: `NoSuchBucket` if there is none by that name, `AccessDenied` if it
/// is another account's (as S3 answers).
pub(crate) async fn own_bucket<P: Platform>(cx: &Cx<P>, db: &P::Metadata, name: &str) -> S3Result<Bucket> {
    let owner = cx.owner()?;
    match buckets::find(db, name).await.map_err(from_problem)? {
        Some(b) if b.owner_id == owner => Ok(b),
        Some(_) => Err(s3s::s3_error!(AccessDenied, "the bucket belongs to another account")),
        None => Err(s3s::s3_error!(NoSuchBucket, "The specified bucket does not exist")),
    }
}

/// A time in milliseconds since the epoch, as S3 shows it.
pub(crate) fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64))
}

/// An ETag as s3s carries it: the value, without quotes.
pub(crate) fn etag(quoted: &str) -> s3s::dto::ETag {
    s3s::dto::ETag::Strong(quoted.trim_matches('"').to_owned())
}

/// A missing key, in S3's words.
pub(crate) fn no_such_key() -> s3s::S3Error {
    s3s::s3_error!(NoSuchKey, "The specified key does not exist.")
}

/// S3's read preconditions, in RFC 9110's order: `If-Match` (412), `If-Unmodified-Since`
/// (412, unless `If-Match` held), `If-None-Match` (304), `If-Modified-Since` (304, unless
/// `If-None-Match` was sent).
pub(crate) fn preconditions(
    o: &vaultx_api::objects::Object,
    if_match: Option<&s3s::dto::ETagCondition>,
    if_none_match: Option<&s3s::dto::ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    use s3s::dto::ETagCondition;
    let tag = o.etag.trim_matches('"');
    let matches = |c: &ETagCondition| match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(t) => t.value() == tag,
    };
    let seconds = |t: &Timestamp| time::OffsetDateTime::from(t.clone()).unix_timestamp();
    let modified = o.file.updated_at_ms / 1000;
    let failed = || s3s::s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold");
    match if_match {
        Some(c) if !matches(c) => return Err(failed()),
        None if if_unmodified_since.is_some_and(|t| modified > seconds(t)) => return Err(failed()),
        _ => {}
    }
    let not_modified = match if_none_match {
        Some(c) => matches(c),
        None => if_modified_since.is_some_and(|t| modified <= seconds(t)),
    };
    if not_modified {
        let mut e = s3s::S3Error::new(s3s::S3ErrorCode::NotModified);
        e.set_status_code(http::StatusCode::NOT_MODIFIED);
        return Err(e);
    }
    Ok(())
}

/// The caller's available object at `key`, or `NoSuchKey`.
pub(crate) async fn readable<P: Platform>(cx: &Cx<P>, bucket: &str, key: &str) -> S3Result<(P::Metadata, vaultx_api::objects::Object)> {
    let db = metadata(cx).await?;
    own_bucket(cx, &db, bucket).await?;
    let o = vaultx_api::objects::find(&db, bucket, key).await.map_err(from_problem)?.filter(|o| o.file.status == vaultx_api::files::AVAILABLE);
    match o {
        Some(o) => Ok((db, o)),
        None => Err(no_such_key()),
    }
}

/// A copy's source (CopyObject, UploadPartCopy): one of the caller's available objects
/// (`x-amz-copy-source`, no version but `null`), after its `x-amz-copy-source-if-*`
/// preconditions, any of which failing is `412 PreconditionFailed` (never a 304).
pub(crate) async fn copy_source<P: Platform>(
    cx: &Cx<P>,
    source: &s3s::dto::CopySource,
    if_match: Option<&s3s::dto::ETagCondition>,
    if_none_match: Option<&s3s::dto::ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<(P::Metadata, vaultx_api::objects::Object)> {
    let s3s::dto::CopySource::Bucket { bucket, key, version_id } = source else {
        return Err(s3s::s3_error!(NotImplemented, "copying from an access point is not supported"));
    };
    if version_id.as_deref().is_some_and(|v| v != "null") {
        return Err(s3s::s3_error!(NoSuchVersion, "The specified version does not exist."));
    }
    let (db, o) = readable(cx, bucket, key).await?;
    preconditions(&o, if_match, if_none_match, if_modified_since, if_unmodified_since)
        .map_err(|e| if *e.code() == s3s::S3ErrorCode::NotModified { s3s::s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold") } else { e })?;
    Ok((db, o))
}

/// A part number as S3 takes it: 1 to 10,000.
pub(crate) fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n).ok().filter(|n| (1..=vaultx_api::multipart::MAX_PARTS).contains(n)).ok_or_else(|| {
        s3s::s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive")
    })
}

/// Bytes `first..=last` of an available object, read whole: a copy's source (CopyObject,
/// UploadPartCopy), which the callers bound to 64 MiB.
pub(crate) async fn read_range<P: Platform>(cx: &Cx<P>, source: &vaultx_api::objects::Object, first: u64, last: u64) -> S3Result<Vec<u8>> {
    use vaultx_core::ports::Blobs;
    let failed = |e| from_problem(vaultx_api::store::store_failure(e));
    match vaultx_api::objects::content(&cx.p, source, first, last).await.map_err(from_problem)? {
        vaultx_core::http::Body::Bytes(bytes) => Ok(bytes),
        vaultx_core::http::Body::Blobs(slices) => {
            let store = cx.p.blobs().await.map_err(failed)?;
            let mut out = Vec::with_capacity((last - first + 1) as usize);
            for slice in slices {
                out.extend(slice.cut(store.get(&slice.key).await.map_err(failed)?).map_err(|why| {
                    eprintln!("vaultx: copy of {}: {why}", source.key);
                    s3s::s3_error!(InternalError)
                })?);
            }
            Ok(out)
        }
    }
}

/// One page of a listing: objects and common prefixes, in key order, at most `max` of them
/// together; `next` is the last one given when more follow.
pub(crate) struct Page {
    pub objects: Vec<vaultx_api::objects::Object>,
    pub prefixes: Vec<String>,
    pub next: Option<String>,
}

/// Lists `bucket` as S3 does: keys starting with `prefix`, after `marker` (a key, or a common
/// prefix given earlier, whose keys are all past), the part of each key after the prefix up to
/// and including the first `delimiter` rolled up into one common prefix. Reads the store a page
/// at a time, skipping each rolled-up prefix's keys in one step; keys written meanwhile are
/// listed or not, but none given is given again and none present throughout is skipped.
pub(crate) async fn list_page(db: &impl vaultx_core::ports::Sql, bucket: &str, prefix: &str, delimiter: Option<&str>, marker: Option<&str>, max: usize) -> S3Result<Page> {
    use vaultx_api::objects;
    let delimiter = delimiter.filter(|d| !d.is_empty());
    let mut page = Page { objects: Vec::new(), prefixes: Vec::new(), next: None };
    // Where the next read starts (inclusive, in sort-key hex).
    let mut from = match marker {
        // A common prefix given before: all its keys are past.
        Some(m) if delimiter.is_some_and(|d| m.ends_with(d) && m.starts_with(prefix)) => objects::after_prefix(m),
        // Strictly after the key: no sort key lies between a key's and that plus `0`.
        Some(m) => format!("{}0", objects::sort_key(m)),
        None => objects::sort_key(prefix),
    };
    let batch = (max + 1).min(1000) as u64;
    let mut last: Option<String> = None;
    'read: loop {
        let rows = objects::list_from(db, bucket, prefix, &from, batch).await.map_err(crate::errors::from_problem)?;
        let exhausted = (rows.len() as u64) < batch;
        for o in rows {
            if page.objects.len() + page.prefixes.len() == max {
                page.next = last;
                return Ok(page);
            }
            let rest = &o.key[prefix.len()..];
            if let Some(at) = delimiter.and_then(|d| rest.find(d).map(|i| i + d.len())) {
                let common = o.key[..prefix.len() + at].to_owned();
                from = objects::after_prefix(&common);
                last = Some(common.clone());
                page.prefixes.push(common);
                continue 'read;
            }
            from = format!("{}0", objects::sort_key(&o.key));
            last = Some(o.key.clone());
            page.objects.push(o);
        }
        if exhausted {
            return Ok(page);
        }
    }
}

/// A key as a listing with `encoding-type=url` gives it: percent-encoded but for unreserved
/// characters and `/` (what S3 clients decode).
pub(crate) fn url_encoded(text: &str, encode: bool) -> String {
    if !encode {
        return text.to_owned();
    }
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A page's objects and common prefixes as a listing shows them.
pub(crate) fn entries(page: &Page, encode: bool) -> (Vec<s3s::dto::Object>, Vec<s3s::dto::CommonPrefix>) {
    let objects = page
        .objects
        .iter()
        .map(|o| s3s::dto::Object {
            key: Some(url_encoded(&o.key, encode)),
            size: Some(o.file.size as i64),
            e_tag: Some(etag(&o.etag)),
            last_modified: Some(timestamp(o.file.updated_at_ms)),
            storage_class: Some(s3s::dto::ObjectStorageClass::from_static(s3s::dto::ObjectStorageClass::STANDARD)),
            ..Default::default()
        })
        .collect();
    let prefixes = page.prefixes.iter().map(|p| s3s::dto::CommonPrefix { prefix: Some(url_encoded(p, encode)) }).collect();
    (objects, prefixes)
}

/// `max-keys` as S3 takes it: 1,000 when absent, at most 1,000, never negative.
pub(crate) fn max_keys(asked: Option<i32>) -> S3Result<usize> {
    match asked.unwrap_or(1000) {
        n if n < 0 => Err(s3s::s3_error!(InvalidArgument, "max-keys must be 0 or more")),
        n => Ok(n.min(1000) as usize),
    }
}

/// A listing's page, none at all for `max-keys=0`.
pub(crate) async fn page_of(db: &impl vaultx_core::ports::Sql, bucket: &str, prefix: &str, delimiter: Option<&str>, marker: Option<&str>, max: usize) -> S3Result<Page> {
    if max == 0 {
        return Ok(Page { objects: Vec::new(), prefixes: Vec::new(), next: None });
    }
    list_page(db, bucket, prefix, delimiter, marker, max).await
}

/// A request body, whole, up to the door's limit (`EntityTooLarge` beyond it).
pub(crate) async fn read_body(body: Option<s3s::dto::StreamingBlob>) -> S3Result<Vec<u8>> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    if let Some(mut stream) = body {
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(|e| s3s::s3_error!(IncompleteBody, "the body could not be read: {e}"))?;
            if out.len() + piece.len() > crate::MAX_BODY {
                return Err(s3s::s3_error!(EntityTooLarge, "a request body has at most {} bytes; upload larger objects in parts", crate::MAX_BODY));
            }
            out.extend_from_slice(&piece);
        }
    }
    Ok(out)
}

/// The body's MD5, checked against `Content-MD5` when one was sent (`BadDigest`).
pub(crate) fn check_md5(body: &[u8], content_md5: Option<&str>) -> S3Result<[u8; 16]> {
    use base64::Engine;
    use md5::Digest;
    let md5: [u8; 16] = md5::Md5::digest(body).into();
    if let Some(claimed) = content_md5 {
        let claimed = base64::engine::general_purpose::STANDARD.decode(claimed.trim()).map_err(|_| s3s::s3_error!(InvalidDigest, "Content-MD5 is not base64"))?;
        if claimed != md5 {
            return Err(s3s::s3_error!(BadDigest, "The Content-MD5 you specified did not match what we received."));
        }
    }
    Ok(md5)
}

/// The caller's upload in progress, or `NoSuchUpload`.
pub(crate) async fn upload_of<P: Platform>(cx: &Cx<P>, bucket: &str, key: &str, upload_id: &str) -> S3Result<(P::Metadata, Bucket, vaultx_api::multipart::Upload)> {
    let db = metadata(cx).await?;
    let bucket = own_bucket(cx, &db, bucket).await?;
    match vaultx_api::multipart::find(&db, &bucket.name, key, upload_id).await.map_err(from_problem)? {
        Some(upload) => Ok((db, bucket, upload)),
        None => Err(s3s::s3_error!(NoSuchUpload, "The specified multipart upload does not exist. The upload ID might be invalid, or the multipart upload might have been aborted or completed.")),
    }
}

/// `x-amz-meta-*` as VaultX metadata: the same limits (keys of a-z, 0-9, `-`, `_`, `.`;
/// 2 KB in all, as S3's).
pub(crate) fn metadata_in(metadata: Option<s3s::dto::Metadata>) -> S3Result<std::collections::BTreeMap<String, String>> {
    use vaultx_api::labels;
    let metadata: std::collections::BTreeMap<String, String> = metadata.unwrap_or_default().into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    for (key, value) in &metadata {
        labels::check_metadata_key("x-amz-meta-*", key).map_err(|e| s3s::s3_error!(InvalidArgument, "x-amz-meta-{key}: {}", e.message))?;
        labels::check_metadata_value("x-amz-meta-*", value).map_err(|e| s3s::s3_error!(InvalidArgument, "x-amz-meta-{key}: {}", e.message))?;
    }
    if labels::metadata_bytes(&metadata) > labels::MAX_METADATA_BYTES {
        return Err(s3s::s3_error!(MetadataTooLarge, "Your metadata headers exceed the maximum allowed metadata size (2 KB)."));
    }
    Ok(metadata)
}

/// An object's tags as VaultX tags (`key=value`, S3's alphabet and 10 at most), from the
/// `x-amz-tagging` header's query form or a `Tagging` document.
pub(crate) fn tags_in(pairs: impl IntoIterator<Item = (String, String)>) -> S3Result<std::collections::BTreeSet<String>> {
    let mut tags = std::collections::BTreeSet::new();
    for (key, value) in pairs {
        if key.is_empty() {
            return Err(s3s::s3_error!(InvalidTag, "a tag has a key"));
        }
        let tag = format!("{key}={value}");
        vaultx_api::labels::check_tag("tagging", &tag).map_err(|e| s3s::s3_error!(InvalidTag, "{tag}: {}", e.message))?;
        tags.insert(tag);
    }
    if tags.len() > vaultx_api::labels::MAX_TAGS {
        return Err(s3s::s3_error!(InvalidTag, "Object tags cannot be greater than 10"));
    }
    Ok(tags)
}

/// The `x-amz-tagging` header (`k=v&k2=v2`, URL-encoded).
pub(crate) fn tagging_header(header: Option<&str>) -> S3Result<Option<std::collections::BTreeSet<String>>> {
    let Some(header) = header else { return Ok(None) };
    let pairs = header.split('&').filter(|p| !p.is_empty()).map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (vaultx_core::http::percent_decode(k), vaultx_core::http::percent_decode(v))
    });
    tags_in(pairs.collect::<Vec<_>>()).map(Some)
}

/// VaultX tags as S3's tag set: `key=value` splits at the first `=`; a tag without one is a
/// key with an empty value.
pub(crate) fn tag_set(tags: Vec<String>) -> Vec<s3s::dto::Tag> {
    tags.into_iter()
        .map(|t| {
            let (k, v) = t.split_once('=').unwrap_or((&t, ""));
            s3s::dto::Tag { key: Some(k.to_owned()), value: Some(v.to_owned()) }
        })
        .collect()
}

/// Sets an object's user metadata (all of it replaced) and, when given, its tags.
pub(crate) async fn label(db: &impl vaultx_core::ports::Sql, file: &vaultx_api::files::FileRecord, metadata: &std::collections::BTreeMap<String, String>, tags: Option<&std::collections::BTreeSet<String>>) -> S3Result<()> {
    use vaultx_api::labels;
    labels::change_metadata(db, file, true, metadata, &Default::default()).await.map_err(from_problem)?;
    if let Some(tags) = tags {
        labels::replace_tags(db, file, tags).await.map_err(from_problem)?;
    }
    Ok(())
}

/// An object's user metadata, as S3 returns it.
pub(crate) async fn metadata_out(db: &impl vaultx_core::ports::Sql, file_id: &str) -> S3Result<Option<s3s::dto::Metadata>> {
    let m = vaultx_api::labels::metadata(db, file_id).await.map_err(from_problem)?;
    Ok((!m.is_empty()).then(|| m.into_iter().collect()))
}

/// What every listing starts with: the caller's bucket, `max-keys`, the prefix, whether keys
/// are URL-encoded, and the page after `marker`.
pub(crate) struct Listing {
    pub bucket: Bucket,
    pub max: usize,
    pub prefix: String,
    pub encode: bool,
    pub page: Page,
}

pub(crate) async fn listing<P: Platform>(
    cx: &Cx<P>,
    bucket: &str,
    asked: Option<i32>,
    prefix: Option<&str>,
    delimiter: Option<&str>,
    marker: Option<&str>,
    encoding_type: Option<&s3s::dto::EncodingType>,
) -> S3Result<Listing> {
    let db = metadata(cx).await?;
    let bucket = own_bucket(cx, &db, bucket).await?;
    let max = max_keys(asked)?;
    let prefix = prefix.unwrap_or_default().to_owned();
    let encode = encoding_type.is_some_and(|e| e.as_str() == "url");
    let page = page_of(&db, &bucket.name, &prefix, delimiter, marker.filter(|m| !m.is_empty()), max).await?;
    Ok(Listing { bucket, max, prefix, encode, page })
}

/// The flexible checksums a request declared for its body (`x-amz-checksum-*`, in its headers
/// or, for aws-chunked bodies, its trailers), base64 as S3 writes them.
#[derive(Default)]
pub(crate) struct Declared {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
}

/// Checks the body against every checksum declared for it (`BadDigest` on a mismatch, nothing
/// stored). Trailers, read once the body is, take the place of headers.
pub(crate) fn check_checksums(body: &[u8], mut declared: Declared, trailers: Option<&s3s::TrailingHeaders>) -> S3Result<()> {
    if let Some(trailers) = trailers.and_then(|t| t.take()) {
        let field = |name: &str| trailers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        declared.crc32 = declared.crc32.or_else(|| field("x-amz-checksum-crc32"));
        declared.crc32c = declared.crc32c.or_else(|| field("x-amz-checksum-crc32c"));
        declared.crc64nvme = declared.crc64nvme.or_else(|| field("x-amz-checksum-crc64nvme"));
        declared.sha1 = declared.sha1.or_else(|| field("x-amz-checksum-sha1"));
        declared.sha256 = declared.sha256.or_else(|| field("x-amz-checksum-sha256"));
    }
    let mut hasher = s3s::checksum::ChecksumHasher::default();
    if declared.crc32.is_some() {
        hasher.crc32 = Some(Default::default());
    }
    if declared.crc32c.is_some() {
        hasher.crc32c = Some(Default::default());
    }
    if declared.crc64nvme.is_some() {
        hasher.crc64nvme = Some(Default::default());
    }
    if declared.sha1.is_some() {
        hasher.sha1 = Some(Default::default());
    }
    if declared.sha256.is_some() {
        hasher.sha256 = Some(Default::default());
    }
    hasher.update(body);
    let actual = hasher.finalize();
    for (name, want, got) in [
        ("crc32", &declared.crc32, &actual.checksum_crc32),
        ("crc32c", &declared.crc32c, &actual.checksum_crc32c),
        ("crc64nvme", &declared.crc64nvme, &actual.checksum_crc64nvme),
        ("sha1", &declared.sha1, &actual.checksum_sha1),
        ("sha256", &declared.sha256, &actual.checksum_sha256),
    ] {
        if let Some(want) = want {
            if Some(want.trim()) != got.as_deref() {
                return Err(s3s::s3_error!(BadDigest, "The x-amz-checksum-{name} you specified did not match the calculated checksum."));
            }
        }
    }
    Ok(())
}
