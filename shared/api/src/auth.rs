//! Authentication shared by every route that needs a signed-in user.

use crate::{accounts, settings};
use vaultx_core::http::ApiRequest;
use vaultx_core::guard;
use vaultx_core::ports::{Platform, Sql, Statement};
use vaultx_core::problem::ProblemKind;
use vaultx_core::token::{Signer, Subject, TokenError};
use vaultx_core::Problem;

pub async fn signer(p: &impl Platform) -> Result<Signer, Problem> {
    let secret = settings::required(p, settings::JWT_SECRET).await?;
    Signer::new(&secret).map_err(|e| {
        eprintln!("vaultx: {}: {e}", settings::JWT_SECRET);
        Problem::internal()
    })
}

/// The 401 for a valid token whose account no longer exists.
pub fn account_gone() -> Problem {
    Problem::new(ProblemKind::InvalidToken, "the account this token was issued for no longer exists")
}

/// The guard a batch written on an account's behalf opens with: a token can outlive its
/// account, and nothing is stored for one that is gone.
pub fn account_exists(user_id: &str) -> Statement {
    guard!("EXISTS (SELECT 1 FROM users WHERE id = ?)", user_id)
}

/// What a failed guard of a batch that opened with [`account_exists`] meant: the account is
/// gone ([`account_gone`]), or else one of the batch's own guards failed (`refused`).
pub async fn gone_or(db: &impl Sql, user_id: &str, refused: impl FnOnce() -> Problem) -> Problem {
    match db.query("SELECT 1 FROM users WHERE id = ?", vec![user_id.into()]).await {
        Ok(rows) if rows.is_empty() => account_gone(),
        Ok(_) => refused(),
        Err(e) => crate::store::store_failure(e),
    }
}

/// The user a request's bearer token speaks for, or the 401 that explains why not. A token
/// outlives nothing: its account must still exist (writes re-check it in their transaction).
pub async fn authenticate<P: Platform>(p: &P, req: &ApiRequest) -> Result<Subject, Problem> {
    current_user(p, req).await.map(|u| Subject { user_id: u.id, email: u.email })
}

/// The account of a request whose token speaks for an administrator (`admin_emails`); 403
/// for any other account.
pub async fn require_admin<P: Platform>(p: &P, req: &ApiRequest) -> Result<accounts::User, Problem> {
    let user = current_user(p, req).await?;
    let admins = p.get(settings::ADMIN_EMAILS).await.map_err(crate::store::store_failure)?.unwrap_or_default();
    if admins.split(',').map(|e| e.trim().to_ascii_lowercase()).any(|e| !e.is_empty() && e == user.email) {
        Ok(user)
    } else {
        Err(Problem::new(ProblemKind::Forbidden, "this needs an administrator account (admin_emails)"))
    }
}

/// The account a request's bearer token speaks for.
pub async fn current_user<P: Platform>(p: &P, req: &ApiRequest) -> Result<accounts::User, Problem> {
    let token = req.bearer_token()?;
    let subject = signer(p).await?.verify(token, p.now_ms()).map_err(|e| match e {
        TokenError::Expired => Problem::new(ProblemKind::ExpiredToken, "sign in again to get a new access token"),
        TokenError::Invalid(why) => Problem::new(ProblemKind::InvalidToken, why),
    })?;
    let db = p.metadata().await.map_err(crate::store::store_failure)?;
    accounts::find_by_id(&db, &subject.user_id).await.map_err(crate::store::store_failure)?.ok_or_else(account_gone)
}
