//! The job kinds on the native test platform (chunk size 64 KiB): what each does to a file's
//! storage, that downloads never see the difference, and that reference counts stay exact
//! when jobs meet uploads and deletes.

use crate::lifecycle;
use crate::outbox;
use crate::files_tests::*;
use crate::jobs;
use crate::outbox::Tuning;
use crate::layout::{self, Swapped};
use crate::routes::*;
use crate::testing::*;
use crate::files;
use vaultx_core::compression::STORED_SUFFIX;
use vaultx_core::ports::Sql;

/// Words, as a text file would have them (compressible, not repetitive at the block level).
fn text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &["object", "store", "edge", "region", "replica", "chunk", "manifest", "signed", "download", "upload", "the", "of", "and", "queue"];
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(WORDS[(x % WORDS.len() as u64) as usize].as_bytes());
        out.push(if x.is_multiple_of(11) { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Creates a file with `options` (JSON members) and uploads `data` in chunks.
fn upload(p: &TestPlatform, token: &str, data: &[u8], options: &str) -> String {
    let file = create(p, token, &format!(r#"{{"name":"f.bin","size":{}{options}}}"#, data.len()));
    let id = file["id"].as_str().unwrap().to_owned();
    for (i, chunk) in data.chunks(CHUNK).enumerate() {
        assert!(put_chunk(p, token, &id, i as u64, chunk).status < 300);
    }
    id
}

/// Runs every due job of every kind, as the sweep does, until none is left.
fn run_jobs(p: &TestPlatform) {
    for _ in 0..10 {
        for kind in jobs::KINDS {
            run(jobs::dispatch(p, kind, outbox::SWEEP)).unwrap();
        }
        let db = TestDb(p.conn.clone());
        if jobs::KINDS.iter().all(|k| run(outbox::due(&db, k, i64::MAX / 2, 1)).unwrap().is_empty()) {
            return;
        }
    }
    panic!("jobs kept being due");
}

fn layout_of(p: &TestPlatform, id: &str) -> Vec<(String, u64)> {
    run(layout::current(&TestDb(p.conn.clone()), id)).unwrap()
}

#[track_caller]
fn assert_intact(p: &TestPlatform) {
    let report = run(crate::integrity::check(&TestDb(p.conn.clone()), &p.blobs, &p.kv, p.now.get())).unwrap();
    assert!(report.ok, "{:#?}", report.violations);
}

/// Downloads the whole file and the given ranges, and checks them against `data`.
#[track_caller]
fn assert_reads_back(p: &TestPlatform, token: &str, id: &str, data: &[u8], ranges: &[(usize, usize)]) {
    let signed = body_json(&signed_url(p, token, id, "{}"));
    let path = signed["path"].as_str().unwrap();
    let whole = download(p, path, &[]);
    assert_eq!(whole.status, 200);
    assert_eq!(read_body(p, &whole), data);
    for &(start, end) in ranges {
        let r = download(p, path, &[("range", &format!("bytes={start}-{end}"))]);
        assert_eq!(r.status, 206, "bytes={start}-{end}");
        assert_eq!(read_body(p, &r), &data[start..=end], "bytes={start}-{end}");
    }
}

fn usage(p: &TestPlatform, token: &str) -> serde_json::Value {
    body_json(&run(files_usage::handle(p, authed("GET", "/api/files/stats/usage", token, "application/json", vec![]))))
}

#[test]
fn completion_enqueues_the_first_job_with_the_file_and_wakes_its_consumer() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let plain = upload(&p, &token, &text(1000, 1), r#","deduplicationEnabled":false"#);
    let compressed = upload(&p, &token, &text(1000, 2), r#","deduplicationEnabled":false,"compressionEnabled":true"#);
    let deduplicated = upload(&p, &token, &text(1000, 3), "");
    let woken: Vec<(String, String)> = p.woken.borrow().clone();
    let subjects: Vec<(String, String)> = woken
        .iter()
        .map(|(kind, id)| (kind.clone(), run(outbox::find(&TestDb(p.conn.clone()), id)).unwrap().unwrap().subject))
        .collect();
    assert_eq!(subjects, [("compress".to_owned(), compressed), ("dedup".to_owned(), deduplicated)]);
    assert!(!subjects.iter().any(|(_, s)| s == &plain), "no job for a file that asked for none");
}

#[test]
fn a_compressible_file_is_stored_smaller_and_reads_back_byte_exact_at_any_range() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let data = text(3 * CHUNK + 999, 7);
    let id = upload(&p, &token, &data, r#","deduplicationEnabled":false,"compressionEnabled":true"#);
    let before = body_json(&run(file::handle(&p, authed("GET", &format!("/api/files/{id}"), &token, "application/json", vec![]))));
    run_jobs(&p);
    let blocks = layout_of(&p, &id);
    assert_eq!(blocks.len(), 4);
    assert!(blocks.iter().all(|(k, _)| k.ends_with(STORED_SUFFIX)), "{blocks:?}");
    let u = usage(&p, &token);
    assert!(u["storedBytes"].as_i64().unwrap() * 2 < u["logicalBytes"].as_i64().unwrap(), "{u}");
    assert_eq!(u["savedBytes"].as_i64().unwrap(), u["logicalBytes"].as_i64().unwrap() - u["storedBytes"].as_i64().unwrap());
    let after = body_json(&run(file::handle(&p, authed("GET", &format!("/api/files/{id}"), &token, "application/json", vec![]))));
    assert_eq!((&after["etag"], &after["size"]), (&before["etag"], &before["size"]), "ETag and size never change");
    let c = CHUNK;
    assert_reads_back(&p, &token, &id, &data, &[(0, 0), (c - 1, c), (c, 2 * c - 1), (100, 3 * c + 500), (3 * c, data.len() - 1)]);
    assert_intact(&p);
}

#[test]
fn an_incompressible_file_is_stored_as_it_is() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let data = noise(2 * CHUNK + 5, 3);
    let id = upload(&p, &token, &data, r#","deduplicationEnabled":false,"compressionEnabled":true"#);
    let before = layout_of(&p, &id);
    run_jobs(&p);
    assert_eq!(layout_of(&p, &id), before);
    let done = run(outbox::list(&TestDb(p.conn.clone()), Some(outbox::DONE), Some("compress"), 10)).unwrap();
    assert_eq!(done.len(), 1, "the job ran and found nothing worth compressing");
    assert_reads_back(&p, &token, &id, &data, &[(CHUNK - 3, CHUNK + 3)]);
    assert_intact(&p);
}

#[test]
fn an_edited_copy_shares_all_but_a_few_blocks_after_the_dedup_job() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let original = noise(40 * CHUNK, 11);
    let mut edited = original.clone();
    edited.splice(1000..1000, b"an insert near the start shifts every later byte".iter().copied());
    let a = upload(&p, &token, &original, "");
    let b = upload(&p, &token, &edited, "");
    // Fixed chunks share nothing after an insert: every chunk boundary moved.
    let (ka, kb) = (layout_of(&p, &a), layout_of(&p, &b));
    assert!(kb.iter().all(|k| !ka.contains(k)));
    let chunks = ka.len() + kb.len();
    run_jobs(&p);
    let (ka, kb) = (layout_of(&p, &a), layout_of(&p, &b));
    let fresh = kb.iter().filter(|k| !ka.contains(k)).count();
    assert!(fresh <= 2, "{fresh} of {} blocks of the copy are its own", kb.len());
    assert!(kb.len() > 10, "content-defined blocks, not 5 MiB chunks");
    // The upload's chunk blobs stay through the grace period (downloads under way), then go:
    // only the blocks are stored.
    let distinct: std::collections::BTreeSet<&String> = ka.iter().chain(&kb).map(|(k, _)| k).collect();
    assert_eq!(p.blobs.0.borrow().len(), distinct.len() + chunks);
    p.now.set(p.now.get() + crate::blobs::REPLACED_GRACE_MS + 1);
    run_jobs(&p);
    assert_eq!(p.blobs.0.borrow().len(), distinct.len());
    assert_reads_back(&p, &token, &b, &edited, &[(990, 1100), (500_000, 900_000)]);
    assert_reads_back(&p, &token, &a, &original, &[]);
    assert_intact(&p);
    // Deleting one keeps the other whole and releases exactly its own blocks.
    assert_eq!(run(file::handle(&p, authed("DELETE", &format!("/api/files/{a}"), &token, "application/json", vec![]))).status, 204);
    assert_reads_back(&p, &token, &b, &edited, &[]);
    assert_intact(&p);
}

#[test]
fn dedup_then_compression_on_one_file() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let data = text(20 * CHUNK, 5);
    let id = upload(&p, &token, &data, r#","compressionEnabled":true"#);
    run_jobs(&p);
    let blocks = layout_of(&p, &id);
    assert!(blocks.len() > 5 && blocks.iter().all(|(k, _)| k.ends_with(STORED_SUFFIX)), "{blocks:?}");
    let kinds: Vec<String> = run(outbox::list(&TestDb(p.conn.clone()), Some(outbox::DONE), None, 10)).unwrap().into_iter().map(|j| j.kind).collect();
    assert_eq!(kinds.len(), 2);
    assert_reads_back(&p, &token, &id, &data, &[(12_345, 300_000)]);
    // Running them again changes nothing: jobs are idempotent.
    let f = run(files::find(&TestDb(p.conn.clone()), &id)).unwrap().unwrap();
    for kind in jobs::KINDS {
        let db = TestDb(p.conn.clone());
        run(db.batch(vec![outbox::enqueue(&format!("00000000-0000-4000-8000-00000000000{}", kind.len()), kind, &id, p.now.get())])).unwrap();
    }
    run_jobs(&p);
    assert_eq!(layout_of(&p, &id), blocks);
    assert_eq!(run(files::find(&TestDb(p.conn.clone()), &id)).unwrap().unwrap().row_version, f.row_version);
    assert_intact(&p);
}

#[test]
fn a_job_for_a_deleted_file_does_nothing_and_is_done() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let id = upload(&p, &token, &text(2 * CHUNK, 9), r#","compressionEnabled":true"#);
    assert_eq!(run(file::handle(&p, authed("DELETE", &format!("/api/files/{id}"), &token, "application/json", vec![]))).status, 204);
    run_jobs(&p);
    assert!(p.blobs.0.borrow().is_empty() && p.kv.0.borrow().is_empty());
    assert_eq!(run(outbox::list(&TestDb(p.conn.clone()), Some(outbox::DONE), None, 10)).unwrap().len(), 1);
    assert_intact(&p);
}

#[test]
fn a_swap_that_loses_to_a_delete_changes_nothing_and_leaves_no_bytes() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let data = text(3 * CHUNK, 4);
    let id = upload(&p, &token, &data, r#","deduplicationEnabled":false"#);
    let db = TestDb(p.conn.clone());
    let f = run(files::find(&db, &id)).unwrap().unwrap();
    // The job has read the file and written its compressed blocks…
    let mut blocks = Vec::new();
    for (key, len) in run(layout::current(&db, &id)).unwrap() {
        let packed = vaultx_core::compression::compress_block(&p.blobs.0.borrow()[&key], 0.1).unwrap();
        blocks.push(run(layout::store_block(&db, &p.blobs, p.now.get(), "job-1", &format!("{key}{STORED_SUFFIX}"), len, &packed)).unwrap());
    }
    // …when the owner deletes the file.
    assert_eq!(run(file::handle(&p, authed("DELETE", &format!("/api/files/{id}"), &token, "application/json", vec![]))).status, 204);
    let swapped = run(layout::swap(&db, &p.blobs, &p.kv, p.now.get(), "job-1", &f, &blocks, "replicate-1")).unwrap();
    assert_eq!(swapped, Swapped::Lost);
    assert!(p.blobs.0.borrow().is_empty(), "{:?}", p.blobs.0.borrow().keys().collect::<Vec<_>>());
    assert!(run(db.query("SELECT 1 FROM layout_staging", vec![])).unwrap().is_empty());
    assert_intact(&p);
}

#[test]
fn a_swap_that_loses_to_another_swap_leaves_counts_exact() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let data = text(3 * CHUNK, 6);
    let id = upload(&p, &token, &data, r#","deduplicationEnabled":false,"compressionEnabled":true"#);
    let db = TestDb(p.conn.clone());
    let stale = run(files::find(&db, &id)).unwrap().unwrap();
    run_jobs(&p);
    // A second consumer that read the file before the first swapped cannot apply its layout.
    let blocks = vec![layout::Staged::kept(&layout_of(&p, &id)[0].0, data.len() as u64)];
    assert_eq!(run(layout::swap(&db, &p.blobs, &p.kv, p.now.get(), "job-2", &stale, &blocks, "replicate-2")).unwrap(), Swapped::Lost);
    assert_reads_back(&p, &token, &id, &data, &[]);
    assert_intact(&p);
}

#[test]
fn a_job_whose_blocks_are_lost_fails_until_dead_and_a_retry_after_the_fix_finishes_it() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    p.vars.borrow_mut().insert("job_retry_base_ms".into(), "1000".into());
    let data = text(2 * CHUNK, 8);
    let id = upload(&p, &token, &data, r#","deduplicationEnabled":false,"compressionEnabled":true"#);
    let key = layout_of(&p, &id)[0].0.clone();
    let saved = p.blobs.0.borrow_mut().remove(&key).unwrap();
    let db = TestDb(p.conn.clone());
    for _ in 0..outbox::MAX_ATTEMPTS {
        run(jobs::dispatch(&p, "compress", outbox::SWEEP)).unwrap();
        p.now.set(p.now.get() + outbox::MAX_BACKOFF_MS);
    }
    let dead = run(outbox::list(&db, Some(outbox::DEAD), Some("compress"), 10)).unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].last_error.as_deref().unwrap().contains("missing"), "{:?}", dead[0].last_error);
    assert!(run(outbox::due(&db, "compress", p.now.get(), 10)).unwrap().is_empty(), "dead jobs are not swept");
    let lines: Vec<_> = p.audit.borrow().iter().filter(|e| e["event"] == "job").cloned().collect();
    assert_eq!(lines.len() as i64, outbox::MAX_ATTEMPTS);
    assert_eq!(lines.last().unwrap()["outcome"], "dead");
    // The operator restores the bytes and retries.
    p.blobs.0.borrow_mut().insert(key, saved);
    assert!(run(outbox::retry(&db, &dead[0].id, p.now.get())).unwrap());
    run_jobs(&p);
    assert_eq!(run(outbox::find(&db, &dead[0].id)).unwrap().unwrap().state, outbox::DONE);
    assert_reads_back(&p, &token, &id, &data, &[]);
    assert_intact(&p);
}

#[test]
fn concurrency_bounds_running_jobs_of_a_kind() {
    let p = TestPlatform::new();
    let db = TestDb(p.conn.clone());
    let one = Tuning { concurrency: 1, ..Tuning::default() };
    run(db.batch(vec![outbox::enqueue("a", "compress", "f1", 0), outbox::enqueue("b", "compress", "f2", 0), outbox::enqueue("c", "dedup", "f3", 0)])).unwrap();
    let a = run(outbox::claim(&db, "a", "compress", 1, &one)).unwrap().unwrap();
    assert_eq!(run(outbox::claim(&db, "b", "compress", 1, &one)).unwrap(), None, "one compress job at a time");
    assert!(run(outbox::claim(&db, "c", "dedup", 1, &one)).unwrap().is_some(), "kinds are counted apart");
    assert!(run(outbox::succeed(&db, &a, 2)).unwrap());
    assert!(run(outbox::claim(&db, "b", "compress", 3, &one)).unwrap().is_some());
}

#[test]
fn tuning_comes_from_configuration_and_refuses_nonsense() {
    let p = TestPlatform::new();
    assert_eq!(run(Tuning::from_config(&p)), Tuning::default());
    p.vars.borrow_mut().extend([("job_concurrency".to_owned(), "8".to_owned()), ("job_lease_seconds".to_owned(), "30".to_owned())]);
    assert_eq!(run(Tuning::from_config(&p)), Tuning { concurrency: 8, lease_ms: 30_000, ..Tuning::default() });
    p.vars.borrow_mut().insert("job_concurrency".into(), "lots".into());
    assert_eq!(run(Tuning::from_config(&p)).concurrency, Tuning::default().concurrency);
}

#[test]
fn bytes_a_dead_consumer_wrote_are_swept_unless_a_live_row_owns_them() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let data = text(2 * CHUNK, 12);
    let id = upload(&p, &token, &data, r#","deduplicationEnabled":false,"compressionEnabled":true"#);
    let db = TestDb(p.conn.clone());
    let job = run(outbox::list(&db, Some(outbox::QUEUED), Some("compress"), 1)).unwrap().remove(0);
    let claimed = run(outbox::claim(&db, &job.id, "compress", p.now.get(), &Tuning::default())).unwrap().unwrap();
    // The consumer writes one compressed block, then dies (kill -9): no swap.
    let (key, len) = layout_of(&p, &id)[0].clone();
    let packed = vaultx_core::compression::compress_block(&p.blobs.0.borrow()[&key], 0.1).unwrap();
    let twin = format!("{key}{STORED_SUFFIX}");
    run(layout::store_block(&db, &p.blobs, p.now.get(), &claimed.id, &twin, len, &packed)).unwrap();
    // While its lease holds, the sweep leaves the bytes alone.
    run(crate::blobs::collect_garbage(&db, &p.blobs, p.now.get())).unwrap();
    assert!(p.blobs.0.borrow().contains_key(&twin));
    // Past the lease the sweep removes them; the job runs again and finishes.
    p.now.set(p.now.get() + outbox::LEASE_MS + 1);
    run(crate::blobs::collect_garbage(&db, &p.blobs, p.now.get())).unwrap();
    assert!(!p.blobs.0.borrow().contains_key(&twin));
    run_jobs(&p);
    assert!(layout_of(&p, &id).iter().all(|(k, _)| k.ends_with(STORED_SUFFIX)));
    assert_reads_back(&p, &token, &id, &data, &[]);
    assert_intact(&p);
}

fn create_with(p: &TestPlatform, token: &str, data: &[u8], sha: &str, crc: &str) -> vaultx_core::http::ApiResponse {
    run(crate::routes::files::handle(p, authed("POST", "/api/files", token, "application/json", format!(
        r#"{{"name":"v.bin","size":{},"checksum":"sha256:{sha}","checksumCrc64nvme":"{crc}","deduplicationEnabled":false}}"#, data.len()
    ).into())))
}

fn sha_hex(data: &[u8]) -> String {
    vaultx_core::digest::hex(&vaultx_core::digest::sha256(data))
}

fn crc_b64(data: &[u8]) -> String {
    vaultx_core::digest::crc64_base64(vaultx_core::digest::crc64nvme(data))
}

fn file_json(p: &TestPlatform, token: &str, id: &str) -> serde_json::Value {
    body_json(&run(file::handle(p, authed("GET", &format!("/api/files/{id}"), token, "application/json", vec![]))))
}

#[test]
fn a_declared_crc_makes_the_file_available_at_once_and_the_sha256_is_verified_by_a_job() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let data = noise(3 * CHUNK + 17, 21);
    let r = create_with(&p, &token, &data, &sha_hex(&data), &crc_b64(&data));
    assert_eq!(r.status, 201);
    let id = body_json(&r)["id"].as_str().unwrap().to_owned();
    for (i, chunk) in data.chunks(CHUNK).enumerate() {
        assert!(put_chunk(&p, &token, &id, i as u64, chunk).status < 300);
    }
    let f = file_json(&p, &token, &id);
    assert_eq!((f["status"].as_str(), f["checksumVerified"].as_bool()), (Some("available"), Some(false)), "{f}");
    assert_reads_back(&p, &token, &id, &data, &[]);
    run_jobs(&p);
    assert_eq!(file_json(&p, &token, &id)["checksumVerified"], true);
    assert_intact(&p);
}

#[test]
fn a_wrong_crc_is_refused_at_completion_and_the_file_stays_uploading() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let data = noise(2 * CHUNK + 1, 22);
    let id = body_json(&create_with(&p, &token, &data, &sha_hex(&data), &crc_b64(b"something else")))["id"].as_str().unwrap().to_owned();
    assert!(put_chunk(&p, &token, &id, 0, &data[..CHUNK]).status < 300);
    assert!(put_chunk(&p, &token, &id, 1, &data[CHUNK..2 * CHUNK]).status < 300);
    let r = put_chunk(&p, &token, &id, 2, &data[2 * CHUNK..]);
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(r.body.bytes()));
    assert_eq!(body_json(&r)["type"], "urn:vaultx:problem:checksum-mismatch");
    assert_eq!(file_json(&p, &token, &id)["status"], "uploading");
    // A malformed CRC is a validation error at creation.
    let r = create_with(&p, &token, &data, &sha_hex(&data), "not-a-crc");
    assert_eq!(r.status, 422);
    assert_eq!(body_json(&r)["errors"][0]["field"], "checksumCrc64nvme");
}

