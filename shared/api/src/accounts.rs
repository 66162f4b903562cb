//! User accounts in the metadata store.

use vaultx_core::ports::{Row, Sql, SqlValue, StoreError};

#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub created_at_ms: i64,
}

const COLUMNS: &str = "id, email, password_hash, created_at";

fn user(row: &Row) -> Result<User, StoreError> {
    Ok(User {
        id: row.text(0)?.to_owned(),
        email: row.text(1)?.to_owned(),
        password_hash: row.text(2)?.to_owned(),
        created_at_ms: row.int(3)?,
    })
}

pub async fn find_by_email(db: &impl Sql, email: &str) -> Result<Option<User>, StoreError> {
    let rows = db.query(&format!("SELECT {COLUMNS} FROM users WHERE email = ?"), vec![email.into()]).await?;
    rows.first().map(user).transpose()
}

pub async fn find_by_id(db: &impl Sql, id: &str) -> Result<Option<User>, StoreError> {
    let rows = db.query(&format!("SELECT {COLUMNS} FROM users WHERE id = ?"), vec![id.into()]).await?;
    rows.first().map(user).transpose()
}

/// Inserts the user unless the email is taken; returns false when it was.
/// `ON CONFLICT DO NOTHING` makes two concurrent registrations of one email safe.
pub async fn insert(db: &impl Sql, u: &User) -> Result<bool, StoreError> {
    let changed = db
        .execute(
            "INSERT INTO users (id, email, password_hash, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (email) DO NOTHING",
            vec![u.id.clone().into(), u.email.clone().into(), u.password_hash.clone().into(), SqlValue::Integer(u.created_at_ms)],
        )
        .await?;
    Ok(changed == 1)
}
