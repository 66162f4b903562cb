//! The races of issue 7, replayed deterministically. Each test runs the losing request up to
//! its write, lets the winning request run whole (a hook on the loser's first batch), then
//! lets the loser write, and checks every store invariant ([`crate::integrity`]) afterwards.
//! Before guarded batches each of these ended in changed content, a resurrected manifest, a
//! 500, or a leaked blob.

use crate::manifests;
use crate::blobs::{self, Attached};
use crate::files;
use crate::lifecycle::{self, Completion};
use crate::files_tests::*;
use crate::routes::*;
use crate::testing::*;
use std::cell::RefCell;
use vaultx_core::digest::{hex, sha256};
use vaultx_core::ports::{Row, Sql, SqlValue, Statement, StoreError};

/// The metadata store, with a hook (the winning request) that runs once, just before the
/// first batch commits.
struct Hooked<'a> {
    db: TestDb,
    hook: RefCell<Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>>>,
}

impl<'a> Hooked<'a> {
    fn new(p: &TestPlatform, hook: impl std::future::Future<Output = ()> + 'a) -> Self {
        Self { db: TestDb(p.conn.clone()), hook: RefCell::new(Some(Box::pin(hook))) }
    }
}

fn chunk_request(token: &str, id: &str, index: u64, data: &[u8]) -> vaultx_core::http::ApiRequest {
    authed("POST", &format!("/api/files/{id}/chunks/{index}"), token, "application/octet-stream", data.to_vec())
}

fn delete_request(token: &str, id: &str) -> vaultx_core::http::ApiRequest {
    authed("DELETE", &format!("/api/files/{id}"), token, "application/json", vec![])
}

impl Sql for Hooked<'_> {
    async fn query(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<Row>, StoreError> {
        self.db.query(sql, params).await
    }
    async fn execute(&self, sql: &str, params: Vec<SqlValue>) -> Result<u64, StoreError> {
        self.db.execute(sql, params).await
    }
    async fn batch(&self, statements: Vec<Statement>) -> Result<(), StoreError> {
        let hook = self.hook.borrow_mut().take();
        if let Some(hook) = hook {
            hook.await;
        }
        self.db.batch(statements).await
    }
}

#[track_caller]
fn assert_intact(p: &TestPlatform) {
    let db = TestDb(p.conn.clone());
    let report = run(crate::integrity::check(&db, &p.blobs, &p.kv, p.now.get())).unwrap();
    assert!(report.ok, "{:#?}", report.violations);
}

