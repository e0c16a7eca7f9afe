//! The one place where failures become HTTP responses.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use modelgate_core::ValidationError;
use modelgate_store::StoreError;
use modelgate_wire::ErrorBody;

/// A failed API call. Each variant fixes the HTTP status and the Databricks `error_code`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request (unparseable JSON, missing body).
    #[error("{0}")]
    BadRequest(String),
    /// A field has a bad value; the message names its path.
    #[error("{0}")]
    InvalidParameter(String),
    /// Missing, unknown or expired token.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller lacks a permission.
    #[error("{0}")]
    PermissionDenied(String),
    /// The named object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The name is taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// The endpoint was retired (its deprecation's sunset has passed).
    #[error("{0}")]
    Gone(String),
    /// The object is busy (an update is in progress).
    #[error("{0}")]
    Conflict(String),
    /// Not allowed in the object's current state.
    #[error("{0}")]
    InvalidState(String),
    /// A quota would be exceeded.
    #[error("{0}")]
    LimitExceeded(String),
    /// No such route.
    #[error("{0}")]
    NoRoute(String),
    /// Route exists, method does not.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// An upstream provider failed; the status, code and reason come from
    /// [`ApiError::from_provider`].
    #[error("{message}")]
    Upstream {
        /// Status sent to the client.
        status: StatusCode,
        /// `error_code` sent to the client.
        code: &'static str,
        /// The provider's reason, credentials redacted.
        message: String,
        /// Seconds for `Retry-After`.
        retry_after: Option<u64>,
    },
    /// A rate limit is full.
    #[error("{message}")]
    RateLimited {
        /// Names the limit.
        message: String,
        /// The limit.
        limit: u64,
        /// Whether it counts tokens (else calls).
        tokens: bool,
        /// Seconds until the window resets.
        reset_secs: u64,
    },
    /// A `BLOCK` budget policy has no money left this period.
    #[error("{message}")]
    BudgetExhausted {
        /// Names the policy.
        message: String,
        /// Seconds until the period ends.
        retry_after: u64,
    },
    /// A guardrail refused the request or the answer.
    #[error("{message}")]
    Guardrail {
        /// Whether the answer (else the request) was refused.
        output: bool,
        /// Names the guardrail.
        message: String,
    },
    /// The request body is over the size limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The client did not send its request in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// A dependency (the store) is not reachable right now, or the server is at a limit.
    #[error("{0}")]
    Unavailable(String),
    /// A server-side failure; the detail goes to the log, not to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// HTTP status and `error_code` of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            ApiError::InvalidParameter(_) => (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE"),
            ApiError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
            ApiError::PermissionDenied(_) => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST"),
            ApiError::AlreadyExists(_) => (StatusCode::CONFLICT, "RESOURCE_ALREADY_EXISTS"),
            ApiError::Gone(_) => (StatusCode::GONE, "ENDPOINT_RETIRED"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "RESOURCE_CONFLICT"),
            ApiError::InvalidState(_) => (StatusCode::BAD_REQUEST, "INVALID_STATE"),
            ApiError::LimitExceeded(_) => (StatusCode::BAD_REQUEST, "RESOURCE_LIMIT_EXCEEDED"),
            ApiError::NoRoute(_) => (StatusCode::NOT_FOUND, "ENDPOINT_NOT_FOUND"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "BAD_REQUEST"),
            ApiError::Upstream { status, code, .. } => (*status, code),
            ApiError::RateLimited { .. } | ApiError::BudgetExhausted { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "REQUEST_LIMIT_EXCEEDED")
            }
            ApiError::Guardrail { output: false, .. } => (StatusCode::BAD_REQUEST, "INPUT_GUARDRAIL_TRIGGERED"),
            ApiError::Guardrail { output: true, .. } => (StatusCode::BAD_REQUEST, "OUTPUT_GUARDRAIL_TRIGGERED"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "TEMPORARILY_UNAVAILABLE"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"),
        }
    }

    /// Shorthand for [`ApiError::InvalidParameter`] with a field path.
    pub fn invalid(path: &str, message: impl std::fmt::Display) -> Self {
        ApiError::InvalidParameter(format!("{path}: {message}"))
    }
}

