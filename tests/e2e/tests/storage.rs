//! Regions and storage nodes: `/api/storage/regions`, `/api/storage/regions/:id`,
//! `/api/storage/regions/:id/deactivate`, `/api/storage/regions/:regionId/nodes`,
//! `/api/storage/nodes`. Administrators only; a node may only name a blob store the
//! deployment really has.

use serde_json::{Value, json};
use vaultx_e2e::{Client, Reply, admin_token, bytes, target};

/// The deployment's blob stores as nodes name them: (kind, home store, a spare store). The
/// `_EU` store is the replication suite's (tests/replication.rs).
fn stores() -> (&'static str, &'static str, &'static str) {
    if target() == "worker" { ("r2", "BLOBS", "BLOBS_AP") } else { ("key-value", "blobs", "blobs_ap") }
}

/// The home store's node: `(kind, store)` (the runtime's may be an S3-compatible bucket).
fn home() -> (String, String) {
    vaultx_e2e::home_store()
}

fn unique_code(prefix: &str) -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() % 1_000_000_000;
    format!("{prefix}-{n}")
}

fn post(c: &Client, path: &str, token: &str, body: &Value) -> Reply {
    c.auth_send("POST", path, token, &[("content-type", "application/json")], Some(body.to_string().as_bytes()))
}

fn field_errors(r: &Reply) -> Vec<String> {
    r.json()["errors"].as_array().map(|a| a.iter().map(|e| e["field"].as_str().unwrap_or("").to_owned()).collect()).unwrap_or_default()
}

/// The node serving `store`, if one does.
fn node_of(c: &Client, admin: &str, store: &str) -> Option<Value> {
    let r = c.get("/api/storage/nodes", Some(admin));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["nodes"].as_array().unwrap().iter().find(|n| n["store"] == store).cloned()
}

#[test]
fn only_administrators_manage_regions_and_nodes() {
    let c = Client::new();
    let (_, _, user) = c.signed_in_user();
    for (method, path) in [
        ("GET", "/api/storage/regions"),
        ("POST", "/api/storage/regions"),
        ("GET", "/api/storage/regions/us-west-1"),
        ("PATCH", "/api/storage/regions/us-west-1/deactivate"),
        ("GET", "/api/storage/regions/us-west-1/nodes"),
        ("GET", "/api/storage/nodes"),
        ("POST", "/api/storage/nodes"),
    ] {
        let body = json!({"code": "us-west-1", "name": "Oregon"}).to_string();
        let r = c.auth_send(method, path, &user, &[("content-type", "application/json")], (method != "GET").then_some(body.as_bytes()));
        r.assert_problem(403, "forbidden");
        c.send(method, path, &[], None).assert_problem(401, "missing-token");
    }
}

#[test]
fn a_region_is_created_listed_found_by_id_or_code_and_deactivated() {
    let c = Client::new();
    let admin = admin_token(&c);
    let code = unique_code("eu-west");
    let r = post(&c, "/api/storage/regions", &admin, &json!({"code": code, "name": "Ireland"}));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let region = r.json();
    let id = region["id"].as_str().unwrap().to_owned();
    assert_eq!(r.header("location"), Some(format!("/api/storage/regions/{id}").as_str()));
    assert_eq!((region["code"].as_str(), region["name"].as_str(), region["status"].as_str()), (Some(code.as_str()), Some("Ireland"), Some("active")));
    assert_eq!(region["health"], "no-nodes");
    assert_eq!(region["nodes"], json!([]));

    // One code, one region.
    post(&c, "/api/storage/regions", &admin, &json!({"code": code, "name": "Again"})).assert_problem(409, "conflict");

    let listed = c.get("/api/storage/regions", Some(&admin)).json();
    assert!(listed["regions"].as_array().unwrap().iter().any(|r| r["id"] == id.as_str()), "{listed}");
    for key in [&id, &code] {
        let r = c.get(&format!("/api/storage/regions/{key}"), Some(&admin));
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["id"], id.as_str());
    }
    c.get("/api/storage/regions/nowhere-1", Some(&admin)).assert_problem(404, "not-found");

    // Deactivation is idempotent.
    for _ in 0..2 {
        let r = c.auth_send("PATCH", &format!("/api/storage/regions/{code}/deactivate"), &admin, &[], None);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["status"], "deactivated");
    }
    assert_eq!(c.get(&format!("/api/storage/regions/{id}"), Some(&admin)).json()["status"], "deactivated");
    c.auth_send("PATCH", "/api/storage/regions/nowhere-1/deactivate", &admin, &[], None).assert_problem(404, "not-found");
    c.auth_send("DELETE", &format!("/api/storage/regions/{id}"), &admin, &[], None).assert_problem(405, "method-not-allowed");
}

