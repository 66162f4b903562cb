//! Background jobs, end to end: compression, content-defined deduplication, the admin job
//! routes, and a job that fails until it is dead and is retried after the fault is fixed.
//! Each test waits for the deployment's jobs to finish (`wait_for_jobs`), so they run one at
//! a time.

use serde_json::{Value, json};
use vaultx_e2e::{Client, admin_token, assert_integrity, bytes, chunk_size, serial, target, wait_for_jobs};

/// Text as a log or a document has it: compressible, not repetitive block to block.
fn text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &["object", "store", "edge", "region", "replica", "chunk", "manifest", "signed", "download", "upload", "the", "of", "and", "queue"];
    let noise = bytes(len, seed);
    let mut out = Vec::with_capacity(len + 16);
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(WORDS[noise[i % noise.len()] as usize % WORDS.len()].as_bytes());
        out.push(if noise[(i + 1) % noise.len()] % 11 == 0 { b'\n' } else { b' ' });
        i += 2;
    }
    out.truncate(len);
    out
}

fn create(c: &Client, token: &str, size: usize, options: Value) -> String {
    let mut body = json!({"name": "doc.txt", "size": size, "mimeType": "text/plain"});
    body.as_object_mut().unwrap().extend(options.as_object().unwrap().clone());
    let r = c.auth_send("POST", "/api/files", token, &[("content-type", "application/json")], Some(body.to_string().as_bytes()));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["id"].as_str().unwrap().to_owned()
}

fn usage(c: &Client, token: &str) -> Value {
    let r = c.get("/api/files/stats/usage", Some(token));
    assert_eq!(r.status, 200);
    r.json()
}

fn etag(c: &Client, token: &str, id: &str) -> String {
    c.get(&format!("/api/files/{id}"), Some(token)).json()["etag"].as_str().unwrap().to_owned()
}

#[track_caller]
fn assert_downloads(c: &Client, token: &str, id: &str, data: &[u8], ranges: &[(usize, usize)]) {
    let path = c.signed_path(token, id, 600);
    let whole = c.get(&path, None);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body.len(), data.len());
    assert!(whole.body == data, "the download differs from the upload");
    for &(start, end) in ranges {
        let r = c.send("GET", &path, &[("range", &format!("bytes={start}-{end}"))], None);
        assert_eq!(r.status, 206, "bytes={start}-{end}");
        assert_eq!(r.header("content-length"), Some((end - start + 1).to_string().as_str()));
        assert!(r.body == data[start..=end], "bytes={start}-{end} differ");
    }
}

#[test]
fn a_compressible_file_is_stored_smaller_and_downloads_byte_exact() {
    let _one = serial();
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let cs = chunk_size();
    let data = text(2 * cs + 12_345, 1);
    let id = create(&c, &token, data.len(), json!({"compressionEnabled": true, "deduplicationEnabled": false}));
    c.upload(&token, &id, &data);
    let before = etag(&c, &token, &id);
    wait_for_jobs(&c);
    let u = usage(&c, &token);
    let (logical, stored) = (u["logicalBytes"].as_i64().unwrap(), u["storedBytes"].as_i64().unwrap());
    assert_eq!(logical, data.len() as i64);
    assert!(stored * 2 < logical, "stored {stored} of {logical}");
    assert_eq!(u["savedBytes"].as_i64().unwrap(), logical - stored);
    assert_eq!(etag(&c, &token, &id), before, "the ETag never changes");
    // Ranges at block boundaries, across them, and inside blocks.
    assert_downloads(&c, &token, &id, &data, &[(0, 0), (cs - 1, cs), (cs, 2 * cs - 1), (777, cs + 777), (2 * cs, data.len() - 1), (12, 34)]);
    assert_integrity(&c);
}

#[test]
fn an_incompressible_file_is_stored_as_it_is() {
    let _one = serial();
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let data = bytes(chunk_size() + 999, 42);
    let id = create(&c, &token, data.len(), json!({"compressionEnabled": true, "deduplicationEnabled": false}));
    c.upload(&token, &id, &data);
    wait_for_jobs(&c);
    let u = usage(&c, &token);
    assert_eq!(u["storedBytes"], u["logicalBytes"], "{u}");
    assert_downloads(&c, &token, &id, &data, &[(chunk_size() - 10, chunk_size() + 10)]);
    assert_integrity(&c);
}

