//! The file-management API, end to end: versions and rollback, archive, tags and metadata,
//! search with cursors, usage, quotas and the audit log.

use serde_json::{Value, json};
use vaultx_e2e::{Client, Reply, admin_token, assert_integrity, bytes, chunk_size, serial, target};

fn send_json(c: &Client, method: &str, path: &str, token: &str, body: &Value) -> Reply {
    c.auth_send(method, path, token, &[("content-type", "application/json")], Some(body.to_string().as_bytes()))
}

#[track_caller]
fn ok(r: Reply, status: u16) -> Value {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    if r.body.is_empty() { Value::Null } else { r.json() }
}

fn user_id(c: &Client, token: &str) -> String {
    c.get("/api/users/me", Some(token)).json()["id"].as_str().unwrap().to_owned()
}

/// A file of `data`, uploaded and available.
fn file(c: &Client, token: &str, name: &str, data: &[u8], extra: Value) -> String {
    let mut body = json!({"name": name, "size": data.len(), "mimeType": "application/octet-stream"});
    body.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    let id = ok(send_json(c, "POST", "/api/files", token, &body), 201)["id"].as_str().unwrap().to_owned();
    c.upload(token, &id, data);
    id
}

fn new_version(c: &Client, token: &str, id: &str, data: &[u8]) -> Value {
    let v = ok(send_json(c, "POST", &format!("/api/files/{id}/versions"), token, &json!({"size": data.len()})), 201);
    c.upload(token, v["uploadId"].as_str().unwrap(), data);
    v
}

fn download(c: &Client, path: &str) -> Reply {
    c.get(path, None)
}

fn signed(c: &Client, token: &str, id: &str, body: Value) -> String {
    ok(send_json(c, "POST", &format!("/api/files/{id}/signed-url"), token, &body), 201)["path"].as_str().unwrap().to_owned()
}

#[test]
fn a_version_uploaded_then_rolled_back_is_byte_for_byte_the_old_content() {
    let _one = serial();
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let cs = chunk_size();
    let v1 = bytes(2 * cs + 1000, 11);
    let id = file(&c, &token, "report.bin", &v1, json!({}));
    let v1_url = signed(&c, &token, &id, json!({}));
    // Version 2 keeps v1's first chunk and changes the rest.
    let v2 = [&v1[..cs], &bytes(cs / 2, 12)[..]].concat();
    let created = new_version(&c, &token, &id, &v2);
    assert_eq!(created["version"], 2);

    let f = ok(c.get(&format!("/api/files/{id}"), Some(&token)), 200);
    assert_eq!((f["version"].as_i64(), f["versionCount"].as_i64(), f["size"].as_u64()), (Some(2), Some(2), Some(v2.len() as u64)));
    let now = download(&c, &signed(&c, &token, &id, json!({})));
    assert!(now.body == v2, "the current version downloads as uploaded");
    assert!(download(&c, &v1_url).body == v1, "a URL keeps serving the version it was issued for");
    assert!(download(&c, &signed(&c, &token, &id, json!({"version": 1}))).body == v1);

    let history = ok(c.get(&format!("/api/files/{id}/versions"), Some(&token)), 200);
    let rows: Vec<(i64, bool)> = history["items"].as_array().unwrap().iter().map(|v| (v["version"].as_i64().unwrap(), v["current"].as_bool().unwrap())).collect();
    assert_eq!(rows, [(1, false), (2, true)]);
    assert_eq!(history["items"][1]["size"], v2.len());
    let one = ok(c.get(&format!("/api/files/{id}/versions/1"), Some(&token)), 200);
    assert_eq!((one["version"].as_i64(), one["current"].as_bool(), one["size"].as_u64()), (Some(1), Some(false), Some(v1.len() as u64)));
    c.get(&format!("/api/files/{id}/versions/01"), Some(&token)).assert_problem(404, "not-found");

    // The new version's dedup job re-cuts it; measure once the background work is done.
    vaultx_e2e::wait_for_jobs(&c);
    let stored_before = ok(c.get("/api/files/stats/usage", Some(&token)), 200)["storedBytes"].as_u64().unwrap();
    let restored = ok(send_json(&c, "POST", &format!("/api/files/{id}/versions/1/restore"), &token, &json!({})), 200);
    assert_eq!(restored["version"], 1);
    let back = download(&c, &signed(&c, &token, &id, json!({})));
    assert_eq!(back.body.len(), v1.len());
    assert!(back.body == v1, "after the rollback the file is byte for byte version 1");
    // Nothing was copied.
    assert_eq!(ok(c.get("/api/files/stats/usage", Some(&token)), 200)["storedBytes"].as_u64().unwrap(), stored_before);
    assert_integrity(&c);

    // The current version cannot be deleted; version 2 can, and frees only what it alone used.
    ok(c.auth_send("DELETE", &format!("/api/files/{id}/versions/1"), &token, &[], None), 409);
    ok(c.auth_send("DELETE", &format!("/api/files/{id}/versions/2"), &token, &[], None), 204);
    ok(c.get(&format!("/api/files/{id}/versions/2"), Some(&token)), 404);
    assert!(download(&c, &v1_url).body == v1, "the shared chunk is still there");
    let usage = ok(c.get("/api/files/stats/usage", Some(&token)), 200);
    assert_eq!(usage["versions"]["count"], 0);
    assert_integrity(&c);
    ok(c.auth_send("DELETE", &format!("/api/files/{id}"), &token, &[], None), 204);
    ok(download(&c, &v1_url), 404);
    assert_integrity(&c);
}