#[test]
fn malformed_regions_are_422_with_every_field_named() {
    let c = Client::new();
    let admin = admin_token(&c);
    let r = post(&c, "/api/storage/regions", &admin, &json!({"code": "EU_WEST", "name": " "}));
    r.assert_problem(422, "validation-failed");
    assert_eq!(field_errors(&r), ["code", "name"]);
    for code in ["a", "-eu", "eu-", "eu--1", "1eu", "eu west", &"x".repeat(33)] {
        let r = post(&c, "/api/storage/regions", &admin, &json!({"code": code, "name": "N"}));
        r.assert_problem(422, "validation-failed");
    }
    // The documented shape, exactly.
    assert_eq!(post(&c, "/api/storage/regions", &admin, &json!({"code": "eu-1"})).status / 100, 4);
    assert_eq!(post(&c, "/api/storage/regions", &admin, &json!({"code": "eu-1", "name": "N", "extra": 1})).status / 100, 4);
}

#[test]
fn a_node_must_name_a_blob_store_the_deployment_has() {
    let c = Client::new();
    let admin = admin_token(&c);
    let (kind, _, _) = stores();
    let code = unique_code("ap-south");
    assert_eq!(post(&c, "/api/storage/regions", &admin, &json!({"code": code, "name": "Mumbai"})).status, 201);
    let node = |store: &str, kind: &str| json!({"regionId": code, "name": "n1", "kind": kind, "store": store, "capacityBytes": 1u64 << 30});

    // Stores this deployment does not have, or that are not blob stores.
    let missing = if kind == "r2" { "BLOBS_MARS" } else { "blobs_mars" };
    let not_blobs = if kind == "r2" { "MANIFESTS" } else { "manifests" };
    for store in [missing, not_blobs] {
        let r = post(&c, "/api/storage/nodes", &admin, &node(store, kind));
        r.assert_problem(422, "validation-failed");
        assert_eq!(field_errors(&r), ["store"], "{store}");
    }
    // An S3-compatible store the configuration does not name (s3_stores).
    if target() != "worker" {
        let r = post(&c, "/api/storage/nodes", &admin, &node("nowhere", "s3"));
        r.assert_problem(422, "validation-failed");
        assert_eq!(field_errors(&r), ["store"]);
    }
    // A kind of store this deployment has none of.
    let other_kind = if kind == "r2" { "key-value" } else { "r2" };
    let r = post(&c, "/api/storage/nodes", &admin, &node(stores().2, other_kind));
    r.assert_problem(422, "validation-failed");
    assert_eq!(field_errors(&r), ["store"]);
    // Every malformed field at once.
    let r = post(&c, "/api/storage/nodes", &admin, &json!({"regionId": "nowhere-1", "name": "", "kind": "tape", "store": "a/b", "capacityBytes": 0}));
    r.assert_problem(422, "validation-failed");
    assert_eq!(field_errors(&r), ["name", "kind", "store", "capacityBytes", "regionId"]);
}

