//! Cohere v2 (`/v2/chat`, `/v2/embed`).
//!
//! The v2 chat API takes OpenAI-style messages and tools, so translation is mostly renaming:
//! `top_p` → `p`, `stop` → `stop_sequences`. Completions are sent as one user message. Answers
//! and the stream (`message-start`, `content-delta`, `tool-call-*`, `message-end`) become OpenAI
//! shapes. Embeddings ask for floats and answer in the client's `encoding_format` (the openai SDK
//! asks for base64).

use bytes::Bytes;
use modelgate_core::SecretString;
use modelgate_wire::ExternalModel;
use serde_json::{Map, Value, json};

use crate::shared::{Chunks, credential, flatten_databricks_fields, now_secs};
use crate::{Adapter, Body, Credentials, ProviderError, ResponseOptions, Settings, StreamItem, StreamTranslator, Task};

/// Default API base.
pub const BASE: &str = "https://api.cohere.com";

/// Adapter for `provider: cohere`.
pub struct Cohere {
    base: String,
    model: String,
    key: SecretString,
}

impl Cohere {
    /// Builds the adapter.
    pub fn new(model: &ExternalModel, creds: &Credentials, settings: &Settings) -> Result<Self, String> {
        let configured = model.cohere_config.as_ref().and_then(|c| c.cohere_api_base.clone());
        Ok(Self {
            base: configured
                .map(|b| b.trim_end_matches('/').to_string())
                .unwrap_or_else(|| settings.base_url("cohere", BASE)),
            model: model.name.clone(),
            key: credential(creds, "cohere_config.cohere_api_key")?,
        })
    }
}

fn unsupported(what: &str) -> ProviderError {
    crate::shared::unsupported("cohere", what)
}

const CHAT_FIELDS: &[&str] = &[
    "model",
    "messages",
    "prompt",
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "stream",
    "stream_options",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "tools",
    "tool_choice",
    "response_format",
    "n",
    "user",
    "k",
];

/// Turns the internal body into a Cohere v2 chat request.
pub fn chat_request(model: &str, task: Task, mut body: Body, stream: bool) -> Result<Value, ProviderError> {
    flatten_databricks_fields(&mut body)?;
    crate::shared::refuse_unknown(&body, CHAT_FIELDS, "cohere")?;
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    let messages = crate::shared::chat_messages(task, &body, "cohere")?;
    let messages: Vec<Value> = messages
        .iter()
        .map(|m| {
            let mut m = m.clone();
            // v2 takes content as a string or text parts; flatten parts to text.
            if let Some(parts) = m["content"].as_array() {
                let text: String = parts.iter().filter_map(|p| p["text"].as_str()).collect();
                m["content"] = json!(text);
            }
            if m["role"] == "developer" {
                m["role"] = json!("system");
            }
            m
        })
        .collect();
    out.insert("messages".into(), Value::Array(messages));
    crate::shared::copy_fields(
        &body,
        &mut out,
        &[
            ("max_tokens", "max_tokens"),
            ("temperature", "temperature"),
            ("top_p", "p"),
            ("k", "k"),
            ("seed", "seed"),
            ("frequency_penalty", "frequency_penalty"),
            ("presence_penalty", "presence_penalty"),
            ("tools", "tools"),
            ("response_format", "response_format"),
        ],
    );
    if let Some(stop) = crate::shared::stop_sequences(&body) {
        out.insert("stop_sequences".into(), stop);
    }
    match body.get("tool_choice") {
        None => {}
        Some(Value::String(s)) if s == "auto" => {}
        Some(Value::String(s)) if s == "required" => {
            out.insert("tool_choice".into(), json!("REQUIRED"));
        }
        Some(Value::String(s)) if s == "none" => {
            out.insert("tool_choice".into(), json!("NONE"));
        }
        Some(other) => return Err(unsupported(&format!("tool_choice {other}"))),
    }
    if stream {
        out.insert("stream".into(), json!(true));
    }
    Ok(Value::Object(out))
}

fn finish_reason(reason: &Value) -> Value {
    match reason.as_str() {
        Some("COMPLETE") | Some("STOP_SEQUENCE") => json!("stop"),
        Some("MAX_TOKENS") => json!("length"),
        Some("TOOL_CALL") => json!("tool_calls"),
        Some("ERROR") => json!("error"),
        Some(other) => json!(other.to_ascii_lowercase()),
        None => Value::Null,
    }
}

