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
use serde_json::Value;

use crate::chat::{
    Answer, AnswerFunction, AnswerToolCall, ChatRequest, Choice, Chunks, Content, Delta, EmbeddingList, Message, Part,
    ResponseFormat, Role, ToolChoice, ToolMode, Usage, embedding_texts, parse_answer,
};
use crate::shared::{credential, flatten_databricks_fields, malformed_event};
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
    "parallel_tool_calls",
    "response_format",
    "n",
    "user",
    "k",
];

/// Turns the internal body into a Cohere v2 chat request.
pub fn chat_request(model: &str, task: Task, mut body: Body, stream: bool) -> Result<wire::ChatRequest, ProviderError> {
    flatten_databricks_fields(&mut body)?;
    crate::shared::refuse_unknown(&body, CHAT_FIELDS, "cohere")?;
    let mut req = ChatRequest::from_body(body)?;
    req.parallel_calls_only("cohere")?;
    let messages = req.conversation(task, "cohere")?.into_iter().map(convert_message).collect::<Result<Vec<_>, _>>()?;
    let tools = req.tools.iter().map(|t| wire::Tool { kind: "function", function: t.function.clone() }).collect();
    let tool_choice = match &req.tool_choice {
        None | Some(ToolChoice::Mode(ToolMode::Auto)) => None,
        Some(ToolChoice::Mode(ToolMode::Required)) => Some(wire::ToolChoice::Required),
        Some(ToolChoice::Mode(ToolMode::None)) => Some(wire::ToolChoice::None),
        Some(ToolChoice::Function { .. }) => return Err(unsupported("tool_choice naming a function")),
    };
    let response_format = match req.response_format.take() {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => Some(wire::ResponseFormat { kind: "json_object", json_schema: None }),
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            Some(wire::ResponseFormat { kind: "json_object", json_schema: json_schema.schema })
        }
    };
    Ok(wire::ChatRequest {
        model: model.to_string(),
        messages,
        tools,
        max_tokens: req.max_tokens(),
        temperature: req.temperature,
        p: req.top_p,
        k: req.top_k,
        seed: req.seed,
        frequency_penalty: req.frequency_penalty,
        presence_penalty: req.presence_penalty,
        stop_sequences: req.stop_sequences(),
        response_format,
        tool_choice,
        stream,
    })
}

/// One message in Cohere's terms: text-only content is sent as a string (every model takes it),
/// images as parts.
fn convert_message(m: Message) -> Result<wire::Message, ProviderError> {
    let text_only = |content: &Content| match content {
        Content::Parts(parts) => parts.iter().all(|p| matches!(p, Part::Text { .. })),
        _ => true,
    };
    Ok(match m.role {
        Role::System | Role::Developer => wire::Message::System { content: m.content.text() },
        Role::User if text_only(&m.content) => wire::Message::User { content: wire::Content::Text(m.content.text()) },
        Role::User => {
            let parts = m
                .content
                .into_parts()
                .into_iter()
                .map(|p| match p {
                    Part::Text { text } => Ok(wire::Part::Text { text }),
                    Part::ImageUrl { image_url } => {
                        Ok(wire::Part::ImageUrl { image_url: wire::Url { url: image_url.url } })
                    }
                    Part::Other => Err(unsupported("message content that is not text or an image")),
                })
                .collect::<Result<_, _>>()?;
            wire::Message::User { content: wire::Content::Parts(parts) }
        }
        Role::Assistant => {
            let text = m.content.text();
            let tool_calls = m
                .tool_calls
                .into_iter()
                .map(|c| wire::ToolCall {
                    id: c.id,
                    kind: "function".into(),
                    function: wire::Function { name: Some(c.function.name), arguments: Some(c.function.arguments) },
                })
                .collect();
            wire::Message::Assistant { content: (!text.is_empty()).then_some(text), tool_calls }
        }
        Role::Tool => {
            wire::Message::Tool { tool_call_id: m.tool_call_id.unwrap_or_default(), content: m.content.text() }
        }
    })
}

fn finish_reason(reason: &str) -> String {
    match reason {
        "COMPLETE" | "STOP_SEQUENCE" => "stop".into(),
        "MAX_TOKENS" => "length".into(),
        "TOOL_CALL" => "tool_calls".into(),
        "ERROR" => "error".into(),
        other => other.to_ascii_lowercase(),
    }
}

/// OpenAI usage from Cohere's `usage`: the billed units when present (what the account pays),
/// else the raw tokens.
fn usage(u: &wire::Usage) -> Usage {
    let units = u.billed_units.as_ref().or(u.tokens.as_ref()).cloned().unwrap_or_default();
    Usage::new(units.input_tokens as u64, units.output_tokens as u64)
}

