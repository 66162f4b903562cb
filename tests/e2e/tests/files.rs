//! Files: create, chunked upload (raw and multipart, any order, in parallel), resume,
//! verification, deduplication, signed-URL downloads with Range and ETag.

use serde_json::json;
use vaultx_e2e::{Client, bytes, chunk_size, sha256_hex};

#[test]
fn upload_in_chunks_then_download_byte_for_byte() {
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let data = bytes(2 * chunk_size() + 12_345, 1);
    let id = c.create_file(&token, "report.bin", &data);
    let f = c.get(&format!("/api/files/{id}"), Some(&token)).json();
    assert_eq!((f["status"].as_str(), f["chunkCount"].as_u64(), f["chunkSize"].as_u64()), (Some("uploading"), Some(3), Some(chunk_size() as u64)));
    c.upload(&token, &id, &data);
    assert_eq!(c.get(&format!("/api/files/{id}"), Some(&token)).json()["status"], "available");

    let path = c.signed_path(&token, &id, 300);
    let r = c.get(&path, None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), data.len());
    assert!(r.body == data, "downloaded bytes differ");
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("content-length"), Some(data.len().to_string().as_str()));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert!(r.header("content-disposition").unwrap().contains("filename=\"report.bin\""));
    let max_age: u64 = r.header("cache-control").unwrap().trim_start_matches("public, max-age=").parse().unwrap();
    assert!(max_age <= 300 && max_age > 290, "Cache-Control must not outlive the token: {max_age}");
}

#[test]
fn the_seed_curl_multipart_upload_works() {
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let data = bytes(1000, 2);
    let id = c.create_file(&token, "small.bin", &data);
    let mut body = b"--vaultxBoundary\r\nContent-Disposition: form-data; name=\"chunk\"; filename=\"chunk0.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
    body.extend_from_slice(&data);
    body.extend_from_slice(b"\r\n--vaultxBoundary--\r\n");
    let r = c.auth_send("POST", &format!("/api/files/{id}/chunks/0"), &token, &[("content-type", "multipart/form-data; boundary=vaultxBoundary")], Some(&body));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let stored = r.json();
    assert_eq!(stored["sha256"], sha256_hex(&data));
    assert!(stored["digest"].as_str().unwrap().starts_with("sha-256=:"));
    assert_eq!(stored["status"], "available");
}

#[test]
fn chunks_arrive_out_of_order_and_in_parallel() {
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let data = bytes(3 * chunk_size() + 7, 3);
    let id = c.create_file(&token, "parallel.bin", &data);
    let chunks: Vec<(usize, Vec<u8>)> = data.chunks(chunk_size()).map(|c| c.to_vec()).enumerate().rev().collect();
    std::thread::scope(|s| {
        for (i, chunk) in &chunks {
            let (token, id) = (&token, &id);
            s.spawn(move || {
                let r = Client::new().put_chunk(token, id, *i, chunk);
                assert_eq!(r.status, 201, "chunk {i}: {}", String::from_utf8_lossy(&r.body));
            });
        }
    });
    assert_eq!(c.get(&format!("/api/files/{id}"), Some(&token)).json()["status"], "available");
    assert!(c.get(&c.signed_path(&token, &id, 60), None).body == data);
}

#[test]
fn missing_chunks_are_listed_so_an_upload_can_resume() {
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let data = bytes(3 * chunk_size(), 4);
    let id = c.create_file(&token, "resume.bin", &data);
    let parts: Vec<&[u8]> = data.chunks(chunk_size()).collect();
    assert_eq!(c.put_chunk(&token, &id, 1, parts[1]).status, 201);
    let status = c.get(&format!("/api/files/{id}/chunks"), Some(&token)).json();
    assert_eq!(status["received"], json!([1]));
    assert_eq!(status["missing"], json!([0, 2]));
    assert_eq!(status["totalChunks"], 3);
    // Re-sending a chunk is harmless.
    assert_eq!(c.put_chunk(&token, &id, 1, parts[1]).status, 200);
    for i in [0, 2] {
        c.put_chunk(&token, &id, i, parts[i]);
    }
    let status = c.get(&format!("/api/files/{id}/chunks"), Some(&token)).json();
    assert_eq!((status["missing"].clone(), status["status"].clone()), (json!([]), json!("available")));
}

#[test]
fn a_corrupted_chunk_is_rejected_and_nothing_is_stored() {
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let data = bytes(5000, 5);
    let id = c.create_file(&token, "digest.bin", &data);
    // The sender's digest is of the real bytes; the bytes arriving were damaged in transit.
    let digest = vaultx_core::digest::content_digest(&vaultx_core::digest::sha256(&data));
    let mut damaged = data.clone();
    damaged[100] ^= 0xff;
    let r = c.auth_send("POST", &format!("/api/files/{id}/chunks/0"), &token,
        &[("content-type", "application/octet-stream"), ("content-digest", &digest)], Some(&damaged));
    r.assert_problem(400, "digest-mismatch");
    assert_eq!(c.get(&format!("/api/files/{id}/chunks"), Some(&token)).json()["missing"], json!([0]));
    // The right bytes with the right digest go in.
    let r = c.auth_send("POST", &format!("/api/files/{id}/chunks/0"), &token,
        &[("content-type", "application/octet-stream"), ("content-digest", &digest)], Some(&data));
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["digest"], digest.as_str());
}

