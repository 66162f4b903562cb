//! Local-runtime figures, printed as ratios to baselines measured in the same run:
//!
//! - time from process start to the first response, with an empty and with a warm
//!   precompiled-component cache (baseline: the warm start);
//! - small-request latency through a component (`/health/liveness`, `/health/readiness`)
//!   against a native HTTP responder on the same machine and client (baseline).
//!
//! Run: `cargo bench -p vaultx-e2e --bench runtime` after building the components and the
//! runtime (`tests/run` or `infra/local/up` does both).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

struct Runtime(Child, String);
impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts the runtime and returns it with the time until its first successful response.
fn start(cache: &Path, data: &Path) -> (Runtime, Duration) {
    let addr = format!("127.0.0.1:{}", free_port());
    let t0 = Instant::now();
    let child = Command::new(workspace().join("target/release/vaultx-runtime"))
        .current_dir(workspace())
        .args(["--listen", &addr, "--migrations", "infra/migrations"])
        .arg("--cache-dir").arg(cache)
        .arg("--data-dir").arg(data)
        .env("SPIN_VARIABLE_JWT_SECRET", "bench-secret-bench-secret-bench-secret")
        .env("SPIN_VARIABLE_URL_SIGNING_KEYS", "k1:bench-url-key-bench-url-key-bench-url-key")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("build the runtime first: cargo build --release -p vaultx-runtime");
    let rt = Runtime(child, addr.clone());
    loop {
        if let Ok(mut s) = TcpStream::connect(&addr) {
            if status(&mut s, &addr, "/health/liveness") == 200 {
                return (rt, t0.elapsed());
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "runtime did not start");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One keep-alive GET on an open connection; returns the status.
fn status(s: &mut TcpStream, host: &str, path: &str) -> u16 {
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let code = line.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    code
}

/// Median and 99th percentile of `n` sequential requests on one connection, after a warm-up.
fn latency(addr: &str, path: &str, n: usize) -> (f64, f64) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    for _ in 0..50 {
        assert_eq!(status(&mut s, addr, path), 200, "{path}");
    }
    let mut samples: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            status(&mut s, addr, path);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (samples[n / 2], samples[n * 99 / 100])
}

/// The baseline: a native responder that answers every request with a fixed small body.
fn native_responder() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = conn.set_nodelay(true);
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut w = conn;
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        let body = "{\"status\":\"ok\"}";
                        let _ = write!(w, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                    }
                }
            });
        }
    });
    addr
}

fn main() {
    let tmp = std::env::temp_dir().join(format!("vaultx-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let cache = tmp.join("cache");

    let (cold, cold_first) = start(&cache, &tmp.join("data"));
    drop(cold);
    let (rt, warm_first) = start(&cache, &tmp.join("data"));
    println!("first response after start, empty cache (compiles every component): {:>8.1} ms", cold_first.as_secs_f64() * 1e3);
    println!("first response after start, warm cache:                           {:>8.1} ms", warm_first.as_secs_f64() * 1e3);
    println!("  ratio empty/warm: {:.1}x", cold_first.as_secs_f64() / warm_first.as_secs_f64());

    let n = 3000;
    let native = native_responder();
    let (b50, b99) = latency(&native, "/", n);
    println!("small request, native responder (baseline):  p50 {b50:.3} ms  p99 {b99:.3} ms");
    for path in ["/health/liveness", "/health/readiness"] {
        let (p50, p99) = latency(&rt.1, path, n);
        println!("small request, {path:<18} (component): p50 {p50:.3} ms  p99 {p99:.3} ms  ratio p50 {:.1}x", p50 / b50);
    }
    drop(rt);
    let _ = std::fs::remove_dir_all(&tmp);
}