/// Turns a Cohere chat answer into the internal answer.
pub fn from_chat(model: &str, r: wire::ChatResponse) -> Answer {
    let choice = Choice {
        text: r.message.content.iter().filter_map(|c| c.text.as_deref()).collect(),
        tool_calls: r
            .message
            .tool_calls
            .into_iter()
            .map(|c| AnswerToolCall {
                id: c.id,
                kind: "function",
                function: AnswerFunction {
                    name: c.function.name.unwrap_or_default(),
                    arguments: c.function.arguments.unwrap_or_default(),
                },
            })
            .collect(),
        finish_reason: r.finish_reason.as_deref().map(finish_reason),
    };
    Answer { id: r.id, model: model.to_string(), choices: vec![choice], usage: usage(&r.usage) }
}

/// Turns a Cohere embed answer into an OpenAI embeddings list.
pub fn from_embed(model: &str, r: wire::EmbedResponse, base64: bool) -> EmbeddingList {
    let vectors = match r.embeddings {
        wire::Embeddings::ByType { float } => float,
        wire::Embeddings::Floats(v) => v,
    };
    let tokens = r.meta.billed_units.unwrap_or_default().input_tokens as u64;
    EmbeddingList::new(model, vectors, tokens, base64)
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
        body: Body,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let request =
            http.post(format!("{}/v2/{}", self.base, if task == Task::Embeddings { "embed" } else { "chat" }));
        let request = match task {
            Task::Embeddings => request.json(&embed_request(&self.model, body)?),
            Task::Images | Task::Scoring => return Err(unsupported(&format!("the task {}", task.as_task()))),
            _ => request.json(&chat_request(&self.model, task, body, stream)?),
        };
        Ok(request.bearer_auth(self.key.expose()))
    }

    fn response(&self, task: Task, body: Bytes, options: ResponseOptions) -> Result<Bytes, ProviderError> {
        let out = match task {
            Task::Embeddings => {
                from_embed(&self.model, parse_answer(&body, "cohere")?, options.embeddings_base64).to_json()
            }
            _ => from_chat(&self.model, parse_answer(&body, "cohere")?).to_openai(task),
        };
        Ok(Bytes::from(out))
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
        let ev = match serde_json::from_str::<wire::Event>(data) {
            Ok(ev) => ev,
            Err(e) => return vec![malformed_event("cohere", data, &e)],
        };
        let data = |delta: Delta| StreamItem::Data(self.out.delta(&delta, None));
        match ev {
            wire::Event::MessageStart { id } => {
                if let Some(id) = id {
                    self.out.id = id;
                }
                vec![StreamItem::Data(self.out.delta(&Delta::start(), None))]
            }
            wire::Event::ContentDelta { delta } => {
                vec![data(Delta::text(delta.message.content.and_then(|c| c.text).unwrap_or_default()))]
            }
            wire::Event::ToolCallStart { delta } => {
                let call = delta.message.tool_calls.unwrap_or_default();
                let index = self.tools;
                self.tools += 1;
                let f = call.function;
                vec![data(Delta::call_start(
                    index,
                    call.id,
                    f.name.unwrap_or_default(),
                    f.arguments.unwrap_or_default(),
                ))]
            }
            wire::Event::ToolCallDelta { delta } => {
                let args = delta.message.tool_calls.and_then(|c| c.function.arguments).unwrap_or_default();
                vec![data(Delta::call_arguments(self.tools.saturating_sub(1), args))]
            }
            wire::Event::MessageEnd { delta } => {
                if let Some(err) = delta.error.filter(|e| !e.is_empty()) {
                    return vec![StreamItem::Error(format!("cohere: {err}"))];
                }
                let finish = delta.finish_reason.as_deref().map(finish_reason);
                vec![
                    StreamItem::Data(self.out.delta(&Delta::default(), finish.as_deref())),
                    self.out.usage_item(&usage(&delta.usage.unwrap_or_default()), self.include_usage),
                    StreamItem::Done,
                ]
            }
            wire::Event::Other => Vec::new(),
        }
    }
}

