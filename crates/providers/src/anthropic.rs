//! Anthropic Messages API.
//!
//! Chat requests become `POST /v1/messages`: system messages are lifted into `system`,
//! consecutive messages of one role are merged (Anthropic requires alternating roles), tool
//! calls and tool results become `tool_use` / `tool_result` blocks, `stop` becomes
//! `stop_sequences`, and `max_tokens` (required by Anthropic) defaults to
//! [`DEFAULT_MAX_TOKENS`]. Completions are sent as one user message. Options Anthropic cannot
//! honour are refused with a 400 naming them. Stream events (`message_start`,
//! `content_block_*`, `message_delta`, `message_stop`, `error`) become OpenAI chunks.

use bytes::Bytes;
use modelgate_core::SecretString;
use modelgate_wire::ExternalModel;
use serde_json::{Map, Value, json};

use crate::shared::{Chunks, credential, flatten_databricks_fields, now_secs};
use crate::{Adapter, Body, Credentials, ProviderError, ResponseOptions, Settings, StreamItem, StreamTranslator, Task};

/// Default API base.
pub const BASE: &str = "https://api.anthropic.com";
/// `anthropic-version` header sent with every request.
pub const API_VERSION: &str = "2023-06-01";
/// `max_tokens` used when the request gives none.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Adapter for `provider: anthropic`.
pub struct Anthropic {
    base: String,
    model: String,
    key: SecretString,
}

impl Anthropic {
    /// Builds the adapter.
    pub fn new(model: &ExternalModel, creds: &Credentials, settings: &Settings) -> Result<Self, String> {
        Ok(Self {
            base: settings.base_url("anthropic", BASE),
            model: model.name.clone(),
            key: credential(creds, "anthropic_config.anthropic_api_key")?,
        })
    }
}

fn unsupported(what: &str) -> ProviderError {
    crate::shared::unsupported("anthropic", what)
}

/// Fields of the internal model that have an Anthropic equivalent (or are ignored on purpose).
const HANDLED: &[&str] = &[
    "model",
    "messages",
    "prompt",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "user",
    "n",
    "metadata",
    "parallel_tool_calls",
];

/// Turns the internal chat body into an Anthropic Messages body.
pub fn to_messages_request(model: &str, task: Task, mut body: Body, stream: bool) -> Result<Value, ProviderError> {
    flatten_databricks_fields(&mut body)?;
    crate::shared::refuse_unknown(&body, HANDLED, "anthropic")?;
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    let max = body.get("max_tokens").or_else(|| body.get("max_completion_tokens")).cloned();
    out.insert("max_tokens".into(), max.unwrap_or(json!(DEFAULT_MAX_TOKENS)));
    if let Some(t) = body.get("temperature") {
        match t.as_f64() {
            Some(v) if (0.0..=1.0).contains(&v) => {
                out.insert("temperature".into(), t.clone());
            }
            _ => {
                return Err(ProviderError::Unsupported(format!(
                    "temperature {t} is outside 0..1, the range provider 'anthropic' accepts"
                )));
            }
        }
    }
    for k in ["top_p", "top_k"] {
        if let Some(v) = body.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    if let Some(stop) = crate::shared::stop_sequences(&body) {
        out.insert("stop_sequences".into(), stop);
    }
    if let Some(u) = body.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": u}));
    }
    if stream {
        out.insert("stream".into(), json!(true));
    }

    if task == Task::Embeddings {
        return Err(unsupported("embeddings"));
    }
    let messages = crate::shared::chat_messages(task, &body, "anthropic")?;
    let (system, turns) = convert_messages(&messages)?;
    if !system.is_empty() {
        out.insert("system".into(), json!(system));
    }
    out.insert("messages".into(), Value::Array(turns));

    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let converted: Result<Vec<Value>, ProviderError> = tools
            .iter()
            .map(|t| {
                let f = &t["function"];
                let name = f["name"].as_str().ok_or_else(|| ProviderError::Unsupported("tools[].function.name is required".into()))?;
                let mut tool = json!({"name": name, "input_schema": f.get("parameters").cloned().unwrap_or(json!({"type": "object"}))});
                if let Some(d) = f.get("description") {
                    tool["description"] = d.clone();
                }
                Ok(tool)
            })
            .collect();
        out.insert("tools".into(), Value::Array(converted?));
    }
    if let Some(choice) = body.get("tool_choice") {
        let c = match choice {
            Value::String(s) if s == "auto" => json!({"type": "auto"}),
            Value::String(s) if s == "required" => json!({"type": "any"}),
            Value::String(s) if s == "none" => json!({"type": "none"}),
            Value::Object(o) if o.get("function").is_some() => {
                json!({"type": "tool", "name": o["function"]["name"]})
            }
            other => {
                return Err(ProviderError::Unsupported(format!(
                    "tool_choice {other} is not supported by provider 'anthropic'"
                )));
            }
        };
        out.insert("tool_choice".into(), c);
    }
    Ok(Value::Object(out))
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join(""),
        _ => String::new(),
    }
}

