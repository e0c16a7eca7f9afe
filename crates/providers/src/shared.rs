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

/// The chat messages of the request; a completions `prompt` becomes one user message.
pub fn chat_messages(task: crate::Task, body: &Body, provider: &str) -> Result<Vec<Value>, ProviderError> {
    match task {
        crate::Task::Chat => Ok(body.get("messages").and_then(Value::as_array).cloned().unwrap_or_default()),
        _ => match body.get("prompt") {
            Some(Value::String(p)) => Ok(vec![serde_json::json!({"role": "user", "content": p})]),
            Some(Value::Array(a)) if a.len() == 1 => Ok(vec![serde_json::json!({"role": "user", "content": a[0]})]),
            Some(_) => Err(unsupported(provider, "more than one prompt per request")),
            None => Err(ProviderError::Unsupported("prompt is required".into())),
        },
    }
}

/// `stop` as a list, whether the client sent a string or a list.
pub fn stop_sequences(body: &Body) -> Option<Value> {
    match body.get("stop") {
        Some(Value::String(s)) => Some(serde_json::json!([s])),
        Some(Value::Array(a)) => Some(Value::Array(a.clone())),
        _ => None,
    }
}

/// Copies `from` → `to` for each pair present in `body`.
pub fn copy_fields(body: &Body, out: &mut serde_json::Map<String, Value>, pairs: &[(&str, &str)]) {
    for (from, to) in pairs {
        if let Some(v) = body.get(*from) {
            out.insert((*to).to_string(), v.clone());
        }
    }
}

/// `(media type, base64 data)` of a `data:<type>;base64,<data>` URL.
pub fn data_url(url: &str) -> Option<(&str, &str)> {
    url.strip_prefix("data:").and_then(|r| r.split_once(";base64,"))
}

/// An embedding as the client asked for it: the float array, or base64 of little-endian f32
/// (`encoding_format: base64`).
pub fn embedding_value(values: &Value, base64: bool) -> Value {
    if !base64 {
        return values.clone();
    }
    use base64::Engine;
    let bytes: Vec<u8> = values
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|x| (x.as_f64().unwrap_or(0.0) as f32).to_le_bytes())
        .collect();
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Writes the OpenAI stream chunks of one answer (chat chunks, or text-completion chunks for the
/// completions task).
pub struct Chunks {
    /// What the stream answers.
    pub task: crate::Task,
    /// Answer id.
    pub id: Value,
    /// Model name.
    pub model: Value,
    /// Unix seconds.
    pub created: i64,
}

impl Chunks {
    /// A writer for a new answer.
    pub fn new(task: crate::Task, model: &str) -> Self {
        Self {
            task,
            id: Value::String(format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())),
            model: Value::String(model.to_string()),
            created: now_secs(),
        }
    }

    fn object(&self) -> &'static str {
        if self.task == crate::Task::Completions { "text_completion" } else { "chat.completion.chunk" }
    }

    /// A chunk carrying `delta` (`{"content": ...}`, `{"tool_calls": ...}`, ...) and a finish reason.
    pub fn delta(&self, delta: Value, finish: Value) -> String {
        let choice = if self.task == crate::Task::Completions {
            serde_json::json!({"index": 0, "text": delta["content"].as_str().unwrap_or_default(), "finish_reason": finish, "logprobs": null})
        } else {
            serde_json::json!({"index": 0, "delta": delta, "finish_reason": finish})
        };
        serde_json::json!({"id": self.id, "object": self.object(), "created": self.created, "model": self.model, "choices": [choice]}).to_string()
    }

    /// The final usage chunk (`stream_options.include_usage`): empty `choices` and `usage`.
    pub fn usage(&self, usage: Value) -> String {
        serde_json::json!({"id": self.id, "object": self.object(), "created": self.created, "model": self.model, "choices": [], "usage": usage}).to_string()
    }
}