#[test]
fn content_that_contradicts_its_sha256_becomes_invalid_and_is_never_served() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let data = noise(CHUNK + 5, 23);
    // The CRC is right, the declared SHA-256 is not: the CRC lets it become available, the
    // verify job finds the contradiction.
    let id = body_json(&create_with(&p, &token, &data, &sha_hex(b"other content"), &crc_b64(&data)))["id"].as_str().unwrap().to_owned();
    assert!(put_chunk(&p, &token, &id, 0, &data[..CHUNK]).status < 300);
    assert!(put_chunk(&p, &token, &id, 1, &data[CHUNK..]).status < 300);
    let path = body_json(&signed_url(&p, &token, &id, "{}"))["path"].as_str().unwrap().to_owned();
    run_jobs(&p);
    let f = file_json(&p, &token, &id);
    assert_eq!((f["status"].as_str(), f["checksumVerified"].as_bool()), (Some("invalid"), Some(false)), "{f}");
    assert_eq!(download(&p, &path, &[]).status, 404, "a URL issued before stops working");
    assert_eq!(signed_url(&p, &token, &id, "{}").status, 409);
    assert_intact(&p);
    assert_eq!(run(file::handle(&p, authed("DELETE", &format!("/api/files/{id}"), &token, "application/json", vec![]))).status, 204);
    assert_intact(&p);
}

