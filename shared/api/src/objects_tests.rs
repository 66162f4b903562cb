//! Buckets and objects (what the S3 door stores), on the native test platform: an object is
//! a file, a PUT over a key is a new version of it, keys list in byte order.

use crate::buckets::{self, Created, Deleted};
use crate::files_tests::{content, signed_in};
use crate::objects::{self, NewObject};
use crate::testing::*;
use vaultx_core::http::Body;
use vaultx_core::ports::{Clock, Platform};
use vaultx_core::problem::ProblemKind;

fn user_id(p: &TestPlatform) -> String {
    signed_in(p);
    p.conn.query_row("SELECT id FROM users ORDER BY created_at DESC LIMIT 1", [], |r| r.get(0)).unwrap()
}

fn bucket(p: &TestPlatform, owner: &str, name: &str) -> buckets::Bucket {
    let db = run(p.metadata()).unwrap();
    assert_eq!(run(buckets::create(&db, owner, name, p.now_ms())).unwrap(), Created::Created);
    run(buckets::find(&db, name)).unwrap().unwrap()
}

fn put(p: &TestPlatform, b: &buckets::Bucket, key: &str, body: &[u8]) -> Result<objects::Object, vaultx_core::Problem> {
    let db = run(p.metadata()).unwrap();
    run(objects::put(p, &db, b, NewObject { key, mime_type: "application/octet-stream".into(), body, s3_etag: "\"s3-etag\"".into() }))
}

/// The object's whole content, read as the S3 door streams it.
fn get(p: &TestPlatform, b: &buckets::Bucket, key: &str) -> Option<Vec<u8>> {
    let db = run(p.metadata()).unwrap();
    let o = run(objects::find(&db, &b.name, key)).unwrap()?;
    if o.file.size == 0 {
        return Some(Vec::new());
    }
    match run(objects::content(p, &o, 0, o.file.size - 1)).unwrap() {
        Body::Bytes(bytes) => Some(bytes),
        Body::Blobs(slices) => Some(slices.iter().flat_map(|s| run(s.read(&p.blobs)).unwrap()).collect()),
    }
}

