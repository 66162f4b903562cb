//! S3-compatible blob stores (AWS S3, Cloudflare R2's S3 endpoint, Garage, Ceph RGW, MinIO…):
//! which stores a deployment has, from configuration, and the requests to send them, signed
//! with AWS Signature V4 (`rusty-s3`, presigned, so the adapter only has to send a plain
//! HTTP request). No I/O here: each adapter sends the requests with its own outbound HTTP.
//!
//! Configuration, two variables:
//! - `s3_stores`: `name=http(s)://host[:port]/bucket[?region=…]`, comma-separated (path-style
//!   addressing; the region signs the requests, `us-east-1` when not given, `auto` for R2);
//! - `s3_credentials` (a secret): `name=access-key-id:secret-access-key`, comma-separated.
//!
//! A storage node names such a store with kind [`KIND`] and the store's name as its binding.

use rusty_s3::actions::{ListObjectsV2, S3Action};
use rusty_s3::{Bucket, Credentials, UrlStyle};
use std::time::Duration;

/// The kind storage nodes give an S3-compatible store.
pub const KIND: &str = "s3";
/// How long a signed request stays valid: long enough for a slow 16 MiB upload to start,
/// short enough that a logged URL is soon worthless.
pub const SIGNATURE_TTL: Duration = Duration::from_secs(300);

/// One configured bucket and the credentials that sign requests to it.
#[derive(Clone, Debug)]
pub struct S3Store {
    pub name: String,
    bucket: Bucket,
    credentials: Credentials,
}

/// A request to send: the method and the presigned URL (the body, for a PUT, is the blob).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRequest {
    pub method: &'static str,
    pub url: String,
}

