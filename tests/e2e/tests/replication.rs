//! Replication: `POST /api/replication/files/:fileId/policy` and
//! `GET /api/replication/files/:fileId/status`. An eventual policy brings every block of a
//! file (its versions' too) to each target region's store, byte-identical (the integrity
//! check reads every copy); deleting the file leaves no copy behind in any region.

use serde_json::json;
use std::time::Duration;
use vaultx_e2e::{Client, admin_token, assert_integrity, bytes, eu_region, policy, serial, sweep, wait_in_sync};

#[test]
fn a_policy_is_validated_and_only_the_owner_sets_it() {
    // Its uploads must not be in flight while the other test audits the stores at rest.
    let _turn = serial();
    let c = Client::new();
    let admin = admin_token(&c);
    let code = eu_region(&c, &admin);
    let (_, _, owner) = c.signed_in_user();
    let (_, _, other) = c.signed_in_user();
    let data = bytes(1000, 1);
    let id = c.create_file(&owner, "p.bin", &data);
    c.upload(&owner, &id, &data);

    policy(&c, &other, &id, &json!({"targetRegions": [code]})).assert_problem(404, "not-found");
    c.send("POST", &format!("/api/replication/files/{id}/policy"), &[], None).assert_problem(401, "missing-token");
    for (body, field) in [
        (json!({"targetRegions": []}), "targetRegions"),
        (json!({"targetRegions": ["nowhere-1"]}), "targetRegions"),
        (json!({"targetRegions": [code, code]}), "targetRegions"),
        (json!({"targetRegions": [code], "consistency": "sometimes"}), "consistency"),
    ] {
        let r = policy(&c, &owner, &id, &body);
        r.assert_problem(422, "validation-failed");
        assert_eq!(r.json()["errors"][0]["field"], field, "{body}");
    }
    assert_eq!(policy(&c, &owner, &id, &json!({"targetRegions": [code], "extra": true})).status / 100, 4);
    // A region without a node, or deactivated, takes no copies.
    let empty = format!("empty-{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() % 1_000_000_000);
    let r = c.auth_send("POST", "/api/storage/regions", &admin, &[("content-type", "application/json")], Some(json!({"code": empty, "name": "Empty"}).to_string().as_bytes()));
    assert_eq!(r.status, 201);
    let r = policy(&c, &owner, &id, &json!({"targetRegions": [code, empty]}));
    r.assert_problem(422, "validation-failed");
    assert!(r.json()["detail"].as_str().unwrap().contains("no active storage node"), "{}", r.json());
    assert_eq!(c.auth_send("PATCH", &format!("/api/storage/regions/{empty}/deactivate"), &admin, &[], None).status, 200);
    let r = policy(&c, &owner, &id, &json!({"targetRegions": [empty]}));
    r.assert_problem(422, "validation-failed");
    assert!(r.json()["detail"].as_str().unwrap().contains("deactivated"), "{}", r.json());
    let r = c.get(&format!("/api/replication/files/{id}/status"), Some(&owner));
    assert_eq!(r.json(), json!({"fileId": id, "policy": null, "regions": []}));
    c.get(&format!("/api/replication/files/{id}/status"), Some(&other)).assert_problem(404, "not-found");
}

#[test]
fn an_eventual_policy_copies_every_block_and_a_delete_removes_every_copy() {
    let _turn = serial();
    let c = Client::new();
    let admin = admin_token(&c);
    let code = eu_region(&c, &admin);
    let (_, _, owner) = c.signed_in_user();
    let data = bytes(300_000, 42);
    let id = c.create_file(&owner, "replicated.bin", &data);
    c.upload(&owner, &id, &data);

    let r = policy(&c, &owner, &id, &json!({"targetRegions": [code]}));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json(), json!({"fileId": id, "consistency": "eventual", "targetRegions": [code]}));
    let status = wait_in_sync(&c, &owner, &id);
    let region = &status["regions"][0];
    assert_eq!(region["region"], code.as_str());
    assert_eq!(region["bytesPresent"], region["bytesTotal"], "{status}");
    assert!(region["bytesTotal"].as_u64().unwrap() > 0);
    assert_eq!(region["lagMs"], 0);
    assert_eq!(status["policy"], json!({"consistency": "eventual", "targetRegions": [code]}));
    // /health lists the region's store, probed.
    let health = c.get("/health", None).json();
    assert_eq!(health["checks"]["regions"][code.as_str()], "healthy", "{health}");
    assert!(health["stores"].as_array().unwrap().iter().any(|s| s["region"] == code.as_str() && s["health"] == "reachable"), "{health}");
    // Every copy is there and byte-identical to the home store's (the check reads them all).
    let report = assert_integrity(&c);
    assert!(report["replicas"].as_u64().unwrap() > 0, "{report}");

    // A later change is replicated too: a new version's blocks join the file's.
    let next = bytes(200_000, 43);
    let v = c.auth_send("POST", &format!("/api/files/{id}/versions"), &owner, &[("content-type", "application/json")], Some(json!({"size": next.len()}).to_string().as_bytes()));
    assert_eq!(v.status, 201, "{}", String::from_utf8_lossy(&v.body));
    c.upload(&owner, v.json()["uploadId"].as_str().unwrap(), &next);
    let after = wait_in_sync(&c, &owner, &id);
    assert!(after["regions"][0]["bytesTotal"].as_u64() > region["bytesTotal"].as_u64(), "{after}");
    assert_integrity(&c);

    // Deleting the file removes its copies from every region (the replicate sweep).
    assert_eq!(c.auth_send("DELETE", &format!("/api/files/{id}"), &owner, &[], None).status, 204);
    vaultx_e2e::wait_for("copies left behind", Duration::from_millis(200), || {
        sweep(&c);
        let report = assert_integrity(&c);
        if report["pendingReplicaSweeps"] == 0 { Ok(()) } else { Err(format!("{} replica sweeps pending", report["pendingReplicaSweeps"])) }
    });
}