#[test]
fn a_file_and_an_edited_copy_share_all_but_a_few_blocks_after_the_dedup_job() {
    let _one = serial();
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let original = bytes(2 * chunk_size() + 4321, 7);
    let mut edited = original.clone();
    edited.splice(5000..5000, b"a few bytes inserted near the start".iter().copied());
    for data in [&original, &edited] {
        let id = create(&c, &token, data.len(), json!({}));
        c.upload(&token, &id, data);
    }
    wait_for_jobs(&c);
    let u = usage(&c, &token);
    let stored = u["storedBytes"].as_i64().unwrap() as f64;
    // Fixed chunks would store both in full (every chunk boundary moved); content-defined
    // blocks store the original once plus the one or two blocks the insert touched.
    assert!(stored < 1.25 * original.len() as f64, "stored {stored} for two files of {}", original.len());
    let files = c.get("/api/files?limit=10", Some(&token)).json();
    let ids: Vec<String> = files["items"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 2, "{files}");
    for id in &ids {
        let size = c.get(&format!("/api/files/{id}"), Some(&token)).json()["size"].as_u64().unwrap() as usize;
        let data = if size == original.len() { &original } else { &edited };
        assert_downloads(&c, &token, id, data, &[(4990, 5100), (chunk_size() - 1, chunk_size() + 1)]);
    }
    assert_integrity(&c);
}

#[test]
fn job_routes_are_for_administrators_only() {
    let _one = serial();
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    c.get("/api/admin/jobs", Some(&token)).assert_problem(403, "forbidden");
    c.get("/api/admin/jobs", None).assert_problem(401, "missing-token");
    let retry = "/api/admin/jobs/00000000-0000-4000-8000-000000000000/retry";
    c.auth_send("POST", retry, &token, &[], None).assert_problem(403, "forbidden");
    let admin = admin_token(&c);
    c.auth_send("POST", retry, &admin, &[], None).assert_problem(404, "not-found");
    c.get("/api/admin/jobs?state=sleeping", Some(&admin)).assert_problem(400, "invalid-query");
    c.get("/api/admin/jobs?kind=transcode", Some(&admin)).assert_problem(400, "invalid-query");
    // A job that finished cannot be retried.
    let data = text(1000, 3);
    let id = create(&c, &token, data.len(), json!({"compressionEnabled": true, "deduplicationEnabled": false}));
    c.upload(&token, &id, &data);
    wait_for_jobs(&c);
    let done = c.get("/api/admin/jobs?state=done&kind=compress&limit=1000", Some(&admin)).json();
    let job = done["jobs"].as_array().unwrap().iter().find(|j| j["subject"] == id.as_str()).unwrap_or_else(|| panic!("{done}")).clone();
    assert_eq!((job["attempts"].as_i64(), job["lastError"].is_null()), (Some(1), true));
    c.auth_send("POST", &format!("/api/admin/jobs/{}/retry", job["id"].as_str().unwrap()), &admin, &[], None).assert_problem(409, "job-not-dead");
}

/// Lost bytes are a real fault: the job cannot do its work until an operator restores them.
/// Needs the local runtime's data directory (VAULTX_DATA_DIR), so the local runtime only.
#[test]
fn a_failing_job_ends_dead_and_a_retry_after_the_fix_finishes_it() {
    let Ok(data_dir) = std::env::var("VAULTX_DATA_DIR") else {
        assert_ne!(target(), "runtime", "set VAULTX_DATA_DIR to the local runtime's --data-dir");
        vaultx_e2e::not_applicable("takes a blob out of the home store behind VaultX's back: only the local runtime's store is reachable from the test");
        return;
    };
    let _one = serial();
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let admin = admin_token(&c);
    let cs = chunk_size();
    let data = text(cs + 1000, 9);
    let id = create(&c, &token, data.len(), json!({"compressionEnabled": true, "deduplicationEnabled": false}));
    assert_eq!(c.put_chunk(&token, &id, 0, &data[..cs]).status, 201);
    // The first chunk's bytes vanish from the blob store before the upload completes.
    // A file without deduplication keeps its blocks to itself: `f.<file id>.<sha-256>`.
    let key = format!("f.{id}.{}", vaultx_e2e::sha256_hex(&data[..cs]));
    let lost = vaultx_e2e::HomeBlob::take(&data_dir, &key);
    assert_eq!(c.put_chunk(&token, &id, 1, &data[cs..]).status, 201);
    // Every attempt fails; after the last one the job is dead and listed for admins.
    let job = vaultx_e2e::wait_for("the job never died", std::time::Duration::from_millis(200), || {
        let dead = c.get("/api/admin/jobs?state=dead&kind=compress", Some(&admin)).json();
        match dead["jobs"].as_array().unwrap().iter().find(|j| j["subject"] == id.as_str()) {
            Some(job) => Ok(job.clone()),
            // Its attempts so far are the progress.
            None => Err(c.get("/api/admin/jobs?kind=compress", Some(&admin)).json()["jobs"].to_string()),
        }
    });
    assert_eq!(job["attempts"], 5);
    assert!(job["lastError"].as_str().unwrap().contains("missing"), "{job}");
    // The operator restores the bytes and retries: the job finishes.
    lost.restore();
    let r = c.auth_send("POST", &format!("/api/admin/jobs/{}/retry", job["id"].as_str().unwrap()), &admin, &[], None);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    wait_for_jobs(&c);
    let done = c.get("/api/admin/jobs?state=done&kind=compress&limit=1000", Some(&admin)).json();
    assert!(done["jobs"].as_array().unwrap().iter().any(|j| j["id"] == job["id"]), "{done}");
    assert!(usage(&c, &token)["storedBytes"].as_i64().unwrap() * 2 < data.len() as i64);
    assert_downloads(&c, &token, &id, &data, &[(cs - 5, cs + 5)]);
    assert_integrity(&c);
}

