//! Access keys as s3s's secret-key lookup: s3s verifies the signature with the secret this
//! returns; the key's owner becomes the request's caller.

use std::rc::Rc;

use s3s::S3Result;
use s3s::auth::{S3Auth, SecretKey};
use send_wrapper::SendWrapper;
use vaultx_core::ports::Platform;

use crate::Cx;

pub(crate) struct Keys<P> {
    pub cx: SendWrapper<Rc<Cx<P>>>,
}

#[async_trait::async_trait]
impl<P: Platform + 'static> S3Auth for Keys<P> {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        SendWrapper::new(async {
            let cx = &**self.cx;
            let unknown = || s3s::s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records.");
            if !vaultx_api::access_keys::is_id(access_key) {
                return Err(unknown());
            }
            let db = cx.p.metadata().await.map_err(|e| crate::errors::from_problem(vaultx_api::store::store_failure(e)))?;
            let (key, secret) = vaultx_api::access_keys::secret(&cx.p, &db, access_key).await.map_err(crate::errors::from_problem)?.ok_or_else(unknown)?;
            *cx.owner.borrow_mut() = Some(key.owner_id);
            Ok(SecretKey::from(secret))
        })
        .await
    }
}
