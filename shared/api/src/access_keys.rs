//! S3 access keys: an id and a secret per key, created, listed and deleted by their owner
//! (`/api/users/me/access-keys`); the secret is shown once, at creation. SigV4 signs with the
//! secret itself, so the server keeps it, sealed under `access_key_sealing_key`
//! (`vaultx_core::sealed`: ChaCha20-Poly1305, bound to the key's id): neither a database dump
//! nor a log holds a usable secret. Ids look like AWS's (20 upper-case characters, here
//! starting `VX`) and secrets too (40 characters), so every S3 client accepts them.

use crate::settings;
use crate::store::store_failure;
use base64::Engine;
use vaultx_core::Problem;
use vaultx_core::guard;
use vaultx_core::ports::{Config, Entropy, Row, Sql, SqlValue, Statement, StoreError};
use vaultx_core::problem::{FieldError, ProblemKind};
use vaultx_core::sealed::SealingKey;

/// Keys one account may hold at once (IAM allows two; a few more leave room for rotation
/// across several machines).
pub const MAX_PER_USER: i64 = 5;
/// The longest name a key may be given (a label for its owner: "laptop", "backup job").
pub const MAX_NAME_CHARS: usize = 64;

/// One access key, as its owner sees it (never with its secret).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKey {
    #[serde(rename = "accessKeyId")]
    pub id: String,
    #[serde(skip)]
    pub owner_id: String,
    pub name: String,
    #[serde(serialize_with = "vaultx_core::time::serialize_rfc3339")]
    pub created_at: i64,
}

fn from_row(r: &Row) -> Result<AccessKey, StoreError> {
    Ok(AccessKey { id: r.text(0)?.to_owned(), owner_id: r.text(1)?.to_owned(), name: r.text(2)?.to_owned(), created_at: r.int(3)? })
}

const COLUMNS: &str = "id, owner_id, name, created_at";

/// The deployment's sealing key; `503 not-configured` without one.
async fn sealing_key(config: &impl Config) -> Result<SealingKey, Problem> {
    let setting = config.get(settings::ACCESS_KEY_SEALING_KEY).await.map_err(store_failure)?.unwrap_or_default();
    SealingKey::from_setting(setting.trim()).ok_or_else(|| {
        Problem::new(ProblemKind::NotConfigured, "access keys need access_key_sealing_key (at least 32 bytes) set on this deployment")
    })
}

/// A new id: `VX` and 18 characters of base32 (90 random bits).
fn new_id(entropy: &impl Entropy) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bytes = [0u8; 18];
    entropy.fill(&mut bytes);
    let mut id = String::from("VX");
    id.extend(bytes.iter().map(|b| ALPHABET[(b & 31) as usize] as char));
    id
}

