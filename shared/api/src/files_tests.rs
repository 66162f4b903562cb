//! File, chunk, dedup and download tests on the native test platform (chunk size 64 KiB).

use crate::routes::*;
use crate::testing::*;
use vaultx_core::http::{ApiRequest, ApiResponse, Body};

pub(crate) const CHUNK: usize = 64 * 1024;

pub(crate) fn signed_in(p: &TestPlatform) -> String {
    let body = format!(r#"{{"email":"u{}@example.com","password":"correct horse battery"}}"#, p.now.get());
    p.now.set(p.now.get() + 1);
    assert_eq!(run(auth_register::handle(p, json_request("POST", "/api/auth/register", &body))).status, 201);
    body_json(&run(auth_login::handle(p, json_request("POST", "/api/auth/login", &body))))["accessToken"].as_str().unwrap().to_owned()
}

pub(crate) fn authed(method: &str, path: &str, token: &str, content_type: &str, body: Vec<u8>) -> ApiRequest {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    ApiRequest {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers: vec![("authorization".into(), format!("Bearer {token}")), ("content-type".into(), content_type.into())],
        body,
        sent_as_head: false,
    }
}

pub(crate) fn create(p: &TestPlatform, token: &str, json: &str) -> serde_json::Value {
    let r = run(files::handle(p, authed("POST", "/api/files", token, "application/json", json.into())));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(r.body.bytes()));
    body_json(&r)
}

pub(crate) fn put_chunk(p: &TestPlatform, token: &str, id: &str, index: u64, data: &[u8]) -> ApiResponse {
    run(file_chunk::handle(p, authed("POST", &format!("/api/files/{id}/chunks/{index}"), token, "application/octet-stream", data.to_vec())))
}

/// Reads a response body, following blob slices through the test blob store.
pub(crate) fn read_body(p: &TestPlatform, r: &ApiResponse) -> Vec<u8> {
    match &r.body {
        Body::Bytes(b) => b.clone(),
        // As the adapters do (compressed blocks are inflated on the way out).
        Body::Blobs(slices) => slices.iter().flat_map(|s| run(s.read(&p.blobs)).unwrap()).collect(),
    }
}

pub(crate) fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed)).collect()
}

pub(crate) fn refcounts(p: &TestPlatform) -> Vec<(String, i64, String)> {
    let mut stmt = p.conn.prepare("SELECT blob_key, refcount, state FROM blobs ORDER BY blob_key").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
}

pub(crate) fn signed_url(p: &TestPlatform, token: &str, id: &str, json: &str) -> ApiResponse {
    run(file_signed_url::handle(p, authed("POST", &format!("/api/files/{id}/signed-url"), token, "application/json", json.into())))
}

pub(crate) fn download(p: &TestPlatform, path: &str, headers: &[(&str, &str)]) -> ApiResponse {
    let req = ApiRequest {
        method: "GET".into(),
        path: path.into(),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    };
    // As the adapters do: HEAD runs as GET, and the audit event is recorded after the body.
    let r = run(vaultx_core::http::serve(Ok(req), |req| file_download::handle(p, req)));
    if let Some(event) = &r.log {
        vaultx_core::ports::AuditLog::record(p, &vaultx_core::http::log_done(event.clone(), r.body.len(), true));
    }
    r
}

