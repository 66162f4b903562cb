//! Per-user quotas on stored bytes and file count.
//!
//! A file or version **reserves its declared size** when it is created: the row insert and
//! the quota check are one guarded batch (the guard sums the user's rows *after* the insert),
//! so concurrent creations cannot together pass the limit. Bytes are counted for every row the
//! user has — uploading, available, archived, and every version. Each chunk is checked again
//! before its bytes are stored, so lowering a quota stops uploads already under way. A
//! refusal is `507 quota-exceeded` (the request is fine; the account is full) and leaves
//! nothing behind. Limits: `quota_bytes` and `quota_files` (0 = unlimited), overridden per user
//! by an admin (`PUT /api/admin/users/:id/quota`).

use crate::store::store_failure;
use serde::Serialize;
use vaultx_core::guard;
use vaultx_core::ports::{Config, Sql, SqlValue, Statement};
use vaultx_core::problem::ProblemKind;
use vaultx_core::Problem;

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Quota {
    /// 0: unlimited.
    pub max_bytes: u64,
    pub max_files: u64,
    /// Whether an admin set it for this user (else the configured default).
    pub custom: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Used {
    pub bytes: u64,
    pub files: u64,
}

pub async fn of(config: &impl Config, db: &impl Sql, user_id: &str) -> Result<Quota, Problem> {
    let rows = db.query("SELECT max_bytes, max_files FROM user_quotas WHERE user_id = ?", vec![user_id.into()]).await.map_err(store_failure)?;
    if let Some(r) = rows.first() {
        return Ok(Quota { max_bytes: r.int(0).map_err(store_failure)? as u64, max_files: r.int(1).map_err(store_failure)? as u64, custom: true });
    }
    let (max_bytes, max_files) = crate::settings::default_quota(config).await?;
    Ok(Quota { max_bytes, max_files, custom: false })
}

pub async fn used(db: &impl Sql, user_id: &str) -> Result<Used, Problem> {
    let rows = db
        .query(
            "SELECT COALESCE(SUM(size), 0), COALESCE(SUM(CASE WHEN version_of IS NULL THEN 1 ELSE 0 END), 0) FROM files WHERE owner_id = ?",
            vec![user_id.into()],
        )
        .await
        .map_err(store_failure)?;
    Ok(rows.first().map(|r| Ok::<_, Problem>(Used { bytes: r.int(0).map_err(store_failure)? as u64, files: r.int(1).map_err(store_failure)? as u64 })).transpose()?.unwrap_or_default())
}

/// The guards that keep the user within `quota` once the batch's inserts are in: put them
/// after the statements that add rows.
pub fn guards(user_id: &str, quota: &Quota) -> Vec<Statement> {
    let mut out = Vec::new();
    if quota.max_bytes > 0 {
        out.push(guard!("(SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM files WHERE owner_id = ?) <= ?", user_id, SqlValue::Integer(quota.max_bytes as i64)));
    }
    if quota.max_files > 0 {
        out.push(guard!("(SELECT count(*) FROM files WHERE owner_id = ? AND version_of IS NULL) <= ?", user_id, SqlValue::Integer(quota.max_files as i64)));
    }
    out
}

/// The refusal for a creation of `size` bytes (and `new_files` files) that does not fit.
pub fn exceeded(quota: &Quota, used: &Used, size: u64, new_files: u64) -> Option<Problem> {
    if quota.max_files > 0 && used.files + new_files > quota.max_files {
        return Some(Problem::new(ProblemKind::QuotaExceeded, format!("the account has {} of its {} files", used.files, quota.max_files)));
    }
    if quota.max_bytes > 0 && used.bytes + size > quota.max_bytes {
        return Some(Problem::new(
            ProblemKind::QuotaExceeded,
            format!("{size} more bytes would exceed the account's quota: {} of {} bytes are used or reserved", used.bytes, quota.max_bytes),
        ));
    }
    None
}

/// The refusal when a concurrent creation took the room between the check and the insert.
pub fn refused(quota: &Quota) -> Problem {
    Problem::new(ProblemKind::QuotaExceeded, format!("the account's quota ({} bytes, {} files; 0 = unlimited) would be exceeded", quota.max_bytes, quota.max_files))
}

/// Before a chunk's bytes are stored: refuses if the account is over its quota (it was
/// lowered since the file reserved its size).
pub async fn check_chunk(config: &impl Config, db: &impl Sql, user_id: &str) -> Result<(), Problem> {
    let quota = of(config, db, user_id).await?;
    if quota.max_bytes == 0 && quota.max_files == 0 {
        return Ok(());
    }
    let used = used(db, user_id).await?;
    match exceeded(&quota, &used, 0, 0) {
        Some(p) => Err(p),
        None => Ok(()),
    }
}
