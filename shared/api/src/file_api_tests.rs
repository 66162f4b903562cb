//! Versions, archive, tags and metadata, search, usage, quotas and the audit log, on the
//! native test platform (real SQLite, chunk size 64 KiB).

use crate::files_tests::{CHUNK, authed, content, create, download, put_chunk, read_body, refcounts, signed_in, signed_url};
use crate::routes::*;
use crate::testing::*;
use vaultx_core::http::ApiResponse;

fn call(p: &TestPlatform, function: &str, method: &str, path: &str, token: &str, body: &str) -> ApiResponse {
    let req = authed(method, path, token, "application/json", body.as_bytes().to_vec());
    run(crate::routes::dispatch(function, p, Ok(req)))
}

fn ok(r: ApiResponse, status: u16) -> serde_json::Value {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(r.body.bytes()));
    if r.body.bytes().is_empty() { serde_json::Value::Null } else { body_json(&r) }
}

fn problem(r: &ApiResponse, status: u16, slug: &str) -> serde_json::Value {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(r.body.bytes()));
    let v = body_json(r);
    assert_eq!(v["type"], format!("urn:vaultx:problem:{slug}"), "{v}");
    v
}

/// Bytes no two chunks share (xorshift), unlike `content`, which repeats every 256 bytes.
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn upload(p: &TestPlatform, token: &str, id: &str, data: &[u8]) {
    for (i, chunk) in data.chunks(CHUNK).enumerate() {
        let r = put_chunk(p, token, id, i as u64, chunk);
        assert!(r.status == 201 || r.status == 200, "{}", String::from_utf8_lossy(r.body.bytes()));
    }
}