fn content_blocks(content: &Value) -> Result<Vec<Value>, ProviderError> {
    match content {
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Null => Ok(Vec::new()),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p["type"].as_str() {
                Some("text") => Ok(json!({"type": "text", "text": p["text"]})),
                Some("image_url") => {
                    let url = p["image_url"]["url"].as_str().unwrap_or_default();
                    if url.starts_with("data:") {
                        let (media, data) =
                            crate::shared::data_url(url).ok_or_else(|| unsupported("a non-base64 data URL"))?;
                        Ok(json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}))
                    } else {
                        Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
                    }
                }
                other => Err(unsupported(&format!("message content of type {}", other.unwrap_or("unknown")))),
            })
            .collect(),
        _ => Err(ProviderError::Unsupported("message content must be a string or a list of parts".into())),
    }
}

/// Splits out the system prompt and turns the rest into alternating user/assistant turns.
fn convert_messages(messages: &[Value]) -> Result<(String, Vec<Value>), ProviderError> {
    let mut system = Vec::new();
    let mut turns: Vec<(String, Vec<Value>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or_default();
        let (role, blocks) = match role {
            "system" | "developer" => {
                system.push(text_of(&m["content"]));
                continue;
            }
            "user" => ("user", content_blocks(&m["content"])?),
            "assistant" => {
                let mut blocks = content_blocks(&m["content"])?;
                for call in m["tool_calls"].as_array().into_iter().flatten() {
                    let args = call["function"]["arguments"].as_str().unwrap_or("{}");
                    let input: Value = serde_json::from_str(args).map_err(|_| {
                        ProviderError::Unsupported(format!("messages[{i}].tool_calls: arguments are not JSON"))
                    })?;
                    blocks.push(
                        json!({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": input}),
                    );
                }
                ("assistant", blocks)
            }
            "tool" => (
                "user",
                vec![
                    json!({"type": "tool_result", "tool_use_id": m["tool_call_id"], "content": text_of(&m["content"])}),
                ],
            ),
            other => {
                return Err(ProviderError::Unsupported(format!(
                    "messages[{i}].role '{other}' is not supported by provider 'anthropic'"
                )));
            }
        };
        match turns.last_mut() {
            Some((r, b)) if r == role => b.extend(blocks),
            _ => turns.push((role.to_string(), blocks)),
        }
    }
    if turns.is_empty() {
        return Err(ProviderError::Unsupported("messages must contain at least one user message".into()));
    }
    let turns = turns.into_iter().map(|(role, content)| json!({"role": role, "content": content})).collect();
    Ok((system.join("\n\n"), turns))
}

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
fn finish_reason(stop: &Value) -> Value {
    match stop.as_str() {
        Some("end_turn") | Some("stop_sequence") => json!("stop"),
        Some("max_tokens") => json!("length"),
        Some("tool_use") => json!("tool_calls"),
        Some("refusal") => json!("content_filter"),
        Some(other) => json!(other),
        None => Value::Null,
    }
}

/// `prompt_tokens_details`: `cached_tokens` (OpenAI's name for cache reads) and our
/// `cache_write_tokens`, so cache writes can be priced as billed.
pub fn cache_details(usage: &mut Value, read: Option<u64>, written: Option<u64>) {
    let mut d = serde_json::Map::new();
    if let Some(r) = read {
        d.insert("cached_tokens".into(), json!(r));
    }
    if let Some(w) = written.filter(|w| *w > 0) {
        d.insert("cache_write_tokens".into(), json!(w));
    }
    if !d.is_empty() {
        usage["prompt_tokens_details"] = Value::Object(d);
    }
}

/// OpenAI usage from Anthropic usage; cache reads and writes count as prompt tokens.
fn usage(u: &Value) -> Value {
    let input = ["input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"]
        .iter()
        .filter_map(|k| u[*k].as_u64())
        .sum::<u64>();
    let output = u["output_tokens"].as_u64().unwrap_or(0);
    let mut out = json!({"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output});
    cache_details(&mut out, u["cache_read_input_tokens"].as_u64(), u["cache_creation_input_tokens"].as_u64());
    out
}

/// Turns an Anthropic message into an OpenAI chat completion or text completion.
pub fn from_message(task: Task, msg: &Value) -> Value {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in msg["content"].as_array().into_iter().flatten() {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => calls.push(json!({
                "id": block["id"], "type": "function",
                "function": {"name": block["name"], "arguments": block["input"].to_string()}
            })),
            _ => {}
        }
    }
    let id = msg["id"].clone();
    let model = msg["model"].clone();
    let finish = finish_reason(&msg["stop_reason"]);
    match task {
        Task::Completions => json!({
            "id": id, "object": "text_completion", "created": now_secs(), "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": null}],
            "usage": usage(&msg["usage"])
        }),
        _ => {
            let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) }});
            if !calls.is_empty() {
                message["tool_calls"] = Value::Array(calls);
            }
            json!({
                "id": id, "object": "chat.completion", "created": now_secs(), "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage(&msg["usage"])
            })
        }
    }
}