#[test]
fn deleting_a_file_with_versions_leaves_no_orphan() {
    let _one = serial();
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let a = bytes(1000, 21);
    let id = file(&c, &token, "a.bin", &a, json!({}));
    new_version(&c, &token, &id, &bytes(2000, 22));
    new_version(&c, &token, &id, &a); // version 3 is version 1's content again: one blob
    // An abandoned upload of a fourth.
    let pending = ok(send_json(&c, "POST", &format!("/api/files/{id}/versions"), &token, &json!({"size": 10})), 201);
    ok(send_json(&c, "POST", &format!("/api/files/{id}/versions"), &token, &json!({"size": 10})), 409);
    ok(c.get(&format!("/api/files/{}", pending["uploadId"].as_str().unwrap()), Some(&token)), 404);
    assert_eq!(ok(c.get(&format!("/api/files/{id}/versions"), Some(&token)), 200)["items"].as_array().unwrap().len(), 4);
    ok(c.auth_send("DELETE", &format!("/api/files/{id}"), &token, &[], None), 204);
    let usage = ok(c.get("/api/files/stats/usage", Some(&token)), 200);
    assert_eq!((usage["files"].as_i64(), usage["storedBytes"].as_i64(), usage["logicalBytes"].as_i64()), (Some(0), Some(0), Some(0)));
    assert_integrity(&c);
}

