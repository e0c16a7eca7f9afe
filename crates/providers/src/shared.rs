//! Pieces several adapters use.

use serde_json::Value;

use crate::{Body, Credentials, ProviderError};
use modelgate_core::SecretString;

/// The credential stored for `field`, or a reason why the entity cannot serve.
pub fn credential(creds: &Credentials, field: &str) -> Result<SecretString, String> {
    creds.get(field).cloned().ok_or_else(|| format!("credential {field} is not available"))
}

/// Moves `extra_params` into the body (provider pass-through) and removes the Databricks-only
/// fields the providers do not know.
pub fn flatten_databricks_fields(body: &mut Body) -> Result<(), ProviderError> {
    body.remove("client_request_id");
    body.remove("usage_context");
    if let Some(extra) = body.remove("extra_params") {
        match extra {
            Value::Object(m) => {
                for (k, v) in m {
                    body.entry(k).or_insert(v);
                }
            }
            Value::Null => {}
            _ => {
                return Err(ProviderError::Unsupported("extra_params must be an object".into()));
            }
        }
    }
    Ok(())
}

/// Reads a provider error body: OpenAI (`{"error": {"message"}}`), Anthropic
/// (`{"type": "error", "error": {"message"}}`), Databricks (`{"message"}`) or plain text.
pub fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let m = v["error"]["message"].as_str().or_else(|| v["message"].as_str()).or_else(|| v["error"].as_str());
            m.map(str::to_string).unwrap_or_else(|| truncate(&text))
        }
        Err(_) => truncate(&text),
    }
}

fn truncate(s: &str) -> String {
    let s = s.trim();
    if s.len() > 500 {
        let mut end = 500;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s.to_string()
    }
}

/// Seconds since the epoch, for `created`.
pub fn now_secs() -> i64 {
    modelgate_core::now_ms() / 1000
}
