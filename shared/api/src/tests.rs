//! Handler tests on the native test platform: the API as a client sees it.

use crate::routes::*;
use crate::testing::*;
use vaultx_core::http::ApiRequest;

const ALICE: &str = r#"{"email":"Alice@Example.com","password":"correct horse battery"}"#;

fn bearer(token: &str) -> ApiRequest {
    ApiRequest {
        method: "GET".into(),
        path: "/api/users/me".into(),
        headers: vec![("authorization".into(), format!("Bearer {token}"))],
        ..Default::default()
    }
}

fn login(p: &TestPlatform, body: &str) -> vaultx_core::http::ApiResponse {
    run(auth_login::handle(p, json_request("POST", "/api/auth/login", body)))
}

#[test]
fn register_then_login_then_me() {
    let p = TestPlatform::new();
    let created = run(auth_register::handle(&p, json_request("POST", "/api/auth/register", ALICE)));
    assert_eq!(created.status, 201);
    assert_eq!(created.header("location"), Some("/api/users/me"));
    let account = body_json(&created);
    assert_eq!(account["email"], "alice@example.com");
    assert_eq!(account["createdAt"], "2026-09-21T14:13:20.000Z");

    let logged_in = login(&p, ALICE);
    assert_eq!(logged_in.status, 200);
    assert_eq!(logged_in.header("cache-control"), Some("no-store"));
    let token = body_json(&logged_in);
    assert_eq!(token["tokenType"], "Bearer");
    assert_eq!(token["expiresIn"], 3600);

    let me = run(users_me::handle(&p, bearer(token["accessToken"].as_str().unwrap())));
    assert_eq!(me.status, 200);
    assert_eq!(body_json(&me)["id"], account["id"]);
}

#[test]
fn a_taken_email_is_409_even_in_another_case() {
    let p = TestPlatform::new();
    assert_eq!(run(auth_register::handle(&p, json_request("POST", "/", ALICE))).status, 201);
    let again = run(auth_register::handle(&p, json_request("POST", "/", &ALICE.replace("Alice", "ALICE"))));
    assert_eq!(again.status, 409);
    assert_eq!(body_json(&again)["type"], "urn:vaultx:problem:email-taken");
}

#[test]
fn weak_or_malformed_registrations_are_rejected() {
    let p = TestPlatform::new();
    let weak = run(auth_register::handle(&p, json_request("POST", "/", r#"{"email":"nope","password":"short"}"#)));
    assert_eq!(weak.status, 422);
    let fields: Vec<_> = body_json(&weak)["errors"].as_array().unwrap().iter().map(|e| e["field"].clone()).collect();
    assert_eq!(fields, ["email", "password"]);
    assert_eq!(run(auth_register::handle(&p, json_request("POST", "/", "{"))).status, 400);
    assert_eq!(run(auth_register::handle(&p, json_request("POST", "/", "[]"))).status, 422);
    assert_eq!(run(auth_register::handle(&p, json_request("GET", "/", ALICE))).status, 405);
}

#[test]
fn wrong_password_and_unknown_email_look_the_same() {
    let p = TestPlatform::new();
    run(auth_register::handle(&p, json_request("POST", "/", ALICE)));
    let wrong = login(&p, r#"{"email":"alice@example.com","password":"wrong horse battery"}"#);
    let unknown = login(&p, r#"{"email":"bob@example.com","password":"correct horse battery"}"#);
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body, unknown.body);
    assert!(vaultx_core::password::is_phc(auth_login_decoy()));
}

fn auth_login_decoy() -> &'static str {
    // The decoy must parse, or an unknown email would skip Argon2 and answer faster.
    "$argon2id$v=19$m=19456,t=2,p=1$c2VlZC1zYWx0LXZhdWx0eA$7AQ3z3tUe5r0bq6lQ8bVQoU9cgH0xw5ZfNwrJYk3oQY"
}

#[test]
fn expired_tampered_and_missing_tokens_are_401_with_distinct_types() {
    let p = TestPlatform::new();
    run(auth_register::handle(&p, json_request("POST", "/", ALICE)));
    let token = body_json(&login(&p, ALICE))["accessToken"].as_str().unwrap().to_owned();

    let mut tampered = token.clone();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    let r = run(users_me::handle(&p, bearer(&tampered)));
    assert_eq!((r.status, body_json(&r)["type"].as_str().unwrap()), (401, "urn:vaultx:problem:invalid-token"));

    let r = run(users_me::handle(&p, ApiRequest { method: "GET".into(), ..Default::default() }));
    assert_eq!(body_json(&r)["type"], "urn:vaultx:problem:missing-token");
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));

    p.now.set(p.now.get() + 3_601_000 + 5_000);
    let r = run(users_me::handle(&p, bearer(&token)));
    assert_eq!((r.status, body_json(&r)["type"].as_str().unwrap()), (401, "urn:vaultx:problem:expired-token"));
}

#[test]
fn token_lifetime_comes_from_configuration() {
    let p = TestPlatform::new();
    p.vars.borrow_mut().insert("jwt_expiration_time".into(), "15m".into());
    run(auth_register::handle(&p, json_request("POST", "/", ALICE)));
    assert_eq!(body_json(&login(&p, ALICE))["expiresIn"], 900);
}

#[test]
fn a_missing_secret_is_a_server_error_not_a_client_one() {
    let p = TestPlatform::new();
    p.vars.borrow_mut().remove("jwt_secret");
    run(auth_register::handle(&p, json_request("POST", "/", ALICE)));
    let r = login(&p, ALICE);
    assert_eq!(r.status, 500);
    assert!(!String::from_utf8_lossy(r.body.bytes()).contains("jwt_secret"));
}

#[test]
fn readiness_follows_the_metadata_store() {
    let p = TestPlatform::new();
    let get = || ApiRequest { method: "GET".into(), ..Default::default() };
    assert_eq!(run(health_readiness::handle(&p, get())).status, 200);
    assert_eq!(run(health::handle(&p, get())).status, 200);
    assert_eq!(run(health_liveness::handle(&p, get())).status, 200);
    p.conn.execute_batch("DROP TABLE users").unwrap();
    let r = run(health_readiness::handle(&p, get()));
    assert_eq!((r.status, body_json(&r)["type"].as_str().unwrap()), (503, "urn:vaultx:problem:not-ready"));
    assert_eq!(body_json(&run(health::handle(&p, get())))["checks"]["metadata"], "unavailable");
    assert_eq!(run(health_liveness::handle(&p, get())).status, 200);
}
