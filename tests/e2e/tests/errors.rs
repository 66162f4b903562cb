//! Routing and error shape: every failure is RFC 9457 problem+json.

use vaultx_e2e::Client;

#[test]
fn unknown_routes_are_404_problems_for_any_method() {
    let c = Client::new();
    for (method, path) in [("GET", "/"), ("GET", "/nope"), ("POST", "/api/nope"), ("DELETE", "/api/auth"), ("GET", "/api/auth/register/extra")] {
        let r = c.send(method, path, &[], None);
        r.assert_problem(404, "not-found");
        assert!(r.json()["detail"].as_str().unwrap().contains(path), "{method} {path}");
    }
}

#[test]
fn wrong_methods_are_405_with_allow() {
    let c = Client::new();
    for (method, path, allow) in [
        ("GET", "/api/auth/register", "POST"),
        ("PUT", "/api/auth/login", "POST"),
        ("POST", "/api/users/me", "GET, HEAD"),
        ("DELETE", "/health", "GET, HEAD"),
    ] {
        let r = c.send(method, path, &[], None);
        r.assert_problem(405, "method-not-allowed");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
}