fn new_file(p: &TestPlatform, token: &str, name: &str, data: &[u8]) -> String {
    let f = create(p, token, &format!(r#"{{"name":"{name}","size":{}}}"#, data.len()));
    let id = f["id"].as_str().unwrap().to_owned();
    upload(p, token, &id, data);
    id
}

fn new_version(p: &TestPlatform, token: &str, id: &str, data: &[u8]) -> serde_json::Value {
    let v = ok(call(p, "file-versions", "POST", &format!("/api/files/{id}/versions"), token, &format!(r#"{{"size":{}}}"#, data.len())), 201);
    upload(p, token, v["uploadId"].as_str().unwrap(), data);
    v
}

fn fetch(p: &TestPlatform, token: &str, id: &str, body: &str) -> (String, Vec<u8>) {
    let url = body_json(&signed_url(p, token, id, body))["path"].as_str().unwrap().to_owned();
    let r = download(p, &url, &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(r.body.bytes()));
    (url, read_body(p, &r))
}

fn integrity(p: &TestPlatform) {
    let report = run(crate::integrity::check(&TestDb(p.conn.clone()), &p.blobs, &p.kv, p.now.get())).unwrap();
    assert!(report.ok, "{:?}", report.violations);
}

#[test]
fn a_new_version_becomes_current_and_a_rollback_brings_the_old_bytes_back_without_copying() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let v1 = noise(2 * CHUNK + 10, 3);
    let id = new_file(&p, &token, "report.pdf", &v1);
    let (v1_url, _) = fetch(&p, &token, &id, "{}");
    let v2: Vec<u8> = [&v1[..CHUNK], &noise(CHUNK + 500, 9)[..]].concat(); // shares its first chunk with v1
    let created = new_version(&p, &token, &id, &v2);
    assert_eq!(created["version"], 2);

    let file = ok(call(&p, "file", "GET", &format!("/api/files/{id}"), &token, ""), 200);
    assert_eq!((file["version"].clone(), file["versionCount"].clone(), file["size"].clone()), (2.into(), 2.into(), v2.len().into()));
    assert_eq!(fetch(&p, &token, &id, "{}").1, v2);
    // The URL issued for version 1 keeps serving version 1.
    assert_eq!(read_body(&p, &download(&p, &v1_url, &[])), v1);
    assert_eq!(fetch(&p, &token, &id, r#"{"version":1}"#).1, v1);

    let history = ok(call(&p, "file-versions", "GET", &format!("/api/files/{id}/versions"), &token, ""), 200);
    let items = history["items"].as_array().unwrap();
    assert_eq!(items.iter().map(|v| (v["version"].as_i64().unwrap(), v["current"].as_bool().unwrap())).collect::<Vec<_>>(), [(1, false), (2, true)]);

    // The rollback copies nothing: the blob store holds exactly the same blobs before and after.
    let blobs_before: std::collections::BTreeSet<String> = p.blobs.0.borrow().keys().cloned().collect();
    let restored = ok(call(&p, "file-version-restore", "POST", &format!("/api/files/{id}/versions/1/restore"), &token, ""), 200);
    assert_eq!(restored["version"], 1);
    assert_eq!(fetch(&p, &token, &id, "{}").1, v1);
    assert_eq!(p.blobs.0.borrow().keys().cloned().collect::<std::collections::BTreeSet<_>>(), blobs_before);
    integrity(&p);

    // Deleting version 2 releases only its own chunk: the shared first chunk stays.
    ok(call(&p, "file-version", "DELETE", &format!("/api/files/{id}/versions/2"), &token, ""), 204);
    let live: Vec<_> = refcounts(&p).into_iter().filter(|(_, _, s)| s == "live").collect();
    assert_eq!(live.len(), 3, "{live:?}");
    assert!(live.iter().all(|(_, n, _)| *n == 1), "{live:?}");
    assert_eq!(fetch(&p, &token, &id, "{}").1, v1);
    integrity(&p);
    // The current version cannot be deleted; deleting the file takes every version.
    problem(&call(&p, "file-version", "DELETE", &format!("/api/files/{id}/versions/1"), &token, ""), 409, "conflict");
    ok(call(&p, "file", "DELETE", &format!("/api/files/{id}"), &token, ""), 204);
    assert!(refcounts(&p).iter().all(|(_, _, s)| s != "live"));
    assert!(p.blobs.0.borrow().is_empty());
    integrity(&p);
}

#[test]
fn version_retention_prunes_the_oldest_and_one_version_uploads_at_a_time() {
    let p = TestPlatform::new();
    p.vars.borrow_mut().insert("version_retention".into(), "2".into());
    let token = signed_in(&p);
    let id = new_file(&p, &token, "a.txt", &content(100, 1));
    let pending = ok(call(&p, "file-versions", "POST", &format!("/api/files/{id}/versions"), &token, r#"{"size":100}"#), 201);
    problem(&call(&p, "file-versions", "POST", &format!("/api/files/{id}/versions"), &token, r#"{"size":100}"#), 409, "conflict");
    // The version's upload id is not a file of its own.
    problem(&call(&p, "file", "GET", &format!("/api/files/{}", pending["uploadId"].as_str().unwrap()), &token, ""), 404, "not-found");
    upload(&p, &token, pending["uploadId"].as_str().unwrap(), &content(100, 2));
    new_version(&p, &token, &id, &content(100, 3));
    let history = ok(call(&p, "file-versions", "GET", &format!("/api/files/{id}/versions"), &token, ""), 200);
    let numbers: Vec<i64> = history["items"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
    assert_eq!(numbers, [2, 3]);
    assert_eq!(history["count"], 2);
    integrity(&p);
}

#[test]
fn an_archived_file_keeps_its_data_but_serves_nothing_until_restored() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let data = content(CHUNK + 7, 5);
    let id = new_file(&p, &token, "a.bin", &data);
    let (url, _) = fetch(&p, &token, &id, "{}");
    let archived = ok(call(&p, "file-archive", "POST", &format!("/api/files/{id}/archive"), &token, ""), 200);
    assert_eq!(archived["status"], "archived");
    problem(&download(&p, &url, &[]), 403, "file-archived");
    problem(&signed_url(&p, &token, &id, "{}"), 403, "file-archived");
    problem(&call(&p, "file-versions", "POST", &format!("/api/files/{id}/versions"), &token, r#"{"size":1}"#), 403, "file-archived");
    problem(&put_chunk(&p, &token, &id, 0, &data[..CHUNK]), 409, "file-not-uploading");
    // Found by schemathesis: completing an archived file retried until 503 busy.
    problem(&call(&p, "file-complete", "POST", &format!("/api/files/{id}/complete"), &token, ""), 409, "file-not-uploading");
    integrity(&p);
    let usage = ok(call(&p, "files-usage", "GET", "/api/files/stats/usage", &token, ""), 200);
    assert_eq!(usage["byStatus"]["archived"], serde_json::json!({"files": 1, "bytes": data.len()}));
    ok(call(&p, "file-restore-archive", "POST", &format!("/api/files/{id}/restore-archive"), &token, ""), 200);
    assert_eq!(read_body(&p, &download(&p, &url, &[])), data);
    integrity(&p);
}

#[test]
fn tags_and_metadata_have_limits_and_show_in_the_files_json() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let id = new_file(&p, &token, "a.bin", &content(10, 5));
    let path = format!("/api/files/{id}/tags");
    let f = ok(call(&p, "file-tags", "POST", &path, &token, r#"{"tags":["invoices","2026","invoices"]}"#), 200);
    assert_eq!(f["tags"], serde_json::json!(["2026", "invoices"]));
    let eleven: Vec<String> = (0..9).map(|i| format!("t{i}")).collect();
    let v = problem(&call(&p, "file-tags", "POST", &path, &token, &serde_json::json!({"tags": eleven}).to_string()), 422, "validation-failed");
    assert_eq!(v["errors"][0]["field"], "tags");
    problem(&call(&p, "file-tags", "POST", &path, &token, r#"{"tags":["no\nnewlines"]}"#), 422, "validation-failed");
    problem(&call(&p, "file-tags", "POST", &path, &token, &format!(r#"{{"tags":["{}"]}}"#, "x".repeat(129))), 422, "validation-failed");
    ok(call(&p, "file-tag", "DELETE", &format!("{path}/invoices"), &token, ""), 204);
    problem(&call(&p, "file-tag", "DELETE", &format!("{path}/invoices"), &token, ""), 404, "not-found");

    let meta = format!("/api/files/{id}/metadata");
    let f = ok(call(&p, "file-metadata", "POST", &meta, &token, r#"{"set":{"project":"apollo","draft":"yes"}}"#), 200);
    assert_eq!(f["metadata"], serde_json::json!({"draft": "yes", "project": "apollo"}));
    let f = ok(call(&p, "file-metadata", "POST", &meta, &token, r#"{"set":{"owner":"ana"},"remove":["draft"]}"#), 200);
    assert_eq!(f["metadata"], serde_json::json!({"owner": "ana", "project": "apollo"}));
    problem(&call(&p, "file-metadata", "POST", &meta, &token, r#"{"set":{"Upper":"x"}}"#), 422, "validation-failed");
    let big = serde_json::json!({"set": {"a": "x".repeat(1000), "b": "y".repeat(1000), "c": "z".repeat(100)}});
    problem(&call(&p, "file-metadata", "POST", &meta, &token, &big.to_string()), 422, "validation-failed");
    let f = ok(call(&p, "file-metadata", "POST", &meta, &token, r#"{"replace":{"k":"v"}}"#), 200);
    assert_eq!(f["metadata"], serde_json::json!({"k": "v"}));
    let listed = ok(call(&p, "files", "GET", "/api/files", &token, ""), 200);
    assert_eq!(listed["items"][0]["tags"], serde_json::json!(["2026"]));
    assert_eq!(listed["items"][0]["metadata"], serde_json::json!({"k": "v"}));
}

/// Adds a head row directly (search tests need many files, not their bytes).
fn seed(p: &TestPlatform, owner: &str, n: usize) {
    let tx = p.conn.unchecked_transaction().unwrap();
    let salt = owner.as_bytes()[0] as usize;
    for i in 0..n {
        let id = format!("{:08x}-{:04x}-4000-8000-{:012x}", i, salt, i);
        let mime = ["image/png", "image/jpeg", "text/plain", "application/pdf"][i % 4];
        tx.execute(
            "INSERT INTO files (id, owner_id, name, original_name, mime_type, size, chunk_size, compression_enabled, deduplication_enabled, status, created_at, updated_at, version_count)
             VALUES (?1, ?2, ?3, ?3, ?4, ?5, 65536, 0, 1, 'available', ?6, ?6, ?7)",
            rusqlite::params![id, owner, format!("file-{i:06}.dat"), mime, (i * 37 % 1000) as i64, 1_700_000_000_000i64 + i as i64 * 1000, 1 + (i % 3) as i64],
        )
        .unwrap();
        for gram in crate::files::grams(&format!("file-{i:06}.dat")) {
            tx.execute("INSERT INTO file_name_grams (owner_id, gram, file_id) VALUES (?1, ?2, ?3)", rusqlite::params![owner, gram, id]).unwrap();
        }
        // Every file has a tag and a metadata pair, as real collections do; a few share rarer ones.
        tx.execute("INSERT INTO file_tags (file_id, owner_id, tag) VALUES (?1, ?2, ?3)", rusqlite::params![id, owner, format!("batch-{}", i / 100)]).unwrap();
        tx.execute("INSERT INTO file_metadata (file_id, owner_id, meta_key, value) VALUES (?1, ?2, 'n', ?3)", rusqlite::params![id, owner, i.to_string()]).unwrap();
        if i % 10 == 0 {
            tx.execute("INSERT INTO file_tags (file_id, owner_id, tag) VALUES (?1, ?2, 'red')", rusqlite::params![id, owner]).unwrap();
        }
        if i % 25 == 0 {
            tx.execute("INSERT INTO file_metadata (file_id, owner_id, meta_key, value) VALUES (?1, ?2, 'project', 'apollo')", rusqlite::params![id, owner]).unwrap();
        }
    }
    tx.commit().unwrap();
}

fn owner_of(p: &TestPlatform, token: &str) -> String {
    body_json(&run(users_me::handle(p, authed("GET", "/api/users/me", token, "application/json", vec![]))))["id"].as_str().unwrap().to_owned()
}

fn search(p: &TestPlatform, token: &str, query: &str) -> serde_json::Value {
    ok(call(p, "files-search", "GET", &format!("/api/files/search?{query}"), token, ""), 200)
}

fn names(v: &serde_json::Value) -> Vec<String> {
    v["items"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn search_matches_each_criterion_and_their_combinations() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let owner = owner_of(&p, &token);
    seed(&p, &owner, 200);
    let count = |q: &str| {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = search(&p, &token, &format!("{q}&limit=100{}", cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default()));
            all.extend(names(&page));
            match page["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return all.len(),
            }
        }
    };
    assert_eq!(count("q=FILE-00012"), 10); // file-000120 … file-000129
    assert_eq!(count("q=_"), 0); // LIKE's wildcards are literal here
    assert_eq!(count("tags=red"), 20);
    assert_eq!(count("anyTags=red,blue"), 20);
    assert_eq!(count("tags=red,blue"), 0);
    assert_eq!(count("meta.project=apollo"), 8);
    assert_eq!(count("type=image/*"), 100);
    assert_eq!(count("type=image/png"), 50);
    assert_eq!(count("minSize=500&maxSize=599"), (0..200).filter(|i| (500..600).contains(&(i * 37 % 1000))).count());
    assert_eq!(count("createdFrom=1700000010000&createdTo=1700000020000"), 10);
    assert_eq!(count("createdFrom=2023-11-14T22:13:30Z&createdTo=2023-11-14T22:13:40Z"), 10);
    assert_eq!(count("status=available"), 200);
    assert_eq!(count("status=archived"), 0);
    assert_eq!(count("minVersions=3"), (0..200).filter(|i| i % 3 == 2).count());
    assert_eq!(count("tags=red&type=image/*"), 10); // tagged: i % 10 = 0; images: i % 4 < 2
    assert_eq!(count("tags=red&meta.project=apollo&type=image/png"), 2); // 0 and 100
    let by_size = search(&p, &token, "sort=size&order=asc&limit=5");
    let sizes: Vec<u64> = by_size["items"].as_array().unwrap().iter().map(|f| f["size"].as_u64().unwrap()).collect();
    assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{sizes:?}");
    for bad in ["sort=owner", "order=up", "limit=0", "limit=101", "minSize=-1", "status=gone", "createdFrom=yesterday", "type=image/**", "tags=a%0Ab", "color=red", "cursor=bm9wZQ"] {
        problem(&call(&p, "files-search", "GET", &format!("/api/files/search?{bad}"), &token, ""), 400, "invalid-query");
    }
    // Another user sees none of them.
    let other = signed_in(&p);
    assert_eq!(names(&search(&p, &other, "limit=100")).len(), 0);
}

#[test]
fn search_pages_neither_repeat_nor_skip_while_files_come_and_go() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let owner = owner_of(&p, &token);
    seed(&p, &owner, 50);
    let first = search(&p, &token, "sort=name&order=asc&limit=20");
    let mut seen = names(&first);
    // Between pages: a file sorting before the cursor and one after it arrive, one not yet
    // seen is deleted.
    p.conn.execute("INSERT INTO files (id, owner_id, name, original_name, mime_type, size, chunk_size, compression_enabled, deduplication_enabled, status, created_at, updated_at) SELECT 'aaaaaaaa-0000-4000-8000-000000000001', owner_id, 'file-000000a.dat', 'x', 'x/y', 1, 65536, 0, 1, 'available', 1, 1 FROM files LIMIT 1", []).unwrap();
    p.conn.execute("INSERT INTO files (id, owner_id, name, original_name, mime_type, size, chunk_size, compression_enabled, deduplication_enabled, status, created_at, updated_at) SELECT 'aaaaaaaa-0000-4000-8000-000000000002', owner_id, 'file-000045a.dat', 'x', 'x/y', 1, 65536, 0, 1, 'available', 1, 1 FROM files LIMIT 1", []).unwrap();
    p.conn.execute_batch(
        "DELETE FROM file_tags WHERE file_id IN (SELECT id FROM files WHERE name = 'file-000031.dat');
         DELETE FROM file_metadata WHERE file_id IN (SELECT id FROM files WHERE name = 'file-000031.dat');
         DELETE FROM file_name_grams WHERE file_id IN (SELECT id FROM files WHERE name = 'file-000031.dat');
         DELETE FROM files WHERE name = 'file-000031.dat';",
    )
    .unwrap();
    let mut cursor = first["nextCursor"].as_str().unwrap().to_owned();
    loop {
        let page = search(&p, &token, &format!("sort=name&order=asc&limit=20&cursor={cursor}"));
        seen.extend(names(&page));
        match page["nextCursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    let mut expected: Vec<String> = (0..50).filter(|i| *i != 31).map(|i| format!("file-{i:06}.dat")).collect();
    expected.push("file-000045a.dat".into());
    expected.sort();
    assert_eq!(seen, expected);
    // A cursor only continues the search it came from.
    problem(&call(&p, "files-search", "GET", &format!("/api/files/search?sort=size&cursor={cursor}"), &token, ""), 400, "invalid-query");
}

/// The plan SQLite chooses for each kind of search: an index of the caller's files in the
/// sort order, or the tag/metadata index — never a scan of the table.
#[test]
fn every_search_is_answered_from_an_index() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let owner = owner_of(&p, &token);
    seed(&p, &owner, 2000);
    // Another user's files share the indexes.
    let other = signed_in(&p);
    seed(&p, &owner_of(&p, &other), 2000);
    p.conn.execute_batch("ANALYZE").unwrap();
    for query in [
        "",
        "sort=name&order=asc",
        "sort=size",
        "sort=updatedAt",
        "q=report",
        "q=file-0012",
        "tags=red",
        "anyTags=red,blue",
        "meta.project=apollo",
        "type=image/*",
        "type=image/png&sort=createdAt",
        "minSize=10&maxSize=20&sort=size",
        "createdFrom=1700000010000&createdTo=1700000020000",
        "status=available&minVersions=2",
        "tags=red&meta.project=apollo&sort=name",
    ] {
        let req = authed("GET", &format!("/api/files/search?{query}"), &token, "application/json", vec![]);
        let q = crate::search::Query::from_request(&req).unwrap();
        // Both ways a criterion can be planned: looked up when rare (as in this seed: the
        // real density) and checked along the sort index when common.
        let real = run(crate::search::density(&TestDb(p.conn.clone()), &owner, &q)).unwrap();
        let common = crate::search::Density {
            name_gram: None,
            common_tags: q.all_tags.clone(),
            any_tags_common: true,
            common_metadata: q.metadata.clone(),
            type_family_common: true,
        };
        for density in [real, common] {
        let (sql, params) = q.sql(&owner, &density);
        let mut stmt = p.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let values: Vec<rusqlite::types::Value> = params
            .into_iter()
            .map(|v| match v {
                vaultx_core::ports::SqlValue::Integer(n) => rusqlite::types::Value::Integer(n),
                vaultx_core::ports::SqlValue::Text(s) => rusqlite::types::Value::Text(s),
                other => panic!("{other:?}"),
            })
            .collect();
        let plan: Vec<String> = stmt.query_map(rusqlite::params_from_iter(values), |r| r.get::<_, String>(3)).unwrap().map(Result::unwrap).collect();
        println!("{query:50} {}", plan.join(" | "));
        assert!(plan.iter().any(|s| s.contains("USING INDEX") || s.contains("USING COVERING INDEX")), "{query}: {plan:?}");
        assert!(!plan.iter().any(|s| s.starts_with("SCAN")), "{query}: {plan:?}");
        if density.type_family_common {
            // Common criteria never make the query sort everything that matches.
            assert!(!plan.iter().any(|s| s.contains("TEMP B-TREE")), "{query}: {plan:?}");
        }
        }
    }
}

#[test]
fn quotas_refuse_creation_and_chunks_and_leave_nothing_behind() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let owner = owner_of(&p, &token);
    p.vars.borrow_mut().insert("quota_bytes".into(), (3 * CHUNK).to_string());
    p.vars.borrow_mut().insert("quota_files".into(), "2".into());
    let id = new_file(&p, &token, "a.bin", &content(2 * CHUNK, 1));
    let r = run(files::handle(&p, authed("POST", "/api/files", &token, "application/json", format!(r#"{{"name":"b","size":{}}}"#, 2 * CHUNK).into())));
    problem(&r, 507, "quota-exceeded");
    problem(&call(&p, "file-versions", "POST", &format!("/api/files/{id}/versions"), &token, &format!(r#"{{"size":{}}}"#, 2 * CHUNK)), 507, "quota-exceeded");
    let second = create(&p, &token, r#"{"name":"c","size":10}"#);
    let r = run(files::handle(&p, authed("POST", "/api/files", &token, "application/json", r#"{"name":"d","size":1}"#.into())));
    problem(&r, 507, "quota-exceeded");
    // An admin lowers the quota while `c` is uploading: its chunk is refused, nothing stored.
    p.conn.execute("INSERT INTO user_quotas (user_id, max_bytes, max_files) VALUES (?1, 100, 10)", [&owner]).unwrap();
    let blobs_before = p.blobs.0.borrow().len();
    problem(&put_chunk(&p, &token, second["id"].as_str().unwrap(), 0, &content(10, 2)), 507, "quota-exceeded");
    assert_eq!(p.blobs.0.borrow().len(), blobs_before);
    let usage = ok(call(&p, "files-usage", "GET", "/api/files/stats/usage", &token, ""), 200);
    assert_eq!(usage["quota"], serde_json::json!({"maxBytes": 100, "maxFiles": 10, "custom": true}));
    assert_eq!(usage["remaining"]["bytes"], 0);
    assert_eq!(usage["files"], 2);
    integrity(&p);
}

#[test]
fn state_changes_and_downloads_are_in_the_audit_log() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let id = new_file(&p, &token, "a.bin", &content(10, 1));
    let tick = || p.now.set(p.now.get() + 1);
    tick();
    ok(call(&p, "file-tags", "POST", &format!("/api/files/{id}/tags"), &token, r#"{"tags":["x"]}"#), 200);
    tick();
    problem(&call(&p, "file-tags", "POST", &format!("/api/files/{id}/tags"), &token, r#"{"tags":[""]}"#), 422, "validation-failed");
    tick();
    let url = body_json(&call(&p, "file-signed-url", "POST", &format!("/api/files/{id}/signed-url"), &token, "{}"))["path"].as_str().unwrap().to_owned();
    tick();
    let r = run(crate::routes::dispatch("file-download", &p, Ok(vaultx_core::http::ApiRequest { method: "GET".into(), path: url, ..Default::default() })));
    assert_eq!(r.status, 200);
    // The download went to the spool; the verify job's sweep moves it into SQL.
    assert_eq!(p.spool.0.borrow().len(), 1);
    run(crate::jobs::consume(&p, crate::outbox::VERIFY, crate::outbox::SWEEP, crate::jobs::verify::run)).unwrap();
    assert!(p.spool.0.borrow().is_empty());
    let log = ok(call(&p, "file-audit", "GET", &format!("/api/files/{id}/audit"), &token, ""), 200);
    let actions: Vec<(String, i64)> = log["items"].as_array().unwrap().iter().map(|e| (e["action"].as_str().unwrap().to_owned(), e["result"].as_i64().unwrap())).collect();
    assert_eq!(actions[..4], [("file-download GET".into(), 200), ("file-signed-url POST".into(), 201), ("file-tags POST".into(), 422), ("file-tags POST".into(), 200)]);
    // Admins only for the whole log; the owner only for their own files.
    problem(&call(&p, "admin-audit", "GET", "/api/admin/audit", &token, ""), 403, "forbidden");
    let other = signed_in(&p);
    problem(&call(&p, "file-audit", "GET", &format!("/api/files/{id}/audit"), &other, ""), 404, "not-found");
}

#[test]
fn a_default_strong_policy_holds_each_chunk_until_every_target_region_has_it() {
    use vaultx_core::ports::Blobs;
    let p = TestPlatform::new();
    p.vars.borrow_mut().insert("admin_emails".into(), format!("u{}@example.com", p.now.get()));
    let admin = signed_in(&p);
    ok(call(&p, "storage-regions", "POST", "/api/storage/regions", &admin, r#"{"code":"eu-central-1","name":"Frankfurt"}"#), 201);
    let node = r#"{"regionId":"eu-central-1","name":"eu-1","kind":"key-value","store":"blobs_eu","capacityBytes":1000000000}"#;
    ok(call(&p, "storage-nodes", "POST", "/api/storage/nodes", &admin, node), 201);
    // The deployment's default: every new file in eu-central-1, strongly; unknown regions are
    // left out rather than stopping uploads.
    p.vars.borrow_mut().insert("replication_default_regions".into(), "eu-central-1, nowhere-1".into());
    p.vars.borrow_mut().insert("replication_default_consistency".into(), "strong".into());
    let user = signed_in(&p);
    let data = noise(CHUNK * 2 + 100, 5);
    let id = new_file(&p, &user, "default.bin", &data);
    // No job has run: the copies were made before each chunk was acknowledged.
    let status = ok(call(&p, "replication-status", "GET", &format!("/api/replication/files/{id}/status"), &user, ""), 200);
    let regions = status["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 1, "{status}");
    assert_eq!((regions[0]["region"].as_str(), regions[0]["state"].as_str()), (Some("eu-central-1"), Some("in-sync")), "{status}");
    let mut copies = run(p.eu_blobs.list()).unwrap();
    copies.sort();
    let mut home = run(p.blobs.list()).unwrap();
    home.sort();
    assert_eq!(copies, home, "every block is in both regions");
    for key in &home {
        assert_eq!(run(p.eu_blobs.get(key)).unwrap(), run(p.blobs.get(key)).unwrap(), "{key}: byte-identical");
    }
    assert_eq!(fetch(&p, &user, &id, "{}").1, data);
    // Without the default, a new file has no policy.
    p.vars.borrow_mut().remove("replication_default_regions");
    let other = new_file(&p, &user, "plain.bin", &noise(100, 6));
    let status = ok(call(&p, "replication-status", "GET", &format!("/api/replication/files/{other}/status"), &user, ""), 200);
    assert_eq!(status["policy"], serde_json::Value::Null, "{status}");
}
