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
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: Option<ErrorField>,
        message: Option<String>,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum ErrorField {
        Object { message: Option<String> },
        Text(String),
    }
    let reason = serde_json::from_slice::<ErrorBody>(body).ok().and_then(|b| match b.error {
        Some(ErrorField::Object { message: Some(m) }) | Some(ErrorField::Text(m)) => Some(m),
        _ => b.message,
    });
    reason.unwrap_or_else(|| truncate(&String::from_utf8_lossy(body)))
}

fn truncate(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(500) {
        Some((end, _)) => format!("{}...", s.get(..end).unwrap_or(s)),
        None => s.to_string(),
    }
}

/// Seconds since the epoch, for `created`.
pub fn now_secs() -> i64 {
    modelgate_core::now_ms() / 1000
}

/// `{what} is not supported by provider '{provider}'`.
pub fn unsupported(provider: &str, what: &str) -> ProviderError {
    ProviderError::Unsupported(format!("{what} is not supported by provider '{provider}'"))
}

/// Refuses any option outside `allowed`, and `n` > 1, naming them. Nothing is silently dropped.
pub fn refuse_unknown(body: &Body, allowed: &[&str], provider: &str) -> Result<(), ProviderError> {
    if let Some(k) = body.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(unsupported(provider, &format!("the option '{k}'")));
    }
    if body.get("n").and_then(Value::as_u64).is_some_and(|n| n != 1) {
        return Err(unsupported(provider, "n > 1"));
    }
    Ok(())
}

/// The error item for a stream event that does not parse: what the provider sent (its start) and
/// why it does not fit.
pub fn malformed_event(provider: &str, data: &str, why: &serde_json::Error) -> crate::StreamItem {
    let start: String = data.chars().take(200).collect();
    crate::StreamItem::Error(format!("{provider} sent a malformed stream event ({why}): {start}"))
}

/// An adapter's upstream URL for each task, parsed once: parsing it again for every query was a
/// measurable share of the gateway's CPU per request.
#[derive(Default)]
pub struct ParsedUrls([std::sync::OnceLock<Option<reqwest::Url>>; 5]);

impl ParsedUrls {
    /// The URL for `task`, from `build` the first time; `None` if it does not parse (the caller
    /// then hands the text to the HTTP client, which reports why).
    pub fn get(&self, task: crate::Task, build: impl FnOnce() -> String) -> Option<reqwest::Url> {
        self.0.get(task as usize)?.get_or_init(|| reqwest::Url::parse(&build()).ok()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::ParsedUrls;
    use crate::Task;

    #[test]
    fn a_url_is_built_and_parsed_once_per_task() {
        let urls = ParsedUrls::default();
        let built = std::cell::Cell::new(0);
        let build = |path: &str| {
            built.set(built.get() + 1);
            format!("http://127.0.0.1:9/v1/{path}")
        };
        for _ in 0..3 {
            let chat = urls.get(Task::Chat, || build("chat/completions")).unwrap();
            assert_eq!(chat.as_str(), "http://127.0.0.1:9/v1/chat/completions");
        }
        let embeddings = urls.get(Task::Embeddings, || build("embeddings")).unwrap();
        assert_eq!(embeddings.path(), "/v1/embeddings", "each task has its own");
        assert_eq!(built.get(), 2);
        let bad = ParsedUrls::default();
        assert!(bad.get(Task::Chat, || "not a url".into()).is_none(), "left to the HTTP client to report");
    }
}