impl ApiError {
    /// Maps a provider failure. The provider's status class is kept: its 4xx answers become
    /// 400 (or 429 for rate limits, with `Retry-After`), its 5xx become 502/503/504, a connect
    /// failure 502, a timeout 504. The client's own credentials are never blamed: an upstream 401
    /// is reported as a 400 naming the provider.
    pub fn from_provider(origin: &Origin<'_>, e: modelgate_providers::ProviderError) -> ApiError {
        use modelgate_providers::ProviderError as P;
        let upstream = |status: StatusCode, code, message: String, retry_after| ApiError::Upstream {
            status,
            code,
            message,
            retry_after,
        };
        match e {
            P::Unsupported(m) => ApiError::InvalidParameter(m),
            P::Upstream { status, message, retry_after } => {
                let text = format!("{origin} answered HTTP {status}: {message}");
                match status {
                    429 => {
                        upstream(StatusCode::TOO_MANY_REQUESTS, "REQUEST_LIMIT_EXCEEDED", text, retry_after.or(Some(1)))
                    }
                    400..=499 => upstream(StatusCode::BAD_REQUEST, "BAD_REQUEST", text, None),
                    503 | 529 => {
                        upstream(StatusCode::SERVICE_UNAVAILABLE, "TEMPORARILY_UNAVAILABLE", text, retry_after)
                    }
                    504 => upstream(StatusCode::GATEWAY_TIMEOUT, "DEADLINE_EXCEEDED", text, None),
                    _ => upstream(StatusCode::BAD_GATEWAY, "BAD_GATEWAY", text, None),
                }
            }
            P::Connect(m) => {
                upstream(StatusCode::BAD_GATEWAY, "BAD_GATEWAY", format!("{origin} could not be reached: {m}"), None)
            }
            P::Timeout(m) => {
                upstream(StatusCode::GATEWAY_TIMEOUT, "DEADLINE_EXCEEDED", format!("{origin} timed out: {m}"), None)
            }
            P::TooLarge(m) => upstream(
                StatusCode::BAD_GATEWAY,
                "BAD_GATEWAY",
                format!("{origin} sent too much: {m} (see --max-upstream-body)"),
                None,
            ),
            P::BadResponse(m) => {
                upstream(StatusCode::BAD_GATEWAY, "BAD_GATEWAY", format!("{origin} sent an invalid answer: {m}"), None)
            }
        }
    }
}

/// Where a provider failure happened, for its message: the served entity, its provider and the
/// upstream host (never a full URL: it may carry credentials).
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The served entity's name (`served-model-name`).
    pub entity: &'a str,
    /// The provider.
    pub provider: &'a str,
    /// `host:port` of the upstream, once the request was built.
    pub host: Option<&'a str>,
}

