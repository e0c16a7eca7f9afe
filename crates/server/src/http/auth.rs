//! Bearer-token authentication and request logging.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use modelgate_core::{now_ms, token};

use crate::error::ApiError;
use crate::error::ErrorCode;
use crate::snapshot::Principal;
use crate::state::AppState;

/// Paths that answer without a token: liveness, readiness and the SDK's startup probe.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/.well-known/databricks-config")
}

/// Resolves the bearer token (or an `x-api-key` header) against the snapshot and attaches the
/// [`Principal`]. Every path that
/// is not public needs a valid token, unknown paths included, so the route table is not
/// discoverable without credentials.
pub async fn authenticate(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    if is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let header = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let bearer = match header {
        Some(value) => match bearer_token(value) {
            Some(b) => b,
            None => return refused("The Authorization header must be 'Bearer <token>'."),
        },
        // Anthropic's clients (its SDK, Claude Code) send their key as `x-api-key`.
        None => match req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) {
            Some(key) => key.trim(),
            None => {
                return refused(
                    "Missing Authorization header: send 'Authorization: Bearer <token>' (or 'x-api-key: <token>').",
                );
            }
        },
    };
    let principal = app.snapshot.load().tokens.get(&token::hash(bearer)).cloned();
    match principal {
        Some(p) if p.expires_at.is_none_or(|t| t > now_ms()) => {
            req.extensions_mut().insert(p.clone());
            let mut resp = next.run(req).await;
            resp.extensions_mut().insert(p);
            resp
        }
        Some(_) => refused("The token has expired."),
        None => refused("Invalid access token."),
    }
}

/// A 401 sent before the request's body was read: the connection is closed after it
/// (`Connection: close`), so a client does not send its next request on a connection whose
/// unread body the server is about to drop it for.
fn refused(message: &str) -> Response {
    let mut resp = ApiError::Unauthenticated(message.into()).into_response();
    resp.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    resp
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive
/// (RFC 7235).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// One log line per request: method, path (no query string, no headers), status, latency, user,
/// and for a failure its error code and the message the client got (which names the cause and the
/// upstream host, never a credential); server-side failures (5xx) at `warn`.
pub async fn log_requests(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let user = resp.extensions().get::<Arc<Principal>>().map(|p| p.user_name.clone());
    let user = user.as_deref().unwrap_or("-");
    let status = resp.status().as_u16();
    let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
    match resp.extensions().get::<ErrorCode>() {
        None => tracing::info!(%method, %path, status, latency_ms, user, "request"),
        Some(e) if status >= 500 => {
            tracing::warn!(%method, %path, status, latency_ms, user, error_code = e.code, error = %e.message, "request failed")
        }
        Some(e) => {
            tracing::info!(%method, %path, status, latency_ms, user, error_code = e.code, error = %e.message, "request refused")
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER   abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }
}
