//! S3 buckets: a name unique in the deployment, one owner, a versioning state. A bucket holds
//! objects (`crate::objects`), each of them a file; the S3 door (`vaultx-s3`) is the only
//! way to make or remove one.

use crate::store::store_failure;
use vaultx_core::Problem;
use vaultx_core::guard;
use vaultx_core::ports::{Row, Sql, SqlValue, Statement, StoreError};

/// Names the deployment's own paths take: path-style S3 shares the host with `/api/…` and
/// `/health…`, so no bucket may be called that.
pub const RESERVED: &[&str] = &["api", "health"];

/// S3's bucket versioning states (`buckets.versioning`): never enabled, enabled, suspended.
pub const UNVERSIONED: &str = "";
pub const VERSIONING_ENABLED: &str = "Enabled";
pub const VERSIONING_SUSPENDED: &str = "Suspended";

#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    pub name: String,
    pub owner_id: String,
    pub created_at: i64,
    pub versioning: String,
}

impl Bucket {
    /// Whether a new PUT keeps the content it replaces as a version (S3 keeps it only while
    /// versioning is enabled).
    pub fn keeps_versions(&self) -> bool {
        self.versioning == VERSIONING_ENABLED
    }
}

const COLUMNS: &str = "name, owner_id, created_at, versioning";

fn from_row(r: &Row) -> Result<Bucket, StoreError> {
    Ok(Bucket { name: r.text(0)?.to_owned(), owner_id: r.text(1)?.to_owned(), created_at: r.int(2)?, versioning: r.text(3)?.to_owned() })
}

/// S3's rules for general purpose bucket names, and VaultX's reserved names. `Err` says why.
pub fn check_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    if !(3..=63).contains(&bytes.len()) {
        return Err("a bucket name has 3 to 63 characters".into());
    }
    if !bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-') {
        return Err("a bucket name has only lower-case letters, digits, dots and hyphens".into());
    }
    let edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !edge(bytes[0]) || !edge(bytes[bytes.len() - 1]) {
        return Err("a bucket name begins and ends with a letter or a digit".into());
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return Err("a bucket name has no two dots, nor a dot and a hyphen, side by side".into());
    }
    if name.split('.').count() == 4 && name.split('.').all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())) {
        return Err("a bucket name is not an IP address".into());
    }
    if ["xn--", "sthree-", "amzn-s3-demo-"].iter().any(|p| name.starts_with(p)) || ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"].iter().any(|s| name.ends_with(s)) {
        return Err("a bucket name does not use a prefix or suffix S3 reserves".into());
    }
    if RESERVED.contains(&name) {
        return Err(format!("{name:?} is reserved: this endpoint also serves /{name}"));
    }
    Ok(())
}

/// A bucket by name, whoever owns it.
pub async fn find(db: &impl Sql, name: &str) -> Result<Option<Bucket>, Problem> {
    let rows = db.query(&format!("SELECT {COLUMNS} FROM buckets WHERE name = ?"), vec![name.into()]).await.map_err(store_failure)?;
    rows.first().map(from_row).transpose().map_err(store_failure)
}

/// The caller's buckets, by name.
pub async fn list(db: &impl Sql, owner_id: &str) -> Result<Vec<Bucket>, Problem> {
    let rows = db.query(&format!("SELECT {COLUMNS} FROM buckets WHERE owner_id = ? ORDER BY name"), vec![owner_id.into()]).await.map_err(store_failure)?;
    rows.iter().map(from_row).collect::<Result<_, _>>().map_err(store_failure)
}

/// What [`create`] did.
#[derive(Debug, PartialEq)]
pub enum Created {
    Created,
    /// The caller has it already (S3's `BucketAlreadyOwnedByYou`).
    AlreadyYours,
    /// Another account has it (S3's `BucketAlreadyExists`).
    Taken,
}

/// Creates a bucket for `owner_id` (whose account must still exist). The name must pass
/// [`check_name`].
pub async fn create(db: &impl Sql, owner_id: &str, name: &str, now_ms: i64) -> Result<Created, Problem> {
    for _ in 0..crate::store::ATTEMPTS {
        if let Some(b) = find(db, name).await? {
            return Ok(if b.owner_id == owner_id { Created::AlreadyYours } else { Created::Taken });
        }
        let batch = vec![
            crate::auth::account_exists(owner_id),
            guard!("NOT EXISTS (SELECT 1 FROM buckets WHERE name = ?)", name),
            Statement {
                sql: "INSERT INTO buckets (name, owner_id, created_at, versioning) VALUES (?, ?, ?, ?)",
                params: vec![name.into(), owner_id.into(), SqlValue::Integer(now_ms), UNVERSIONED.into()],
            },
        ];
        match db.batch(batch).await {
            Ok(()) => return Ok(Created::Created),
            // Someone took the name meanwhile, or the account is gone: read again to tell.
            Err(StoreError::Conflict) | Err(StoreError::Contended) => {
                if find(db, name).await?.is_none() {
                    return Err(crate::auth::gone_or(db, owner_id, crate::store::busy).await);
                }
            }
            Err(e) => return Err(store_failure(e)),
        }
    }
    Err(crate::store::busy())
}

/// What [`delete`] did.
#[derive(Debug, PartialEq)]
pub enum Deleted {
    Deleted,
    /// The bucket still holds objects (S3's `BucketNotEmpty`): it stays.
    NotEmpty,
    /// No such bucket of the caller's.
    NoSuchBucket,
}

/// Deletes the caller's bucket if it holds no object (an object still uploading counts).
pub async fn delete(db: &impl Sql, owner_id: &str, name: &str) -> Result<Deleted, Problem> {
    let batch = vec![
        guard!("NOT EXISTS (SELECT 1 FROM bucket_objects WHERE bucket = ?)", name),
        Statement { sql: "DELETE FROM buckets WHERE name = ? AND owner_id = ?", params: vec![name.into(), owner_id.into()] },
    ];
    if !find(db, name).await?.is_some_and(|b| b.owner_id == owner_id) {
        return Ok(Deleted::NoSuchBucket);
    }
    match db.batch(batch).await {
        Ok(()) => Ok(Deleted::Deleted),
        Err(StoreError::Conflict) => Ok(Deleted::NotEmpty),
        Err(e) => Err(store_failure(e)),
    }
}

/// Sets the bucket's versioning state (`Enabled` or `Suspended`; S3 never goes back to
/// unversioned).
pub async fn set_versioning(db: &impl Sql, name: &str, state: &str) -> Result<(), Problem> {
    db.execute("UPDATE buckets SET versioning = ? WHERE name = ?", vec![state.into(), name.into()]).await.map_err(store_failure)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn bucket_names_follow_s3s_rules() {
        for good in ["abc", "my-bucket", "my.bucket.2", "a1b", "x".repeat(63).as_str()] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in ["ab", "ABC", "my_bucket", "-abc", "abc-", "a..b", "a.-b", "192.168.5.4", "xn--abc", "abc-s3alias", "api", "health", &"x".repeat(64), "tést"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