#[test]
fn a_small_file_that_is_already_one_block_still_gets_compressed() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let data = text(40_000, 31);
    let id = upload(&p, &token, &data, r#","compressionEnabled":true"#);
    run_jobs(&p);
    assert!(layout_of(&p, &id).iter().all(|(k, _)| k.ends_with(STORED_SUFFIX)), "{:?}", layout_of(&p, &id));
    let kinds: Vec<String> = run(outbox::list(&TestDb(p.conn.clone()), Some(outbox::DONE), None, 10)).unwrap().into_iter().map(|j| j.kind).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "compress").count(), 1, "{kinds:?}");
    // A dedup job run again does not queue a second compression.
    run(TestDb(p.conn.clone()).batch(vec![outbox::enqueue("00000000-0000-4000-8000-0000000000aa", "dedup", &id, p.now.get())])).unwrap();
    run_jobs(&p);
    let kinds: Vec<String> = run(outbox::list(&TestDb(p.conn.clone()), Some(outbox::DONE), None, 10)).unwrap().into_iter().map(|j| j.kind).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "compress").count(), 1, "{kinds:?}");
    assert_reads_back(&p, &token, &id, &data, &[(100, 30_000)]);
    assert_intact(&p);
}

#[test]
fn chunks_without_a_stored_crc_are_read_once_for_both_checksums() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let data = noise(2 * CHUNK + 9, 24);
    for (crc, expected) in [(crc_b64(b"wrong"), 422), (crc_b64(&data), 201)] {
        let id = body_json(&create_with(&p, &token, &data, &sha_hex(&data), &crc))["id"].as_str().unwrap().to_owned();
        assert!(put_chunk(&p, &token, &id, 0, &data[..CHUNK]).status < 300);
        assert!(put_chunk(&p, &token, &id, 1, &data[CHUNK..2 * CHUNK]).status < 300);
        // As if stored before CRCs were kept: completion cannot combine, so it reads.
        p.conn.execute("UPDATE file_chunks SET crc64 = NULL WHERE file_id = ?", [&id]).unwrap();
        let r = put_chunk(&p, &token, &id, 2, &data[2 * CHUNK..]);
        assert_eq!(r.status, expected, "{}", String::from_utf8_lossy(r.body.bytes()));
        if expected == 201 {
            let f = file_json(&p, &token, &id);
            assert_eq!((f["status"].as_str(), f["checksumVerified"].as_bool()), (Some("available"), Some(true)), "read once: both checked");
        }
    }
}

