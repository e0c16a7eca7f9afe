//! What the gateway itself reads from a query body, typed and read once at the start of the
//! pipeline. The provider adapters read the rest (messages, tools, sampling options) into their
//! own typed request; fields nobody reads pass through untouched.

use serde::Deserialize;
use serde::de::value::MapDeserializer;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use modelgate_providers::Body;

/// The fields of a query that steer the gateway rather than the model.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct QueryFacts {
    /// `stream`: answer as server-sent events.
    #[serde(default, deserialize_with = "null_as_default")]
    pub stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    encoding_format: Option<EncodingFormat>,
    /// `client_request_id`: the caller's id for the query, kept in its usage record.
    #[serde(default)]
    pub client_request_id: Option<String>,
    /// `usage_context`: the caller's labels, for usage records and budget scopes.
    #[serde(default)]
    pub usage_context: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct StreamOptions {
    #[serde(default, deserialize_with = "null_as_default")]
    include_usage: bool,
}

/// `encoding_format` of an embeddings query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum EncodingFormat {
    Float,
    Base64,
}

fn null_as_default<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or_default())
}

impl QueryFacts {
    /// Reads the facts from `body` without copying it; a field of the wrong type is a 400 that
    /// names it.
    pub fn read(body: &Body) -> ApiResult<QueryFacts> {
        let fields = MapDeserializer::<_, serde_json::Error>::new(body.iter().map(|(k, v)| (k.as_str(), v)));
        serde_path_to_error::deserialize(fields).map_err(|e| {
            let field = e.path().to_string();
            ApiError::invalid(&field, e.into_inner())
        })
    }

    /// `stream_options.include_usage`: the client wants the final usage chunk.
    pub fn include_usage(&self) -> bool {
        self.stream_options.as_ref().is_some_and(|o| o.include_usage)
    }

    /// `encoding_format: base64`: embeddings as base64 of little-endian f32.
    pub fn embeddings_base64(&self) -> bool {
        self.encoding_format == Some(EncodingFormat::Base64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> ApiResult<QueryFacts> {
        match v {
            Value::Object(body) => QueryFacts::read(&body),
            _ => unreachable!("a test body is an object"),
        }
    }

    #[test]
    fn reads_the_fields_the_gateway_uses() {
        let f = read(json!({"messages": [], "stream": true, "stream_options": {"include_usage": true},
                            "client_request_id": "r1", "usage_context": {"team": "a"}, "temperature": 0.2}))
        .unwrap();
        assert!(f.stream && f.include_usage() && !f.embeddings_base64());
        assert_eq!(f.client_request_id.as_deref(), Some("r1"));
        assert_eq!(f.usage_context, Some(json!({"team": "a"}).as_object().cloned().unwrap()));
        let none = read(json!({"stream": null, "stream_options": null, "encoding_format": "base64"})).unwrap();
        assert!(!none.stream && !none.include_usage() && none.embeddings_base64());
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named() {
        for (body, field) in [
            (json!({"stream": "yes"}), "stream"),
            (json!({"stream_options": {"include_usage": 1}}), "stream_options.include_usage"),
            (json!({"encoding_format": "int8"}), "encoding_format"),
            (json!({"usage_context": "team-a"}), "usage_context"),
            (json!({"client_request_id": 7}), "client_request_id"),
        ] {
            let err = read(body).unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
    }
}