fn file_id(p: &TestPlatform, token: &str, size: usize, checksum: Option<&[u8]>) -> String {
    let sum = checksum.map_or(String::new(), |d| format!(r#","checksum":"sha256:{}""#, hex(&sha256(d))));
    create(p, token, &format!(r#"{{"name":"f.bin","size":{size}{sum}}}"#))["id"].as_str().unwrap().to_owned()
}

fn key_for(p: &TestPlatform, id: &str, data: &[u8]) -> String {
    run(files::find(&TestDb(p.conn.clone()), id)).unwrap().unwrap().blob_key(&sha256(data))
}

trait Now {
    fn now(&self) -> i64;
}
impl Now for TestPlatform {
    fn now(&self) -> i64 {
        self.now.get()
    }
}

fn file_status(p: &TestPlatform, id: &str) -> Option<String> {
    run(files::find(&TestDb(p.conn.clone()), id)).unwrap().map(|f| f.status)
}

/// Finding 1: chunk 0 re-sent with other bytes while chunk 1 completes the file.
#[test]
fn a_chunk_that_loses_to_completion_changes_nothing() {
    for with_checksum in [false, true] {
        let p = TestPlatform::new();
        let token = signed_in(&p);
        let data = content(CHUNK + 10, 3);
        let id = file_id(&p, &token, data.len(), with_checksum.then_some(&data[..]));
        assert_eq!(put_chunk(&p, &token, &id, 0, &data[..CHUNK]).status, 201);
        let other = content(CHUNK, 99);
        let key = run(files::find(&TestDb(p.conn.clone()), &id)).unwrap().unwrap().blob_key(&sha256(&other));
        let db = Hooked::new(&p, async { assert_eq!(file_chunk::handle(&p, chunk_request(&token, &id, 1, &data[CHUNK..])).await.status, 201) });
        let lost = run(blobs::attach(&db, &p.blobs, p.now(), &id, 0, &key, &other, None)).unwrap_err();
        assert_eq!((lost.status(), lost.kind.slug()), (409, "file-not-uploading"), "checksum: {with_checksum}");
        let url = body_json(&signed_url(&p, &token, &id, "{}"))["path"].as_str().unwrap().to_owned();
        let r = download(&p, &url, &[]);
        assert_eq!(read_body(&p, &r), data, "the available file serves what was verified");
        assert!(!p.blobs.0.borrow().contains_key(&key), "the loser's bytes are discarded");
        assert_intact(&p);
    }
}

/// Finding 2: a completion in flight when the file is deleted publishes nothing.
#[test]
fn a_delete_is_final_against_a_completion_in_flight() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let data = content(CHUNK + 10, 4);
    let id = file_id(&p, &token, data.len(), Some(&data));
    // Every chunk in, the completion not run yet (as after a crash).
    let db = TestDb(p.conn.clone());
    for (i, part) in data.chunks(CHUNK).enumerate() {
        let key = key_for(&p, &id, part);
        assert!(matches!(run(blobs::attach(&db, &p.blobs, p.now(), &id, i as u64, &key, part, None)), Ok(Attached::Stored { .. })));
    }
    let hooked = Hooked::new(&p, async { assert_eq!(file::handle(&p, delete_request(&token, &id)).await.status, 204) });
    let r = run(lifecycle::complete(&hooked, &p.blobs, &p.kv, &p, p.now(), &id));
    assert_eq!(r.unwrap_err().status(), 404);
    assert!(p.kv.0.borrow().is_empty(), "the losing completion's manifest is gone: {:?}", p.kv.0.borrow().keys().collect::<Vec<_>>());
    assert!(p.blobs.0.borrow().is_empty());
    assert_intact(&p);
}

/// Finding 2, the original report: PATCHes racing a DELETE. A PATCH no longer writes the
/// manifest at all, and a URL issued before the DELETE stops working with it.
#[test]
fn renames_never_bring_a_deleted_file_back() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let data = content(100, 5);
    let id = file_id(&p, &token, data.len(), None);
    put_chunk(&p, &token, &id, 0, &data);
    let url = body_json(&signed_url(&p, &token, &id, "{}"))["path"].as_str().unwrap().to_owned();
    let patch = || run(file::handle(&p, authed("PATCH", &format!("/api/files/{id}"), &token, "application/json", br#"{"name":"renamed.bin"}"#.to_vec())));
    assert_eq!(patch().status, 200);
    assert_eq!(p.kv.0.borrow().len(), 1, "a rename writes no manifest");
    assert_eq!(run(file::handle(&p, authed("DELETE", &format!("/api/files/{id}"), &token, "application/json", vec![]))).status, 204);
    assert_eq!(patch().status, 404);
    let r = download(&p, &url, &[]);
    assert_eq!((r.status, body_json(&r)["type"].as_str()), (404, Some("urn:vaultx:problem:file-gone")));
    assert_intact(&p);
}

/// Finding 3: a chunk racing its file's DELETE is a 404 (it was a 500 from the foreign key)
/// and leaves no bytes behind.
#[test]
fn a_chunk_that_loses_to_a_delete_is_404_and_leaves_nothing() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let data = content(CHUNK + 10, 6);
    let id = file_id(&p, &token, data.len(), None);
    put_chunk(&p, &token, &id, 0, &data[..CHUNK]);
    let key = key_for(&p, &id, &data[CHUNK..]);
    let db = Hooked::new(&p, async { assert_eq!(file::handle(&p, delete_request(&token, &id)).await.status, 204) });
    let lost = run(blobs::attach(&db, &p.blobs, p.now(), &id, 1, &key, &data[CHUNK..], None)).unwrap_err();
    assert_eq!(lost.status(), 404);
    assert!(p.blobs.0.borrow().is_empty(), "{:?}", p.blobs.0.borrow().keys().collect::<Vec<_>>());
    assert_intact(&p);
}

/// Finding 9: two uploads of different bytes to one index: the later writer's guard sees the
/// earlier one's chunk, replaces it and releases its blob (before, that blob leaked).
#[test]
fn two_different_uploads_to_one_index_leak_nothing() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let id = file_id(&p, &token, CHUNK + 10, None);
    let (a, b) = (content(CHUNK, 7), content(CHUNK, 8));
    let key_a = key_for(&p, &id, &a);
    let db = Hooked::new(&p, async { assert_eq!(file_chunk::handle(&p, chunk_request(&token, &id, 0, &b)).await.status, 201) });
    let Attached::Stored { released } = run(blobs::attach(&db, &p.blobs, p.now(), &id, 0, &key_a, &a, None)).unwrap() else { panic!() };
    assert_eq!(released, [key_for(&p, &id, &b)], "the winner's blob is released, not a stale read's");
    run(blobs::sweep(&TestDb(p.conn.clone()), &p.blobs, p.now(), &released)).unwrap();
    assert_eq!(run(blobs::attached(&TestDb(p.conn.clone()), &id, 0)).unwrap(), Some(key_a));
    assert_intact(&p);
}

/// Finding 10: every chunk arrived but the completion never ran (the server died between).
/// `POST /complete` finishes it, and so does re-sending any chunk; both are idempotent.
#[test]
fn an_interrupted_completion_is_finished_by_the_resuming_client() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    for resume in ["complete", "resend"] {
        let data = content(2 * CHUNK, 9);
        let id = file_id(&p, &token, data.len(), Some(&data));
        let db = TestDb(p.conn.clone());
        for (i, part) in data.chunks(CHUNK).enumerate() {
            let key = key_for(&p, &id, part);
            run(blobs::attach(&db, &p.blobs, p.now(), &id, i as u64, &key, part, None)).unwrap();
        }
        assert_eq!(file_status(&p, &id).as_deref(), Some("uploading"));
        let complete = || run(file_complete::handle(&p, authed("POST", &format!("/api/files/{id}/complete"), &token, "application/json", vec![])));
        match resume {
            "complete" => {
                let r = complete();
                assert_eq!((r.status, body_json(&r)["status"].as_str()), (200, Some("available")));
            }
            _ => assert_eq!(body_json(&put_chunk(&p, &token, &id, 1, &data[CHUNK..]))["status"], "available"),
        }
        assert_eq!(complete().status, 200, "idempotent");
        let url = body_json(&signed_url(&p, &token, &id, "{}"))["path"].as_str().unwrap().to_owned();
        assert_eq!(read_body(&p, &download(&p, &url, &[])), data);
    }
    assert_intact(&p);
}

#[test]
fn completing_with_chunks_missing_lists_them() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let id = file_id(&p, &token, 3 * CHUNK, None);
    put_chunk(&p, &token, &id, 1, &content(CHUNK, 1));
    let r = run(file_complete::handle(&p, authed("POST", &format!("/api/files/{id}/complete"), &token, "application/json", vec![])));
    assert_eq!((r.status, body_json(&r)["type"].as_str()), (409, Some("urn:vaultx:problem:chunks-missing")));
    assert!(body_json(&r)["detail"].as_str().unwrap().contains("0, 2"));
    assert!(matches!(run(lifecycle::complete(&TestDb(p.conn.clone()), &p.blobs, &p.kv, &p, p.now(), &id)).unwrap(), Completion::Missing(m) if m == [0, 2]));
}

/// Finding 7: a valid token whose account is gone is a 401, on reads and writes.
#[test]
fn tokens_of_vanished_accounts_are_refused() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let id = file_id(&p, &token, 10, None);
    p.conn.execute_batch("PRAGMA foreign_keys = OFF; DELETE FROM users;").unwrap();
    for r in [
        run(crate::routes::files::handle(&p, authed("POST", "/api/files", &token, "application/json", br#"{"name":"a","size":1}"#.to_vec()))),
        put_chunk(&p, &token, &id, 0, &[1; 10]),
        run(crate::routes::files::handle(&p, authed("GET", "/api/files", &token, "application/json", vec![]))),
    ] {
        assert_eq!((r.status, body_json(&r)["type"].as_str()), (401, Some("urn:vaultx:problem:invalid-token")));
    }
}

/// Finding 6: deduplication is per owner, so another user's upload of the same bytes is a
/// new blob (201), never a hit (200) that would reveal someone else holds them.
#[test]
fn deduplication_never_crosses_accounts() {
    let p = TestPlatform::new();
    let (alice, bob) = (signed_in(&p), signed_in(&p));
    let data = content(1000, 10);
    for (token, expect) in [(&alice, 201), (&bob, 201)] {
        let id = file_id(&p, token, data.len(), None);
        assert_eq!(put_chunk(&p, token, &id, 0, &data).status, expect);
    }
    let again = file_id(&p, &alice, data.len(), None);
    assert_eq!(put_chunk(&p, &alice, &again, 0, &data).status, 201, "a new file's chunk is new to the file");
    assert_eq!(refcounts(&p).len(), 2, "one blob per owner: {:?}", refcounts(&p));
    assert_intact(&p);
}

/// Finding 10's other half: a completion that died between writing its manifest and
/// publishing it leaves an unreachable manifest, recorded; the file's next completion (once
/// the write is older than any request) or its deletion removes it.
#[test]
fn manifests_of_dead_completions_are_removed() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    for finish in ["complete", "delete"] {
        let data = content(100, 12);
        let id = file_id(&p, &token, data.len(), None);
        let db = TestDb(p.conn.clone());
        let key = key_for(&p, &id, &data);
        run(blobs::attach(&db, &p.blobs, p.now(), &id, 0, &key, &data, None)).unwrap();
        let f = run(files::find(&db, &id)).unwrap().unwrap();
        let (dead, _) = run(manifests::write(&db, &p.kv, &p, p.now(), &f, vec![(key, 100)], None)).unwrap();
        let dead_key = files::manifest_key(&id, &dead);
        let report = run(crate::integrity::check(&db, &p.blobs, &p.kv, p.now.get())).unwrap();
        assert!(report.ok && report.pending_manifests == 1, "{report:?}");
        p.now.set(p.now.get() + blobs::STALE_SWEEP_MS + 1);
        match finish {
            "complete" => assert!(matches!(run(lifecycle::complete(&db, &p.blobs, &p.kv, &p, p.now(), &id)).unwrap(), Completion::Available(_))),
            _ => assert_eq!(run(file::handle(&p, delete_request(&token, &id))).status, 204),
        }
        assert!(!p.kv.0.borrow().contains_key(&dead_key), "{finish} removes the dead manifest");
        assert_eq!(run(crate::integrity::check(&db, &p.blobs, &p.kv, p.now.get())).unwrap().pending_manifests, 0);
    }
    assert_intact(&p);
}