/// The sweep runs itself: the first caller that finds the last sweep older than the interval
/// wakes every kind with `sweep`; callers within the interval, and a second instance racing
/// the first, send nothing.
#[test]
fn an_overdue_sweep_is_started_once_by_whoever_finds_it() {
    let p = TestPlatform::new();
    p.vars.borrow_mut().insert("sweep_interval_seconds".into(), "1".into());
    run(outbox::sweep_if_due(&p));
    let sweeps = |p: &TestPlatform| p.woken.borrow().iter().filter(|(_, id)| id == "sweep").map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(sweeps(&p), jobs::KINDS);
    // Within the interval: nothing (this instance does not even ask the database).
    p.now.set(p.now.get() + 500);
    run(outbox::sweep_if_due(&p));
    assert_eq!(sweeps(&p).len(), jobs::KINDS.len());
    // Another instance (its own in-memory clock is not this one's) finds the clock moved.
    p.conn.execute("UPDATE sweep_clock SET swept_at = ?", [p.now.get()]).unwrap();
    p.now.set(p.now.get() + 600);
    run(outbox::sweep_if_due(&p));
    assert_eq!(sweeps(&p).len(), jobs::KINDS.len(), "the sweep another instance started is not started again");
    // Past the interval: the next one.
    p.now.set(p.now.get() + 1000);
    run(outbox::sweep_if_due(&p));
    assert_eq!(sweeps(&p).len(), 2 * jobs::KINDS.len());
}