#[test]
fn content_not_matching_the_declared_checksum_does_not_become_available() {
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let data = bytes(4000, 6);
    let id = c.create_file(&token, "checksum.bin", &data);
    let mut other = data.clone();
    other[0] ^= 1;
    c.put_chunk(&token, &id, 0, &other).assert_problem(422, "checksum-mismatch");
    assert_eq!(c.get(&format!("/api/files/{id}"), Some(&token)).json()["status"], "uploading");
    assert_eq!(c.put_chunk(&token, &id, 0, &data).json()["status"], "available", "re-sending the right chunk completes it");
}

#[test]
fn wrong_chunk_sizes_and_indexes_are_rejected() {
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let data = bytes(chunk_size() + 10, 7);
    let id = c.create_file(&token, "sizes.bin", &data);
    c.put_chunk(&token, &id, 0, &data[..chunk_size() - 1]).assert_problem(422, "wrong-chunk-size");
    c.put_chunk(&token, &id, 1, &data[..11]).assert_problem(422, "wrong-chunk-size");
    c.put_chunk(&token, &id, 2, &data[..10]).assert_problem(422, "chunk-out-of-range");
    c.put_chunk(&token, &id, 0, &[]).assert_problem(422, "wrong-chunk-size");
    c.auth_send("POST", &format!("/api/files/{id}/chunks/x"), &token, &[("content-type", "application/octet-stream")], Some(b"0123456789"))
        .assert_problem(422, "chunk-out-of-range");
    c.auth_send("POST", &format!("/api/files/{id}/chunks/1"), &token, &[("content-type", "text/plain")], Some(&data[..10]))
        .assert_problem(415, "unsupported-media-type");
    assert_eq!(c.get(&format!("/api/files/{id}/chunks"), Some(&token)).json()["received"], json!([]));
}

#[test]
fn a_file_is_not_served_before_every_chunk_arrives() {
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let data = bytes(chunk_size() + 1, 8);
    let id = c.create_file(&token, "partial.bin", &data);
    c.put_chunk(&token, &id, 0, &data[..chunk_size()]);
    let r = c.auth_send("POST", &format!("/api/files/{id}/signed-url"), &token, &[("content-type", "application/json")], Some(b"{}"));
    r.assert_problem(409, "file-not-available");
}

#[test]
fn range_requests_etags_and_head() {
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let data = bytes(chunk_size() + 5000, 9);
    let id = c.create_file(&token, "range.bin", &data);
    c.upload(&token, &id, &data);
    let path = c.signed_path(&token, &id, 600);
    let cs = chunk_size();
    // A range across the chunk boundary.
    let r = c.send("GET", &path, &[("range", &format!("bytes={}-{}", cs - 10, cs + 9))], None);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some(format!("bytes {}-{}/{}", cs - 10, cs + 9, data.len()).as_str()));
    assert!(r.body == data[cs - 10..cs + 10]);
    let r = c.send("GET", &path, &[("range", "bytes=-100")], None);
    assert!(r.status == 206 && r.body == data[data.len() - 100..]);
    let r = c.send("GET", &path, &[("range", "bytes=0-0")], None);
    assert!(r.status == 206 && r.body == data[..1]);
    let r = c.send("GET", &path, &[("range", &format!("bytes={}-", data.len()))], None);
    r.assert_problem(416, "range-not-satisfiable");
    assert_eq!(r.header("content-range"), Some(format!("bytes */{}", data.len()).as_str()));

    let full = c.get(&path, None);
    let etag = full.header("etag").unwrap().to_owned();
    let r = c.send("GET", &path, &[("if-none-match", &etag)], None);
    assert_eq!((r.status, r.body.len()), (304, 0));
    // If-Range with a stale validator gets the whole file.
    let r = c.send("GET", &path, &[("range", "bytes=0-9"), ("if-range", "\"stale\"")], None);
    assert_eq!(r.status, 200);
    let r = c.send("HEAD", &path, &[], None);
    assert_eq!((r.status, r.header("content-length")), (200, Some(data.len().to_string().as_str())));
}

#[test]
fn tampered_and_expired_signed_urls_are_refused() {
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let data = bytes(100, 10);
    let id = c.create_file(&token, "signed.bin", &data);
    c.upload(&token, &id, &data);
    let path = c.signed_path(&token, &id, 1);
    let (prefix, sig) = path.rsplit_once('.').unwrap();
    let flipped = format!("{prefix}.{}{}", if sig.starts_with('A') { 'B' } else { 'A' }, &sig[1..]);
    c.get(&flipped, None).assert_problem(403, "invalid-signed-url");
    c.get("/api/files/download/k1.e30.AAAA", None).assert_problem(403, "invalid-signed-url");
    c.get("/api/files/download/nope", None).assert_problem(403, "invalid-signed-url");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    c.get(&path, None).assert_problem(403, "expired-signed-url");
}