fn entries(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split(',').map(str::trim).filter(|e| !e.is_empty()).map(|e| e.split_once('=').map_or((e, ""), |(n, v)| (n.trim(), v.trim())))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 63 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The store called `name` in `stores` (the `s3_stores` variable), signed with its entry in
/// `credentials` (`s3_credentials`). `Ok(None)`: the deployment has no such store. `Err`: the
/// configuration is malformed (said exactly, for the operator).
pub fn find(stores: &str, credentials: &str, name: &str) -> Result<Option<S3Store>, String> {
    let Some((_, spec)) = entries(stores).find(|(n, _)| *n == name) else {
        return Ok(None);
    };
    if !valid_name(name) {
        return Err(format!("s3_stores: {name:?} is not a store name (a-z, 0-9, - and _)"));
    }
    let url = url::Url::parse(spec).map_err(|e| format!("s3_stores: {name}: {spec:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("s3_stores: {name}: the endpoint must be http(s)://host[:port]/bucket"));
    }
    let segments: Vec<&str> = url.path_segments().map(|s| s.filter(|s| !s.is_empty()).collect()).unwrap_or_default();
    let [bucket_name] = segments[..] else {
        return Err(format!("s3_stores: {name}: name exactly one bucket in the path (http(s)://host[:port]/bucket)"));
    };
    let region = url.query_pairs().find(|(k, _)| k == "region").map_or_else(|| "us-east-1".to_owned(), |(_, v)| v.into_owned());
    let mut endpoint = url.clone();
    endpoint.set_path("/");
    endpoint.set_query(None);
    let bucket = Bucket::new(endpoint, UrlStyle::Path, bucket_name.to_owned(), region).map_err(|e| format!("s3_stores: {name}: {e}"))?;
    let Some((_, pair)) = entries(credentials).find(|(n, _)| *n == name) else {
        return Err(format!("s3_credentials has no entry for the store {name:?} (name=access-key-id:secret)"));
    };
    let Some((key, secret)) = pair.split_once(':').filter(|(k, s)| !k.is_empty() && !s.is_empty()) else {
        return Err(format!("s3_credentials: {name}: expected access-key-id:secret-access-key"));
    };
    Ok(Some(S3Store { name: name.to_owned(), bucket, credentials: Credentials::new(key.to_owned(), secret.to_owned()) }))
}

fn timestamp(now_ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(now_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

impl S3Store {
    /// `scheme://host:port` of the endpoint: what the component's `allowed_outbound_hosts`
    /// must grant.
    pub fn origin(&self) -> String {
        let url = self.bucket.base_url();
        format!("{}://{}:{}", url.scheme(), url.host_str().unwrap_or(""), url.port_or_known_default().unwrap_or(0))
    }

    pub fn put(&self, key: &str, now_ms: i64) -> SignedRequest {
        let url = self.bucket.put_object(Some(&self.credentials), key).sign_with_time(SIGNATURE_TTL, &timestamp(now_ms));
        SignedRequest { method: "PUT", url: url.into() }
    }

    pub fn get(&self, key: &str, now_ms: i64) -> SignedRequest {
        let url = self.bucket.get_object(Some(&self.credentials), key).sign_with_time(SIGNATURE_TTL, &timestamp(now_ms));
        SignedRequest { method: "GET", url: url.into() }
    }

    pub fn delete(&self, key: &str, now_ms: i64) -> SignedRequest {
        let url = self.bucket.delete_object(Some(&self.credentials), key).sign_with_time(SIGNATURE_TTL, &timestamp(now_ms));
        SignedRequest { method: "DELETE", url: url.into() }
    }

    /// The bucket exists and the credentials are accepted (a node's probe).
    pub fn head_bucket(&self, now_ms: i64) -> SignedRequest {
        let url = self.bucket.head_bucket(Some(&self.credentials)).sign_with_time(SIGNATURE_TTL, &timestamp(now_ms));
        SignedRequest { method: "HEAD", url: url.into() }
    }

    /// One page of the bucket's keys, after the page `continuation` ended.
    pub fn list(&self, continuation: Option<&str>, now_ms: i64) -> SignedRequest {
        let mut action = ListObjectsV2::new(&self.bucket, Some(&self.credentials));
        action.with_max_keys(1000);
        if let Some(token) = continuation {
            action.with_continuation_token(token.to_owned());
        }
        SignedRequest { method: "GET", url: action.sign_with_time(SIGNATURE_TTL, &timestamp(now_ms)).into() }
    }
}

/// A ListObjectsV2 page: its keys, and the token of the next page if there is one.
pub fn parse_list(xml: &str) -> Result<(Vec<String>, Option<String>), String> {
    let page = ListObjectsV2::parse_response(xml).map_err(|e| format!("ListObjectsV2: {e}"))?;
    Ok((page.contents.into_iter().map(|o| o.key).collect(), page.next_continuation_token))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORES: &str = "home=http://127.0.0.1:9000/vaultx-home, r2=https://acct.r2.cloudflarestorage.com/vaultx?region=auto";
    const CREDENTIALS: &str = "home=AKIDEXAMPLE:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY,r2=key:secret";

    #[test]
    fn stores_come_from_configuration() {
        let home = find(STORES, CREDENTIALS, "home").unwrap().unwrap();
        assert_eq!(home.origin(), "http://127.0.0.1:9000");
        let r2 = find(STORES, CREDENTIALS, "r2").unwrap().unwrap();
        assert_eq!(r2.origin(), "https://acct.r2.cloudflarestorage.com:443");
        assert!(find(STORES, CREDENTIALS, "other").unwrap().is_none());
        assert!(find("", "", "home").unwrap().is_none());
    }

    #[test]
    fn malformed_configuration_is_said_exactly() {
        let no_credentials = find(STORES, "r2=key:secret", "home").unwrap_err();
        assert!(no_credentials.contains("s3_credentials has no entry"), "{no_credentials}");
        assert!(find("x=ftp://h/b", "x=a:b", "x").unwrap_err().contains("http(s)"));
        assert!(find("x=http://h/", "x=a:b", "x").unwrap_err().contains("exactly one bucket"));
        assert!(find("x=http://h/a/b", "x=a:b", "x").unwrap_err().contains("exactly one bucket"));
        assert!(find("x=http://h/b", "x=nosecret", "x").unwrap_err().contains("access-key-id:secret"));
        assert!(find("X=http://h/b", "X=a:b", "X").unwrap_err().contains("not a store name"));
    }

    #[test]
    fn requests_are_presigned_path_style_with_sigv4() {
        let home = find(STORES, CREDENTIALS, "home").unwrap().unwrap();
        // 2013-05-24T00:00:00Z, the date of AWS's SigV4 examples.
        let put = home.put("owner/ab12.deflate", 1_369_353_600_000);
        assert_eq!(put.method, "PUT");
        assert!(put.url.starts_with("http://127.0.0.1:9000/vaultx-home/owner/ab12.deflate?"), "{}", put.url);
        for part in ["X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Credential=AKIDEXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request", "X-Amz-Date=20130524T000000Z", "X-Amz-Expires=300", "X-Amz-Signature="] {
            assert!(put.url.contains(part), "{part} missing from {}", put.url);
        }
        // The signature covers the method: the same key and time sign differently for GET.
        let signature = |u: &str| u.split("X-Amz-Signature=").nth(1).unwrap().to_owned();
        assert_ne!(signature(&put.url), signature(&home.get("owner/ab12.deflate", 1_369_353_600_000).url));
        assert_eq!(signature(&put.url), signature(&home.put("owner/ab12.deflate", 1_369_353_600_000).url));
    }

    #[test]
    fn list_pages_parse() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>
<Contents><Key>u/a</Key><LastModified>2026-11-26T00:00:00.000Z</LastModified><ETag>"x"</ETag><Size>3</Size><StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key>u/b.deflate</Key><LastModified>2026-11-26T00:00:00.000Z</LastModified><ETag>"y"</ETag><Size>4</Size><StorageClass>STANDARD</StorageClass></Contents>
<NextContinuationToken>t2</NextContinuationToken></ListBucketResult>"#;
        let (keys, next) = parse_list(xml).unwrap();
        assert_eq!(keys, vec!["u/a", "u/b.deflate"]);
        assert_eq!(next.as_deref(), Some("t2"));
    }
}