#[async_trait::async_trait]
impl Adapter for Anthropic {
    fn provider(&self) -> &'static str {
        "anthropic"
    }

    async fn request(
        &self,
        http: &reqwest::Client,
        task: Task,
        body: Body,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let payload = to_messages_request(&self.model, task, body, stream)?;
        Ok(http
            .post(format!("{}/v1/messages", self.base))
            .header("x-api-key", self.key.expose())
            .header("anthropic-version", API_VERSION)
            .json(&payload))
    }

    fn response(&self, task: Task, body: Bytes, _options: ResponseOptions) -> Result<Bytes, ProviderError> {
        let msg: Value = serde_json::from_slice(&body)
            .map_err(|e| ProviderError::BadResponse(format!("anthropic answered with invalid JSON: {e}")))?;
        if msg["type"] != "message" {
            return Err(ProviderError::BadResponse("anthropic answered with something that is not a message".into()));
        }
        Ok(Bytes::from(from_message(task, &msg).to_string()))
    }

    fn stream(&self, task: Task, include_usage: bool) -> Box<dyn StreamTranslator> {
        Box::new(StreamState {
            out: Chunks::new(task, &self.model),
            include_usage,
            tools: Vec::new(),
            usage: json!({}),
        })
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
    /// Anthropic content-block index of each tool call, in order.
    tools: Vec<u64>,
    usage: Value,
}