#[test]
fn nodes_serve_one_region_each_and_report_their_store() {
    let c = Client::new();
    let admin = admin_token(&c);
    let (kind, _, second) = stores();
    let (home_kind, home) = home();
    let home = home.as_str();
    let code = unique_code("eu-central");
    let r = post(&c, "/api/storage/regions", &admin, &json!({"code": code, "name": "Frankfurt"}));
    assert_eq!(r.status, 201);
    let region_id = r.json()["id"].as_str().unwrap().to_owned();

    // The spare store: on a fresh deployment it serves no node yet. (Re-running the suite
    // against the same deployment finds it taken, which must then be a 409.)
    let body = json!({"regionId": code, "name": "eu-1", "kind": kind, "store": second, "capacityBytes": 1u64 << 40});
    let node = match node_of(&c, &admin, second) {
        None => {
            let r = post(&c, "/api/storage/nodes", &admin, &body);
            assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
            let n = r.json();
            assert_eq!(
                (n["regionId"].as_str(), n["regionCode"].as_str(), n["kind"].as_str(), n["store"].as_str()),
                (Some(region_id.as_str()), Some(code.as_str()), Some(kind), Some(second))
            );
            assert_eq!((n["capacityBytes"].as_u64(), n["status"].as_str(), n["health"].as_str()), (Some(1 << 40), Some("active"), Some("reachable")));
            n
        }
        Some(existing) => existing,
    };
    // A store serves one node.
    post(&c, "/api/storage/nodes", &admin, &body).assert_problem(409, "conflict");

    if node["regionId"] == region_id.as_str() {
        let region = c.get(&format!("/api/storage/regions/{code}"), Some(&admin)).json();
        assert_eq!(region["health"], "healthy", "{region}");
        assert_eq!(region["nodes"].as_array().unwrap().len(), 1);
        let listed = c.get(&format!("/api/storage/regions/{region_id}/nodes"), Some(&admin)).json();
        assert_eq!(listed["region"], code.as_str());
        assert_eq!(listed["nodes"][0]["id"], node["id"]);
    }
    assert!(c.get("/api/storage/nodes", Some(&admin)).json()["nodes"].as_array().unwrap().iter().any(|n| n["id"] == node["id"]));
    c.get("/api/storage/regions/nowhere-1/nodes", Some(&admin)).assert_problem(404, "not-found");

    // The home store holds every block so far: its node's usedBytes counts them.
    let (_, _, user) = c.signed_in_user();
    let data = bytes(70_000, 11);
    let id = c.create_file(&user, "used.bin", &data);
    c.upload(&user, &id, &data);
    let home_node = match node_of(&c, &admin, home) {
        Some(n) => n,
        None => {
            let home_code = unique_code("home");
            assert_eq!(post(&c, "/api/storage/regions", &admin, &json!({"code": home_code, "name": "Home"})).status, 201);
            let r = post(&c, "/api/storage/nodes", &admin, &json!({"regionId": home_code, "name": "home-1", "kind": home_kind, "store": home, "capacityBytes": 1u64 << 40}));
            assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
            r.json()
        }
    };
    let home_node = node_of(&c, &admin, home).unwrap_or(home_node);
    assert!(home_node["usedBytes"].as_u64().unwrap() >= data.len() as u64, "{home_node}");

    // A deactivated region takes no new nodes. (A region of its own: the spare store's region
    // stays active for the outage tests, tests/outage.rs.)
    let retired = unique_code("retired");
    assert_eq!(post(&c, "/api/storage/regions", &admin, &json!({"code": retired, "name": "Retired"})).status, 201);
    assert_eq!(c.auth_send("PATCH", &format!("/api/storage/regions/{retired}/deactivate"), &admin, &[], None).status, 200);
    let r = post(&c, "/api/storage/nodes", &admin, &json!({"regionId": retired, "name": "late", "kind": kind, "store": second, "capacityBytes": 1}));
    r.assert_problem(409, "conflict");
    assert!(r.json()["detail"].as_str().unwrap().contains("deactivated"), "{}", r.json());
}