/// A file whose every chunk is stored but whose completion never ran (the request died in
/// between) is completed by the sweep after the grace period, not left `uploading`.
#[test]
fn the_sweep_completes_an_upload_whose_completion_never_ran() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let data = content(2 * CHUNK + 10, 7);
    let id = create(&p, &token, &format!(r#"{{"name":"a.bin","originalName":"a.bin","mimeType":"application/octet-stream","size":{}}}"#, data.len()))["id"].as_str().unwrap().to_owned();
    let db = TestDb(p.conn.clone());
    let file = run(files::find(&db, &id)).unwrap().unwrap();
    for (i, chunk) in data.chunks(CHUNK).enumerate() {
        // The chunks' rows, as a request that died before its completion left them.
        let key = file.blob_key(&vaultx_core::digest::sha256(chunk));
        run(crate::blobs::attach(&db, &p.blobs, p.now.get(), &id, i as u64, &key, chunk, None)).unwrap();
    }
    let status = |p: &TestPlatform| p.conn.query_row("SELECT status FROM files WHERE id = ?", [&id], |r| r.get::<_, String>(0)).unwrap();
    assert_eq!(status(&p), "uploading");
    // Within the grace period a client's own completion may still be on its way.
    run(jobs::dispatch(&p, "verify", outbox::SWEEP)).unwrap();
    assert_eq!(status(&p), "uploading");
    p.now.set(p.now.get() + lifecycle::COMPLETION_GRACE_MS + 1);
    run(jobs::dispatch(&p, "verify", outbox::SWEEP)).unwrap();
    assert_eq!(status(&p), "available");
    assert_reads_back(&p, &token, &id, &data, &[(CHUNK - 1, CHUNK + 1)]);
    assert_intact(&p);
}

/// Bytes a chunk request wrote before it died (no row names them) are collected once no
/// request can still be writing them; bytes a live row owns by then stay.
#[test]
fn the_sweep_collects_the_bytes_of_a_chunk_whose_request_died() {
    let p = TestPlatform::new();
    p.conn.execute("INSERT INTO chunk_writes (blob_key, request_id, started_at) VALUES ('f.x.dead', 'x/0', ?)", [p.now.get()]).unwrap();
    p.blobs.0.borrow_mut().insert("f.x.dead".into(), b"orphan".to_vec());
    let sweep = |p: &TestPlatform| run(crate::blobs::collect_garbage(&TestDb(p.conn.clone()), &p.blobs, p.now.get())).unwrap();
    sweep(&p);
    assert!(p.blobs.0.borrow().contains_key("f.x.dead"), "a request may still be writing it");
    p.now.set(p.now.get() + crate::blobs::STALE_SWEEP_MS + 1);
    sweep(&p);
    assert!(!p.blobs.0.borrow().contains_key("f.x.dead"), "collected");
    let left: i64 = p.conn.query_row("SELECT count(*) FROM chunk_writes", [], |r| r.get(0)).unwrap();
    assert_eq!(left, 0);
}

#[test]
fn a_small_file_downloads_from_its_manifest_alone_before_and_after_its_jobs() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let small = text(4096, 3);
    let id = upload(&p, &token, &small, r#","compressionEnabled":true,"deduplicationEnabled":true"#);
    let large = text(crate::manifests::INLINE_MAX as usize + 1, 4);
    let large_id = upload(&p, &token, &large, "");
    let manifest_of = |id: &str| {
        let f = run(crate::files::find(&TestDb(p.conn.clone()), id)).unwrap().unwrap();
        run(crate::manifests::read(&p.kv, &f.id, f.manifest_id.as_deref().unwrap())).unwrap().unwrap()
    };
    assert_eq!(manifest_of(&id).inline.as_deref(), Some(&small[..]));
    assert_eq!(manifest_of(&large_id).inline, None, "over INLINE_MAX: read from the blocks");
    // Deduplication and compression rewrite the manifest's blocks; its content stays inline.
    run_jobs(&p);
    let after = manifest_of(&id);
    assert!(after.chunks.iter().all(|(k, _)| k.ends_with(vaultx_core::compression::STORED_SUFFIX)), "{:?}", after.chunks);
    assert_eq!(after.inline.as_deref(), Some(&small[..]));
    assert_intact(&p);
    // With every block out of the blob store, the small file still downloads whole and in
    // ranges (nothing but the manifest is read); the large one does not.
    let blobs = std::mem::take(&mut *p.blobs.0.borrow_mut());
    assert_reads_back(&p, &token, &id, &small, &[(0, 0), (100, 4095), (4000, 4095)]);
    let signed = body_json(&signed_url(&p, &token, &large_id, "{}"));
    let whole = download(&p, signed["path"].as_str().unwrap(), &[]);
    assert_eq!(whole.status, 200);
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_body(&p, &whole)));
    assert!(read.is_err(), "a file over INLINE_MAX is read from its blocks, which are gone");
    *p.blobs.0.borrow_mut() = blobs;
    assert_reads_back(&p, &token, &large_id, &large, &[(0, 10)]);
}
