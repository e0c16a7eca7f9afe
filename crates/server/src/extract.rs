//! Request extractors whose failures are Databricks-style error bodies.
//!
//! JSON is read strictly: one value and nothing after it, an object at the top, and objects
//! wherever the API expects objects. (serde accepts a struct written as an array of its fields in
//! order; `[]` would then read as "every field absent" and, on a PUT, erase what is stored.)

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// The request body, read once by [`crate::http::limits::read_body`] within the size and time limits.
#[derive(Clone, Debug, Default)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        body_bytes(req, state).await.map(RawBody)
    }
}

/// Takes the body read by the limits layer, or reads it (a router used without that layer).
pub async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    if let Some(RawBody(bytes)) = req.extensions().get::<RawBody>() {
        return Ok(bytes.clone());
    }
    Bytes::from_request(req, state)
        .await
        .map_err(|e| ApiError::BadRequest(format!("could not read the request body: {}", e.body_text())))
}

/// A JSON object body. Syntax errors are `BAD_REQUEST` with the line and column; well-formed JSON
/// of the wrong shape is `INVALID_PARAMETER_VALUE` naming the field path. An empty body reads as
/// `{}`, so routes whose fields are all optional accept a bare POST.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + Serialize, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        parse_object(if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes }).map(ApiJson)
    }
}

/// Parses a JSON object into `T`, refusing trailing data, a non-object top level, and arrays given
/// where `T` has an object.
pub fn parse_object<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = parse_json(bytes)?;
    if !value.is_object() {
        return Err(ApiError::InvalidParameter(format!(
            "the request body must be a JSON object, not {}",
            kind(&value)
        )));
    }
    let parsed: T =
        serde_path_to_error::deserialize(&value).map_err(|e| shape_error(e.path().to_string(), e.inner()))?;
    // What serde read is compared with what was sent: an array where the type has an object means
    // the array was read as a struct's fields in order.
    if let Ok(read) = serde_json::to_value(&parsed)
        && let Some(path) = array_for_object(&value, &read, String::new())
    {
        return Err(ApiError::InvalidParameter(format!("{path}: expected a JSON object, got an array")));
    }
    Ok(parsed)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The path of the first place where `sent` has an array and `read` an object.
fn array_for_object(sent: &Value, read: &Value, path: String) -> Option<String> {
    match (sent, read) {
        (Value::Array(_), Value::Object(_)) => Some(if path.is_empty() { ".".into() } else { path }),
        (Value::Object(s), Value::Object(r)) => s.iter().find_map(|(k, sv)| {
            let rv = r.get(k)?;
            array_for_object(sv, rv, if path.is_empty() { k.clone() } else { format!("{path}.{k}") })
        }),
        (Value::Array(s), Value::Array(r)) => {
            s.iter().zip(r).enumerate().find_map(|(i, (sv, rv))| array_for_object(sv, rv, format!("{path}[{i}]")))
        }
        _ => None,
    }
}

fn shape_error(path: String, inner: &serde_json::Error) -> ApiError {
    // serde's message may end with " at line L column C"; the path says where instead.
    let full = inner.to_string();
    let text = full.rsplit_once(" at line ").map_or(full.as_str(), |(t, _)| t);
    if path == "." || path.is_empty() {
        ApiError::InvalidParameter(text.to_string())
    } else {
        ApiError::InvalidParameter(format!("{path}: {text}"))
    }
}

/// Parses exactly one JSON value (whitespace may follow it, nothing else), with the error
/// classification of [`ApiJson`].
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let out = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => syntax_error(&inner),
            _ => shape_error(path, &inner),
        }
    })?;
    de.end().map_err(|e| syntax_error(&e))?;
    Ok(out)
}

fn syntax_error(e: &serde_json::Error) -> ApiError {
    let full = e.to_string();
    let text = full.rsplit_once(" at line ").map_or(full.as_str(), |(t, _)| t);
    ApiError::BadRequest(format!("malformed JSON at line {} column {}: {text}", e.line(), e.column()))
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

/// Path parameters; a segment that does not decode (bad percent-encoding, not UTF-8) is a JSON
/// `BAD_REQUEST`.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::BadRequest(format!("the URL path is not valid: {}", e.body_text())))
    }
}

/// What the data plane reads from a query's headers.
#[derive(Debug, Clone, Default)]
pub struct QueryHeaders {
    /// The client's `Cache-Control` for the response cache.
    pub cache: crate::policy::cache::Directive,
    /// The client's trace context.
    pub trace: TraceHeaders,
}

/// A client's W3C trace context headers.
#[derive(Debug, Clone, Default)]
pub struct TraceHeaders {
    /// `traceparent`.
    pub traceparent: Option<axum::http::HeaderValue>,
    /// `tracestate`.
    pub tracestate: Option<axum::http::HeaderValue>,
}

impl QueryHeaders {
    /// Reads them from a request's headers.
    pub fn of(headers: &axum::http::HeaderMap) -> Self {
        QueryHeaders {
            cache: crate::policy::cache::Directive::of(headers),
            trace: TraceHeaders {
                traceparent: headers.get("traceparent").cloned(),
                tracestate: headers.get("tracestate").cloned(),
            },
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryHeaders {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(QueryHeaders::of(&parts.headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, Default)]
    struct Inner {
        #[serde(default)]
        a: Option<i64>,
    }

    #[derive(Debug, Serialize, Deserialize, Default)]
    struct Outer {
        #[serde(default)]
        inner: Option<Inner>,
        #[serde(default)]
        list: Option<Vec<Inner>>,
    }

    fn err(text: &str) -> String {
        parse_object::<Outer>(text.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn refuses_trailing_data_arrays_and_non_objects() {
        assert!(parse_object::<Outer>(br#"{"inner": {"a": 1}} "#).is_ok());
        assert!(err(r#"{"inner": {}} junk"#).contains("trailing characters"));
        assert!(err(r#"{} {}"#).contains("trailing"));
        assert!(err("[]").contains("must be a JSON object, not an array"));
        assert!(err("null").contains("not null"));
        assert_eq!(err(r#"{"inner": []}"#), "inner: expected a JSON object, got an array");
        assert_eq!(err(r#"{"list": [{"a": 1}, [2]]}"#), "list[1]: expected a JSON object, got an array");
        assert!(err(r#"{"inner": {"a": "x"}}"#).starts_with("inner.a: invalid type"));
    }
}
