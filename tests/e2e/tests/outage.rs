//! Regions under failure: three regions on three different stores, the S3-compatible
//! server really stopped and started again. Run by `tests/run` after the rest of the suite,
//! one test at a time (`--test outage -- --test-threads 1`): a stopped home store fails
//! every other test's uploads. Which test applies depends on where the home store is
//! (VAULTX_HOME_STORE) and on whether the run controls an S3 server (VAULTX_S3_CONTROL).

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use vaultx_e2e::{Client, admin_token, assert_integrity, bytes, chunk_size, eu_region, home_store, policy, region_with_store, s3_server, serial, target, wait_for_jobs, wait_in_sync};

/// A file whose blocks stay as uploaded (no dedup or compression re-layout): its chunks are
/// `f.<id>.<sha-256>` in every store, whatever the background jobs do.
fn create_plain(c: &Client, token: &str, name: &str, data: &[u8]) -> String {
    let body = json!({"name": name, "mimeType": "application/octet-stream", "size": data.len(),
        "deduplicationEnabled": false, "compressionEnabled": false});
    let r = c.auth_send("POST", "/api/files", token, &[("content-type", "application/json")], Some(body.to_string().as_bytes()));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["id"].as_str().unwrap().to_owned()
}

fn status(c: &Client, token: &str, id: &str) -> Value {
    let r = c.get(&format!("/api/replication/files/{id}/status"), Some(token));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

fn ap_region(c: &Client, admin: &str) -> String {
    let (kind, store) = if target() == "worker" { ("r2", "BLOBS_AP") } else { ("key-value", "blobs_ap") };
    region_with_store(c, admin, "ap-south-1", "Mumbai", kind, store)
}

fn home_region(c: &Client, admin: &str) -> String {
    let (kind, store) = home_store();
    region_with_store(c, admin, "us-west-1", "Oregon", &kind, &store)
}

/// The breaker of the store `(kind, store)` as `/health` shows it.
fn health_breaker(c: &Client, kind: &str, store: &str) -> Value {
    let health = c.get("/health", None).json();
    let entry = health["stores"].as_array().unwrap().iter().find(|s| s["kind"] == kind && s["store"] == store).unwrap_or_else(|| panic!("{health}")).clone();
    entry["breaker"].clone()
}

fn download_exact(c: &Client, path: &str, data: &[u8]) -> Duration {
    let started = Instant::now();
    let whole = c.get(path, None);
    let took = started.elapsed();
    assert_eq!(whole.status, 200, "{}", String::from_utf8_lossy(&whole.body[..whole.body.len().min(400)]));
    assert!(whole.body == data, "the download differs from the upload ({} of {} bytes)", whole.body.len(), data.len());
    let (start, end) = (data.len() / 2 - 7, data.len() / 2 + 7);
    let r = c.send("GET", path, &[("range", &format!("bytes={start}-{end}"))], None);
    assert_eq!(r.status, 206);
    assert!(r.body == data[start..=end], "bytes={start}-{end} differ");
    took
}

#[test]
fn outage_1_a_stopped_home_store_is_read_from_a_replica_and_its_breaker_opens() {
    let (kind, store) = home_store();
    if kind != "s3" {
        vaultx_e2e::not_applicable(&format!("the home store is {kind}:{store}; this run's S3 server holds no home blocks"));
        return;
    }
    let _turn = serial();
    let c = Client::new();
    let admin = admin_token(&c);
    let home = home_region(&c, &admin);
    let eu = eu_region(&c, &admin);
    let ap = ap_region(&c, &admin);
    let (_, _, owner) = c.signed_in_user();
    let data = bytes(chunk_size() * 2 + 1000, 11);
    let id = create_plain(&c, &owner, "failover.bin", &data);
    c.upload(&owner, &id, &data);
    let r = policy(&c, &owner, &id, &json!({"targetRegions": [eu, ap]}));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    wait_in_sync(&c, &owner, &id);
    wait_for_jobs(&c);
    // Every copy is byte-identical to the home store's.
    assert_integrity(&c);
    let path = c.signed_path(&owner, &id, 600);
    download_exact(&c, &path, &data);
    assert_eq!(health_breaker(&c, &kind, &store)["state"], "closed");

    s3_server("stop").expect("VAULTX_S3_CONTROL names the S3 server's control");
    // Every download still succeeds, byte-exact, from a replica; the failures count against
    // the home store's breaker until it opens.
    for _ in 0..6 {
        download_exact(&c, &path, &data);
    }
    let breaker = health_breaker(&c, &kind, &store);
    assert_eq!(breaker["state"], "open", "{breaker}");
    let health = c.get("/health", None);
    assert_eq!(health.status, 503, "a region's store is down");
    assert_eq!(health.json()["checks"]["regions"][&home], "unavailable");
    let region = c.get(&format!("/api/storage/regions/{home}"), Some(&admin)).json();
    assert_eq!(region["breaker"], "open", "{region}");
    // Uploads need the home store: refused, not half-done.
    let other = bytes(1000, 12);
    let other_id = c.create_file(&owner, "during-outage.bin", &other);
    let r = c.put_chunk(&owner, &other_id, 0, &other);
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));

    s3_server("start").unwrap();
    // After the reset timeout the next download probes the home store and closes the breaker.
    vaultx_e2e::wait_for("the breaker never closed", Duration::from_millis(200), || {
        download_exact(&c, &path, &data);
        let breaker = health_breaker(&c, &kind, &store);
        if breaker["state"] == "closed" { Ok(()) } else { Err(breaker["state"].to_string()) }
    });
    assert_eq!(c.get("/health", None).status, 200);
    let r = c.put_chunk(&owner, &other_id, 0, &other);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    // Deleting leaves no block in any region.
    assert_eq!(c.auth_send("DELETE", &format!("/api/files/{id}"), &owner, &[], None).status, 204);
    wait_for_jobs(&c);
    assert_integrity(&c);
}

