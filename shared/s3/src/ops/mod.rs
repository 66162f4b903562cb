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