#[test]
fn deleting_a_file_releases_deduplicated_chunks_only_when_unreferenced() {
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let usage = |c: &Client| c.get("/api/files/stats/usage", Some(&token)).json();
    let data = bytes(2 * chunk_size() + 99, 11);
    let first = c.create_file(&token, "one.bin", &data);
    c.upload(&token, &first, &data);
    let second = c.create_file(&token, "two.bin", &data);
    c.upload(&token, &second, &data);
    // The dedup job re-cuts each file into content-defined blocks; until both are re-cut, the
    // first file's blocks and the second's chunks differ.
    vaultx_e2e::wait_for_jobs(&c);
    let u = usage(&c);
    assert_eq!(u["logicalBytes"], 2 * data.len() as u64);
    assert_eq!(u["storedBytes"], data.len() as u64, "identical chunks are stored once");

    assert_eq!(c.auth_send("DELETE", &format!("/api/files/{first}"), &token, &[], None).status, 204);
    c.get(&format!("/api/files/{first}"), Some(&token)).assert_problem(404, "not-found");
    assert!(c.get(&c.signed_path(&token, &second, 60), None).body == data, "the other file still reads whole");
    assert_eq!(usage(&c)["storedBytes"], data.len() as u64);

    let path = c.signed_path(&token, &second, 60);
    assert_eq!(c.auth_send("DELETE", &format!("/api/files/{second}"), &token, &[], None).status, 204);
    assert_eq!(usage(&c)["storedBytes"], 0);
    c.get(&path, None).assert_problem(404, "file-gone");
}

#[test]
fn listing_is_paginated_sorted_and_validated() {
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    for name in ["b.txt", "a.txt", "c.txt"] {
        c.create_file(&token, name, name.as_bytes());
    }
    let names = |q: &str| -> Vec<String> {
        let r = c.get(&format!("/api/files?{q}"), Some(&token));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()["items"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names("sort=name&order=asc"), ["a.txt", "b.txt", "c.txt"]);
    assert_eq!(names("sort=name&order=asc&limit=2&page=2"), ["c.txt"]);
    let page = c.get("/api/files?limit=2", Some(&token)).json();
    assert_eq!((page["total"].as_u64(), page["limit"].as_u64(), page["page"].as_u64()), (Some(3), Some(2), Some(1)));
    c.get("/api/files?limit=1000", Some(&token)).assert_problem(400, "invalid-query");
    c.get("/api/files?sort=password", Some(&token)).assert_problem(400, "invalid-query");
}

#[test]
fn file_entries_are_validated_and_patchable() {
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let post = |body: serde_json::Value| c.auth_send("POST", "/api/files", &token, &[("content-type", "application/json")], Some(body.to_string().as_bytes()));
    post(json!({"name": "", "size": 1})).assert_problem(422, "validation-failed");
    post(json!({"name": "x", "size": -1})).assert_problem(422, "validation-failed");
    post(json!({"name": "x", "size": 1, "mimeType": "not a type"})).assert_problem(422, "validation-failed");
    post(json!({"name": "x", "size": 1, "checksum": "md5:abc"})).assert_problem(422, "validation-failed");
    post(json!({"name": "x", "size": 1u64 << 50})).assert_problem(422, "validation-failed");
    let r = post(json!({"name": "important-document", "originalName": "important-document.pdf", "mimeType": "application/pdf",
        "size": 1048576, "compressionEnabled": true, "deduplicationEnabled": true}));
    assert_eq!(r.status, 201);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(r.header("location"), Some(format!("/api/files/{id}").as_str()));

    let patch = |body: &str| c.auth_send("PATCH", &format!("/api/files/{id}"), &token, &[("content-type", "application/json")], Some(body.as_bytes()));
    let r = patch(r#"{"name": "renamed", "mimeType": "text/plain"}"#);
    assert_eq!((r.status, r.json()["name"].as_str(), r.json()["mimeType"].as_str()), (200, Some("renamed"), Some("text/plain")));
    patch(r#"{"size": 5}"#).assert_problem(422, "validation-failed");
    patch(r#"{"name": ""}"#).assert_problem(422, "validation-failed");
}

#[test]
fn renaming_an_available_file_changes_its_download_name() {
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let id = c.create_file(&token, "old.txt", b"hello");
    c.upload(&token, &id, b"hello");
    let body = r#"{"originalName": "été 2026.txt", "mimeType": "text/plain"}"#;
    assert_eq!(c.auth_send("PATCH", &format!("/api/files/{id}"), &token, &[("content-type", "application/json")], Some(body.as_bytes())).status, 200);
    let r = c.get(&c.signed_path(&token, &id, 60), None);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert!(r.header("content-disposition").unwrap().contains("filename*=UTF-8''%C3%A9t%C3%A9%202026.txt"), "{:?}", r.header("content-disposition"));
}