/// Turns the internal embeddings body into a Cohere embed request.
fn embed_request(model: &str, mut body: Body) -> Result<wire::EmbedRequest, ProviderError> {
    flatten_databricks_fields(&mut body)?;
    let texts = embedding_texts(body.remove("input"), "cohere")?;
    let input_type = match body.remove("input_type") {
        None => "search_document".to_string(),
        Some(Value::String(t)) => t,
        Some(_) => return Err(ProviderError::Unsupported("input_type must be a string".into())),
    };
    body.remove("model");
    body.remove("encoding_format");
    if let Some(k) = body.keys().next() {
        return Err(unsupported(&format!("the embeddings option '{k}'")));
    }
    Ok(wire::EmbedRequest { model: model.to_string(), texts, input_type, embedding_types: ["float"] })
}

/// Cohere's v2 wire format.
pub mod wire {
    use serde::{Deserialize, Serialize};

    use crate::chat::FunctionDef;

    /// A `/v2/chat` request.
    #[derive(Debug, Serialize)]
    pub struct ChatRequest {
        /// The model.
        pub model: String,
        /// The conversation.
        pub messages: Vec<Message>,
        /// Tools the model may call (OpenAI's shape).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub tools: Vec<Tool>,
        /// Most tokens to generate.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub max_tokens: Option<u64>,
        /// Sampling temperature.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub temperature: Option<f64>,
        /// Nucleus sampling (`top_p`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub p: Option<f64>,
        /// Top-k sampling.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub k: Option<u64>,
        /// Sampling seed.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub seed: Option<i64>,
        /// Frequency penalty.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub frequency_penalty: Option<f64>,
        /// Presence penalty.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub presence_penalty: Option<f64>,
        /// Stop sequences.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub stop_sequences: Option<Vec<String>>,
        /// Structured output.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub response_format: Option<ResponseFormat>,
        /// Whether the model must (or must not) call a tool.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tool_choice: Option<ToolChoice>,
        /// Stream the answer.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        pub stream: bool,
    }

    /// A message.
    #[derive(Debug, Serialize)]
    #[serde(tag = "role", rename_all = "lowercase")]
    pub enum Message {
        /// Instructions.
        System {
            /// The text.
            content: String,
        },
        /// The user.
        User {
            /// Text or parts.
            content: Content,
        },
        /// The model.
        Assistant {
            /// The text.
            #[serde(skip_serializing_if = "Option::is_none")]
            content: Option<String>,
            /// Tool calls.
            #[serde(skip_serializing_if = "Vec::is_empty")]
            tool_calls: Vec<ToolCall>,
        },
        /// A tool's result.
        Tool {
            /// The call it answers.
            tool_call_id: String,
            /// The result.
            content: String,
        },
    }

    /// A user message's content.
    #[derive(Debug, Serialize)]
    #[serde(untagged)]
    pub enum Content {
        /// Text.
        Text(String),
        /// Text and images.
        Parts(Vec<Part>),
    }