fn rows(p: &TestPlatform, sql: &str) -> i64 {
    p.conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn bucket_names_are_unique_in_the_deployment_and_only_empty_buckets_go() {
    let p = TestPlatform::new();
    let (alice, bob) = (user_id(&p), user_id(&p));
    let db = run(p.metadata()).unwrap();
    let b = bucket(&p, &alice, "photos");
    assert_eq!(run(buckets::create(&db, &alice, "photos", 0)).unwrap(), Created::AlreadyYours);
    assert_eq!(run(buckets::create(&db, &bob, "photos", 0)).unwrap(), Created::Taken);
    assert_eq!(run(buckets::list(&db, &bob)).unwrap(), vec![]);
    put(&p, &b, "cat.jpg", &content(100, 3)).unwrap();
    assert_eq!(run(buckets::delete(&db, &bob, "photos")).unwrap(), Deleted::NoSuchBucket);
    assert_eq!(run(buckets::delete(&db, &alice, "photos")).unwrap(), Deleted::NotEmpty);
    // Deleting the file (as the REST API does) takes its key with it.
    let o = run(objects::find(&db, "photos", "cat.jpg")).unwrap().unwrap();
    let (kv, store) = (run(p.kv()).unwrap(), run(p.blobs()).unwrap());
    run(crate::lifecycle::delete(&db, &store, &kv, p.now_ms(), &alice, &o.file.id)).unwrap();
    assert_eq!(rows(&p, "SELECT count(*) FROM bucket_objects"), 0);
    assert_eq!(run(buckets::delete(&db, &alice, "photos")).unwrap(), Deleted::Deleted);
}

#[test]
fn an_object_is_a_file_and_reads_back_whole_small_or_chunked() {
    let p = TestPlatform::new();
    let owner = user_id(&p);
    let b = bucket(&p, &owner, "data");
    let big = content(3 * 64 * 1024 + 5, 7);
    let o = put(&p, &b, "dir/big.bin", &big).unwrap();
    assert_eq!((o.file.status.as_str(), o.file.size, o.file.name.as_str(), o.etag.as_str()), ("available", big.len() as u64, "dir/big.bin", "\"s3-etag\""));
    assert_eq!(o.file.owner_id, owner);
    assert_eq!(get(&p, &b, "dir/big.bin").unwrap(), big);
    put(&p, &b, "small", b"hello").unwrap();
    assert_eq!(get(&p, &b, "small").unwrap(), b"hello");
    put(&p, &b, "empty", b"").unwrap();
    assert_eq!(get(&p, &b, "empty").unwrap(), b"");
    // The REST API sees the same rows: three files of the owner's.
    assert_eq!(rows(&p, "SELECT count(*) FROM files WHERE version_of IS NULL"), 3);
}

#[test]
fn a_put_over_a_key_is_a_new_version_of_its_file_kept_only_while_versioning_is_enabled() {
    let p = TestPlatform::new();
    let owner = user_id(&p);
    let b = bucket(&p, &owner, "plain");
    let first = put(&p, &b, "k", &content(70_000, 1)).unwrap();
    let second = put(&p, &b, "k", &content(90_000, 2)).unwrap();
    assert_eq!(second.file.id, first.file.id, "the key names the same file");
    assert_eq!(get(&p, &b, "k").unwrap(), content(90_000, 2));
    assert_eq!(rows(&p, "SELECT count(*) FROM files"), 1, "the replaced content is gone without versioning");
    let db = run(p.metadata()).unwrap();
    run(buckets::set_versioning(&db, "plain", buckets::VERSIONING_ENABLED)).unwrap();
    let b = run(buckets::find(&db, "plain")).unwrap().unwrap();
    put(&p, &b, "k", &content(10, 3)).unwrap();
    assert_eq!(get(&p, &b, "k").unwrap(), content(10, 3));
    assert_eq!(rows(&p, "SELECT count(*) FROM files"), 2, "with versioning, the replaced content is a version");
}

#[test]
fn a_put_refused_midway_leaves_the_previous_content() {
    let p = TestPlatform::new();
    let owner = user_id(&p);
    let b = bucket(&p, &owner, "quota");
    put(&p, &b, "k", &content(1000, 1)).unwrap();
    p.vars.borrow_mut().insert("quota_bytes".into(), "1500".into());
    let refused = put(&p, &b, "k", &content(1000, 2)).unwrap_err();
    assert_eq!(refused.kind, ProblemKind::QuotaExceeded);
    assert_eq!(get(&p, &b, "k").unwrap(), content(1000, 1));
}

#[test]
fn keys_list_in_byte_order_by_prefix_and_after_a_key() {
    let p = TestPlatform::new();
    let owner = user_id(&p);
    let b = bucket(&p, &owner, "keys");
    let keys = ["b", "a/2", "a/10", "é", "a/1", "Z", "a"];
    for k in keys {
        put(&p, &b, k, k.as_bytes()).unwrap();
    }
    let db = run(p.metadata()).unwrap();
    let listed = |prefix: &str, after: Option<&str>| -> Vec<String> { run(objects::list(&db, "keys", prefix, after, 100)).unwrap().into_iter().map(|o| o.key).collect() };
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(listed("", None), sorted);
    assert_eq!(listed("a/", None), ["a/1", "a/10", "a/2"]);
    assert_eq!(listed("a/", Some("a/10")), ["a/2"]);
    assert_eq!(listed("", Some("b")), ["é"]);
    assert_eq!(run(objects::list(&db, "keys", "", None, 2)).unwrap().len(), 2);
    // Past every key starting with `a/`, and not past anything else.
    let rest: Vec<String> = run(objects::list_from(&db, "keys", "", &objects::after_prefix("a/"), 100)).unwrap().into_iter().map(|o| o.key).collect();
    assert_eq!(rest, ["b", "é"]);
}

#[test]
fn object_keys_follow_s3s_limits() {
    assert!(objects::check_key("a/b c/é.txt").is_ok());
    assert!(objects::check_key("").is_err());
    assert!(objects::check_key(&"x".repeat(1025)).is_err());
    assert!(objects::check_key("tab\there").is_err());
}

/// Every store invariant holds (the integrity check is clean).
#[track_caller]
fn intact(p: &TestPlatform) {
    let db = run(p.metadata()).unwrap();
    let report = run(crate::integrity::check(&db, &p.blobs, &p.kv, p.now_ms())).unwrap();
    assert!(report.ok, "{:#?}", report.violations);
}

/// A PUT of `body` to `key` that has begun (its row is uploading) and stored nothing yet.
fn begun(p: &TestPlatform, b: &buckets::Bucket, key: &str, body: &[u8]) -> crate::files::FileRecord {
    let db = run(p.metadata()).unwrap();
    let chunk_size = run(crate::settings::chunk_size(p)).unwrap();
    let checksum = format!("sha256:{}", vaultx_core::digest::hex(&vaultx_core::digest::sha256(body)));
    let crc = vaultx_core::digest::crc64_base64(vaultx_core::digest::crc64nvme(body));
    run(objects::begin(p, &db, b, key, "application/octet-stream", body.len() as u64, chunk_size, Some(checksum), &crc)).unwrap()
}

/// Where the second PUT runs whole, inside the first.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// After the first one's `begin`, before any of its chunks.
    BeforeChunks,
    /// After all its chunks, before its `finish`.
    BeforeFinish,
}

