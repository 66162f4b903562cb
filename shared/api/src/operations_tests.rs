//! Operations: the metrics the stores give, request ids, problem documents that name their
//! request, and the request's log line — on the native test platform.

use crate::files_tests::{CHUNK, authed, content, create, put_chunk, signed_in};
use crate::routes::dispatch;
use crate::testing::*;
use vaultx_core::http::ApiRequest;

/// A scrape of `/health/metrics`, as `series → value` (`name{labels}` exactly as exposed).
fn scrape(p: &TestPlatform, headers: Vec<(String, String)>) -> std::collections::HashMap<String, f64> {
    let r = run(dispatch("health-metrics", p, Ok(ApiRequest { method: "GET".into(), path: "/health/metrics".into(), headers, ..Default::default() })));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(r.body.bytes()));
    assert_eq!(r.header("content-type"), Some(vaultx_core::metrics::CONTENT_TYPE));
    let text = String::from_utf8(r.body.bytes().to_vec()).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

#[test]
fn metrics_count_files_dedup_hits_and_jobs_from_the_stores() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let before = scrape(&p, vec![]);
    assert_eq!(before["vaultx_up{store=\"metadata\"}"], 1.0);
    assert_eq!(before["vaultx_dedup_hits"], 0.0);
    // Two files of the same two chunks: the second stores nothing.
    let data = [content(CHUNK, 3), content(CHUNK, 5)].concat();
    for name in ["a.bin", "b.bin"] {
        let f = create(&p, &token, &format!(r#"{{"name":"{name}","size":{},"deduplicationEnabled":true}}"#, data.len()));
        let id = f["id"].as_str().unwrap();
        for (i, chunk) in data.chunks(CHUNK).enumerate() {
            assert!(put_chunk(&p, &token, id, i as u64, chunk).status < 300);
        }
    }
    let after = scrape(&p, vec![]);
    assert_eq!(after["vaultx_files{status=\"available\"}"], 2.0);
    assert_eq!(after["vaultx_file_bytes{status=\"available\"}"], 2.0 * data.len() as f64);
    assert_eq!(after["vaultx_block_references"], 4.0);
    assert_eq!(after["vaultx_blocks"], 2.0);
    assert_eq!(after["vaultx_dedup_hits"], 2.0);
    assert_eq!(after["vaultx_dedup_saved_bytes"], data.len() as f64);
    assert_eq!(after["vaultx_stored_bytes"], data.len() as f64);
    assert_eq!(after["vaultx_compression_saved_bytes"], 0.0);
    // Every kind and state is a series, zero or not; each completion queued its dedup job.
    for kind in crate::jobs::KINDS {
        for state in crate::outbox::STATES {
            assert!(after.contains_key(&format!("vaultx_jobs{{kind=\"{kind}\",state=\"{state}\"}}")), "{kind} {state}");
        }
    }
    assert_eq!(after["vaultx_jobs{kind=\"dedup\",state=\"queued\"}"], 2.0, "{after:?}");
    p.now.set(p.now.get() + 90_000);
    let later = scrape(&p, vec![]);
    assert_eq!(later["vaultx_job_oldest_age_seconds{kind=\"dedup\"}"], 90.0);
}

#[test]
fn metrics_need_the_metrics_token_when_one_is_set() {
    let p = TestPlatform::new();
    p.vars.borrow_mut().insert("metrics_token".into(), "scrape-token-0123456789".into());
    let get = |auth: Option<&str>| {
        let headers = auth.map(|a| vec![("authorization".to_owned(), a.to_owned())]).unwrap_or_default();
        run(dispatch("health-metrics", &p, Ok(ApiRequest { method: "GET".into(), path: "/health/metrics".into(), headers, ..Default::default() })))
    };
    assert_eq!(get(None).status, 401);
    assert_eq!(get(Some("Bearer wrong-token")).status, 401);
    assert_eq!(get(Some("Bearer scrape-token-0123456789")).status, 200);
}

#[test]
fn every_answer_names_its_request_and_problems_carry_the_id() {
    let p = TestPlatform::new();
    let call = |headers: Vec<(String, String)>| run(dispatch("users-me", &p, Ok(ApiRequest { method: "GET".into(), path: "/api/users/me".into(), headers, ..Default::default() })));
    // A sane id is kept; the problem document names it.
    let r = call(vec![("x-request-id".into(), "trace-42.a_b".into())]);
    assert_eq!((r.status, r.header("x-request-id")), (401, Some("trace-42.a_b")));
    assert_eq!(body_json(&r)["requestId"], "trace-42.a_b");
    // Anything else is replaced by a fresh id.
    for insane in ["has space", &"x".repeat(200), ""] {
        let r = call(vec![("x-request-id".into(), insane.into())]);
        let id = r.header("x-request-id").unwrap().to_owned();
        assert!(id != insane && vaultx_core::ids::is_id(&id), "{insane:?} -> {id:?}");
        assert_eq!(body_json(&r)["requestId"], id.as_str());
    }
    // A request the adapter could not read (its body over the limit) gets one too.
    let too_large = vaultx_core::Problem::new(vaultx_core::problem::ProblemKind::PayloadTooLarge, "this route accepts at most 16384 bytes");
    let r = run(dispatch("auth-login", &p, Err(too_large)));
    assert_eq!(r.status, 413);
    assert_eq!(body_json(&r)["requestId"], r.header("x-request-id").unwrap());
    assert_eq!(r.log.as_ref().unwrap().component, "auth-login");
}

#[test]
fn a_request_log_line_says_who_did_what_and_never_the_secret_parts() {
    let p = TestPlatform::new();
    let token = signed_in(&p);
    let r = run(dispatch("files", &p, Ok(authed("POST", "/api/files", &token, "application/json", br#"{"name":"a.txt","size":3}"#.to_vec()))));
    assert_eq!(r.status, 201);
    let line = serde_json::to_value(r.log.clone().unwrap()).unwrap();
    let user = body_json(&run(dispatch("users-me", &p, Ok(authed("GET", "/api/users/me", &token, "", vec![])))))["id"].clone();
    assert_eq!(line["event"], "request");
    assert_eq!((line["component"].as_str(), line["route"].as_str(), line["method"].as_str()), (Some("files"), Some("/api/files"), Some("POST")));
    assert_eq!((line["status"].as_u64(), line["bytesIn"].as_u64()), (Some(201), Some(25)));
    assert_eq!(line["userId"], user);
    assert_eq!(line["requestId"].as_str(), r.header("x-request-id"));
    assert!(line["durationMs"].as_f64().is_some());
    let text = line.to_string();
    assert!(!text.contains(&token), "{text}");
    // A download's line names the route, not the path (which holds the signed URL's token).
    let r = run(dispatch("file-download", &p, Ok(ApiRequest { method: "GET".into(), path: "/api/files/download/not-a-token".into(), ..Default::default() })));
    let line = serde_json::to_value(r.log.unwrap()).unwrap();
    assert_eq!(line["route"], "/api/files/download/:token");
    assert!(!line.to_string().contains("not-a-token"), "{line}");
}