    /// A part of a user message.
    #[derive(Debug, Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum Part {
        /// Text.
        Text {
            /// The text.
            text: String,
        },
        /// An image.
        ImageUrl {
            /// Where it is.
            image_url: Url,
        },
    }

    /// An image URL.
    #[derive(Debug, Serialize)]
    pub struct Url {
        /// `https://...` or a `data:` URL.
        pub url: String,
    }

    /// A tool.
    #[derive(Debug, Serialize)]
    pub struct Tool {
        /// Always `function`.
        #[serde(rename = "type")]
        pub kind: &'static str,
        /// The function.
        pub function: FunctionDef,
    }

    /// A tool call, in requests, answers and streams (where parts may be missing).
    #[derive(Debug, Default, Serialize, Deserialize)]
    pub struct ToolCall {
        /// The call's id.
        #[serde(default)]
        pub id: String,
        /// Always `function`.
        #[serde(rename = "type", default)]
        pub kind: String,
        /// The function and its arguments.
        #[serde(default)]
        pub function: Function,
    }

    /// A called function.
    #[derive(Debug, Default, Serialize, Deserialize)]
    pub struct Function {
        /// Its name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        /// Its arguments as JSON text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub arguments: Option<String>,
    }

    /// `tool_choice`.
    #[derive(Debug, Serialize)]
    #[serde(rename_all = "UPPERCASE")]
    pub enum ToolChoice {
        /// The model must call a tool.
        Required,
        /// The model must not.
        None,
    }

    /// `response_format`: JSON, optionally to a schema.
    #[derive(Debug, Serialize)]
    pub struct ResponseFormat {
        /// `json_object`.
        #[serde(rename = "type")]
        pub kind: &'static str,
        /// The schema itself (not wrapped as OpenAI's is).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub json_schema: Option<serde_json::Value>,
    }

    /// A chat answer.
    #[derive(Debug, Deserialize)]
    pub struct ChatResponse {
        /// Its id.
        #[serde(default)]
        pub id: String,
        /// Why it stopped.
        #[serde(default)]
        pub finish_reason: Option<String>,
        /// The message.
        pub message: ResponseMessage,
        /// The tokens used.
        #[serde(default)]
        pub usage: Usage,
    }

    /// The message of an answer.
    #[derive(Debug, Deserialize)]
    pub struct ResponseMessage {
        /// Content items.
        #[serde(default)]
        pub content: Vec<ContentItem>,
        /// Tool calls.
        #[serde(default)]
        pub tool_calls: Vec<ToolCall>,
    }

    /// A content item of an answer.
    #[derive(Debug, Default, Deserialize)]
    pub struct ContentItem {
        /// Its text, for text items.
        #[serde(default)]
        pub text: Option<String>,
    }

    /// Usage: what was billed, and the raw token counts.
    #[derive(Debug, Clone, Default, Deserialize)]
    pub struct Usage {
        /// Billed units.
        #[serde(default)]
        pub billed_units: Option<Units>,
        /// Raw tokens.
        #[serde(default)]
        pub tokens: Option<Units>,
    }

    /// Token counts (Cohere sends them as numbers that may be fractional).
    #[derive(Debug, Clone, Default, Deserialize)]
    pub struct Units {
        /// Input tokens.
        #[serde(default)]
        pub input_tokens: f64,
        /// Output tokens.
        #[serde(default)]
        pub output_tokens: f64,
    }

    /// A stream event.
    #[derive(Debug, Deserialize)]
    #[serde(tag = "type", rename_all = "kebab-case")]
    pub enum Event {
        /// The answer begins.
        MessageStart {
            /// The answer's id.
            #[serde(default)]
            id: Option<String>,
        },
        /// More text.
        ContentDelta {
            /// What was added.
            delta: EventDelta,
        },
        /// A tool call begins.
        ToolCallStart {
            /// The call.
            delta: EventDelta,
        },
        /// More of a tool call's arguments.
        ToolCallDelta {
            /// What was added.
            delta: EventDelta,
        },
        /// The answer is complete (or failed).
        MessageEnd {
            /// Why it ended, and the usage.
            delta: EndDelta,
        },
        /// content-start, content-end, tool-plan-delta, tool-call-end, and events added later.
        #[serde(other)]
        Other,
    }

    /// The delta of a content or tool-call event.
    #[derive(Debug, Deserialize)]
    pub struct EventDelta {
        /// The message part.
        #[serde(default)]
        pub message: DeltaMessage,
    }

    /// The message part of a delta.
    #[derive(Debug, Default, Deserialize)]
    pub struct DeltaMessage {
        /// Text content.
        #[serde(default)]
        pub content: Option<ContentItem>,
        /// One tool call (not a list, in stream events).
        #[serde(default)]
        pub tool_calls: Option<ToolCall>,
    }

    /// The delta of `message-end`.
    #[derive(Debug, Deserialize)]
    pub struct EndDelta {
        /// Why the answer ended.
        #[serde(default)]
        pub finish_reason: Option<String>,
        /// The tokens used.
        #[serde(default)]
        pub usage: Option<Usage>,
        /// A failure, if the answer failed.
        #[serde(default)]
        pub error: Option<String>,
    }

    /// A `/v2/embed` request.
    #[derive(Debug, Serialize)]
    pub struct EmbedRequest {
        /// The model.
        pub model: String,
        /// The texts.
        pub texts: Vec<String>,
        /// `search_document`, `search_query`, `classification` or `clustering`.
        pub input_type: String,
        /// Always floats; the gateway encodes base64 itself when asked.
        pub embedding_types: [&'static str; 1],
    }

    /// An embed answer.
    #[derive(Debug, Deserialize)]
    pub struct EmbedResponse {
        /// The vectors.
        pub embeddings: Embeddings,
        /// Billing.
        #[serde(default)]
        pub meta: Meta,
    }

    /// The vectors: by type (v2), or a plain list (v1).
    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    pub enum Embeddings {
        /// `{"float": [...]}`.
        ByType {
            /// The float vectors.
            float: Vec<Vec<f64>>,
        },
        /// `[[...]]`.
        Floats(Vec<Vec<f64>>),
    }

    /// The `meta` of an embed answer.
    #[derive(Debug, Default, Deserialize)]
    pub struct Meta {
        /// Billed units.
        #[serde(default)]
        pub billed_units: Option<Units>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: Value) -> Result<Value, ProviderError> {
        let body = body.as_object().unwrap().clone();
        chat_request("command-r", Task::Chat, body, true).map(|r| serde_json::to_value(r).unwrap())
    }

    #[test]
    fn chat_translation() {
        let r = request(json!({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                          {"role": "assistant", "content": null, "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                          {"role": "tool", "tool_call_id": "t", "content": "ok"}],
                          "top_p": 0.9, "stop": "END", "tool_choice": "required", "usage_context": {"a": "b"},
                          "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}}))
        .unwrap();
        assert_eq!(r["p"], 0.9);
        assert_eq!(r["stop_sequences"], json!(["END"]));
        assert_eq!(r["tool_choice"], "REQUIRED");
        assert_eq!(r["messages"][1], json!({"role": "user", "content": "hi"}));
        assert_eq!(r["messages"][2]["tool_calls"][0]["function"]["name"], "f");
        assert_eq!(r["messages"][3], json!({"role": "tool", "tool_call_id": "t", "content": "ok"}));
        assert_eq!(r["response_format"], json!({"type": "json_object", "json_schema": {"type": "object"}}));
        assert_eq!(r["stream"], true);
        assert!(r.get("usage_context").is_none());
        let image = request(json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "what"},
                          {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}))
        .unwrap();
        assert_eq!(image["messages"][0]["content"][1]["image_url"]["url"], "https://x/y.png");
        for (bad, needle) in [
            (json!({"messages": [], "logprobs": true}), "'logprobs'"),
            (json!({"messages": [], "tool_choice": {"type": "function", "function": {"name": "f"}}}), "tool_choice"),
        ] {
            let err = request(bad).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn answers_and_stream() {
        let r = json!({"id": "c1", "finish_reason": "MAX_TOKENS", "message": {"role": "assistant", "content": [{"type": "text", "text": "Hey"}]},
                       "usage": {"billed_units": {"input_tokens": 4, "output_tokens": 2}, "tokens": {"input_tokens": 70, "output_tokens": 2}}});
        let out: Value =
            serde_json::from_str(&from_chat("command-r", serde_json::from_value(r).unwrap()).to_openai(Task::Chat))
                .unwrap();
        assert_eq!(out["choices"][0]["message"]["content"], "Hey");
        assert_eq!(out["choices"][0]["finish_reason"], "length");
        assert_eq!(out["usage"]["total_tokens"], 6, "billed units, not raw tokens");
        let embed = json!({"embeddings": {"float": [[1.0, 2.0]]}, "meta": {"billed_units": {"input_tokens": 3}}});
        let e: Value =
            serde_json::from_str(&from_embed("embed", serde_json::from_value(embed).unwrap(), false).to_json())
                .unwrap();
        assert_eq!(e["data"][0]["embedding"], json!([1.0, 2.0]));
        assert_eq!(e["usage"]["prompt_tokens"], 3);

        for include_usage in [true, false] {
            let mut s = StreamState { out: Chunks::new(Task::Chat, "m"), include_usage, tools: 0 };
            let items: Vec<StreamItem> = [
                r#"{"type":"message-start","id":"x","delta":{"message":{"role":"assistant"}}}"#,
                r#"{"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"Hi"}}}}"#,
                r#"{"type":"tool-call-start","index":1,"delta":{"message":{"tool_calls":{"id":"t","type":"function","function":{"name":"f","arguments":""}}}}}"#,
                r#"{"type":"tool-call-delta","index":1,"delta":{"message":{"tool_calls":{"function":{"arguments":"{}"}}}}}"#,
                r#"{"type":"message-end","delta":{"finish_reason":"COMPLETE","usage":{"billed_units":{"input_tokens":1,"output_tokens":1}}}}"#,
            ]
            .iter()
            .flat_map(|e| s.on_event("", e))
            .collect();
            assert_eq!(items.len(), 7);
            assert_eq!(items.last(), Some(&StreamItem::Done));
            let usage = match &items[5] {
                StreamItem::Data(d) if include_usage => d,
                StreamItem::Usage(d) if !include_usage => d,
                other => panic!("usage as {other:?} with include_usage {include_usage}"),
            };
            assert_eq!(serde_json::from_str::<Value>(usage).unwrap()["usage"]["total_tokens"], 2);
        }
        let err = StreamState { out: Chunks::new(Task::Chat, "m"), include_usage: false, tools: 0 }
            .on_event("", r#"{"type":"content-delta","delta":"oops"}"#);
        assert!(matches!(&err[..], [StreamItem::Error(m)] if m.contains("malformed")), "{err:?}");
    }
}