#[test]
fn version_retention_keeps_the_newest() {
    let _one = serial();
    let Ok(keep) = std::env::var("VAULTX_VERSION_RETENTION").map(|v| v.parse::<usize>().unwrap()) else {
        vaultx_e2e::not_applicable("VAULTX_VERSION_RETENTION does not name the deployment's version_retention");
        return;
    };
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let id = file(&c, &token, "a.txt", &bytes(10, 31), json!({}));
    for n in 0..keep + 1 {
        new_version(&c, &token, &id, &bytes(10, 32 + n as u64));
    }
    let history = ok(c.get(&format!("/api/files/{id}/versions"), Some(&token)), 200);
    let numbers: Vec<i64> = history["items"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
    // Versions 1 … keep + 2 were made; the newest `keep` remain.
    assert_eq!(numbers, (3..=keep as i64 + 2).collect::<Vec<_>>());
}

#[test]
fn archive_blocks_downloads_chunks_and_versions_and_restore_brings_them_back() {
    let _one = serial();
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let data = bytes(3000, 41);
    let id = file(&c, &token, "a.bin", &data, json!({}));
    let url = signed(&c, &token, &id, json!({}));
    // Not while a version uploads.
    let pending = ok(send_json(&c, "POST", &format!("/api/files/{id}/versions"), &token, &json!({"size": 10})), 201);
    ok(send_json(&c, "POST", &format!("/api/files/{id}/archive"), &token, &json!({})), 409);
    ok(c.auth_send("DELETE", &format!("/api/files/{id}/versions/{}", pending["version"]), &token, &[], None), 204);

    let archived = ok(send_json(&c, "POST", &format!("/api/files/{id}/archive"), &token, &json!({})), 200);
    assert_eq!(archived["status"], "archived");
    download(&c, &url).assert_problem(403, "file-archived");
    send_json(&c, "POST", &format!("/api/files/{id}/signed-url"), &token, &json!({})).assert_problem(403, "file-archived");
    send_json(&c, "POST", &format!("/api/files/{id}/versions"), &token, &json!({"size": 1})).assert_problem(403, "file-archived");
    c.put_chunk(&token, &id, 0, &data).assert_problem(409, "file-not-uploading");
    let usage = ok(c.get("/api/files/stats/usage", Some(&token)), 200);
    assert_eq!(usage["byStatus"]["archived"], json!({"files": 1, "bytes": 3000}));
    assert_eq!(usage["byStatus"]["available"]["files"], 0);
    assert_integrity(&c);

    ok(send_json(&c, "POST", &format!("/api/files/{id}/restore-archive"), &token, &json!({})), 200);
    assert!(download(&c, &url).body == data, "the old link works again");
    new_version(&c, &token, &id, &bytes(10, 42));
    // Idempotent: restoring an available file answers it as it is.
    assert_eq!(ok(send_json(&c, "POST", &format!("/api/files/{id}/restore-archive"), &token, &json!({})), 200)["status"], "available");
    assert_integrity(&c);
}

#[test]
fn tags_and_metadata_are_limited_and_shown_with_the_file() {
    // Tests here check integrity at rest: one at a time.
    let _one = serial();
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let id = file(&c, &token, "a.bin", b"hello", json!({}));
    let tags = format!("/api/files/{id}/tags");
    let f = ok(send_json(&c, "POST", &tags, &token, &json!({"tags": ["invoices", "2026", "invoices"]})), 200);
    assert_eq!(f["tags"], json!(["2026", "invoices"]));
    let r = send_json(&c, "POST", &tags, &token, &json!({"tags": (0..9).map(|i| format!("t{i}")).collect::<Vec<_>>()}));
    r.assert_problem(422, "validation-failed");
    assert_eq!(r.json()["errors"][0]["field"], "tags");
    send_json(&c, "POST", &tags, &token, &json!({"tags": ["x".repeat(129)]})).assert_problem(422, "validation-failed");
    send_json(&c, "POST", &tags, &token, &json!({"tags": ["semi;colon"]})).assert_problem(422, "validation-failed");
    ok(c.auth_send("DELETE", &format!("{tags}/2026"), &token, &[], None), 204);
    c.auth_send("DELETE", &format!("{tags}/2026"), &token, &[], None).assert_problem(404, "not-found");
    let spaced = ok(send_json(&c, "POST", &tags, &token, &json!({"tags": ["q1 report"]})), 200);
    assert_eq!(spaced["tags"], json!(["invoices", "q1 report"]));
    ok(c.auth_send("DELETE", &format!("{tags}/q1%20report"), &token, &[], None), 204);

    let meta = format!("/api/files/{id}/metadata");
    let f = ok(send_json(&c, "POST", &meta, &token, &json!({"set": {"project": "apollo", "draft": "yes"}})), 200);
    assert_eq!(f["metadata"], json!({"draft": "yes", "project": "apollo"}));
    let f = ok(send_json(&c, "POST", &meta, &token, &json!({"set": {"owner": "ana"}, "remove": ["draft"]})), 200);
    assert_eq!(f["metadata"], json!({"owner": "ana", "project": "apollo"}));
    send_json(&c, "POST", &meta, &token, &json!({"set": {"Bad Key": "x"}})).assert_problem(422, "validation-failed");
    send_json(&c, "POST", &meta, &token, &json!({"set": {"a": "x".repeat(1025)}})).assert_problem(422, "validation-failed");
    send_json(&c, "POST", &meta, &token, &json!({"set": {"a": "x".repeat(1000), "b": "y".repeat(1000), "c": "z".repeat(100)}})).assert_problem(422, "validation-failed");
    send_json(&c, "POST", &meta, &token, &json!({"replace": {}, "set": {"a": "b"}})).assert_problem(422, "validation-failed");
    let f = ok(send_json(&c, "POST", &meta, &token, &json!({"replace": {"k": "v"}})), 200);
    assert_eq!(f["metadata"], json!({"k": "v"}));
    let shown = ok(c.get(&format!("/api/files/{id}"), Some(&token)), 200);
    assert_eq!((shown["tags"].clone(), shown["metadata"].clone()), (json!(["invoices"]), json!({"k": "v"})));
    // Another user cannot label someone else's file.
    let (_, _, other) = c.signed_in_user();
    send_json(&c, "POST", &tags, &other, &json!({"tags": ["mine"]})).assert_problem(404, "not-found");
}

fn search(c: &Client, token: &str, query: &str) -> Value {
    ok(c.get(&format!("/api/files/search?{query}"), Some(token)), 200)
}

/// Every page of a search, following the cursor.
fn all_names(c: &Client, token: &str, query: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = search(c, token, &format!("{query}&limit=3{cursor}"));
        names.extend(page["items"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()));
        match page["nextCursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return names,
        }
    }
}