/// Two PUTs on one key, interleaved: the first begins, the second runs whole, then the first
/// goes on. The second began last, so it wins, as in S3: its `begin` discards the first one's
/// content in progress, which is then refused with a 4xx (never a 500); the key serves the
/// second content whole, and nothing is left behind. For a new key and for a new version.
#[test]
fn two_puts_on_one_key_the_last_to_begin_wins_whole() {
    for existing in [false, true] {
        for cut in [Cut::BeforeChunks, Cut::BeforeFinish] {
            let p = TestPlatform::new();
            let owner = user_id(&p);
            let b = bucket(&p, &owner, "race");
            if existing {
                put(&p, &b, "k", &content(5000, 1)).unwrap();
            }
            let db = run(p.metadata()).unwrap();
            let chunk_size = run(crate::settings::chunk_size(&p)).unwrap();
            let first = content(chunk_size as usize * 2 + 100, 2);
            let row = begun(&p, &b, "k", &first);
            let second = content(3000, 3);
            let kv = run(p.kv()).unwrap();
            let store = run(p.blobs()).unwrap();
            let rest = (|| -> Result<objects::Object, vaultx_core::Problem> {
                if let Cut::BeforeChunks = cut {
                    put(&p, &b, "k", &second).unwrap();
                }
                for (i, piece) in first.chunks(chunk_size as usize).enumerate() {
                    run(crate::lifecycle::store_chunk(&p, &db, &kv, &store, &row, i as u64, piece, &vaultx_core::digest::sha256(piece)))?;
                }
                if let Cut::BeforeFinish = cut {
                    put(&p, &b, "k", &second).unwrap();
                }
                run(objects::finish(&p, &db, &b, "k", &row, "application/octet-stream", "\"first\""))
            })();
            let refused = rest.expect_err("the first PUT was discarded");
            assert!((400..500).contains(&refused.status()), "existing {existing}, {cut:?}: {refused:?}");
            assert_eq!(get(&p, &b, "k").unwrap(), second, "existing {existing}, {cut:?}");
            assert_eq!(rows(&p, "SELECT count(*) FROM files"), 1, "existing {existing}, {cut:?}: one file, no version left over");
            intact(&p);
        }
    }
}

mod multipart {
    use super::*;
    use crate::multipart::{self, Refused};

    const MIB: usize = 1024 * 1024;