impl std::fmt::Display for Origin<'_> {
    /// `Served entity 'east' (openai at api.openai.com:443)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host {
            Some(host) => write!(f, "Served entity '{}' ({} at {host})", self.entity, self.provider),
            None => write!(f, "Served entity '{}' ({})", self.entity, self.provider),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::InvalidParameter(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => ApiError::NotFound(m),
            StoreError::AlreadyExists(m) => ApiError::AlreadyExists(m),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::InvalidState(m) => ApiError::InvalidState(m),
            StoreError::Invalid(m) => ApiError::InvalidParameter(m),
            StoreError::LimitExceeded(m) => ApiError::LimitExceeded(m),
            StoreError::Unavailable(m) => {
                tracing::error!(error = %m, "the database is not reachable");
                ApiError::Unavailable(
                    "The database is not reachable, so changes are refused until it returns; queries are still \
                     served with the configuration as it was."
                        .into(),
                )
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// The `error_code` and message of an error response, for the records the request leaves.
#[derive(Debug, Clone)]
pub struct ErrorCode {
    /// `error_code`.
    pub code: &'static str,
    /// `message`, as sent.
    pub message: Arc<str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                "Internal error; the server log has the details.".to_string()
            }
            other => other.to_string(),
        };
        let recorded = ErrorCode { code, message: Arc::from(message.as_str()) };
        let body = ErrorBody { error_code: code.to_string(), message };
        let mut resp = (status, axum::Json(body)).into_response();
        resp.extensions_mut().insert(recorded);
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let ApiError::RateLimited { limit, tokens, reset_secs, .. } = &self {
            let kind = if *tokens { "tokens" } else { "requests" };
            let h = resp.headers_mut();
            h.insert(header::RETRY_AFTER, HeaderValue::from(*reset_secs));
            if let (Ok(a), Ok(b), Ok(c)) = (
                header::HeaderName::try_from(format!("x-ratelimit-limit-{kind}")),
                header::HeaderName::try_from(format!("x-ratelimit-remaining-{kind}")),
                header::HeaderName::try_from(format!("x-ratelimit-reset-{kind}")),
            ) {
                h.insert(a, HeaderValue::from(*limit));
                h.insert(b, HeaderValue::from(0u64));
                h.insert(
                    c,
                    HeaderValue::from_str(&format!("{reset_secs}s")).unwrap_or(HeaderValue::from_static("60s")),
                );
            }
        }
        if let ApiError::BudgetExhausted { retry_after, .. } = &self {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        if let ApiError::Upstream { retry_after: Some(secs), .. } = &self {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*secs));
        }
        resp
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use modelgate_providers::ProviderError as P;

    use super::*;

    fn mapped(e: P) -> (u16, &'static str, Option<u64>, String) {
        let origin = Origin { entity: "east", provider: "openai", host: Some("api.openai.com:443") };
        match ApiError::from_provider(&origin, e) {
            ApiError::Upstream { status, code, retry_after, message } => (status.as_u16(), code, retry_after, message),
            other => (other.status_and_code().0.as_u16(), other.status_and_code().1, None, other.to_string()),
        }
    }

    #[test]
    fn provider_failures_keep_their_class_and_never_blame_the_client_token() {
        let up = |status, retry_after| P::Upstream { status, message: "why".into(), retry_after };
        let (status, code, retry_after, _) = mapped(up(429, Some(7)));
        assert_eq!((status, code, retry_after), (429, "REQUEST_LIMIT_EXCEEDED", Some(7)));
        assert_eq!(mapped(up(429, None)).2, Some(1), "a 429 always says when to come back");
        let (status, code, _, message) = mapped(up(401, None));
        assert_eq!((status, code), (400, "BAD_REQUEST"), "the provider refused our key, not the caller's token");
        assert!(
            message.contains("Served entity 'east' (openai at api.openai.com:443) answered HTTP 401: why"),
            "{message}"
        );
        assert_eq!(mapped(up(404, None)).0, 400);
        assert_eq!(mapped(up(500, None)).0, 502);
        assert_eq!(mapped(up(503, Some(3))).0, 503);
        assert_eq!(mapped(up(529, None)).0, 503, "Anthropic's overloaded");
        assert_eq!(mapped(up(504, None)).0, 504);
        assert_eq!(mapped(P::Connect("refused".into())).0, 502);
        assert_eq!(mapped(P::Timeout("slow".into())).0, 504);
        assert_eq!(mapped(P::BadResponse("junk".into())).0, 502);
        assert_eq!(mapped(P::TooLarge("big".into())).0, 502);
        assert_eq!(mapped(P::Unsupported("n > 1".into())).1, "INVALID_PARAMETER_VALUE");
    }
}