#[test]
fn a_file_becomes_available_when_its_last_chunk_arrives_in_any_order() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let data = content(2 * CHUNK + 100, 7);
    let checksum = vaultx_core::digest::hex(&vaultx_core::digest::sha256(&data));
    let file = create(&p, &token, &format!(r#"{{"name":"a.bin","size":{},"checksum":"sha256:{checksum}"}}"#, data.len()));
    let id = file["id"].as_str().unwrap();
    assert_eq!((file["status"].as_str(), file["chunkCount"].as_u64()), (Some("uploading"), Some(3)));

    for index in [2, 0] {
        let r = put_chunk(&p, &token, id, index, &data[index as usize * CHUNK..((index as usize + 1) * CHUNK).min(data.len())]);
        assert_eq!(r.status, 201);
        assert_eq!(body_json(&r)["status"], "uploading");
    }
    let status = body_json(&run(file_chunks::handle(&p, authed("GET", &format!("/api/files/{id}/chunks"), &token, "", vec![]))));
    assert_eq!(status["missing"], serde_json::json!([1]));
    assert_eq!(signed_url(&p, &token, id, "{}").status, 409, "no download before completion");

    let r = put_chunk(&p, &token, id, 1, &data[CHUNK..2 * CHUNK]);
    assert_eq!(body_json(&r)["status"], "available");
    assert_eq!(put_chunk(&p, &token, id, 1, &data[CHUNK..2 * CHUNK]).status, 409, "chunks are frozen once available");

    let url = body_json(&signed_url(&p, &token, id, r#"{"expirationSeconds":60}"#))["path"].as_str().unwrap().to_owned();
    let r = download(&p, &url, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(read_body(&p, &r), data);
    assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
    assert!(r.header("content-disposition").unwrap().contains("filename=\"a.bin\""));
    let r = download(&p, &url, &[("range", "bytes=65530-65545")]);
    assert_eq!((r.status, r.header("content-range")), (206, Some("bytes 65530-65545/131172")));
    assert_eq!(read_body(&p, &r), &data[65530..=65545]);
    assert_eq!(download(&p, &url, &[("range", "bytes=999999-")]).status, 416);
    let etag = download(&p, &url, &[]).header("etag").unwrap().to_owned();
    assert_eq!(download(&p, &url, &[("if-none-match", &etag)]).status, 304);
    assert_eq!(p.audit.borrow().len(), 5, "every download is audited");

    p.now.set(p.now.get() + 61_000);
    assert_eq!(body_json(&download(&p, &url, &[]))["type"], "urn:vaultx:problem:expired-signed-url");
}

#[test]
fn chunk_sizes_indexes_and_digests_are_checked_before_anything_is_stored() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let id = create(&p, &token, &format!(r#"{{"name":"b","size":{}}}"#, CHUNK + 10))["id"].as_str().unwrap().to_owned();
    assert_eq!(body_json(&put_chunk(&p, &token, &id, 0, &[1; 100]))["type"], "urn:vaultx:problem:wrong-chunk-size");
    assert_eq!(body_json(&put_chunk(&p, &token, &id, 1, &[1; 11]))["type"], "urn:vaultx:problem:wrong-chunk-size");
    assert_eq!(body_json(&put_chunk(&p, &token, &id, 2, &[1; 10]))["type"], "urn:vaultx:problem:chunk-out-of-range");
    assert_eq!(body_json(&put_chunk(&p, &token, &id, u64::MAX, &[1; 10]))["type"], "urn:vaultx:problem:chunk-out-of-range");
    let mut req = authed("POST", &format!("/api/files/{id}/chunks/1"), &token, "application/octet-stream", vec![1; 10]);
    req.headers.push(("content-digest".into(), vaultx_core::digest::content_digest(&vaultx_core::digest::sha256(&[2; 10]))));
    let r = run(file_chunk::handle(&p, req));
    assert_eq!((r.status, body_json(&r)["type"].as_str().unwrap()), (400, "urn:vaultx:problem:digest-mismatch"));
    assert!(p.blobs.0.borrow().is_empty(), "nothing stored");
}

#[test]
fn multipart_chunks_work_like_the_seed_curl_example() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let id = create(&p, &token, r#"{"name":"c","size":5}"#)["id"].as_str().unwrap().to_owned();
    let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"chunk\"; filename=\"chunk0.bin\"\r\nContent-Type: application/octet-stream\r\n\r\nhello\r\n--XyZ--\r\n";
    let r = run(file_chunk::handle(&p, authed("POST", &format!("/api/files/{id}/chunks/0"), &token, "multipart/form-data; boundary=XyZ", body.to_vec())));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(r.body.bytes()));
    assert_eq!(body_json(&r)["digest"], "sha-256=:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=:");
    let wrong_field = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nhello\r\n--XyZ--\r\n";
    let id2 = create(&p, &token, r#"{"name":"d","size":5}"#)["id"].as_str().unwrap().to_owned();
    let r = run(file_chunk::handle(&p, authed("POST", &format!("/api/files/{id2}/chunks/0"), &token, "multipart/form-data; boundary=XyZ", wrong_field.to_vec())));
    assert_eq!(r.status, 422);
}

#[test]
fn identical_chunks_are_stored_once_and_freed_with_their_last_reference() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let data = content(CHUNK, 3);
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let id = create(&p, &token, &format!(r#"{{"name":"same","size":{CHUNK}}}"#))["id"].as_str().unwrap().to_owned();
            assert_eq!(put_chunk(&p, &token, &id, 0, &data).status, 201);
            id
        })
        .collect();
    assert_eq!(p.blobs.0.borrow().len(), 1, "one blob for two files");
    assert_eq!(refcounts(&p)[0].1, 2);
    let usage = body_json(&run(files_usage::handle(&p, authed("GET", "/api/files/stats/usage", &token, "", vec![]))));
    assert_eq!((usage["logicalBytes"].as_u64(), usage["storedBytes"].as_u64()), (Some(2 * CHUNK as u64), Some(CHUNK as u64)));

    let delete = |id: &str| run(file::handle(&p, authed("DELETE", &format!("/api/files/{id}"), &token, "", vec![])));
    assert_eq!(delete(&ids[0]).status, 204);
    assert_eq!(p.blobs.0.borrow().len(), 1, "still referenced by the other file");
    assert_eq!(refcounts(&p)[0].1, 1);
    assert_eq!(delete(&ids[1]).status, 204);
    assert!(p.blobs.0.borrow().is_empty(), "freed with its last reference");
    assert_eq!(refcounts(&p)[0].2, "deleted");
    assert_eq!(delete(&ids[1]).status, 404);

    // The same content uploaded again revives the tombstone.
    let id = create(&p, &token, &format!(r#"{{"name":"again","size":{CHUNK}}}"#))["id"].as_str().unwrap().to_owned();
    assert_eq!(put_chunk(&p, &token, &id, 0, &data).status, 201);
    assert_eq!(refcounts(&p), [(refcounts(&p)[0].0.clone(), 1, "live".into())]);
    assert_eq!(p.blobs.0.borrow().len(), 1);
}

#[test]
fn resending_or_replacing_a_chunk_keeps_counts_exact() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let id = create(&p, &token, &format!(r#"{{"name":"r","size":{}}}"#, 2 * CHUNK))["id"].as_str().unwrap().to_owned();
    let (a, b) = (content(CHUNK, 5), content(CHUNK, 9));
    assert_eq!(put_chunk(&p, &token, &id, 0, &a).status, 201);
    assert_eq!(put_chunk(&p, &token, &id, 0, &a).status, 200, "idempotent");
    assert_eq!(refcounts(&p)[0].1, 1);
    assert_eq!(put_chunk(&p, &token, &id, 0, &b).status, 201, "replaced");
    let counts: Vec<(i64, String)> = refcounts(&p).into_iter().map(|(_, n, s)| (n, s)).collect();
    assert!(counts.contains(&(1, "live".into())) && counts.contains(&(0, "deleted".into())), "{counts:?}");
    assert_eq!(p.blobs.0.borrow().len(), 1);
}

#[test]
fn a_sweep_that_wins_the_race_makes_the_upload_write_again() {
    // An upload saw the blob live and skipped writing; then the last reference went and a
    // sweep deleted the bytes before the upload committed. The upload must notice.
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let data = content(CHUNK, 11);
    let first = create(&p, &token, &format!(r#"{{"name":"x","size":{CHUNK}}}"#))["id"].as_str().unwrap().to_owned();
    put_chunk(&p, &token, &first, 0, &data);
    let key = refcounts(&p)[0].0.clone();
    // Simulate the sweep having claimed the blob (refcount 0, state deleting, gen + 1).
    p.conn.execute_batch(&format!("UPDATE blobs SET refcount = 0, state = 'deleting', gen = gen + 1, changed_at = 0 WHERE blob_key = '{key}'")).unwrap();
    p.blobs.0.borrow_mut().clear();
    let second = create(&p, &token, &format!(r#"{{"name":"y","size":{CHUNK}}}"#))["id"].as_str().unwrap().to_owned();
    // The stale sweep (changed_at 0) is finished by the upload, which then writes the bytes.
    assert_eq!(put_chunk(&p, &token, &second, 0, &data).status, 201);
    assert!(p.blobs.0.borrow().contains_key(&key), "bytes written again");
    assert!(refcounts(&p).iter().any(|(k, n, s)| *k == key && *n >= 1 && s == "live"));
}

#[test]
fn users_see_only_their_own_files() {
    let p = TestPlatform::new();
    let (alice, bob) = (signed_in(&p), signed_in(&p));
    let id = create(&p, &alice, r#"{"name":"secret.txt","size":3}"#)["id"].as_str().unwrap().to_owned();
    let get = |token: &str| run(file::handle(&p, authed("GET", &format!("/api/files/{id}"), token, "", vec![])));
    assert_eq!(get(&alice).status, 200);
    assert_eq!(get(&bob).status, 404);
    assert_eq!(put_chunk(&p, &bob, &id, 0, b"abc").status, 404);
    let list = |token: &str| body_json(&run(files::handle(&p, authed("GET", "/api/files", token, "", vec![]))));
    assert_eq!(list(&alice)["total"], 1);
    assert_eq!(list(&bob)["total"], 0);
}

#[test]
fn listing_pages_and_sorts() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    for (name, size) in [("b", 3), ("a", 1), ("c", 2)] {
        create(&p, &token, &format!(r#"{{"name":"{name}","size":{size}}}"#));
        p.now.set(p.now.get() + 1000);
    }
    let list = |q: &str| run(files::handle(&p, authed("GET", &format!("/api/files?{q}"), &token, "", vec![])));
    let names = |q: &str| -> Vec<String> { body_json(&list(q))["items"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()).collect() };
    assert_eq!(names(""), ["c", "a", "b"], "newest first by default");
    assert_eq!(names("sort=name&order=asc"), ["a", "b", "c"]);
    assert_eq!(names("sort=size&order=desc&limit=2"), ["b", "c"]);
    assert_eq!(names("sort=size&order=desc&limit=2&page=2"), ["a"]);
    assert_eq!(list("limit=0").status, 400);
    assert_eq!(list("sort=owner_id").status, 400);
}

#[test]
fn empty_files_are_available_at_once() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let file = create(&p, &token, r#"{"name":"empty","size":0}"#);
    assert_eq!(file["status"], "available");
    let url = body_json(&signed_url(&p, &token, file["id"].as_str().unwrap(), "{}"))["path"].as_str().unwrap().to_owned();
    let r = download(&p, &url, &[]);
    assert_eq!((r.status, r.body.len()), (200, 0));
}

#[test]
fn signed_url_requests_are_validated() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let id = create(&p, &token, r#"{"name":"e","size":0}"#)["id"].as_str().unwrap().to_owned();
    for bad in [r#"{"expirationSeconds":0}"#, r#"{"expirationSeconds":604801}"#, r#"{"permissions":["write"]}"#, r#"{"permissions":[]}"#] {
        assert_eq!(signed_url(&p, &token, &id, bad).status, 422, "{bad}");
    }
    assert_eq!(signed_url(&p, &token, &id, r#"{"expirationSeconds":604800}"#).status, 201);
}