    fn start(p: &TestPlatform, b: &buckets::Bucket, key: &str) -> multipart::Upload {
        let db = run(p.metadata()).unwrap();
        run(multipart::create(p, &db, b, key, "application/octet-stream", Default::default())).unwrap()
    }

    fn part(p: &TestPlatform, u: &multipart::Upload, n: u32, body: &[u8]) -> (u32, String) {
        let db = run(p.metadata()).unwrap();
        (n, run(multipart::put_part(p, &db, u, n, body, <md5::Md5 as md5::Digest>::digest(body).into())).unwrap())
    }

    fn complete(p: &TestPlatform, b: &buckets::Bucket, u: &multipart::Upload, named: &[(u32, String)]) -> Result<objects::Object, Refused> {
        let db = run(p.metadata()).unwrap();
        run(multipart::complete(p, &db, b, u, named)).unwrap()
    }

    /// Every blob's reference count is the number of chunks naming it (the integrity check's
    /// first invariant), and no staging row or upload is left.
    fn consistent(p: &TestPlatform) {
        assert_eq!(rows(p, "SELECT count(*) FROM blobs b WHERE b.refcount <> (SELECT count(*) FROM file_chunks c WHERE c.blob_key = b.blob_key)"), 0);
        assert_eq!(rows(p, "SELECT count(*) FROM files WHERE version_of = id"), 0);
        assert_eq!(rows(p, "SELECT count(*) FROM multipart_uploads") + rows(p, "SELECT count(*) FROM multipart_parts"), 0);
    }

    /// A PUT in progress on a key when a multipart upload of the same key completes: the
    /// completion began last and wins whole; the PUT is then refused with a 4xx.
    #[test]
    fn a_completion_wins_over_a_put_in_progress_on_its_key() {
        let p = TestPlatform::new();
        let owner = user_id(&p);
        let b = bucket(&p, &owner, "race");
        put(&p, &b, "k", &content(100, 1)).unwrap();
        let u = start(&p, &b, "k");
        let parts = [part(&p, &u, 1, &content(1000, 2))];
        let db = run(p.metadata()).unwrap();
        let body = content(2000, 3);
        let row = begun(&p, &b, "k", &body);
        complete(&p, &b, &u, &parts).unwrap();
        let kv = run(p.kv()).unwrap();
        let store = run(p.blobs()).unwrap();
        let refused = run(crate::lifecycle::store_chunk(&p, &db, &kv, &store, &row, 0, &body, &vaultx_core::digest::sha256(&body)))
            .and_then(|_| run(objects::finish(&p, &db, &b, "k", &row, "application/octet-stream", "\"put\"")).map(|_| true))
            .expect_err("the PUT was discarded");
        assert!((400..500).contains(&refused.status()), "{refused:?}");
        assert_eq!(get(&p, &b, "k").unwrap(), content(1000, 2));
        consistent(&p);
        intact(&p);
    }

    #[test]
    fn equal_parts_become_the_chunks_as_they_are() {
        let p = TestPlatform::new();
        let owner = user_id(&p);
        let b = bucket(&p, &owner, "mp");
        let data = crate::file_api_tests::noise(2 * 5 * MIB + 1000, 3);
        let u = start(&p, &b, "big.bin");
        // Parts arrive in any order, and a part sent twice is the last one sent.
        let p2 = part(&p, &u, 2, &data[5 * MIB..10 * MIB]);
        part(&p, &u, 1, &content(5 * MIB, 1));
        let p1 = part(&p, &u, 1, &data[..5 * MIB]);
        let p3 = part(&p, &u, 3, &data[10 * MIB..]);
        let blobs_before = rows(&p, "SELECT count(*) FROM blobs WHERE refcount > 0");
        let o = complete(&p, &b, &u, &[p1, p2, p3]).unwrap();
        assert_eq!(get(&p, &b, "big.bin").unwrap(), data);
        assert_eq!((o.file.size, o.file.chunk_size), (data.len() as u64, 5 * MIB as u64));
        assert!(o.etag.ends_with("-3\""), "{}", o.etag);
        // No block was written again: the parts' blocks are the file's.
        assert_eq!(rows(&p, "SELECT count(*) FROM blobs WHERE refcount > 0"), blobs_before);
        assert_eq!(rows(&p, "SELECT count(*) FROM blobs WHERE state = 'live'"), 3, "the replaced part 1's block went; nothing else was written");
        consistent(&p);
    }

