//! Accounts and access tokens: `POST /api/auth/register`, `POST /api/auth/login`,
//! `GET /api/users/me`.

use serde_json::json;
use vaultx_e2e::{Client, unique_email};

#[test]
fn register_login_and_read_me() {
    let c = Client::new();
    let email = unique_email();
    let r = c.post_json("/api/auth/register", &json!({"email": email.to_uppercase(), "password": "correct horse battery"}));
    assert_eq!(r.status, 201);
    assert_eq!(r.header("location"), Some("/api/users/me"));
    let account = r.json();
    assert_eq!(account["email"], email, "emails are stored lower-case");
    assert!(account["createdAt"].as_str().unwrap().ends_with('Z'));
    assert!(account.get("passwordHash").is_none() && account.get("password_hash").is_none());

    let r = c.post_json("/api/auth/login", &json!({"email": email, "password": "correct horse battery"}));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let token = r.json();
    assert_eq!(token["tokenType"], "Bearer");
    assert!(token["expiresIn"].as_i64().unwrap() > 0);

    let r = c.get("/api/users/me", token["accessToken"].as_str());
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["id"], account["id"]);
    assert_eq!(r.json()["email"], email);
}

#[test]
fn registering_a_taken_email_is_a_conflict() {
    let c = Client::new();
    let email = unique_email();
    let body = json!({"email": email, "password": "correct horse battery"});
    assert_eq!(c.post_json("/api/auth/register", &body).status, 201);
    c.post_json("/api/auth/register", &body).assert_problem(409, "email-taken");
    c.post_json("/api/auth/register", &json!({"email": email.to_uppercase(), "password": "another good password"}))
        .assert_problem(409, "email-taken");
}

#[test]
fn weak_passwords_and_bad_emails_are_422_with_field_errors() {
    let c = Client::new();
    let r = c.post_json("/api/auth/register", &json!({"email": "not-an-email", "password": "short"}));
    r.assert_problem(422, "validation-failed");
    let fields: Vec<String> = r.json()["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect();
    assert_eq!(fields, ["email", "password"]);
    c.post_json("/api/auth/register", &json!({"email": unique_email(), "password": "aaaaaaaaaaaaaaaa"}))
        .assert_problem(422, "validation-failed");
    c.post_json("/api/auth/register", &json!({"email": unique_email()})).assert_problem(422, "validation-failed");
    c.post_json("/api/auth/register", &json!({"email": 42, "password": "correct horse battery"}))
        .assert_problem(422, "validation-failed");
}

#[test]
fn malformed_bodies_get_the_right_4xx() {
    let c = Client::new();
    let json_header = [("content-type", "application/json")];
    c.send("POST", "/api/auth/register", &json_header, Some(b"{\"email\": ")).assert_problem(400, "malformed-json");
    c.send("POST", "/api/auth/login", &json_header, Some(b"not json at all")).assert_problem(400, "malformed-json");
    c.send("POST", "/api/auth/login", &json_header, Some(b"")).assert_problem(400, "malformed-json");
    c.send("POST", "/api/auth/register", &[("content-type", "text/plain")], Some(b"{}")).assert_problem(415, "unsupported-media-type");
    c.send("POST", "/api/auth/register", &[], Some(b"{}")).assert_problem(415, "unsupported-media-type");
    let huge = format!("{{\"email\":\"{}\",\"password\":\"x\"}}", "a".repeat(64 * 1024));
    c.send("POST", "/api/auth/register", &json_header, Some(huge.as_bytes())).assert_problem(413, "payload-too-large");
}

#[test]
fn wrong_password_and_unknown_email_are_the_same_401() {
    let c = Client::new();
    let (email, _, _) = c.signed_in_user();
    let wrong = c.post_json("/api/auth/login", &json!({"email": email, "password": "wrong horse battery"}));
    wrong.assert_problem(401, "invalid-credentials");
    let unknown = c.post_json("/api/auth/login", &json!({"email": unique_email(), "password": "wrong horse battery"}));
    unknown.assert_problem(401, "invalid-credentials");
    // Indistinguishable but for the request id each problem document names.
    let without_id = |r: &vaultx_e2e::Reply| {
        let mut v = r.json();
        v.as_object_mut().unwrap().remove("requestId").expect("a requestId");
        v
    };
    assert_eq!(without_id(&wrong), without_id(&unknown), "the two failures must be indistinguishable");
}

#[test]
fn me_needs_a_valid_bearer_token() {
    let c = Client::new();
    let (_, _, token) = c.signed_in_user();
    let r = c.get("/api/users/me", None);
    r.assert_problem(401, "missing-token");
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    c.send("GET", "/api/users/me", &[("authorization", &format!("Basic {token}"))], None).assert_problem(401, "missing-token");
    c.get("/api/users/me", Some("not.a.jwt")).assert_problem(401, "invalid-token");

    // Flip one character of the signature, then of the payload: both must fail.
    let mut sig = token.clone().into_bytes();
    let last = sig.len() - 2;
    sig[last] = if sig[last] == b'A' { b'B' } else { b'A' };
    c.get("/api/users/me", Some(std::str::from_utf8(&sig).unwrap())).assert_problem(401, "invalid-token");
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload = parts[1].to_owned().into_bytes();
    payload[5] = if payload[5] == b'A' { b'B' } else { b'A' };
    let forged = format!("{}.{}.{}", parts[0], String::from_utf8(payload).unwrap(), parts[2]);
    c.get("/api/users/me", Some(&forged)).assert_problem(401, "invalid-token");
}

#[test]
fn an_expired_token_is_401_expired_token() {
    // Minting an already-expired token needs the deployment's signing secret; tests/run
    // passes the one it started the runtime with.
    let secret = std::env::var("VAULTX_JWT_SECRET").expect("set VAULTX_JWT_SECRET to the deployment's jwt_secret");
    let c = Client::new();
    let (email, _, token) = c.signed_in_user();
    let me = c.get("/api/users/me", Some(&token)).json();
    let subject = vaultx_core::token::Subject { user_id: me["id"].as_str().unwrap().into(), email };
    let two_hours_ago = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 - 7_200_000;
    let expired = vaultx_core::token::Signer::new(&secret).unwrap().issue(&subject, two_hours_ago, 3600).unwrap();
    c.get("/api/users/me", Some(&expired)).assert_problem(401, "expired-token");
}
