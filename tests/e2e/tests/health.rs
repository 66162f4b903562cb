//! Health probes: `/health`, `/health/liveness`, `/health/readiness`.

use vaultx_e2e::Client;

#[test]
fn liveness_answers_without_touching_stores() {
    let r = Client::new().get("/health/liveness", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[test]
fn readiness_checks_the_metadata_store() {
    let r = Client::new().get("/health/readiness", None);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["checks"]["metadata"], "ok");
}

#[test]
fn overall_health_lists_its_checks() {
    let r = Client::new().get("/health", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
    assert_eq!(r.json()["checks"]["metadata"], "ok");
    // Every active region's stores, each probed (tests/replication.rs checks one is listed).
    assert!(r.json()["checks"]["regions"].is_object() && r.json()["stores"].is_array(), "{}", r.json());
}