#[test]
fn outage_2_strong_writes_wait_for_every_target_and_eventual_ones_catch_up() {
    let (home_kind, _) = home_store();
    if home_kind == "s3" || std::env::var("VAULTX_S3_CONTROL").is_err() {
        vaultx_e2e::not_applicable("needs the home store elsewhere than an S3 server this run controls");
        return;
    }
    let _turn = serial();
    let c = Client::new();
    let admin = admin_token(&c);
    let eu = eu_region(&c, &admin);
    let sa = region_with_store(&c, &admin, "sa-east-1", "Sao Paulo", "s3", "b");
    let (_, _, owner) = c.signed_in_user();
    let data = bytes(chunk_size() + 5000, 21);
    let strong = create_plain(&c, &owner, "strong.bin", &data);
    let r = policy(&c, &owner, &strong, &json!({"targetRegions": [eu, sa], "consistency": "strong"}));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let eventual_data = bytes(5000, 22);
    let eventual = create_plain(&c, &owner, "eventual.bin", &eventual_data);
    assert_eq!(policy(&c, &owner, &eventual, &json!({"targetRegions": [sa]})).status, 201);

    s3_server("stop").expect("VAULTX_S3_CONTROL names the S3 server's control");
    let cs = chunk_size();
    c.put_chunk(&owner, &strong, 0, &data[..cs]).assert_problem(503, "replica-unavailable");
    c.put_chunk(&owner, &strong, 1, &data[cs..]).assert_problem(503, "replica-unavailable");
    c.auth_send("POST", &format!("/api/files/{strong}/complete"), &owner, &[], None).assert_problem(503, "replica-unavailable");
    // Nothing half-done is visible: the file is still uploading, not downloadable.
    let f = c.get(&format!("/api/files/{strong}"), Some(&owner)).json();
    assert_eq!(f["status"], "uploading", "{f}");
    let r = c.auth_send("POST", &format!("/api/files/{strong}/signed-url"), &owner, &[("content-type", "application/json")], Some(b"{}"));
    assert_eq!(r.status / 100, 4, "{}", String::from_utf8_lossy(&r.body));
    // An eventual file is accepted and available at once; its copy waits for the store.
    c.upload(&owner, &eventual, &eventual_data);
    assert_eq!(c.get(&format!("/api/files/{eventual}"), Some(&owner)).json()["status"], "available");
    let s = status(&c, &owner, &eventual);
    assert_ne!(s["regions"][0]["state"], "in-sync", "{s}");

    s3_server("start").unwrap();
    // Sending a chunk again completes the strong upload (both chunks had reached the home
    // store; completion copies whatever a target lacks), every target holding them.
    let r = vaultx_e2e::wait_for("the strong upload never went through", Duration::from_millis(200), || {
        let r = c.put_chunk(&owner, &strong, 0, &data[..cs]);
        if r.status / 100 == 2 {
            return Ok(r);
        }
        // The breaker stays open until its reset timeout.
        r.assert_problem(503, "replica-unavailable");
        Err("503 replica-unavailable".to_owned())
    });
    assert_eq!(r.json()["status"], "available", "{}", r.json());
    let s = status(&c, &owner, &strong);
    assert!(s["regions"].as_array().unwrap().iter().all(|r| r["state"] == "in-sync"), "acknowledged only once every region holds it: {s}");
    download_exact(&c, &c.signed_path(&owner, &strong, 600), &data);
    wait_in_sync(&c, &owner, &eventual);
    assert_integrity(&c);
    for id in [&strong, &eventual] {
        assert_eq!(c.auth_send("DELETE", &format!("/api/files/{id}"), &owner, &[], None).status, 204);
    }
    wait_for_jobs(&c);
    assert_integrity(&c);
}

