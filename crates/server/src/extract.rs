//! Request extractors whose failures are Databricks-style error bodies.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body. Syntax errors are `BAD_REQUEST` with the line and column; well-formed JSON of
/// the wrong shape is `INVALID_PARAMETER_VALUE` naming the field path. An empty body reads as
/// `{}`, so routes whose fields are all optional accept a bare POST.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("could not read the request body: {}", e.body_text())))?;
        parse_json(if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes }).map(ApiJson)
    }
}

/// Parses JSON with the error classification of [`ApiJson`].
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // serde's message ends with " at line L column C"; say the location once, up front.
        let full = inner.to_string();
        let text = full.rsplit_once(" at line ").map_or(full.as_str(), |(t, _)| t);
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => ApiError::BadRequest(format!(
                "malformed JSON at line {} column {}: {text}",
                inner.line(),
                inner.column()
            )),
            _ => {
                if path == "." || path.is_empty() {
                    ApiError::InvalidParameter(text.to_string())
                } else {
                    ApiError::InvalidParameter(format!("{path}: {text}"))
                }
            }
        }
    })
}

/// Query parameters, with failures as `INVALID_PARAMETER_VALUE`.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded_from(query).map(ApiQuery)
    }
}

fn serde_urlencoded_from<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}").parse().map_err(|_| ApiError::BadRequest("the query string is not valid".into()))?,
    )
    .map(|q| q.0)
    .map_err(|e| ApiError::InvalidParameter(format!("query string: {}", e.body_text())))
}
