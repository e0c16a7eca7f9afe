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

use crate::chat::{
    Answer, AnswerToolCall, ChatRequest, Choice, Chunks, Content, Delta, Message, Part, ResponseFormat, Role,
    ToolChoice, ToolMode, Usage, parse_answer,
};
use crate::shared::{credential, flatten_databricks_fields, malformed_event};
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
    "response_format",
];

/// Turns the internal chat body into an Anthropic Messages body.
pub fn to_messages_request(
    model: &str,
    task: Task,
    mut body: Body,
    stream: bool,
) -> Result<wire::Request, ProviderError> {
    if !matches!(task, Task::Chat | Task::Completions) {
        return Err(unsupported(&format!("the task {}", task.as_task())));
    }
    flatten_databricks_fields(&mut body)?;
    crate::shared::refuse_unknown(&body, HANDLED, "anthropic")?;
    let mut req = ChatRequest::from_body(body)?;
    if let Some(t) = req.temperature.filter(|t| !(0.0..=1.0).contains(t)) {
        return Err(ProviderError::Unsupported(format!(
            "temperature {t} is outside 0..1, the range provider 'anthropic' accepts"
        )));
    }
    let (system, messages) = convert_messages(req.conversation(task, "anthropic")?)?;
    let tools = req
        .tools
        .iter()
        .map(|t| wire::ToolSpec {
            name: t.function.name.clone(),
            description: t.function.description.clone(),
            input_schema: t.function.schema(),
        })
        .collect();
    let choice = |kind, name| wire::ToolChoice { kind, name, disable_parallel_tool_use: None };
    let mut tool_choice = req.tool_choice.as_ref().map(|c| match c {
        ToolChoice::Mode(ToolMode::Auto) => choice("auto", None),
        ToolChoice::Mode(ToolMode::Required) => choice("any", None),
        ToolChoice::Mode(ToolMode::None) => choice("none", None),
        ToolChoice::Function { function } => choice("tool", Some(function.name.clone())),
    });
    if req.parallel_tool_calls == Some(false) && !req.tools.is_empty() {
        let c = tool_choice.get_or_insert_with(|| choice("auto", None));
        if c.kind != "none" {
            c.disable_parallel_tool_use = Some(true);
        }
    }
    let output_config = match req.response_format.take() {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => {
            return Err(unsupported(
                "response_format json_object (Claude's structured output needs a schema: use json_schema)",
            ));
        }
        Some(ResponseFormat::JsonSchema { json_schema }) => Some(wire::OutputConfig {
            format: wire::OutputFormat {
                kind: "json_schema",
                schema: json_schema.schema.unwrap_or_else(|| serde_json::json!({"type": "object"})),
            },
        }),
    };
    Ok(wire::Request {
        model: Some(model.to_string()),
        anthropic_version: None,
        max_tokens: req.max_tokens().unwrap_or(DEFAULT_MAX_TOKENS),
        system: (!system.is_empty()).then_some(system),
        messages,
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        stop_sequences: req.stop_sequences(),
        metadata: req.user.take().map(|user_id| wire::Metadata { user_id }),
        stream,
        tools,
        tool_choice,
        output_config,
    })
}

fn content_blocks(content: Content) -> Result<Vec<wire::Block>, ProviderError> {
    content
        .into_parts()
        .into_iter()
        .map(|p| match p {
            Part::Text { text } => Ok(wire::Block::Text { text }),
            Part::ImageUrl { image_url } => {
                let source = if image_url.url.starts_with("data:") {
                    let (media_type, data) = image_url.inline().ok_or_else(|| unsupported("a non-base64 data URL"))?;
                    wire::ImageSource::Base64 { media_type: media_type.to_string(), data: data.to_string() }
                } else {
                    wire::ImageSource::Url { url: image_url.url }
                };
                Ok(wire::Block::Image { source })
            }
            Part::Other => Err(unsupported("message content that is not text or an image")),
        })
        .collect()
}