/// Runs last (it deactivates the home region for good): reads go to the replicas, and a
/// deactivated region takes no new blocks. Runs on every target, the Worker included.
#[test]
fn outage_3_a_deactivated_home_region_is_read_from_its_replicas() {
    let _turn = serial();
    let c = Client::new();
    let admin = admin_token(&c);
    let home = home_region(&c, &admin);
    let eu = eu_region(&c, &admin);
    let (_, _, owner) = c.signed_in_user();
    let data = bytes(chunk_size() + 3000, 31);
    let id = create_plain(&c, &owner, "deactivated-home.bin", &data);
    c.upload(&owner, &id, &data);
    assert_eq!(policy(&c, &owner, &id, &json!({"targetRegions": [eu]})).status, 201);
    wait_in_sync(&c, &owner, &id);
    let path = c.signed_path(&owner, &id, 600);
    download_exact(&c, &path, &data);
    let r = c.auth_send("PATCH", &format!("/api/storage/regions/{home}/deactivate"), &admin, &[], None);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["status"], "deactivated");
    // The home region's store is read no more: on the local runtime, where the test can take
    // a block out of it behind VaultX's back, the download does not need it.
    let taken = std::env::var("VAULTX_DATA_DIR").ok().map(|dir| {
        let key = format!("f.{id}.{}", vaultx_e2e::sha256_hex(&data[..chunk_size()]));
        vaultx_e2e::HomeBlob::take(&dir, &key)
    });
    download_exact(&c, &path, &data);
    if let Some(taken) = taken {
        taken.restore();
    }
    // No new blocks go to a deactivated region: a policy naming it is refused, and so is a
    // chunk while the home store is in it (503 region-deactivated; the file stays uploading,
    // nothing is stored).
    let r = policy(&c, &owner, &id, &json!({"targetRegions": [home]}));
    r.assert_problem(422, "validation-failed");
    let other = bytes(2000, 32);
    let other_id = c.create_file(&owner, "later.bin", &other);
    c.put_chunk(&owner, &other_id, 0, &other).assert_problem(503, "region-deactivated");
    assert_eq!(c.get(&format!("/api/files/{other_id}"), Some(&owner)).json()["status"], "uploading");
    assert_integrity(&c);
}