#[test]
fn search_finds_by_each_criterion_and_pages_with_a_stable_cursor() {
    // Tests here check integrity at rest: one at a time.
    let _one = serial();
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let before = chrono_like_now(&c, &token);
    // 12 files: sizes 100·i, alternating types, tags and metadata on some.
    for i in 0..12u64 {
        let mime = ["image/png", "image/jpeg", "text/plain"][i as usize % 3];
        let id = file(&c, &token, &format!("Photo-{i:02}.dat"), &bytes(100 * (i as usize + 1), 50 + i), json!({"mimeType": mime}));
        if i % 2 == 0 {
            ok(send_json(&c, "POST", &format!("/api/files/{id}/tags"), &token, &json!({"tags": ["even"]})), 200);
        }
        if i % 3 == 0 {
            ok(send_json(&c, "POST", &format!("/api/files/{id}/tags"), &token, &json!({"tags": ["third"]})), 200);
        }
        if i % 4 == 0 {
            ok(send_json(&c, "POST", &format!("/api/files/{id}/metadata"), &token, &json!({"set": {"project": "apollo"}})), 200);
        }
        if i == 5 {
            new_version(&c, &token, &id, b"v2");
        }
    }
    let count = |q: &str| all_names(&c, &token, &format!("sort=name&order=asc&{q}")).len();
    assert_eq!(count("q=photo-1"), 2); // Photo-10, Photo-11: case-insensitive substring
    assert_eq!(count("q=%25"), 0); // a literal %, not a wildcard
    assert_eq!(count("tags=even"), 6);
    assert_eq!(count("tags=even,third"), 2); // 0 and 6
    assert_eq!(count("anyTags=even,third"), 8);
    assert_eq!(count("meta.project=apollo"), 3);
    assert_eq!(count("type=image/*"), 8);
    assert_eq!(count("type=text/plain"), 4);
    assert_eq!(count("minSize=300&maxSize=600"), 3); // 300, 400, 500: file 5 is 2 bytes now (its version 2)
    assert_eq!(count("status=available"), 12);
    assert_eq!(count("status=uploading"), 0);
    assert_eq!(count("minVersions=2"), 1);
    assert_eq!(count(&format!("createdFrom={before}")), 12);
    assert_eq!(count(&format!("createdTo={before}")), 0);
    assert_eq!(count(&format!("updatedFrom={before}&tags=even&type=image/png")), 2); // 0 and 6
    assert_eq!(count("tags=even&meta.project=apollo&type=image/*"), 2); // 0 and 4 (8 is text)
    let by_size = search(&c, &token, "sort=size&order=desc&limit=3");
    let sizes: Vec<u64> = by_size["items"].as_array().unwrap().iter().map(|f| f["size"].as_u64().unwrap()).collect();
    assert_eq!(sizes, [1200, 1100, 1000]);

    // Pages across inserts and deletes: no duplicate, no gap.
    let first = search(&c, &token, "sort=name&order=asc&limit=5");
    let mut seen: Vec<String> = first["items"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()).collect();
    file(&c, &token, "Photo-00a.dat", b"x", json!({})); // sorts before the cursor: not on later pages
    file(&c, &token, "Photo-07a.dat", b"x", json!({})); // after it: on a later page
    let gone = search(&c, &token, "q=photo-08")["items"][0]["id"].as_str().unwrap().to_owned();
    ok(c.auth_send("DELETE", &format!("/api/files/{gone}"), &token, &[], None), 204);
    let mut cursor = first["nextCursor"].as_str().unwrap().to_owned();
    loop {
        let page = search(&c, &token, &format!("sort=name&order=asc&limit=5&cursor={cursor}"));
        seen.extend(page["items"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()));
        match page["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    let mut expected: Vec<String> = (0..12).filter(|i| *i != 8).map(|i| format!("Photo-{i:02}.dat")).collect();
    expected.push("Photo-07a.dat".into());
    expected.sort();
    assert_eq!(seen, expected);
    for bad in ["sort=owner", "limit=500", "minSize=big", "status=lost", "color=blue", "cursor=xyz", &format!("sort=size&cursor={cursor}")] {
        c.get(&format!("/api/files/search?{bad}"), Some(&token)).assert_problem(400, "invalid-query");
    }
    // A rename is searchable at once, under the new name only.
    let renamed = search(&c, &token, "q=photo-11")["items"][0]["id"].as_str().unwrap().to_owned();
    ok(send_json(&c, "PATCH", &format!("/api/files/{renamed}"), &token, &json!({"name": "Sunset over the bay.png"})), 200);
    assert_eq!(count("q=SUNSET"), 1);
    assert_eq!(count("q=over%20the"), 1);
    assert_eq!(count("q=photo-11"), 0);
    // Search is per user.
    let (_, _, other) = c.signed_in_user();
    assert_eq!(search(&c, &other, "q=photo")["items"].as_array().unwrap().len(), 0);
}

/// The server's idea of now, in epoch ms (from a fresh file's createdAt), so the test needs
/// no clock of its own.
fn chrono_like_now(c: &Client, token: &str) -> i64 {
    let id = file(c, token, "clock", b"", json!({}));
    let f = ok(c.get(&format!("/api/files/{id}"), Some(token)), 200);
    ok(c.auth_send("DELETE", &format!("/api/files/{id}"), token, &[], None), 204);
    let created = f["createdAt"].as_str().unwrap();
    // RFC 3339 with milliseconds, UTC: parse by hand.
    let (date, time) = created.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (hms, ms) = time.split_once('.').unwrap();
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    let days = days_from_civil(d[0], d[1], d[2]);
    ((days * 86400 + t[0] * 3600 + t[1] * 60 + t[2]) * 1000) + ms.parse::<i64>().unwrap()
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[test]
fn quotas_refuse_at_creation_and_at_chunk_upload_and_leave_nothing_behind() {
    let _one = serial();
    let c = Client::new();
    let admin = admin_token(&c);
    let (_, _, token) = c.signed_in_user();
    let user = user_id(&c, &token);
    let quota = format!("/api/admin/users/{user}/quota");
    // Only admins set quotas.
    send_json(&c, "PUT", &quota, &token, &json!({"maxBytes": 1, "maxFiles": 1})).assert_problem(403, "forbidden");
    let cs = chunk_size();
    let set = ok(send_json(&c, "PUT", &quota, &admin, &json!({"maxBytes": 3 * cs, "maxFiles": 2})), 200);
    assert_eq!(set["quota"], json!({"maxBytes": 3 * cs, "maxFiles": 2, "custom": true}));

    let first = file(&c, &token, "a.bin", &bytes(2 * cs, 61), json!({}));
    send_json(&c, "POST", "/api/files", &token, &json!({"name": "b", "size": 2 * cs})).assert_problem(507, "quota-exceeded");
    send_json(&c, "POST", &format!("/api/files/{first}/versions"), &token, &json!({"size": 2 * cs})).assert_problem(507, "quota-exceeded");
    let second = ok(send_json(&c, "POST", "/api/files", &token, &json!({"name": "c", "size": cs})), 201)["id"].as_str().unwrap().to_owned();
    send_json(&c, "POST", "/api/files", &token, &json!({"name": "d", "size": 0})).assert_problem(507, "quota-exceeded");

    // Lowered while `c` uploads: its chunk is refused before a byte is stored.
    ok(send_json(&c, "PUT", &quota, &admin, &json!({"maxBytes": cs, "maxFiles": 10})), 200);
    let stored_before = ok(c.get("/api/files/stats/usage", Some(&token)), 200)["storedBytes"].clone();
    c.put_chunk(&token, &second, 0, &bytes(cs, 62)).assert_problem(507, "quota-exceeded");
    let usage = ok(c.get("/api/files/stats/usage", Some(&token)), 200);
    assert_eq!(usage["storedBytes"], stored_before);
    assert_eq!(usage["quota"]["maxBytes"], cs);
    assert_eq!(usage["remaining"]["bytes"], 0);
    assert_eq!(usage["files"], 2);
    assert_eq!(usage["byStatus"]["uploading"], json!({"files": 1, "bytes": cs}));
    assert_integrity(&c);

    // Back to the default (unlimited here): the upload goes on.
    ok(c.auth_send("DELETE", &quota, &admin, &[], None), 200);
    c.upload(&token, &second, &bytes(cs, 62));
    assert_eq!(ok(c.get(&format!("/api/files/{second}"), Some(&token)), 200)["status"], "available");
}

/// Waits until the audit log (as `path` shows it) has an event with `action`; the download
/// path's events arrive through the jobs' sweep (on the Worker, its Cron Trigger).
fn wait_for_event(c: &Client, token: &str, path: &str, action: &str) -> Value {
    vaultx_e2e::wait_for(&format!("no {action} in {path}"), std::time::Duration::from_millis(250), || {
        if target() == "worker" {
            c.get("/__scheduled?cron=*+*+*+*+*", None);
        }
        let log = ok(c.get(path, Some(token)), 200);
        match log["items"].as_array().unwrap().iter().find(|e| e["action"] == action) {
            Some(e) => Ok(e.clone()),
            None => Err(log.to_string()),
        }
    })
}

/// A signed download writes nothing durable of its own: its access record goes to the audit
/// spool (a Redis stream on Spin and the bundled runtime, a Queue message on Workers), which a
/// consumer with a database drains in batches, woken by the downloads themselves. Every
/// record arrives, and arrives once: each request id is in the log exactly one time.
#[test]
fn every_download_reaches_the_audit_log_once_without_a_reader_asking() {
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let id = file(&c, &token, "downloaded.bin", b"downloaded bytes", json!({}));
    let url = signed(&c, &token, &id, json!({}));
    let downloads = 40;
    for i in 0..downloads {
        let r = c.send("GET", &url, &[("x-request-id", &format!("dl-{id}-{i}"))], None);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"downloaded bytes"[..]));
    }
    // Where the suite can see the stream, the records leave it with no reader of the log
    // asking: the downloads woke the drainer.
    if let Some(redis) = vaultx_e2e::redis_address().filter(|_| target() != "worker") {
        vaultx_e2e::wait_for(&format!("access records of {id} still in the stream"), std::time::Duration::from_millis(100), || {
            let pending = vaultx_e2e::redis(&redis, &["XRANGE", "vaultx-audit", "-", "+"]);
            let ours = pending.texts().iter().filter(|t| t.windows(id.len()).any(|w| w == id.as_bytes())).count();
            if ours == 0 { Ok(()) } else { Err(format!("{ours} left")) }
        });
    }
    let log = format!("/api/files/{id}/audit?action=file-download&limit=200");
    vaultx_e2e::wait_for("downloads missing from the audit log", std::time::Duration::from_millis(250), || {
        if target() == "worker" {
            c.get("/__scheduled?cron=*+*+*+*+*", None);
        }
        let items = ok(c.get(&log, Some(&token)), 200)["items"].as_array().unwrap().clone();
        let mut ids: Vec<&str> = items.iter().map(|e| e["requestId"].as_str().unwrap()).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), before, "an access record stored twice: {items:?}");
        if ids.len() < downloads {
            return Err(format!("{} of {downloads} in the log", ids.len()));
        }
        assert!(items.iter().all(|e| e["result"] == 200 && e["fileId"] == id.as_str()));
        Ok(())
    });
}