/// Splits out the system prompt and turns the rest into alternating user/assistant turns.
fn convert_messages(messages: Vec<Message>) -> Result<(String, Vec<wire::Turn>), ProviderError> {
    let mut system = Vec::new();
    let mut turns: Vec<wire::Turn> = Vec::new();
    for (i, m) in messages.into_iter().enumerate() {
        let (role, blocks) = match m.role {
            Role::System | Role::Developer => {
                system.push(m.content.text());
                continue;
            }
            Role::User => (wire::Role::User, content_blocks(m.content)?),
            Role::Assistant => {
                let mut blocks = content_blocks(m.content)?;
                for call in &m.tool_calls {
                    let input = call.input(i)?;
                    blocks.push(wire::Block::ToolUse { id: call.id.clone(), name: call.function.name.clone(), input });
                }
                (wire::Role::Assistant, blocks)
            }
            Role::Tool => (
                wire::Role::User,
                vec![wire::Block::ToolResult {
                    tool_use_id: m.tool_call_id.unwrap_or_default(),
                    content: m.content.text(),
                }],
            ),
        };
        match turns.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => turns.push(wire::Turn { role, content: blocks }),
        }
    }
    if turns.is_empty() {
        return Err(ProviderError::Unsupported("messages must contain at least one user message".into()));
    }
    Ok((system.join("\n\n"), turns))
}

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
fn finish_reason(stop: &str) -> String {
    match stop {
        "end_turn" | "stop_sequence" => "stop",
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        other => other,
    }
    .to_string()
}

/// OpenAI usage from Anthropic usage; cache reads and writes count as prompt tokens.
fn usage(u: &wire::Usage) -> Usage {
    let read = u.cache_read_input_tokens.unwrap_or(0);
    let written = u.cache_creation_input_tokens.unwrap_or(0);
    Usage::new(u.input_tokens + read + written, u.output_tokens)
        .with_cache(u.cache_read_input_tokens, u.cache_creation_input_tokens)
}

/// Turns an Anthropic message into the internal answer.
pub fn from_message(msg: wire::Message) -> Answer {
    let mut choice = Choice { finish_reason: msg.stop_reason.as_deref().map(finish_reason), ..Choice::default() };
    for block in msg.content {
        match block {
            wire::Block::Text { text } => choice.text.push_str(&text),
            wire::Block::ToolUse { id, name, input } => choice.tool_calls.push(AnswerToolCall::new(id, name, &input)),
            _ => {}
        }
    }
    Answer { id: msg.id, model: msg.model, choices: vec![choice], usage: usage(&msg.usage) }
}

/// A Messages answer, in the OpenAI shape of `task`.
pub fn answer(task: Task, body: &[u8]) -> Result<Bytes, ProviderError> {
    let msg: wire::Message = parse_answer(body, "anthropic")?;
    if msg.kind != "message" {
        return Err(ProviderError::BadResponse("anthropic answered with something that is not a message".into()));
    }
    Ok(Bytes::from(from_message(msg).to_openai(task)))
}

/// A translator of one Messages stream into OpenAI chunks.
pub fn translator(task: Task, model: &str, include_usage: bool) -> Box<dyn StreamTranslator> {
    Box::new(StreamState {
        out: Chunks::new(task, model),
        include_usage,
        tools: Vec::new(),
        usage: wire::Usage::default(),
    })
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
        answer(task, &body)
    }

    fn stream(&self, task: Task, include_usage: bool) -> Box<dyn StreamTranslator> {
        translator(task, &self.model, include_usage)
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
    usage: wire::Usage,
}