/// OpenAI usage from Cohere's `usage` (billed units when present, else raw tokens).
fn usage(u: &Value) -> Value {
    let units = if u["billed_units"].is_object() { &u["billed_units"] } else { &u["tokens"] };
    let i = units["input_tokens"].as_f64().unwrap_or(0.0) as u64;
    let o = units["output_tokens"].as_f64().unwrap_or(0.0) as u64;
    json!({"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o})
}

/// Turns a Cohere chat answer into an OpenAI chat or text completion.
pub fn from_chat(task: Task, model: &str, r: &Value) -> Value {
    let text: String =
        r["message"]["content"].as_array().into_iter().flatten().filter_map(|c| c["text"].as_str()).collect();
    let finish = finish_reason(&r["finish_reason"]);
    match task {
        Task::Completions => json!({
            "id": r["id"], "object": "text_completion", "created": now_secs(), "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": null}],
            "usage": usage(&r["usage"])
        }),
        _ => {
            let mut message = json!({"role": "assistant", "content": text});
            if let Some(calls) = r["message"]["tool_calls"].as_array().filter(|c| !c.is_empty()) {
                message["tool_calls"] = Value::Array(calls.clone());
            }
            json!({
                "id": r["id"], "object": "chat.completion", "created": now_secs(), "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage(&r["usage"])
            })
        }
    }
}

