//! S3 access keys: `GET`/`POST /api/users/me/access-keys`, `DELETE
//! /api/users/me/access-keys/:keyId`. The deployment under test has an
//! `access_key_sealing_key` (tests/run sets one on every target).

use serde_json::json;
use vaultx_e2e::Client;

const KEYS: &str = "/api/users/me/access-keys";

fn create(c: &Client, token: &str, body: &serde_json::Value) -> vaultx_e2e::Reply {
    c.auth_send("POST", KEYS, token, &[("content-type", "application/json")], Some(body.to_string().as_bytes()))
}

#[test]
fn an_access_key_shows_its_secret_once_and_only_its_owner_lists_or_deletes_it() {
    let c = Client::new();
    let (_, _, alice) = c.signed_in_user();
    let (_, _, bob) = c.signed_in_user();

    let r = create(&c, &alice, &json!({"name": "backup job"}));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    let key = r.json();
    let id = key["accessKeyId"].as_str().unwrap().to_owned();
    let secret = key["secretAccessKey"].as_str().unwrap().to_owned();
    assert!(id.len() == 20 && id.starts_with("VX") && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()), "{id}");
    assert_eq!(secret.len(), 40);
    assert_eq!(key["name"], "backup job");
    assert!(key["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(r.header("location"), Some(format!("{KEYS}/{id}").as_str()));

    // Listed by its owner, never with its secret; another account sees none of it.
    let listed = c.get(KEYS, Some(&alice)).json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["items"][0]["accessKeyId"], id.as_str());
    assert!(!listed.to_string().contains(&secret));
    assert_eq!(c.get(KEYS, Some(&bob)).json()["items"], json!([]));

    // Only the owner deletes it; after that it is gone for everyone.
    let path = format!("{KEYS}/{id}");
    c.auth_send("DELETE", &path, &bob, &[], None).assert_problem(404, "not-found");
    assert_eq!(c.auth_send("DELETE", &path, &alice, &[], None).status, 204);
    c.auth_send("DELETE", &path, &alice, &[], None).assert_problem(404, "not-found");
    assert_eq!(c.get(KEYS, Some(&alice)).json()["items"], json!([]));
}

#[test]
fn an_account_holds_at_most_five_access_keys() {
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    // An empty body is a key without a name.
    let r = c.auth_send("POST", KEYS, &token, &[], None);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["name"], "");
    for _ in 1..5 {
        assert_eq!(create(&c, &token, &json!({})).status, 201);
    }
    create(&c, &token, &json!({"name": "sixth"})).assert_problem(409, "limit-exceeded");
    assert_eq!(c.get(KEYS, Some(&token)).json()["items"].as_array().unwrap().len(), 5);
}

#[test]
fn bad_requests_for_access_keys_are_4xx_and_store_nothing() {
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    c.get(KEYS, None).assert_problem(401, "missing-token");
    create(&c, &token, &json!({"name": "x".repeat(65)})).assert_problem(422, "validation-failed");
    create(&c, &token, &json!({"name": "tab\there"})).assert_problem(422, "validation-failed");
    create(&c, &token, &json!({"label": "unknown field"})).assert_problem(422, "validation-failed");
    create(&c, &token, &json!({"name": 7})).assert_problem(422, "validation-failed");
    c.auth_send("POST", KEYS, &token, &[("content-type", "text/plain")], Some(b"name")).assert_problem(415, "unsupported-media-type");
    c.auth_send("PUT", KEYS, &token, &[], None).assert_problem(405, "method-not-allowed");
    c.auth_send("DELETE", &format!("{KEYS}/not-a-key"), &token, &[], None).assert_problem(404, "not-found");
    assert_eq!(c.get(KEYS, Some(&token)).json()["items"], json!([]));
}