#[test]
fn every_change_and_download_is_in_the_audit_log_for_admins_and_owners_only() {
    // Tests here check integrity at rest: one at a time.
    let _one = serial();
    let c = Client::new();
    let admin = admin_token(&c);
    let (_, _, token) = c.signed_in_user();
    let user = user_id(&c, &token);
    let id = file(&c, &token, "a.bin", b"audited bytes", json!({}));
    let tagged = c.auth_send("POST", &format!("/api/files/{id}/tags"), &token, &[("content-type", "application/json"), ("x-request-id", "req-e2e-1")], Some(br#"{"tags":["x"]}"#));
    assert_eq!(tagged.status, 200);
    assert_eq!(tagged.header("x-request-id"), Some("req-e2e-1"));
    send_json(&c, "POST", &format!("/api/files/{id}/tags"), &token, &json!({"tags": [""]})).assert_problem(422, "validation-failed");
    let url = signed(&c, &token, &id, json!({}));
    assert_eq!(download(&c, &url).status, 200);

    let log = format!("/api/files/{id}/audit");
    let event = wait_for_event(&c, &token, &log, "file-download GET");
    assert_eq!((event["fileId"].as_str(), event["result"].as_i64()), (Some(id.as_str()), Some(200)));
    let items = ok(c.get(&log, Some(&token)), 200)["items"].as_array().unwrap().clone();
    let tag_events: Vec<&Value> = items.iter().filter(|e| e["action"] == "file-tags POST").collect();
    assert_eq!(tag_events.len(), 2);
    let ok_event = tag_events.iter().find(|e| e["result"] == 200).unwrap();
    assert_eq!((ok_event["userId"].as_str(), ok_event["requestId"].as_str()), (Some(user.as_str()), Some("req-e2e-1")));
    if target() == "runtime" {
        // The client's address as the host saw it (on Workers, CF-Connecting-IP when set).
        assert!(ok_event["address"].as_str().is_some_and(|a| !a.is_empty()), "{ok_event}");
    }
    assert!(tag_events.iter().any(|e| e["result"] == 422 && e["detail"] == "validation-failed"));
    assert!(items.iter().any(|e| e["action"] == "file-chunk POST"));
    assert!(items.iter().any(|e| e["action"] == "file-signed-url POST"));

    // Admins see everyone's, filtered; the owner sees only their files'; others nothing.
    let mine = ok(c.get(&format!("/api/admin/audit?user={user}&action=file-tags"), Some(&admin)), 200);
    assert_eq!(mine["items"].as_array().unwrap().len(), 2);
    let page = ok(c.get(&format!("/api/admin/audit?user={user}&limit=1"), Some(&admin)), 200);
    let next = page["nextCursor"].as_str().unwrap();
    let page2 = ok(c.get(&format!("/api/admin/audit?user={user}&limit=1&cursor={next}"), Some(&admin)), 200);
    assert_ne!(page["items"][0]["id"], page2["items"][0]["id"]);
    c.get(&format!("/api/admin/audit?user={user}&from=soon"), Some(&admin)).assert_problem(400, "invalid-query");
    c.get("/api/admin/audit", Some(&token)).assert_problem(403, "forbidden");
    let (_, _, other) = c.signed_in_user();
    c.get(&log, Some(&other)).assert_problem(404, "not-found");
}