    #[test]
    fn unequal_parts_are_cut_again_into_chunks() {
        let p = TestPlatform::new();
        let owner = user_id(&p);
        let b = bucket(&p, &owner, "mp");
        let data = content(6 * MIB + 5 * MIB + 10, 4);
        let u = start(&p, &b, "k");
        let named = [part(&p, &u, 1, &data[..6 * MIB]), part(&p, &u, 2, &data[6 * MIB..11 * MIB]), part(&p, &u, 3, &data[11 * MIB..])];
        complete(&p, &b, &u, &named).unwrap();
        assert_eq!(get(&p, &b, "k").unwrap(), data);
        consistent(&p);
    }

    #[test]
    fn a_completion_names_stored_parts_in_order_each_but_the_last_at_least_5_mib() {
        let p = TestPlatform::new();
        let owner = user_id(&p);
        let b = bucket(&p, &owner, "mp");
        let u = start(&p, &b, "k");
        let one = part(&p, &u, 1, &content(5 * MIB, 1));
        let two = part(&p, &u, 2, &content(100, 2));
        let three = part(&p, &u, 3, &content(100, 3));
        assert_eq!(complete(&p, &b, &u, &[two.clone(), one.clone()]).unwrap_err(), Refused::InvalidPartOrder);
        assert_eq!(complete(&p, &b, &u, &[(1, "\"0000\"".into()), two.clone()]).unwrap_err(), Refused::InvalidPart(1));
        assert_eq!(complete(&p, &b, &u, &[one.clone(), (7, two.1.clone())]).unwrap_err(), Refused::InvalidPart(7));
        assert_eq!(complete(&p, &b, &u, &[one.clone(), two.clone(), three.clone()]).unwrap_err(), Refused::TooSmall(2));
        // None of that changed anything: it still completes.
        let db = run(p.metadata()).unwrap();
        assert!(run(objects::find(&db, "mp", "k")).unwrap().is_none());
        complete(&p, &b, &u, &[one, three]).unwrap();
        let mut want = content(5 * MIB, 1);
        want.extend(content(100, 3));
        assert_eq!(get(&p, &b, "k").unwrap(), want);
        consistent(&p);
    }

    #[test]
    fn an_abort_or_the_sweep_frees_every_part_and_the_stalled_upload_sweep_leaves_them_alone() {
        let p = TestPlatform::new();
        let owner = user_id(&p);
        let b = bucket(&p, &owner, "mp");
        let db = run(p.metadata()).unwrap();
        let u = start(&p, &b, "a");
        part(&p, &u, 1, &content(1000, 1));
        run(multipart::abort(&p, &db, &u)).unwrap();
        assert_eq!(rows(&p, "SELECT count(*) FROM blobs WHERE refcount > 0"), 0);
        consistent(&p);
        let u = start(&p, &b, "b");
        part(&p, &u, 1, &content(1000, 2));
        // Long after: the completion sweep does not take a staging row for a finished upload,
        // and the multipart sweep aborts it once it is older than multipart_max_age_seconds.
        p.now.set(p.now.get() + 3_600_000);
        assert_eq!(run(crate::lifecycle::finish_stalled(&p, &db)).unwrap(), 0);
        assert_eq!(run(multipart::abort_stale(&p, &db)).unwrap(), 0);
        p.vars.borrow_mut().insert("multipart_max_age_seconds".into(), "3000".into());
        assert_eq!(run(multipart::abort_stale(&p, &db)).unwrap(), 1);
        consistent(&p);
        assert_eq!(rows(&p, "SELECT count(*) FROM blobs WHERE refcount > 0"), 0);
    }
}
