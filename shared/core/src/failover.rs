//! Reading a download's blob slices with failover, at the edge and without the central
//! database: each slice names the stores holding its blob in the order to try them (the home
//! store, then the copies the manifest lists); a store whose region is deactivated or whose
//! circuit breaker is open is skipped, a store that fails is counted against its breaker and
//! the next one is tried. Used by every adapter's streaming body, one slice at a time.

use crate::breaker::{self, Breaker};
use crate::http::BlobSlice;
use crate::ports::{Blobs, Platform, StoreError};

/// One download's reader: the stores it opened and the breakers it read, each once.
pub struct Reader<P: Platform> {
    p: P,
    home: Option<P::Blobs>,
    open: Vec<((String, String), P::Blobs)>,
    breakers: Vec<((String, String), Breaker, bool)>,
    kv: Option<P::Kv>,
    settings: Option<breaker::Settings>,
}

impl<P: Platform> Reader<P> {
    pub fn new(p: P) -> Self {
        Self { p, home: None, open: Vec::new(), breakers: Vec::new(), kv: None, settings: None }
    }

    /// The slice's bytes from the first of its stores that has them.
    pub async fn read(&mut self, slice: &BlobSlice) -> Result<Vec<u8>, String> {
        if slice.from.is_empty() {
            if self.home.is_none() {
                self.home = Some(self.p.blobs().await.map_err(|e| format!("blob {}: {e}", slice.key))?);
            }
            return slice.read(self.home.as_ref().expect("opened above")).await;
        }
        // Stores the breakers allow first, in order; if none does, all of them anyway: a
        // breaker decides which copy to try first, never that there is none.
        let mut order = Vec::new();
        let mut skipped = Vec::new();
        for store in &slice.from {
            let (breaker, deactivated) = self.breaker(store).await;
            if deactivated || !breaker.allows() { skipped.push(store) } else { order.push(store) }
        }
        order.extend(skipped);
        let mut why = Vec::new();
        for store in order {
            match self.get(store, &slice.key).await {
                Ok(Some(stored)) => {
                    self.succeeded(store).await;
                    match slice.cut(Some(stored)) {
                        Ok(bytes) => return Ok(bytes),
                        Err(e) => why.push(e),
                    }
                }
                // Not there (a copy removed meanwhile): the next store, not the store's fault.
                Ok(None) => why.push(format!("{}: no blob {}", breaker::store_name(&store.0, &store.1), slice.key)),
                Err(e) => {
                    eprintln!("vaultx: reading {} from {}: {e}; trying the next copy", slice.key, breaker::store_name(&store.0, &store.1));
                    self.failed(store).await;
                    why.push(e.to_string());
                }
            }
        }
        Err(format!("blob {}: no store could serve it ({})", slice.key, why.join("; ")))
    }

    async fn get(&mut self, store: &(String, String), key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let at = match self.open.iter().position(|(s, _)| s == store) {
            Some(at) => at,
            None => {
                let blobs = if self.p.home_store().await.ok().as_ref() == Some(store) {
                    self.p.blobs().await?
                } else {
                    self.p.node_blobs(&store.0, &store.1).await?
                };
                self.open.push((store.clone(), blobs));
                self.open.len() - 1
            }
        };
        self.open[at].1.get(key).await
    }

    async fn settings(&mut self) -> breaker::Settings {
        if self.settings.is_none() {
            self.settings = Some(breaker::settings(&self.p).await);
        }
        self.settings.expect("set above")
    }

    async fn kv(&mut self) -> Option<&P::Kv> {
        if self.kv.is_none() {
            self.kv = self.p.kv().await.ok();
        }
        self.kv.as_ref()
    }

    /// The store's breaker and whether its region is deactivated, read once per download.
    async fn breaker(&mut self, store: &(String, String)) -> (Breaker, bool) {
        if let Some((_, b, d)) = self.breakers.iter().find(|(s, _, _)| s == store) {
            return (*b, *d);
        }
        let (now, settings) = (self.p.now_ms(), self.settings().await);
        let closed = Breaker { phase: breaker::Phase::Closed, failures: 0 };
        let (b, d) = match self.kv().await {
            Some(kv) => (
                breaker::read(kv, &store.0, &store.1, now, settings).await.unwrap_or(closed),
                breaker::deactivated(kv, &store.0, &store.1).await.unwrap_or(false),
            ),
            None => (closed, false),
        };
        self.breakers.push((store.clone(), b, d));
        (b, d)
    }

    async fn failed(&mut self, store: &(String, String)) {
        let (now, settings) = (self.p.now_ms(), self.settings().await);
        if let Some(kv) = self.kv().await
            && let Ok(b) = breaker::failed(kv, &store.0, &store.1, now, settings).await
        {
            if let Some(entry) = self.breakers.iter_mut().find(|(s, _, _)| s == store) {
                entry.1 = b;
            }
            if !b.allows() {
                eprintln!("vaultx: circuit breaker for {} is open after {} failures", breaker::store_name(&store.0, &store.1), b.failures);
            }
        }
    }

    async fn succeeded(&mut self, store: &(String, String)) {
        let Some(at) = self.breakers.iter().position(|(s, _, _)| s == store) else { return };
        let was = self.breakers[at].1;
        if was.failures == 0 && was.phase == breaker::Phase::Closed {
            return;
        }
        if let Some(kv) = self.kv().await {
            let _ = breaker::succeeded(kv, &store.0, &store.1, &was).await;
        }
        self.breakers[at].1 = Breaker { phase: breaker::Phase::Closed, failures: 0 };
    }
}
