//! A cached bearer token that is refreshed ahead of expiry.
//!
//! While a token is fresh, every request reads it. Within [`REFRESH_MARGIN`] of expiry, one
//! request fetches a new one while concurrent requests keep using the still-valid token. Only when
//! no valid token exists do requests wait, and then on a single shared fetch.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use modelgate_core::SecretString;
use tokio::sync::{Mutex as AsyncMutex, RwLock};

use crate::ProviderError;

/// Refresh this long before expiry.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

#[derive(Clone)]
struct Cached {
    token: SecretString,
    expires: Instant,
}

/// See the module documentation.
#[derive(Default)]
pub struct TokenCache {
    cached: RwLock<Option<Cached>>,
    refreshing: AsyncMutex<()>,
}

impl TokenCache {
    /// A valid token, fetching one with `fetch` (which returns the token and its lifetime) when needed.
    pub async fn get<F, Fut>(&self, fetch: F) -> Result<SecretString, ProviderError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(SecretString, Duration), ProviderError>>,
    {
        let now = Instant::now();
        let current = self.cached.read().await.clone();
        if let Some(c) = &current {
            if c.expires > now + REFRESH_MARGIN {
                return Ok(c.token.clone());
            }
            if c.expires > now {
                return match self.refreshing.try_lock() {
                    Ok(_guard) => Ok(self.store(fetch().await).await.unwrap_or_else(|_| c.token.clone())),
                    Err(_) => Ok(c.token.clone()),
                };
            }
        }
        let _guard = self.refreshing.lock().await;
        if let Some(c) = self.cached.read().await.clone()
            && c.expires > Instant::now() + REFRESH_MARGIN
        {
            return Ok(c.token);
        }
        self.store(fetch().await).await
    }

    /// The token now cached, if any (for redaction; never waits).
    pub fn current(&self) -> Option<String> {
        self.cached.try_read().ok()?.as_ref().map(|c| c.token.expose().to_string())
    }

    async fn store(
        &self,
        fetched: Result<(SecretString, Duration), ProviderError>,
    ) -> Result<SecretString, ProviderError> {
        let (token, lifetime) = fetched?;
        *self.cached.write().await = Some(Cached { token: token.clone(), expires: Instant::now() + lifetime });
        Ok(token)
    }
}

/// The token caches of every adapter, keyed by the credential they hold, so that adapters rebuilt
/// with the same credential (every control-plane write rebuilds them) share one cache instead of
/// fetching a new token. A cache lives while an adapter uses it.
#[derive(Clone, Default)]
pub struct TokenCaches {
    by_key: Arc<Mutex<HashMap<String, Weak<TokenCache>>>>,
}

impl std::fmt::Debug for TokenCaches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCaches").finish_non_exhaustive()
    }
}

impl TokenCaches {
    /// The cache for the credential identified by `parts` (hashed: the key holds no secret).
    pub fn get(&self, parts: &[&str]) -> Arc<TokenCache> {
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        for p in parts {
            digest.update(&(p.len() as u64).to_le_bytes());
            digest.update(p.as_bytes());
        }
        let key = modelgate_core::token::hex(digest.finish().as_ref());
        let mut map = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, cache| cache.strong_count() > 0);
        if let Some(cache) = map.get(&key).and_then(Weak::upgrade) {
            return cache;
        }
        let cache = Arc::new(TokenCache::default());
        map.insert(key, Arc::downgrade(&cache));
        cache
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_are_shared_by_credential_while_in_use() {
        let caches = TokenCaches::default();
        let a = caches.get(&["tenant", "client", "secret"]);
        let b = caches.get(&["tenant", "client", "secret"]);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &caches.get(&["tenant", "client", "other"])));
        assert!(!Arc::ptr_eq(&a, &caches.get(&["tenantc", "lient", "secret"])), "parts are delimited");
        drop((a, b));
        assert_eq!(caches.by_key.lock().unwrap().values().filter(|w| w.strong_count() > 0).count(), 0);
    }
}
