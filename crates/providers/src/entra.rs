//! Microsoft Entra ID client-credentials tokens for Azure OpenAI.
//!
//! A token is fetched from the tenant's token endpoint and kept in a [`TokenCache`], which
//! refreshes it ahead of expiry without stalling concurrent requests.

use std::sync::Arc;
use std::time::Duration;

use modelgate_core::SecretString;
use serde::Deserialize;

use crate::ProviderError;
use crate::token_cache::TokenCache;

/// Scope of Azure OpenAI (Cognitive Services) tokens.
pub const SCOPE: &str = "https://cognitiveservices.azure.com/.default";
/// Default authority.
pub const AUTHORITY: &str = "https://login.microsoftonline.com";
/// Largest token-endpoint answer read (token answers are a few kilobytes).
pub const TOKEN_RESPONSE_LIMIT: usize = 256 * 1024;
/// A cached client-credentials token source.
pub struct EntraTokens {
    authority: String,
    tenant: String,
    client_id: String,
    secret: SecretString,
    cache: Arc<TokenCache>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

/// An OAuth error answer.
#[derive(Deserialize)]
struct TokenError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

impl EntraTokens {
    /// A token source for one app registration, sharing its cache with every other source of the
    /// same registration and secret in `caches`.
    pub fn new(
        authority: String,
        tenant: String,
        client_id: String,
        secret: SecretString,
        caches: &crate::token_cache::TokenCaches,
    ) -> Self {
        let cache = caches.get(&["entra", &authority, &tenant, &client_id, secret.expose()]);
        Self { authority, tenant, client_id, secret, cache }
    }

    /// The client secret and the current access token (for redaction).
    pub fn secrets(&self) -> Vec<String> {
        let mut out = vec![self.secret.expose().to_string()];
        out.extend(self.cache.current());
        out
    }

    /// A valid access token.
    pub async fn token(&self, http: &reqwest::Client) -> Result<SecretString, ProviderError> {
        self.cache.get(|| self.fetch(http)).await
    }

    async fn fetch(&self, http: &reqwest::Client) -> Result<(SecretString, Duration), ProviderError> {
        let url = format!("{}/{}/oauth2/v2.0/token", self.authority, self.tenant);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.secret.expose()),
            ("scope", SCOPE),
        ];
        let resp = http
            .post(&url)
            .form(&form)
            .send()
            .await
            .map_err(|e| ProviderError::Connect(format!("Microsoft Entra token endpoint: {}", without_url(&e))))?;
        let status = resp.status();
        let body = crate::body::read_capped(resp, TOKEN_RESPONSE_LIMIT).await?;
        if !status.is_success() {
            let reason = serde_json::from_slice::<TokenError>(&body)
                .ok()
                .and_then(|e| e.error_description.or(e.error))
                .unwrap_or_else(|| format!("HTTP {status}"));
            return Err(ProviderError::Upstream {
                status: 401,
                message: crate::redact(
                    &format!("Microsoft Entra ID refused the client credentials: {reason}"),
                    &[self.secret.expose()],
                ),
                retry_after: None,
            });
        }
        let t: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| ProviderError::BadResponse(format!("Microsoft Entra token response: {e}")))?;
        Ok((SecretString::new(t.access_token), Duration::from_secs(t.expires_in)))
    }
}

/// A reqwest error's text with its causes (`error sending request: connection refused`), without
/// the URL (which may carry query parameters or credentials).
pub fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = c.source();
    }
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "upstream");
    }
    s
}