/// Turns a Cohere embed answer into an OpenAI embeddings list.
pub fn from_embed(model: &str, r: &Value, base64: bool) -> Result<Value, ProviderError> {
    let vectors = r["embeddings"]["float"]
        .as_array()
        .or_else(|| r["embeddings"].as_array())
        .ok_or_else(|| ProviderError::BadResponse("cohere answered without float embeddings".into()))?;
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = crate::shared::embedding_value(v, base64);
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let tokens = r["meta"]["billed_units"]["input_tokens"].as_f64().unwrap_or(0.0) as u64;
    Ok(
        json!({"object": "list", "model": model, "data": data, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
    )
}

#[async_trait::async_trait]
impl Adapter for Cohere {
    fn provider(&self) -> &'static str {
        "cohere"
    }

    async fn request(
        &self,
        http: &reqwest::Client,
        task: Task,
        mut body: Body,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let (url, payload) = match task {
            Task::Embeddings => {
                flatten_databricks_fields(&mut body)?;
                let texts = match body.remove("input") {
                    Some(Value::String(s)) => json!([s]),
                    Some(Value::Array(a)) if a.iter().all(Value::is_string) => Value::Array(a),
                    _ => return Err(unsupported("embedding input that is not text")),
                };
                let input_type = body.remove("input_type").unwrap_or(json!("search_document"));
                body.remove("model");
                body.remove("encoding_format");
                if let Some(k) = body.keys().next() {
                    return Err(unsupported(&format!("the embeddings option '{k}'")));
                }
                (
                    format!("{}/v2/embed", self.base),
                    json!({"model": self.model, "texts": texts, "input_type": input_type, "embedding_types": ["float"]}),
                )
            }
            _ => (format!("{}/v2/chat", self.base), chat_request(&self.model, task, body, stream)?),
        };
        Ok(http.post(url).bearer_auth(self.key.expose()).json(&payload))
    }

    fn response(&self, task: Task, body: Bytes, options: ResponseOptions) -> Result<Bytes, ProviderError> {
        let r: Value = serde_json::from_slice(&body)
            .map_err(|e| ProviderError::BadResponse(format!("cohere answered with invalid JSON: {e}")))?;
        let out = match task {
            Task::Embeddings => from_embed(&self.model, &r, options.embeddings_base64)?,
            _ => from_chat(task, &self.model, &r),
        };
        Ok(Bytes::from(out.to_string()))
    }

    fn stream(&self, task: Task, include_usage: bool) -> Box<dyn StreamTranslator> {
        Box::new(StreamState { out: Chunks::new(task, &self.model), include_usage, tools: 0 })
    }

    fn error_message(&self, body: &[u8]) -> String {
        crate::shared::error_message(body)
    }

    fn secrets(&self) -> Vec<String> {
        vec![self.key.expose().to_string()]
    }
}

struct StreamState {
    out: Chunks,
    include_usage: bool,
    tools: usize,
}

impl StreamTranslator for StreamState {
    fn on_event(&mut self, _event: &str, data: &str) -> Vec<StreamItem> {
        let Ok(ev) = serde_json::from_str::<Value>(data) else {
            return vec![StreamItem::Error(format!(
                "cohere sent a malformed stream event: {}",
                data.chars().take(200).collect::<String>()
            ))];
        };
        let delta = &ev["delta"]["message"];
        match ev["type"].as_str().unwrap_or_default() {
            "message-start" => {
                self.out.id = ev["id"].clone();
                vec![StreamItem::Data(self.out.delta(json!({"role": "assistant", "content": ""}), Value::Null))]
            }
            "content-delta" => {
                vec![StreamItem::Data(self.out.delta(json!({"content": delta["content"]["text"]}), Value::Null))]
            }
            "tool-call-start" => {
                let call = &delta["tool_calls"];
                let d = json!({"tool_calls": [{"index": self.tools, "id": call["id"], "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": call["function"]["arguments"].as_str().unwrap_or_default()}}]});
                self.tools += 1;
                vec![StreamItem::Data(self.out.delta(d, Value::Null))]
            }
            "tool-call-delta" => {
                let d = json!({"tool_calls": [{"index": self.tools.saturating_sub(1),
                    "function": {"arguments": delta["tool_calls"]["function"]["arguments"]}}]});
                vec![StreamItem::Data(self.out.delta(d, Value::Null))]
            }
            "message-end" => {
                let end = &ev["delta"];
                if let Some(err) = end["error"].as_str().filter(|e| !e.is_empty()) {
                    return vec![StreamItem::Error(format!("cohere: {err}"))];
                }
                let mut items = vec![StreamItem::Data(self.out.delta(json!({}), finish_reason(&end["finish_reason"])))];
                if self.include_usage {
                    items.push(StreamItem::Data(self.out.usage(usage(&end["usage"]))));
                }
                items.push(StreamItem::Done);
                items
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn chat_translation() {
        let body = json!({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                          "top_p": 0.9, "stop": "END", "tool_choice": "required", "usage_context": {"a": "b"}});
        let r = chat_request("command-r", Task::Chat, body.as_object().unwrap().clone(), true).unwrap();
        assert_eq!(r["p"], 0.9);
        assert_eq!(r["stop_sequences"], json!(["END"]));
        assert_eq!(r["tool_choice"], "REQUIRED");
        assert_eq!(r["messages"][1]["content"], "hi");
        assert_eq!(r["stream"], true);
        assert!(r.get("usage_context").is_none());
        let bad = json!({"messages": [], "logprobs": true});
        assert!(
            chat_request("m", Task::Chat, bad.as_object().unwrap().clone(), false)
                .unwrap_err()
                .to_string()
                .contains("'logprobs'")
        );
    }

    #[test]
    fn answers_and_stream() {
        let r = json!({"id": "c1", "finish_reason": "MAX_TOKENS", "message": {"role": "assistant", "content": [{"type": "text", "text": "Hey"}]},
                       "usage": {"billed_units": {"input_tokens": 4, "output_tokens": 2}, "tokens": {"input_tokens": 70, "output_tokens": 2}}});
        let out = from_chat(Task::Chat, "command-r", &r);
        assert_eq!(out["choices"][0]["message"]["content"], "Hey");
        assert_eq!(out["choices"][0]["finish_reason"], "length");
        assert_eq!(out["usage"]["total_tokens"], 6);
        let e = from_embed(
            "embed",
            &json!({"embeddings": {"float": [[1.0, 2.0]]}, "meta": {"billed_units": {"input_tokens": 3}}}),
            true,
        )
        .unwrap();
        assert_eq!(
            e["data"][0]["embedding"],
            base64::engine::general_purpose::STANDARD.encode([0, 0, 128, 63, 0, 0, 0, 64u8])
        );

        let mut s = StreamState { out: Chunks::new(Task::Chat, "m"), include_usage: true, tools: 0 };
        let items: Vec<StreamItem> = [
            r#"{"type":"message-start","id":"x","delta":{"message":{"role":"assistant"}}}"#,
            r#"{"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"Hi"}}}}"#,
            r#"{"type":"message-end","delta":{"finish_reason":"COMPLETE","usage":{"billed_units":{"input_tokens":1,"output_tokens":1}}}}"#,
        ]
        .iter()
        .flat_map(|e| s.on_event("", e))
        .collect();
        assert_eq!(items.last(), Some(&StreamItem::Done));
        assert_eq!(items.len(), 5);
    }
}
