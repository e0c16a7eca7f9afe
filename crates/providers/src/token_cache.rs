//! A cached bearer token that is refreshed ahead of expiry.
//!
//! While a token is fresh, every request reads it. Within [`REFRESH_MARGIN`] of expiry, one
//! request fetches a new one while concurrent requests keep using the still-valid token. Only when
//! no valid token exists do requests wait, and then on a single shared fetch.

use std::future::Future;
use std::time::{Duration, Instant};

use modelgate_core::SecretString;
use tokio::sync::{Mutex, RwLock};

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
    refreshing: Mutex<()>,
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
