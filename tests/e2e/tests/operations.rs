//! Operations: `GET /health/metrics` (Prometheus text format, checked by `promtool`), request
//! ids on every answer and in every problem document.
//!
//! The request counters are checked exactly on `health-readiness`, which no other test of
//! this binary calls (test binaries run one after another).

use std::collections::HashMap;
use std::io::Write;
use vaultx_e2e::*;

/// One scrape: its text and its samples (`name{labels}` → value, as exposed).
fn scrape(c: &Client) -> (String, HashMap<String, f64>) {
    let r = c.get("/health/metrics", None);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let text = String::from_utf8(r.body).expect("the text format is UTF-8");
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {l}"));
            (series.to_owned(), value.parse().unwrap_or_else(|_| panic!("not a value: {l}")))
        })
        .collect();
    (text, samples)
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

/// `promtool check metrics` (Debian's `prometheus` package; tests/run installs it): the
/// exposition parses, and passes Prometheus' own lint (names, units, `_total` counters, help).
fn promtool_check(text: &str) {
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is on PATH (Debian package prometheus; tests/run installs it)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n--- the scrape:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The request families (`vaultx_http_*`) are the host's: the local runtime's and the
/// Worker's (per isolate). The Spin CLI has its own telemetry (OpenTelemetry), not these.
fn host_counts_requests() -> bool {
    if target() == "spin" {
        vaultx_e2e::not_applicable("vaultx_http_* are the host's request counters; the Spin CLI reports its own (OpenTelemetry)");
        return false;
    }
    true
}

#[test]
fn metrics_parse_with_promtool_and_name_the_stores_families() {
    let c = Client::new();
    let (text, samples) = scrape(&c);
    promtool_check(&text);
    assert_eq!(value(&samples, "vaultx_up{store=\"metadata\"}"), 1.0, "{text}");
    for family in ["vaultx_files", "vaultx_dedup_hits", "vaultx_dedup_saved_bytes", "vaultx_compression_saved_bytes", "vaultx_jobs", "vaultx_job_oldest_age_seconds", "vaultx_job_failed_attempts"] {
        assert!(text.contains(&format!("# TYPE {family} gauge")), "{family} missing:\n{text}");
    }
}

#[test]
fn metrics_parse_with_promtool_and_count_every_request() {
    if !host_counts_requests() {
        return;
    }
    let c = Client::new();
    let (_, before) = scrape(&c);
    let ready = |s: &HashMap<String, f64>, what: &str| {
        value(s, &format!("vaultx_http_{what}{{component=\"health-readiness\",method=\"GET\",route=\"/health/readiness\",status=\"200\"}}"))
    };
    let body_len = c.get("/health/readiness", None).body.len();
    for _ in 0..2 {
        assert_eq!(c.get("/health/readiness", None).status, 200);
    }
    let (text, after) = scrape(&c);
    promtool_check(&text);
    assert_eq!(ready(&after, "requests_total") - ready(&before, "requests_total"), 3.0, "{text}");
    let count = |s: &HashMap<String, f64>| value(s, "vaultx_http_request_duration_seconds_count{component=\"health-readiness\"}");
    assert_eq!(count(&after) - count(&before), 3.0);
    let sent = |s: &HashMap<String, f64>| value(s, "vaultx_http_response_bytes_total{component=\"health-readiness\"}");
    assert_eq!(sent(&after) - sent(&before), 3.0 * body_len as f64);
    // The stores' families are there, whatever their values.
    assert_eq!(value(&after, "vaultx_up{store=\"metadata\"}"), 1.0, "{text}");
    for family in ["vaultx_files", "vaultx_dedup_hits", "vaultx_dedup_saved_bytes", "vaultx_compression_saved_bytes", "vaultx_jobs", "vaultx_job_oldest_age_seconds", "vaultx_job_failed_attempts"] {
        assert!(text.contains(&format!("# TYPE {family} gauge")), "{family} missing:\n{text}");
    }
}

#[test]
fn metrics_follow_uploads_and_deduplication() {
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    wait_for_jobs(&c);
    let (_, before) = scrape(&c);
    // Two files of the same two chunks, uploaded by one user: the second stores nothing.
    let data = bytes(2 * chunk_size(), 1207);
    for name in ["m1.bin", "m2.bin"] {
        let id = c.create_file(&token, name, &data);
        c.upload(&token, &id, &data);
    }
    // The files' deduplication jobs re-cut both layouts into the same content-defined
    // blocks; a scrape between the two would see the files sharing nothing.
    wait_for_jobs(&c);
    let (text, after) = scrape(&c);
    let grew = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(grew("vaultx_files{status=\"available\"}"), 2.0, "{text}");
    // Every reference of the second file is to a block the first one stored.
    let hits = grew("vaultx_dedup_hits");
    assert!(hits >= 2.0, "{text}");
    assert_eq!(grew("vaultx_block_references"), 2.0 * hits, "{text}");
    assert_eq!(grew("vaultx_blocks"), hits, "{text}");
    assert_eq!(grew("vaultx_dedup_saved_bytes"), data.len() as f64, "{text}");
    if target() != "spin" {
        // The host's counter (see host_counts_requests).
        assert!(grew("vaultx_http_request_bytes_total{component=\"file-chunk\"}") >= 2.0 * data.len() as f64, "{text}");
    }
}

#[test]
fn every_answer_has_a_request_id_and_problems_carry_it() {
    let c = Client::new();
    // The caller's id, when sane, is kept and named by the problem document.
    let r = c.send("GET", "/api/users/me", &[("x-request-id", "e2e-trace.42")], None);
    r.assert_problem(401, "missing-token");
    assert_eq!(r.header("x-request-id"), Some("e2e-trace.42"));
    assert_eq!(r.json()["requestId"], "e2e-trace.42");
    // Anything else gets a fresh one, different each time.
    let long = "x".repeat(300);
    let ids: Vec<String> = [Some("two words"), Some(long.as_str()), None, None]
        .iter()
        .map(|sent| {
            let headers: Vec<(&str, &str)> = sent.iter().map(|v| ("x-request-id", *v)).collect();
            let r = c.send("GET", "/api/files/not-an-id", &headers, None);
            let id = r.header("x-request-id").expect("an id").to_owned();
            assert_eq!(r.json()["requestId"], id.as_str());
            assert!(Some(id.as_str()) != *sent && !id.is_empty());
            id
        })
        .collect();
    assert_eq!(ids.iter().collect::<std::collections::HashSet<_>>().len(), ids.len(), "{ids:?}");
    // A body refused before the route reads it (over its 16 KiB limit).
    let r = c.send("POST", "/api/auth/login", &[("content-type", "application/json")], Some(&vec![b' '; 64 * 1024]));
    r.assert_problem(413, "payload-too-large");
    assert_eq!(r.json()["requestId"].as_str(), r.header("x-request-id"));
    // A success names its request too.
    assert!(c.get("/health/liveness", None).header("x-request-id").is_some());
}

#[test]
fn the_openapi_contract_is_served_and_names_every_route() {
    let c = Client::new();
    let r = c.get("/api/openapi.json", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let spec = r.json();
    assert_eq!(spec["openapi"], "3.1.0");
    let paths = spec["paths"].as_object().expect("paths");
    for (path, method) in [("/api/files/{id}/chunks/{index}", "put"), ("/api/files/download/{token}", "get"), ("/health/metrics", "get"), ("/api/openapi.json", "get")] {
        assert!(paths[path].get(method).is_some(), "{method} {path}");
    }
    // Every operation may answer a problem document.
    assert!(paths.values().flat_map(|p| p.as_object().unwrap().values()).all(|op| op["responses"]["default"].is_object()));
}
