//! The prologue every signed-in route shares, so a route module reads as what it does: the
//! method checked (405 with `Allow`), the caller authenticated (401, or 403 for an admin route
//! a user calls), the metadata store opened (503 when it is down), and the caller's own file
//! found by the path (404 for another user's: existence is not disclosed).

use crate::files::{self, FileRecord};
use crate::store::store_failure;
use crate::auth;
use serde::Serialize;
use vaultx_core::Problem;
use vaultx_core::http::{ApiRequest, ApiResponse};
use vaultx_core::ports::Platform;
use vaultx_core::token::Subject;

/// A signed-in call: the request, who made it, and the metadata store.
pub struct Call<P: Platform> {
    pub req: ApiRequest,
    pub user: Subject,
    pub db: P::Metadata,
}

impl<P: Platform> Call<P> {
    /// A call by any signed-in user, with one of `methods`.
    pub async fn user(p: &P, req: ApiRequest, methods: &[&str]) -> Result<Self, Problem> {
        req.expect_method(methods)?;
        let user = auth::authenticate(p, &req).await?;
        let db = p.metadata().await.map_err(store_failure)?;
        Ok(Call { req, user, db })
    }

    /// A call by an administrator (`admin_emails`), with one of `methods`.
    pub async fn admin(p: &P, req: ApiRequest, methods: &[&str]) -> Result<Self, Problem> {
        req.expect_method(methods)?;
        let admin = auth::require_admin(p, &req).await?;
        let db = p.metadata().await.map_err(store_failure)?;
        Ok(Call { req, user: Subject { user_id: admin.id, email: admin.email }, db })
    }

    /// Path segment `index` (`/api/files/:id` has the id at 2), empty when there is none.
    pub fn segment(&self, index: usize) -> String {
        self.req.segments().get(index).copied().unwrap_or("").to_owned()
    }

    /// The caller's file whose id is path segment `index`, by the id clients know (a head).
    pub async fn file(&self, index: usize) -> Result<FileRecord, Problem> {
        files::find_head(&self.db, &self.user.user_id, &self.segment(index)).await
    }

    /// The caller's file or version upload whose id is path segment `index` (an upload's
    /// chunks and completion are addressed by either).
    pub async fn upload(&self, index: usize) -> Result<FileRecord, Problem> {
        files::find_owned(&self.db, &self.user.user_id, &self.segment(index)).await
    }
}

/// A JSON answer about the caller's own data: never stored by a shared cache.
pub fn private_json(status: u16, body: &impl Serialize) -> ApiResponse {
    ApiResponse::json(status, body).with_header("cache-control", "private, no-store")
}