impl StreamTranslator for StreamState {
    fn on_event(&mut self, _event: &str, data: &str) -> Vec<StreamItem> {
        let Ok(ev) = serde_json::from_str::<Value>(data) else {
            return vec![StreamItem::Error(format!(
                "anthropic sent a malformed stream event: {}",
                data.chars().take(200).collect::<String>()
            ))];
        };
        match ev["type"].as_str().unwrap_or_default() {
            "message_start" => {
                self.out.id = ev["message"]["id"].clone();
                self.out.model = ev["message"]["model"].clone();
                self.usage = ev["message"]["usage"].clone();
                vec![StreamItem::Data(self.out.delta(json!({"role": "assistant", "content": ""}), Value::Null))]
            }
            "content_block_start" if ev["content_block"]["type"] == "tool_use" => {
                let index = self.tools.len();
                self.tools.push(ev["index"].as_u64().unwrap_or(0));
                let b = &ev["content_block"];
                let delta = json!({"tool_calls": [{"index": index, "id": b["id"], "type": "function",
                                                   "function": {"name": b["name"], "arguments": ""}}]});
                vec![StreamItem::Data(self.out.delta(delta, Value::Null))]
            }
            "content_block_delta" => match ev["delta"]["type"].as_str() {
                Some("text_delta") => {
                    vec![StreamItem::Data(self.out.delta(json!({"content": ev["delta"]["text"]}), Value::Null))]
                }
                Some("input_json_delta") => {
                    let block = ev["index"].as_u64().unwrap_or(0);
                    let index = self.tools.iter().position(|b| *b == block).unwrap_or(0);
                    let delta = json!({"tool_calls": [{"index": index, "function": {"arguments": ev["delta"]["partial_json"]}}]});
                    vec![StreamItem::Data(self.out.delta(delta, Value::Null))]
                }
                _ => Vec::new(),
            },
            "message_delta" => {
                if let Some(out) = ev["usage"]["output_tokens"].as_u64() {
                    self.usage["output_tokens"] = json!(out);
                }
                vec![StreamItem::Data(self.out.delta(json!({}), finish_reason(&ev["delta"]["stop_reason"])))]
            }
            "message_stop" => {
                let mut items = Vec::new();
                if self.include_usage {
                    items.push(StreamItem::Data(self.out.usage(usage(&self.usage))));
                }
                items.push(StreamItem::Done);
                items
            }
            "error" => vec![StreamItem::Error(format!(
                "anthropic: {}",
                ev["error"]["message"].as_str().unwrap_or("stream error")
            ))],
            // ping, content_block_stop, text content_block_start: nothing to send.
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Body {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn chat_request_translation() {
        let req = to_messages_request(
            "claude-3-5-sonnet",
            Task::Chat,
            body(json!({
                "model": "ep", "max_tokens": 100, "temperature": 0.5, "stop": ["END"], "user": "u1",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"},
                    {"role": "user", "content": [{"type": "text", "text": "again"}]},
                    {"role": "assistant", "content": null, "tool_calls": [{"id": "t1", "type": "function",
                        "function": {"name": "get", "arguments": "{\"x\":1}"}}]},
                    {"role": "tool", "tool_call_id": "t1", "content": "42"}
                ],
                "tools": [{"type": "function", "function": {"name": "get", "description": "d", "parameters": {"type": "object"}}}],
                "tool_choice": "required",
                "extra_params": {"top_k": 5},
                "usage_context": {"team": "a"}
            })),
            true,
        )
        .unwrap();
        assert_eq!(req["model"], "claude-3-5-sonnet");
        assert_eq!(req["system"], "Be brief.");
        assert_eq!(req["max_tokens"], 100);
        assert_eq!(req["stop_sequences"], json!(["END"]));
        assert_eq!(req["top_k"], 5, "extra_params pass through");
        assert_eq!(req["metadata"], json!({"user_id": "u1"}));
        assert_eq!(req["stream"], true);
        let msgs = req["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3, "consecutive user turns merged: {msgs:?}");
        assert_eq!(msgs[0]["content"].as_array().unwrap().len(), 2);
        assert_eq!(msgs[1]["content"][0], json!({"type": "tool_use", "id": "t1", "name": "get", "input": {"x": 1}}));
        assert_eq!(msgs[2]["content"][0]["type"], "tool_result");
        assert_eq!(req["tools"][0]["input_schema"], json!({"type": "object"}));
        assert_eq!(req["tool_choice"], json!({"type": "any"}));
    }

    #[test]
    fn refuses_what_anthropic_cannot_do() {
        let msgs = json!([{"role": "user", "content": "x"}]);
        for (extra, needle) in [
            (json!({"n": 2}), "n > 1"),
            (json!({"temperature": 1.5}), "outside 0..1"),
            (json!({"logprobs": true}), "'logprobs'"),
            (json!({"response_format": {"type": "json_object"}}), "'response_format'"),
        ] {
            let mut b = body(extra);
            b.insert("messages".into(), msgs.clone());
            let err = to_messages_request("m", Task::Chat, b, false).unwrap_err().to_string();
            assert!(err.contains(needle) && err.contains("anthropic"), "{err}");
        }
        let b = body(json!({"messages": msgs}));
        assert_eq!(to_messages_request("m", Task::Chat, b, false).unwrap()["max_tokens"], DEFAULT_MAX_TOKENS);
    }

    #[test]
    fn response_translation() {
        let msg = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "text", "text": "Hello"}, {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 3}});
        let out = from_message(Task::Chat, &msg);
        assert_eq!(out["object"], "chat.completion");
        assert_eq!(out["choices"][0]["message"]["content"], "Hello");
        assert_eq!(out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 15, "completion_tokens": 3, "total_tokens": 18,
                                         "prompt_tokens_details": {"cached_tokens": 5}})
        );
    }

    #[test]
    fn stream_translation() {
        let a = Anthropic { base: String::new(), model: "m".into(), key: SecretString::new("k") };
        let mut s = a.stream(Task::Chat, true);
        let events = [
            r#"{"type":"message_start","message":{"id":"msg_1","model":"claude","usage":{"input_tokens":7,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t1","name":"f","input":{}}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}"#,
            r#"{"type":"message_stop"}"#,
        ];
        let items: Vec<StreamItem> = events.iter().flat_map(|e| s.on_event("", e)).collect();
        let data: Vec<Value> = items
            .iter()
            .filter_map(|i| match i {
                StreamItem::Data(d) => serde_json::from_str(d).ok(),
                _ => None,
            })
            .collect();
        assert_eq!(data[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(data[1]["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(data[2]["choices"][0]["delta"]["tool_calls"][0]["id"], "t1");
        assert_eq!(data[3]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"], "{\"a\":");
        assert_eq!(data[4]["choices"][0]["finish_reason"], "stop");
        assert_eq!(data[5]["usage"]["completion_tokens"], 9);
        assert_eq!(data[5]["usage"]["prompt_tokens"], 7);
        assert_eq!(items.last(), Some(&StreamItem::Done));
        let err = s.on_event("error", r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#);
        assert_eq!(err, vec![StreamItem::Error("anthropic: Overloaded".into())]);
    }
}
