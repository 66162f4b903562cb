//! Who may do what: every file route against the owner, another user, no token, an expired
//! token and a tampered token; and the download route against valid, tampered and expired
//! signed URLs.

use vaultx_e2e::{Client, Reply, bytes};

struct Actors {
    owner: String,
    other: String,
    expired: String,
    tampered: String,
}

fn actors(c: &Client) -> Actors {
    let secret = std::env::var("VAULTX_JWT_SECRET").expect("set VAULTX_JWT_SECRET to the deployment's jwt_secret");
    let (email, _, owner) = c.signed_in_user();
    let (_, _, other) = c.signed_in_user();
    let me = c.get("/api/users/me", Some(&owner)).json();
    let subject = vaultx_core::token::Subject { user_id: me["id"].as_str().unwrap().into(), email };
    let long_ago = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 - 7_200_000;
    let expired = vaultx_core::token::Signer::new(&secret).unwrap().issue(&subject, long_ago, 3600).unwrap();
    let mut tampered = owner.clone().into_bytes();
    let i = tampered.len() - 3;
    tampered[i] = if tampered[i] == b'x' { b'y' } else { b'x' };
    Actors { owner, other, expired, tampered: String::from_utf8(tampered).unwrap() }
}

/// One route call as `token` (None: anonymous) on file `id`.
type Call = fn(&Client, Option<&str>, &str) -> Reply;

fn send(c: &Client, method: &str, path: &str, token: Option<&str>, content_type: &str, body: &[u8]) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", content_type)];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    c.send(method, path, &headers, Some(body))
}

const ROUTES: &[(&str, Call)] = &[
    ("GET /api/files/:id", |c, t, id| send(c, "GET", &format!("/api/files/{id}"), t, "application/json", b"")),
    ("PATCH /api/files/:id", |c, t, id| send(c, "PATCH", &format!("/api/files/{id}"), t, "application/json", br#"{"name":"mine now"}"#)),
    ("GET /api/files/:id/chunks", |c, t, id| send(c, "GET", &format!("/api/files/{id}/chunks"), t, "application/json", b"")),
    ("POST /api/files/:id/chunks/1", |c, t, id| send(c, "POST", &format!("/api/files/{id}/chunks/1"), t, "application/octet-stream", &[7; 10])),
    ("POST /api/files/:id/signed-url", |c, t, id| send(c, "POST", &format!("/api/files/{id}/signed-url"), t, "application/json", b"{}")),
    ("DELETE /api/files/:id", |c, t, id| send(c, "DELETE", &format!("/api/files/{id}"), t, "application/json", b"")),
];

#[test]
fn every_file_route_serves_only_its_owner() {
    let c = Client::new();
    let a = actors(&c);
    for (name, call) in ROUTES {
        // A file with chunk 0 in and chunk 1 missing, so every route has something to do.
        let data = bytes(vaultx_e2e::chunk_size() + 10, 42);
        let id = c.create_file(&a.owner, "owned.bin", &data);
        assert_eq!(c.put_chunk(&a.owner, &id, 0, &data[..vaultx_e2e::chunk_size()]).status, 201);

        call(&c, Some(&a.other), &id).assert_problem(404, "not-found");
        call(&c, None, &id).assert_problem(401, "missing-token");
        call(&c, Some(&a.expired), &id).assert_problem(401, "expired-token");
        call(&c, Some(&a.tampered), &id).assert_problem(401, "invalid-token");
        let f = c.get(&format!("/api/files/{id}"), Some(&a.owner)).json();
        assert_eq!((f["name"].as_str(), f["status"].as_str()), (Some("owned.bin"), Some("uploading")), "{name}: nothing changed");

        let r = if name.contains("signed-url") {
            assert_eq!(c.put_chunk(&a.owner, &id, 1, &data[vaultx_e2e::chunk_size()..]).status, 201);
            call(&c, Some(&a.owner), &id)
        } else if name.contains("chunks/1") {
            send(&c, "POST", &format!("/api/files/{id}/chunks/1"), Some(&a.owner), "application/octet-stream", &data[vaultx_e2e::chunk_size()..])
        } else {
            call(&c, Some(&a.owner), &id)
        };
        assert!((200..300).contains(&r.status), "{name} as owner: {} {}", r.status, String::from_utf8_lossy(&r.body));
    }
}

#[test]
fn listing_and_usage_are_per_user() {
    let c = Client::new();
    let a = actors(&c);
    c.create_file(&a.owner, "mine.txt", b"x");
    assert_eq!(c.get("/api/files", Some(&a.owner)).json()["total"], 1);
    assert_eq!(c.get("/api/files", Some(&a.other)).json()["total"], 0);
    assert_eq!(c.get("/api/files/stats/usage", Some(&a.other)).json()["files"], 0);
    c.get("/api/files", None).assert_problem(401, "missing-token");
    c.get("/api/files", Some(&a.expired)).assert_problem(401, "expired-token");
    c.get("/api/files", Some(&a.tampered)).assert_problem(401, "invalid-token");
    c.get("/api/files/stats/usage", None).assert_problem(401, "missing-token");
    let r = send(&c, "POST", "/api/files", Some(&a.tampered), "application/json", br#"{"name":"x","size":1}"#);
    r.assert_problem(401, "invalid-token");
}

#[test]
fn downloads_need_a_valid_signed_url_and_nothing_else() {
    let c = Client::new();
    let a = actors(&c);
    let data = bytes(300, 43);
    let id = c.create_file(&a.owner, "shared.bin", &data);
    c.upload(&a.owner, &id, &data);
    // Long enough to survive a busy deployment (background jobs run beside the suite).
    let path = c.signed_path(&a.owner, &id, 5);
    // Anyone holding the URL may read; a bearer token neither helps nor hurts.
    assert!(c.get(&path, None).body == data);
    assert!(c.get(&path, Some(&a.other)).body == data);
    let (head, payload_sig) = path.split_once("k1.").unwrap();
    let (payload, sig) = payload_sig.split_once('.').unwrap();
    // Point the signature at another file: the payload changes, the signature does not.
    let other_id = c.create_file(&a.other, "theirs.bin", b"secret");
    c.upload(&a.other, &other_id, b"secret");
    let forged_payload = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let json = String::from_utf8(b64.decode(payload).unwrap()).unwrap().replace(&id, &other_id);
        b64.encode(json)
    };
    c.get(&format!("{head}k1.{forged_payload}.{sig}"), None).assert_problem(403, "invalid-signed-url");
    std::thread::sleep(std::time::Duration::from_millis(6100));
    c.get(&path, None).assert_problem(403, "expired-signed-url");
}