impl StreamTranslator for StreamState {
    fn on_event(&mut self, _event: &str, data: &str) -> Vec<StreamItem> {
        let ev = match serde_json::from_str::<wire::Event>(data) {
            Ok(ev) => ev,
            Err(e) => return vec![malformed_event("anthropic", data, &e)],
        };
        match ev {
            wire::Event::MessageStart { message } => {
                self.out.id = message.id;
                self.out.model = message.model;
                self.usage = message.usage;
                vec![StreamItem::Data(self.out.delta(&Delta::start(), None))]
            }
            wire::Event::ContentBlockStart { index, content_block: wire::Block::ToolUse { id, name, .. } } => {
                let call = self.tools.len();
                self.tools.push(index);
                vec![StreamItem::Data(self.out.delta(&Delta::call_start(call, id, name, String::new()), None))]
            }
            wire::Event::ContentBlockDelta { index, delta } => match delta {
                wire::BlockDelta::TextDelta { text } => {
                    vec![StreamItem::Data(self.out.delta(&Delta::text(text), None))]
                }
                wire::BlockDelta::InputJsonDelta { partial_json } => {
                    let call = self.tools.iter().position(|b| *b == index).unwrap_or(0);
                    vec![StreamItem::Data(self.out.delta(&Delta::call_arguments(call, partial_json), None))]
                }
                wire::BlockDelta::Other => Vec::new(),
            },
            wire::Event::MessageDelta { delta, usage } => {
                if let Some(u) = usage {
                    self.usage.merge(u);
                }
                let finish = delta.stop_reason.as_deref().map(finish_reason);
                vec![StreamItem::Data(self.out.delta(&Delta::default(), finish.as_deref()))]
            }
            wire::Event::MessageStop => {
                vec![self.out.usage_item(&usage(&self.usage), self.include_usage), StreamItem::Done]
            }
            wire::Event::Error { error } => vec![StreamItem::Error(format!("anthropic: {}", error.message))],
            // ping, content_block_stop, a text block's start: nothing to send.
            wire::Event::ContentBlockStart { .. } | wire::Event::Other => Vec::new(),
        }
    }
}

/// Anthropic's wire format.
pub mod wire {
    use serde::{Deserialize, Serialize};
    use serde_json::Value;

    /// A Messages request.
    #[derive(Debug, Serialize)]
    pub struct Request {
        /// The model (on Vertex AI, named by the URL instead).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub model: Option<String>,
        /// The API version, in the body where the URL names the model (Vertex AI).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub anthropic_version: Option<&'static str>,
        /// Most tokens to generate (required by Anthropic).
        pub max_tokens: u64,
        /// The system prompt.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub system: Option<String>,
        /// Alternating user and assistant turns.
        pub messages: Vec<Turn>,
        /// Sampling temperature, 0..1.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub temperature: Option<f64>,
        /// Nucleus sampling.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub top_p: Option<f64>,
        /// Top-k sampling.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub top_k: Option<u64>,
        /// Stop sequences.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub stop_sequences: Option<Vec<String>>,
        /// The end user.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub metadata: Option<Metadata>,
        /// Stream the answer.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        pub stream: bool,
        /// Tools the model may call.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub tools: Vec<ToolSpec>,
        /// Which tool the model must or may call.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tool_choice: Option<ToolChoice>,
        /// Structured output.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub output_config: Option<OutputConfig>,
    }

    /// `output_config`.
    #[derive(Debug, Serialize)]
    pub struct OutputConfig {
        /// The answer's format.
        pub format: OutputFormat,
    }

    /// `output_config.format`: text that is JSON matching a schema.
    #[derive(Debug, Serialize)]
    pub struct OutputFormat {
        /// `json_schema`.
        #[serde(rename = "type")]
        pub kind: &'static str,
        /// The schema.
        pub schema: Value,
    }

    /// Request metadata.
    #[derive(Debug, Serialize)]
    pub struct Metadata {
        /// The end user.
        pub user_id: String,
    }

