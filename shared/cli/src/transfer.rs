//! `put` and `get`: chunked, parallel, resumable uploads and streamed downloads.

use crate::api::{Api, CliError, Config};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const ATTEMPTS: u32 = 4;

fn local(path: &Path, e: std::io::Error) -> CliError {
    CliError::Usage(format!("{}: {e}", path.display()))
}

fn bar(total: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("a valid template"),
    );
    bar
}

/// The file's SHA-256 (hex) and CRC-64/NVME (base64), in one read: the server checks the CRC
/// at completion from the chunks' own (no second pass on the upload path) and the SHA-256 in
/// a background job.
pub fn checksums_of(path: &Path) -> Result<(String, String), CliError> {
    let mut file = File::open(path).map_err(|e| local(path, e))?;
    let mut hasher = sha2::Sha256::new();
    let mut crc = vaultx_core::digest::Crc64Nvme::default();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| local(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        crc.update(&buf[..n]);
    }
    Ok((vaultx_core::digest::hex(&hasher.finalize()), vaultx_core::digest::crc64_base64(crc.finish())))
}

fn mime_for(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("pdf") => "application/pdf",
        Some("txt" | "md" | "log") => "text/plain",
        Some("json") => "application/json",
        Some("csv") => "text/csv",
        Some("html" | "htm") => "text/html",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("zip") => "application/zip",
        Some("gz" | "tgz") => "application/gzip",
        Some("mp4") => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// Runs `f` until it succeeds, a non-retryable error occurs, or the attempts run out.
fn with_retries<T>(mut f: impl FnMut() -> Result<T, CliError>) -> Result<T, CliError> {
    let mut attempt = 0;
    loop {
        match f() {
            Err(e) if e.retryable() && attempt + 1 < ATTEMPTS => {
                std::thread::sleep(Duration::from_millis(200 << attempt));
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The file entry to upload into, and the chunk indexes it still needs: a previous upload of
/// the same bytes that is still `uploading` is resumed; otherwise a new entry is created.
fn entry_for(api: &Api, config: &mut Config, key: &str, create: Value) -> Result<(String, u64, Vec<u64>), CliError> {
    if let Some(id) = config.uploads.get(key).cloned() {
        match api.json("GET", &format!("/api/files/{id}/chunks"), None) {
            Ok(status) if status["status"] == "uploading" => {
                let missing = status["missing"].as_array().map(|m| m.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
                return Ok((id, status["chunkSize"].as_u64().unwrap_or(1), missing));
            }
            Ok(status) if status["status"] == "available" => return Ok((id, status["chunkSize"].as_u64().unwrap_or(1), Vec::new())),
            // Deleted since, or another account: start over.
            _ => {}
        }
    }
    let file = api.json("POST", "/api/files", Some(create))?;
    let id = file["id"].as_str().ok_or_else(|| CliError::Network("no id in the answer".into()))?.to_owned();
    let (chunk_size, count) = (file["chunkSize"].as_u64().unwrap_or(1), file["chunkCount"].as_u64().unwrap_or(0));
    config.uploads.insert(key.to_owned(), id.clone());
    config.save()?;
    Ok((id, chunk_size, (0..count).collect()))
}

pub fn put(api: &Api, path: &Path, name: Option<String>, parallel: usize, max_chunks: Option<usize>, compress: bool, quiet: bool) -> Result<String, CliError> {
    api.token()?;
    let size = std::fs::metadata(path).map_err(|e| local(path, e))?.len();
    let (sha, crc) = checksums_of(path)?;
    let absolute = std::fs::canonicalize(path).map_err(|e| local(path, e))?;
    let key = format!("{}|{size}|{sha}", absolute.display());
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
    let create = json!({
        "name": name.unwrap_or_else(|| file_name.clone()),
        "originalName": file_name,
        "mimeType": mime_for(path),
        "size": size,
        "checksum": format!("sha256:{sha}"),
        "checksumCrc64nvme": crc,
        "deduplicationEnabled": true,
        "compressionEnabled": compress,
    });
    let mut config = Config::load();
    let (id, chunk_size, mut missing) = entry_for(api, &mut config, &key, create)?;
    let held_back = match max_chunks {
        Some(n) if n < missing.len() => missing.split_off(n).len(),
        _ => 0,
    };

    let chunk_len = |i: u64| chunk_size.min(size - i * chunk_size);
    let progress = bar(size, quiet);
    progress.set_position(size - missing.iter().map(|&i| chunk_len(i)).sum::<u64>());
    let queue = Mutex::new(missing.into_iter().collect::<VecDeque<u64>>());
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<CliError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..parallel {
            s.spawn(|| {
                let result = (|| -> Result<(), CliError> {
                    let mut file = File::open(path).map_err(|e| local(path, e))?;
                    let mut buf = Vec::new();
                    while !failed.load(Ordering::Relaxed) {
                        let Some(index) = queue.lock().unwrap().pop_front() else { return Ok(()) };
                        buf.resize(chunk_len(index) as usize, 0);
                        file.seek(SeekFrom::Start(index * chunk_size)).map_err(|e| local(path, e))?;
                        file.read_exact(&mut buf).map_err(|e| local(path, e))?;
                        with_retries(|| api.upload_chunk(&id, index, &buf))?;
                        progress.inc(buf.len() as u64);
                    }
                    Ok(())
                })();
                if let Err(e) = result {
                    failed.store(true, Ordering::Relaxed);
                    first_error.lock().unwrap().get_or_insert(e);
                }
            });
        }
    });
    progress.finish_and_clear();
    if let Some(e) = first_error.into_inner().unwrap() {
        return Err(CliError::Network(format!("{e}\nthe upload of {id} is incomplete: run the same command again to resume")));
    }
    if held_back > 0 {
        return Err(CliError::Incomplete(format!("{id}: {held_back} chunks not sent yet: run the same command again to finish")));
    }
    let mut status = api.json("GET", &format!("/api/files/{id}"), None)?;
    if status["status"] == "uploading" {
        // Every chunk is in, but the completion that the last one runs did not happen (the
        // server stopped in between, say): ask for it. It is idempotent.
        status = with_retries(|| api.json("POST", &format!("/api/files/{id}/complete"), None))?;
    }
    if status["status"] != "available" {
        return Err(CliError::Network(format!("all chunks sent but {id} is {}", status["status"])));
    }
    config.uploads.remove(&key);
    config.save()?;
    Ok(id)
}

pub fn get(api: &Api, id: &str, output: &Path, quiet: bool) -> Result<(), CliError> {
    let url = api.signed_url(id, 3600)?;
    let mut resp = with_retries(|| api.open(&url))?;
    let total: u64 = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .ok_or_else(|| CliError::Network("the download has no Content-Length".into()))?;
    let partial = output.with_extension("vaultx-part");
    let mut out = File::create(&partial).map_err(|e| local(&partial, e))?;
    let progress = bar(total, quiet);
    let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
    let mut buf = vec![0; 1 << 20];
    let mut written = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| CliError::Network(format!("download: {e}")))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).map_err(|e| local(&partial, e))?;
        written += n as u64;
        progress.set_position(written);
    }
    progress.finish_and_clear();
    if written != total {
        return Err(CliError::Network(format!("the download stopped at {written} of {total} bytes")));
    }
    out.sync_all().map_err(|e| local(&partial, e))?;
    std::fs::rename(&partial, output).map_err(|e| local(output, e))
}
