//! The `vaultx` command-line client against the deployment: register, login, put (parallel,
//! resumable), ls, get, url, rm, and its exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use vaultx_e2e::{base_url, bytes, chunk_size, unique_email};

fn vaultx_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/vaultx");
    assert!(path.exists(), "{} is missing: cargo build --release -p vaultx-cli (tests/run does)", path.display());
    path
}

struct Cli {
    config: PathBuf,
}

impl Cli {
    fn new(tag: &str) -> Self {
        let config = std::env::temp_dir().join(format!("vaultx-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&config);
        std::fs::create_dir_all(&config).unwrap();
        Self { config }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(vaultx_binary())
            .args(args)
            .env("XDG_CONFIG_HOME", &self.config)
            .env("VAULTX_URL", base_url())
            .env("VAULTX_PASSWORD", "correct horse battery staple")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "vaultx {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.config);
    }
}

#[test]
fn put_ls_get_url_rm() {
    let cli = Cli::new("flow");
    let email = unique_email();
    cli.ok(&["register", &email]);
    cli.ok(&["login", &email]);
    let data = bytes(2 * chunk_size() + 333, 21);
    let input = cli.config.join("input.bin");
    std::fs::write(&input, &data).unwrap();
    let id = cli.ok(&["put", input.to_str().unwrap(), "--parallel", "4", "--quiet"]).trim().to_owned();
    let listing = cli.ok(&["ls"]);
    assert!(listing.contains(&id) && listing.contains("available") && listing.contains("input.bin"), "{listing}");
    let output = cli.config.join("output.bin");
    cli.ok(&["get", &id, "-o", output.to_str().unwrap(), "--quiet"]);
    assert!(std::fs::read(&output).unwrap() == data, "downloaded bytes differ");
    let url = cli.ok(&["url", &id, "--expires", "60"]);
    assert!(url.trim().starts_with("http") && url.contains("/api/files/download/"), "{url}");
    cli.ok(&["rm", &id]);
    let out = cli.run(&["rm", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
}

#[test]
fn a_broken_upload_resumes_where_it_stopped() {
    let cli = Cli::new("resume");
    let email = unique_email();
    cli.ok(&["register", &email]);
    cli.ok(&["login", &email]);
    let data = bytes(3 * chunk_size() + 1, 22);
    let input = cli.config.join("resume.bin");
    std::fs::write(&input, &data).unwrap();
    // Stop after one chunk, as a dropped connection would.
    let out = cli.run(&["put", input.to_str().unwrap(), "--max-chunks", "1", "--parallel", "1", "--quiet"]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = cli.ok(&["ls"]);
    assert!(listing.contains("uploading"), "{listing}");
    // The same command again sends only what is missing, into the same file.
    let id = cli.ok(&["put", input.to_str().unwrap(), "--quiet"]).trim().to_owned();
    let listing = cli.ok(&["ls"]);
    assert_eq!(listing.lines().count(), 2, "one header, one file: {listing}");
    assert!(listing.contains(&id) && listing.contains("available"));
    let output = cli.config.join("resumed.bin");
    cli.ok(&["get", &id, "-o", output.to_str().unwrap(), "--quiet"]);
    assert!(std::fs::read(&output).unwrap() == data);
}

#[test]
fn usage_errors_and_signed_out_use_exit_2() {
    let cli = Cli::new("usage");
    assert_eq!(cli.run(&["ls"]).status.code(), Some(2), "not signed in");
    assert_eq!(cli.run(&["frobnicate"]).status.code(), Some(2));
    let out = cli.run(&["put", "/nonexistent/file"]);
    assert_eq!(out.status.code(), Some(2));
}