    /// Who wrote a turn.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Role {
        /// The user (tool results included).
        User,
        /// The model.
        Assistant,
    }

    /// One turn of the conversation.
    #[derive(Debug, Serialize)]
    pub struct Turn {
        /// Who wrote it.
        pub role: Role,
        /// Its blocks.
        pub content: Vec<Block>,
    }

    /// A content block, in requests and answers.
    #[derive(Debug, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum Block {
        /// Text.
        Text {
            /// The text.
            text: String,
        },
        /// An image.
        Image {
            /// Where it is.
            source: ImageSource,
        },
        /// A tool call.
        ToolUse {
            /// The call's id.
            id: String,
            /// The tool.
            name: String,
            /// Its input.
            #[serde(default)]
            input: Value,
        },
        /// A tool's result.
        ToolResult {
            /// The call it answers.
            tool_use_id: String,
            /// The result.
            content: String,
        },
        /// Blocks this gateway does not translate (thinking, ...).
        #[serde(other)]
        Other,
    }

    /// Where an image is.
    #[derive(Debug, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum ImageSource {
        /// Inline.
        Base64 {
            /// Its media type.
            media_type: String,
            /// Base64 data.
            data: String,
        },
        /// At a URL.
        Url {
            /// The URL.
            url: String,
        },
    }

    /// A tool the model may call.
    #[derive(Debug, Serialize)]
    pub struct ToolSpec {
        /// Its name.
        pub name: String,
        /// What it does.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        /// The JSON schema of its input.
        pub input_schema: Value,
    }

    /// `tool_choice`.
    #[derive(Debug, Serialize)]
    pub struct ToolChoice {
        /// `auto`, `any`, `tool` or `none`.
        #[serde(rename = "type")]
        pub kind: &'static str,
        /// The tool, for `tool`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        /// At most one tool call per turn.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub disable_parallel_tool_use: Option<bool>,
    }

    /// An answer.
    #[derive(Debug, Deserialize)]
    pub struct Message {
        /// `message`.
        #[serde(rename = "type")]
        pub kind: String,
        /// Its id.
        pub id: String,
        /// The model that answered.
        pub model: String,
        /// The blocks.
        #[serde(default)]
        pub content: Vec<Block>,
        /// Why it stopped.
        #[serde(default)]
        pub stop_reason: Option<String>,
        /// The tokens used.
        #[serde(default)]
        pub usage: Usage,
    }

    /// Token usage. Cache reads and writes are not part of `input_tokens`.
    #[derive(Debug, Clone, Default, Deserialize)]
    pub struct Usage {
        /// Uncached input tokens.
        #[serde(default)]
        pub input_tokens: u64,
        /// Output tokens.
        #[serde(default)]
        pub output_tokens: u64,
        /// Input tokens written to the cache.
        #[serde(default)]
        pub cache_creation_input_tokens: Option<u64>,
        /// Input tokens read from the cache.
        #[serde(default)]
        pub cache_read_input_tokens: Option<u64>,
    }

    impl Usage {
        /// Takes the counts a `message_delta` reports (cumulative; output always, input
        /// sometimes) over those of `message_start`.
        pub fn merge(&mut self, later: DeltaUsage) {
            self.output_tokens = later.output_tokens.unwrap_or(self.output_tokens);
            self.input_tokens = later.input_tokens.unwrap_or(self.input_tokens);
            self.cache_creation_input_tokens = later.cache_creation_input_tokens.or(self.cache_creation_input_tokens);
            self.cache_read_input_tokens = later.cache_read_input_tokens.or(self.cache_read_input_tokens);
        }
    }

    /// The usage of a `message_delta`.
    #[derive(Debug, Default, Deserialize)]
    pub struct DeltaUsage {
        /// Output tokens so far.
        #[serde(default)]
        pub output_tokens: Option<u64>,
        /// Input tokens, when reported again.
        #[serde(default)]
        pub input_tokens: Option<u64>,
        /// Cache writes, when reported again.
        #[serde(default)]
        pub cache_creation_input_tokens: Option<u64>,
        /// Cache reads, when reported again.
        #[serde(default)]
        pub cache_read_input_tokens: Option<u64>,
    }

    /// One stream event.
    #[derive(Debug, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum Event {
        /// The answer begins.
        MessageStart {
            /// The answer so far.
            message: StartMessage,
        },
        /// A content block begins.
        ContentBlockStart {
            /// The block's index.
            index: u64,
            /// The block.
            content_block: Block,
        },
        /// More of a content block.
        ContentBlockDelta {
            /// The block's index.
            index: u64,
            /// What was added.
            delta: BlockDelta,
        },
        /// The answer's stop reason and final usage.
        MessageDelta {
            /// The stop reason.
            delta: MessageDelta,
            /// Usage so far.
            #[serde(default)]
            usage: Option<DeltaUsage>,
        },
        /// The answer is complete.
        MessageStop,
        /// The answer failed.
        Error {
            /// Why.
            error: StreamError,
        },
        /// ping, content_block_stop, and events added later.
        #[serde(other)]
        Other,
    }

    /// The message of `message_start`.
    #[derive(Debug, Deserialize)]
    pub struct StartMessage {
        /// Its id.
        #[serde(default)]
        pub id: String,
        /// The model.
        #[serde(default)]
        pub model: String,
        /// Input usage.
        #[serde(default)]
        pub usage: Usage,
    }

    /// What a `content_block_delta` adds.
    #[derive(Debug, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum BlockDelta {
        /// Text.
        TextDelta {
            /// The text.
            text: String,
        },
        /// Part of a tool call's input, as JSON text.
        InputJsonDelta {
            /// The JSON text.
            partial_json: String,
        },
        /// Thinking, signatures, and deltas added later.
        #[serde(other)]
        Other,
    }

    /// The delta of `message_delta`.
    #[derive(Debug, Deserialize)]
    pub struct MessageDelta {
        /// Why the answer stopped.
        #[serde(default)]
        pub stop_reason: Option<String>,
    }

    /// A mid-stream error.
    #[derive(Debug, Deserialize)]
    pub struct StreamError {
        /// Why.
        #[serde(default)]
        pub message: String,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn request(task: Task, body: Body, stream: bool) -> Result<Value, ProviderError> {
        to_messages_request("claude-3-5-sonnet", task, body, stream).map(|r| serde_json::to_value(r).unwrap())
    }

    fn body(v: Value) -> Body {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn chat_request_translation() {
        let req = request(
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
            (json!({"response_format": {"type": "json_object"}}), "json_object"),
        ] {
            let mut b = body(extra);
            b.insert("messages".into(), msgs.clone());
            let err = request(Task::Chat, b, false).unwrap_err().to_string();
            assert!(err.contains(needle) && err.contains("anthropic"), "{err}");
        }
        let b = body(json!({"messages": msgs}));
        assert_eq!(request(Task::Chat, b, false).unwrap()["max_tokens"], DEFAULT_MAX_TOKENS);
    }

    #[test]
    fn structured_output_and_serial_tool_calls_translate() {
        let b = body(json!({"messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}},
            "tools": [{"type": "function", "function": {"name": "f"}}], "parallel_tool_calls": false}));
        let req = request(Task::Chat, b, false).unwrap();
        assert_eq!(
            req["output_config"],
            json!({"format": {"type": "json_schema", "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}})
        );
        assert_eq!(req["tool_choice"], json!({"type": "auto", "disable_parallel_tool_use": true}));
        let named = body(
            json!({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}}, "parallel_tool_calls": false}),
        );
        assert_eq!(
            request(Task::Chat, named, false).unwrap()["tool_choice"],
            json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true})
        );
    }

    #[test]
    fn response_translation() {
        let msg = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "text", "text": "Hello"}, {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 3}});
        let out: Value =
            serde_json::from_str(&from_message(serde_json::from_value(msg).unwrap()).to_openai(Task::Chat)).unwrap();
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
