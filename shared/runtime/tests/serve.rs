//! The runtime as a process: starts `vaultx-runtime` on the real components with a manifest
//! written for each test. Needs the components built first (`tests/run` does that).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn component(name: &str) -> String {
    let path = workspace().join(format!("target/wasm32-wasip2/dist/{name}.wasm"));
    assert!(path.exists(), "{} is missing: build the components first (tests/run does)", path.display());
    path.display().to_string()
}

struct Runtime {
    child: Child,
    url: String,
}

impl Runtime {
    /// Stops the runtime and returns what it printed.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let mut out = String::new();
        self.child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        out
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scratch directory, removed when the test ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(tag: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("vaultx-runtime-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn start_in(dir: &TempDir, manifest: &str, env: &[(&str, &str)]) -> Result<Runtime, String> {
    start_with(dir, manifest, env, &[])
}

/// `start_in` with more command-line options.
fn start_with(dir: &TempDir, manifest: &str, env: &[(&str, &str)], options: &[&str]) -> Result<Runtime, String> {
    start_with_stdout(dir, manifest, env, options, Stdio::piped())
}

/// `start_with`, its standard output going to `stdout`.
fn start_with_stdout(dir: &TempDir, manifest: &str, env: &[(&str, &str)], options: &[&str], stdout: Stdio) -> Result<Runtime, String> {
    let dir = &dir.0;
    let _ = std::fs::remove_file(dir.join("url"));
    std::fs::write(dir.join("spin.toml"), manifest).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vaultx-runtime"));
    cmd.args(["--manifest", "spin.toml", "--listen", "127.0.0.1:0", "--data-dir", "data", "--cache-dir", "cache"])
        .args(["--migrations", &workspace().join("infra/migrations").display().to_string(), "--ready-file", "url"])
        .args(options)
        .current_dir(dir)
        .env_remove("SPIN_VARIABLE_JWT_SECRET")
        .stdout(stdout)
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(url) = std::fs::read_to_string(dir.join("url")) {
            if !url.trim().is_empty() {
                return Ok(Runtime { child, url: url.trim().to_owned() });
            }
        }
        if let Some(_status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return Err(err);
        }
        assert!(Instant::now() < deadline, "the runtime did not become ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One HTTP/1.1 GET; returns (status, body).
fn get(url: &str, path: &str) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw[9..12].parse().unwrap();
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn readiness_manifest(sqlite: &str) -> String {
    format!(
        r#"spin_manifest_version = 2
[application]
name = "grants"
[[trigger.http]]
route = "/health/readiness"
component = "readiness"
[component.readiness]
source = "{}"
sqlite_databases = [{sqlite}]
"#,
        component("health_readiness")
    )
}

#[test]
fn a_component_reaches_only_the_stores_its_manifest_grants() {
    let (a, b) = (temp_dir("granted"), temp_dir("denied"));
    let granted = start_in(&a, &readiness_manifest("\"default\""), &[]).unwrap();
    assert_eq!(get(&granted.url, "/health/readiness").0, 200);

    let denied = start_in(&b, &readiness_manifest(""), &[]).unwrap();
    let (status, body) = get(&denied.url, "/health/readiness");
    assert_eq!(status, 503);
    assert!(body.contains("access denied"), "{body}");
}

#[test]
fn unmatched_paths_get_a_problem_from_the_runtime() {
    let dir = temp_dir("unmatched");
    let rt = start_in(&dir, &readiness_manifest("\"default\""), &[]).unwrap();
    let (status, body) = get(&rt.url, "/elsewhere");
    assert_eq!(status, 404);
    assert!(body.contains("urn:vaultx:problem:not-found"), "{body}");
}

#[test]
fn a_required_variable_must_be_set_before_the_app_starts() {
    let manifest = format!(
        r#"spin_manifest_version = 2
[application]
name = "vars"
[variables]
jwt_secret = {{ required = true, secret = true }}
[[trigger.http]]
route = "/api/users/me"
component = "me"
[component.me]
source = "{}"
sqlite_databases = ["default"]
[component.me.variables]
jwt_secret = "{{{{ jwt_secret }}}}"
"#,
        component("users_me")
    );
    let dir = temp_dir("vars");
    let err = start_in(&dir, &manifest, &[]).err().expect("must refuse to start");
    assert!(err.contains("SPIN_VARIABLE_JWT_SECRET"), "{err}");
    let rt = start_in(&dir, &manifest, &[("SPIN_VARIABLE_JWT_SECRET", "0123456789abcdef0123456789abcdef")]).unwrap();
    // The component got its secret: a bad token is judged by signature (401), not a config 500.
    let (status, _) = get(&rt.url, "/api/users/me");
    assert_eq!(status, 401);
}

#[test]
fn a_restart_loads_precompiled_components_from_the_cache() {
    let dir = temp_dir("cache");
    let manifest = readiness_manifest("\"default\"");
    let first = start_in(&dir, &manifest, &[]).unwrap().stop();
    assert!(first.contains("compiled 1, cached 0"), "{first}");
    let second = start_in(&dir, &manifest, &[]).unwrap();
    assert_eq!(get(&second.url, "/health/readiness").0, 200);
    let second = second.stop();
    assert!(second.contains("compiled 0, cached 1"), "{second}");
}

fn liveness_and_metrics_manifest() -> String {
    format!(
        r#"spin_manifest_version = 2
[application]
name = "reuse"
[[trigger.http]]
route = "/health/liveness"
component = "health-liveness"
[[trigger.http]]
route = "/health/metrics"
component = "health-metrics"
[component.health-liveness]
source = "{}"
[component.health-metrics]
source = "{}"
sqlite_databases = ["default"]
key_value_stores = ["manifests"]
"#,
        component("health_liveness"),
        component("health_metrics")
    )
}

/// `vaultx_instances_started_total{component="…"}` in a metrics page.
fn instances_started(metrics: &str, component: &str) -> u64 {
    let prefix = format!("vaultx_instances_started_total{{component=\"{component}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no {prefix}in:\n{metrics}")).trim().parse().unwrap()
}

#[test]
fn an_instance_serves_max_instance_reuse_count_requests_then_a_fresh_one_takes_over() {
    let dir = temp_dir("reuse");
    // One serving thread, so the count does not depend on how connections spread.
    let rt = start_with(&dir, &liveness_and_metrics_manifest(), &[], &["--serving-threads", "1", "--max-instance-reuse-count", "2"]).unwrap();
    for _ in 0..6 {
        assert_eq!(get(&rt.url, "/health/liveness").0, 200);
    }
    let (status, metrics) = get(&rt.url, "/health/metrics");
    assert_eq!(status, 200, "{metrics}");
    assert_eq!(instances_started(&metrics, "health-liveness"), 3, "six requests, two per instance");
    drop(rt);

    // Spin's default: one instance answers all six.
    let dir = temp_dir("reuse-default");
    let rt = start_with(&dir, &liveness_and_metrics_manifest(), &[], &["--serving-threads", "1"]).unwrap();
    for _ in 0..6 {
        assert_eq!(get(&rt.url, "/health/liveness").0, 200);
    }
    assert_eq!(instances_started(&get(&rt.url, "/health/metrics").1, "health-liveness"), 1);
}

#[test]
fn a_max_instance_reuse_count_outside_1_to_1000000_is_refused() {
    let dir = temp_dir("reuse-refused");
    for bad in ["0", "many", "1000001"] {
        let err = start_with(&dir, &liveness_and_metrics_manifest(), &[], &["--max-instance-reuse-count", bad]).err().expect("must refuse to start");
        assert!(err.contains(&format!("--max-instance-reuse-count {bad}: 1 to 1000000")), "{err}");
    }
}

#[test]
fn a_request_beyond_max_instances_is_answered_503_busy_until_an_instance_is_free() {
    let dir = temp_dir("pool");
    let manifest = format!(
        r#"spin_manifest_version = 2
[application]
name = "pool"
[[trigger.http]]
route = "/health/liveness"
component = "health-liveness"
[[trigger.http]]
route = "/api/auth/login"
component = "auth-login"
[component.health-liveness]
source = "{}"
[component.auth-login]
source = "{}"
sqlite_databases = ["default"]
"#,
        component("health_liveness"),
        component("auth_login")
    );
    // One instance in all, serving one request at a time.
    let rt = start_with(&dir, &manifest, &[], &["--serving-threads", "1", "--max-instances", "1", "--instance-concurrency", "1"]).unwrap();
    let addr = rt.url.trim_start_matches("http://").to_owned();
    // A login whose body never comes holds the only instance while it waits for it.
    let mut holding = TcpStream::connect(&addr).unwrap();
    write!(holding, "POST /api/auth/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{").unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let mut s = TcpStream::connect(&addr).unwrap();
    write!(s, "GET /health/liveness HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 503"), "{raw}");
    assert!(head.contains("\r\nretry-after: 1\r\n"), "{raw}");
    assert!(head.contains("\r\ncontent-type: application/problem+json\r\n"), "{raw}");
    assert!(body.contains("urn:vaultx:problem:busy"), "{raw}");

    // Once the login is over (its client went away) and its idle instance retired, the pool
    // serves again.
    drop(holding);
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&rt.url, "/health/liveness").0 != 200 {
        assert!(Instant::now() < deadline, "the instance never came back to the pool");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_max_instances_outside_1_to_10000_is_refused() {
    let dir = temp_dir("pool-refused");
    for bad in ["0", "many", "10001"] {
        let err = start_with(&dir, &liveness_and_metrics_manifest(), &[], &["--max-instances", bad]).err().expect("must refuse to start");
        assert!(err.contains(&format!("--max-instances {bad}: 1 to 10000")), "{err}");
    }
}

/// A sample of `family{kind="…"}` in a metrics page.
fn pool_figure(metrics: &str, family: &str, kind: &str) -> u64 {
    let prefix = format!("{family}{{kind=\"{kind}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no {prefix}in:\n{metrics}")).trim().parse().unwrap()
}

#[test]
fn the_metrics_show_the_instance_pool_in_use_and_its_capacity() {
    let dir = temp_dir("pool-metrics");
    let rt = start_with(&dir, &liveness_and_metrics_manifest(), &[], &["--serving-threads", "1", "--max-instances", "7"]).unwrap();
    assert_eq!(get(&rt.url, "/health/liveness").0, 200);
    let (status, metrics) = get(&rt.url, "/health/metrics");
    assert_eq!(status, 200, "{metrics}");
    for (kind, capacity) in [("component_instances", 7), ("memories", 7), ("tables", 28), ("stacks", 7)] {
        assert_eq!(pool_figure(&metrics, "vaultx_instance_pool_capacity", kind), capacity, "{kind}");
    }
    // The metrics instance answering, and the liveness one unless its idle second ran out.
    for kind in ["component_instances", "memories"] {
        assert!((1..=2).contains(&pool_figure(&metrics, "vaultx_instance_pool_in_use", kind)), "{kind}: {metrics}");
    }
}

fn request_lines(log: &Path) -> usize {
    std::fs::read_to_string(log).unwrap_or_default().lines().filter(|l| l.starts_with("{\"event\":\"request\"")).count()
}

#[test]
fn the_components_log_lines_go_out_while_serving_and_every_one_by_a_stop() {
    let dir = temp_dir("log-lines");
    let log = dir.0.join("stdout.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut rt = start_with_stdout(&dir, &liveness_and_metrics_manifest(), &[], &[], Stdio::from(file)).unwrap();
    // One request on an idle runtime: its line is written as soon as the thread is idle (at
    // the latest 50 ms later), not held until a batch fills.
    assert_eq!(get(&rt.url, "/health/liveness").0, 200);
    let deadline = Instant::now() + Duration::from_secs(2);
    while request_lines(&log) < 1 {
        assert!(Instant::now() < deadline, "no request line within 2 s:\n{}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(5));
    }
    // Many from several connections at once, then a stop (SIGTERM): every line, whole.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = rt.url.clone();
            std::thread::spawn(move || (0..50).for_each(|_| assert_eq!(get(&url, "/health/liveness").0, 200)))
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert!(Command::new("kill").args(["-TERM", &rt.child.id().to_string()]).status().unwrap().success());
    assert!(rt.child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(request_lines(&log), 201, "{text}");
    for line in text.lines().filter(|l| l.starts_with('{')) {
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(event["component"], "health-liveness", "{line}");
    }
}