/// A new secret: 40 characters of base64 (240 random bits).
fn new_secret(entropy: &impl Entropy) -> String {
    let mut bytes = [0u8; 30];
    entropy.fill(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Whether `text` has the shape of an access key id we hand out.
pub fn is_id(text: &str) -> bool {
    text.len() == 20 && text.starts_with("VX") && text.bytes().skip(2).all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

/// Checks a key's name: at most [`MAX_NAME_CHARS`] characters, no control characters.
pub fn check_name(name: &str) -> Result<(), FieldError> {
    let problem = |message: String| Err(FieldError { field: "name".into(), message });
    if name.chars().count() > MAX_NAME_CHARS {
        return problem(format!("at most {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return problem("must not hold control characters".into());
    }
    Ok(())
}

/// Creates a key for `owner_id` and returns it with its secret, which is never shown again.
/// At most [`MAX_PER_USER`] keys per account, checked inside the insert's batch (`409
/// limit-exceeded`).
pub async fn create<P: Config + Entropy>(p: &P, db: &impl Sql, owner_id: &str, name: &str, now_ms: i64) -> Result<(AccessKey, String), Problem> {
    let key = sealing_key(p).await?;
    let id = new_id(p);
    let secret = new_secret(p);
    let sealed = key.seal(p, &id, secret.as_bytes());
    let statements = vec![
        crate::auth::account_exists(owner_id),
        Statement {
            sql: "INSERT INTO access_keys (id, owner_id, name, sealed_secret, created_at) VALUES (?, ?, ?, ?, ?)",
            params: vec![id.clone().into(), owner_id.into(), name.into(), sealed.into(), SqlValue::Integer(now_ms)],
        },
        guard!("(SELECT COUNT(*) FROM access_keys WHERE owner_id = ?) <= ?", owner_id, MAX_PER_USER),
    ];
    match db.batch(statements).await {
        Ok(()) => Ok((AccessKey { id, owner_id: owner_id.to_owned(), name: name.to_owned(), created_at: now_ms }, secret)),
        Err(StoreError::Conflict) => Err(crate::auth::gone_or(db, owner_id, || {
            Problem::new(ProblemKind::LimitExceeded, format!("an account holds at most {MAX_PER_USER} access keys; delete one first"))
        })
        .await),
        Err(e) => Err(store_failure(e)),
    }
}

/// The owner's keys, oldest first.
pub async fn list(db: &impl Sql, owner_id: &str) -> Result<Vec<AccessKey>, Problem> {
    let rows = db
        .query(&format!("SELECT {COLUMNS} FROM access_keys WHERE owner_id = ? ORDER BY created_at, id"), vec![owner_id.into()])
        .await
        .map_err(store_failure)?;
    rows.iter().map(from_row).collect::<Result<_, _>>().map_err(store_failure)
}

/// Deletes one of the owner's keys: from then on, nothing signed with it is accepted.
/// `404` for a key that is not the owner's (whether it exists is not disclosed).
pub async fn delete(db: &impl Sql, owner_id: &str, id: &str) -> Result<(), Problem> {
    let deleted = db.execute("DELETE FROM access_keys WHERE id = ? AND owner_id = ?", vec![id.into(), owner_id.into()]).await.map_err(store_failure)?;
    if deleted == 0 {
        return Err(Problem::not_found(format!("no access key {id}")));
    }
    Ok(())
}

/// A key and its secret, for verifying a signature made with it; `None` for an unknown key.
pub async fn secret(config: &impl Config, db: &impl Sql, id: &str) -> Result<Option<(AccessKey, String)>, Problem> {
    if !is_id(id) {
        return Ok(None);
    }
    let rows = db
        .query(&format!("SELECT {COLUMNS}, sealed_secret FROM access_keys WHERE id = ?"), vec![id.into()])
        .await
        .map_err(store_failure)?;
    let Some(row) = rows.first() else { return Ok(None) };
    let key = from_row(row).map_err(store_failure)?;
    let sealed = row.text(4).map_err(store_failure)?;
    let opened = sealing_key(config).await?.open(&key.id, sealed).and_then(|s| String::from_utf8(s).ok());
    match opened {
        Some(secret) => Ok(Some((key, secret))),
        None => {
            // Sealed under another key (the setting was changed) or altered in the database.
            eprintln!("vaultx: access key {id}: its secret does not open under access_key_sealing_key");
            Err(Problem::internal())
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::files_tests::{authed, signed_in};
    use crate::testing::*;
    use vaultx_core::http::ApiResponse;

    const SEALING: &str = "sealing-key-sealing-key-sealing-key-01";

    fn call(p: &TestPlatform, function: &str, method: &str, path: &str, token: &str, body: &str) -> ApiResponse {
        run(crate::routes::dispatch(function, p, Ok(authed(method, path, token, "application/json", body.as_bytes().to_vec()))))
    }

    fn status_slug(r: &ApiResponse) -> (u16, String) {
        (r.status, body_json(r)["type"].as_str().unwrap_or("").trim_start_matches("urn:vaultx:problem:").to_owned())
    }

    fn db(p: &TestPlatform) -> <TestPlatform as vaultx_core::ports::Platform>::Metadata {
        run(vaultx_core::ports::Platform::metadata(p)).unwrap()
    }

    fn sealed_platform() -> TestPlatform {
        let p = TestPlatform::new();
        p.vars.borrow_mut().insert(crate::settings::ACCESS_KEY_SEALING_KEY.into(), SEALING.into());
        p
    }

    #[test]
    fn a_key_is_shown_once_listed_without_its_secret_and_deleted_by_its_owner_only() {
        let p = sealed_platform();
        let (alice, bob) = (signed_in(&p), signed_in(&p));
        let created = call(&p, "access-keys", "POST", "/api/users/me/access-keys", &alice, r#"{"name":"laptop"}"#);
        assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(created.body.bytes()));
        let created = body_json(&created);
        let (id, secret) = (created["accessKeyId"].as_str().unwrap().to_owned(), created["secretAccessKey"].as_str().unwrap().to_owned());
        assert!(super::is_id(&id), "{id}");
        assert_eq!(secret.len(), 40);
        assert_eq!(created["name"], "laptop");

        let listed = body_json(&call(&p, "access-keys", "GET", "/api/users/me/access-keys", &alice, ""));
        assert_eq!(listed["items"].as_array().unwrap().len(), 1);
        assert_eq!(listed["items"][0]["accessKeyId"], id.as_str());
        assert!(!listed.to_string().contains(&secret), "the list never shows a secret");
        assert_eq!(body_json(&call(&p, "access-keys", "GET", "/api/users/me/access-keys", &bob, ""))["items"], serde_json::json!([]));

        // At rest the secret is sealed; the signature check gets it back.
        let stored: String = p.conn.query_row("SELECT sealed_secret FROM access_keys WHERE id = ?1", [&id], |r| r.get(0)).unwrap();
        assert!(!stored.contains(&secret));
        let (key, opened) = run(super::secret(&p, &db(&p), &id)).unwrap().unwrap();
        assert_eq!((key.name.as_str(), opened.as_str()), ("laptop", secret.as_str()));

        let path = format!("/api/users/me/access-keys/{id}");
        assert_eq!(status_slug(&call(&p, "access-key", "DELETE", &path, &bob, "")), (404, "not-found".into()));
        assert_eq!(call(&p, "access-key", "DELETE", &path, &alice, "").status, 204);
        assert_eq!(status_slug(&call(&p, "access-key", "DELETE", &path, &alice, "")), (404, "not-found".into()));
        assert!(run(super::secret(&p, &db(&p), &id)).unwrap().is_none(), "a deleted key signs nothing");
    }

    #[test]
    fn an_account_holds_at_most_five_keys() {
        let p = sealed_platform();
        let token = signed_in(&p);
        for _ in 0..super::MAX_PER_USER {
            assert_eq!(call(&p, "access-keys", "POST", "/api/users/me/access-keys", &token, "").status, 201);
        }
        assert_eq!(status_slug(&call(&p, "access-keys", "POST", "/api/users/me/access-keys", &token, "{}")), (409, "limit-exceeded".into()));
        let count: i64 = p.conn.query_row("SELECT COUNT(*) FROM access_keys", [], |r| r.get(0)).unwrap();
        assert_eq!(count, super::MAX_PER_USER);
    }

    #[test]
    fn bad_names_and_a_deployment_without_a_sealing_key_are_refused_and_store_nothing() {
        let p = sealed_platform();
        let token = signed_in(&p);
        let long = format!(r#"{{"name":"{}"}}"#, "x".repeat(65));
        assert_eq!(status_slug(&call(&p, "access-keys", "POST", "/api/users/me/access-keys", &token, &long)), (422, "validation-failed".into()));
        assert_eq!(status_slug(&call(&p, "access-keys", "POST", "/api/users/me/access-keys", &token, r#"{"name":"a\u0007"}"#)), (422, "validation-failed".into()));
        assert_eq!(status_slug(&call(&p, "access-keys", "POST", "/api/users/me/access-keys", &token, r#"{"nom":"a"}"#)).0, 422);
        p.vars.borrow_mut().remove(crate::settings::ACCESS_KEY_SEALING_KEY);
        assert_eq!(status_slug(&call(&p, "access-keys", "POST", "/api/users/me/access-keys", &token, "")), (503, "not-configured".into()));
        let count: i64 = p.conn.query_row("SELECT COUNT(*) FROM access_keys", [], |r| r.get(0)).unwrap();
        assert_eq!(count, 0);
    }
}