/// The Worker's sweep is its Cron Trigger; `wrangler dev --test-scheduled` fires it on
/// `/__scheduled` (the local runtime's sweep is its timer, exercised by the failing-job test:
/// every retry after the first attempt is run by the sweep, not by a wake-up).
#[test]
fn the_workers_cron_sweep_runs() {
    if target() != "worker" {
        vaultx_e2e::not_applicable("the Cron Trigger is the Worker's (elsewhere the sweep is the runtime's timer or the traffic-driven one, tested by every job test)");
        return;
    }
    let _one = serial();
    let c = Client::new();
    let r = c.get("/__scheduled?cron=*+*+*+*+*", None);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    wait_for_jobs(&c);
    assert_integrity(&c);
}

fn crc_b64(data: &[u8]) -> String {
    vaultx_core::digest::crc64_base64(vaultx_core::digest::crc64nvme(data))
}

#[test]
fn a_declared_crc_is_checked_at_completion_and_the_sha256_by_the_verify_job() {
    let _one = serial();
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let cs = chunk_size();
    let data = bytes(cs + 4321, 77);
    let sha = format!("sha256:{}", vaultx_e2e::sha256_hex(&data));
    // A CRC that is not the content's: the last chunk is refused, the file stays uploading.
    let id = create(&c, &token, data.len(), json!({"checksum": sha, "checksumCrc64nvme": crc_b64(b"other"), "deduplicationEnabled": false}));
    assert_eq!(c.put_chunk(&token, &id, 0, &data[..cs]).status, 201);
    c.put_chunk(&token, &id, 1, &data[cs..]).assert_problem(422, "checksum-mismatch");
    assert_eq!(c.get(&format!("/api/files/{id}"), Some(&token)).json()["status"], "uploading");
    // The right CRC: available at once, the SHA-256 verified in the background.
    let id = create(&c, &token, data.len(), json!({"checksum": sha, "checksumCrc64nvme": crc_b64(&data), "deduplicationEnabled": false}));
    c.upload(&token, &id, &data);
    let f = c.get(&format!("/api/files/{id}"), Some(&token)).json();
    assert_eq!(f["status"], "available", "{f}");
    assert_downloads(&c, &token, &id, &data, &[(cs - 1, cs)]);
    wait_for_jobs(&c);
    assert_eq!(c.get(&format!("/api/files/{id}"), Some(&token)).json()["checksumVerified"], true);
    // Content that contradicts its declared SHA-256 (its CRC is right) ends invalid, never served.
    let id = create(&c, &token, data.len(), json!({"checksum": format!("sha256:{}", "0".repeat(64)), "checksumCrc64nvme": crc_b64(&data), "deduplicationEnabled": false}));
    c.upload(&token, &id, &data);
    wait_for_jobs(&c);
    let f = c.get(&format!("/api/files/{id}"), Some(&token)).json();
    assert_eq!((f["status"].as_str(), f["checksumVerified"].as_bool()), (Some("invalid"), Some(false)), "{f}");
    c.auth_send("POST", &format!("/api/files/{id}/signed-url"), &token, &[("content-type", "application/json")], Some(b"{}")).assert_problem(409, "file-not-available");
    assert_integrity(&c);
}
