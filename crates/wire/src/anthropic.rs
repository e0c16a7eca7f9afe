//! The Anthropic Messages API as clients send it to modelgate (`POST /v1/messages`,
//! `/v1/messages/count_tokens`), and the answers they expect. Lenient on input: fields modelgate
//! does not use (cache control, betas, thinking settings) are accepted and ignored, as Anthropic's
//! clients send them freely.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A Messages request (`count_tokens` sends the same without `max_tokens`).
#[derive(Debug, Clone, Deserialize)]
pub struct MessagesRequest {
    /// The serving endpoint to query.
    pub model: String,
    /// Most tokens to generate.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// The conversation.
    pub messages: Vec<InputMessage>,
    /// The system prompt: text or text blocks.
    #[serde(default)]
    pub system: Option<Content>,
    /// Stop sequences.
    #[serde(default)]
    pub stop_sequences: Option<Vec<String>>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Top-k sampling.
    #[serde(default)]
    pub top_k: Option<u64>,
    /// Stream the answer as events.
    #[serde(default)]
    pub stream: bool,
    /// `{user_id}`.
    #[serde(default)]
    pub metadata: Option<Metadata>,
    /// Tools the model may call.
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    /// Which tool the model must or may call.
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
}

/// Request metadata.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    /// The end user.
    #[serde(default)]
    pub user_id: Option<String>,
}

/// One turn.
#[derive(Debug, Clone, Deserialize)]
pub struct InputMessage {
    /// `user`, `assistant` (or `system`, which newer clients send).
    pub role: String,
    /// Text or blocks.
    pub content: Content,
}

/// Text, or a list of blocks.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Blocks.
    Blocks(Vec<Block>),
}

/// A content block of a request.
#[derive(Debug, Clone, Deserialize)]
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
    /// A tool call the model made (in an assistant turn).
    ToolUse {
        /// Its id.
        id: String,
        /// The tool.
        name: String,
        /// Its arguments.
        input: Value,
    },
    /// What a tool answered (in a user turn).
    ToolResult {
        /// The call it answers.
        tool_use_id: String,
        /// Text or blocks.
        #[serde(default)]
        content: Option<Content>,
        /// Whether the tool failed.
        #[serde(default)]
        is_error: Option<bool>,
    },
    /// The model's reasoning from an earlier turn: not sent on (other providers cannot take it).
    Thinking {
        /// The reasoning.
        #[serde(default)]
        thinking: String,
    },
    /// Reasoning the model's provider withheld.
    RedactedThinking {},
    /// A document (PDF, text): not translated.
    Document {
        /// Where it is.
        #[serde(default)]
        source: Value,
    },
}

/// Where an image is.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ImageSource {
    /// Inline bytes.
    Base64 {
        /// `image/png`, ...
        media_type: String,
        /// Base64 data.
        data: String,
    },
    /// A URL.
    Url {
        /// The URL.
        url: String,
    },
}

/// A tool definition.
#[derive(Debug, Clone, Deserialize)]
pub struct Tool {
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// JSON schema of its input.
    #[serde(default)]
    pub input_schema: Option<Value>,
}

/// Which tool to call.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    Auto {
        /// One call at most.
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    /// Some tool must be called.
    Any {
        /// One call at most.
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    /// This tool must be called.
    Tool {
        /// The tool.
        name: String,
        /// One call at most.
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    /// No tool may be called.
    None {},
}

/// A Messages answer.
#[derive(Debug, Clone, Serialize)]
pub struct MessageResponse {
    /// `msg_...`
    pub id: String,
    /// Always `message`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Always `assistant`.
    pub role: &'static str,
    /// The endpoint queried.
    pub model: String,
    /// Text and tool calls.
    pub content: Vec<OutputBlock>,
    /// `end_turn`, `max_tokens`, `stop_sequence`, `tool_use`, `refusal`; null while streaming.
    pub stop_reason: Option<String>,
    /// The stop sequence met, if one was.
    pub stop_sequence: Option<String>,
    /// Tokens.
    pub usage: Usage,
}

/// A content block of an answer.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputBlock {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// A tool call.
    ToolUse {
        /// Its id.
        id: String,
        /// The tool.
        name: String,
        /// Its arguments.
        input: Value,
    },
}

/// Token counts of an answer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Usage {
    /// Input tokens not read from or written to the cache.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens written to the provider's cache.
    pub cache_creation_input_tokens: u64,
    /// Input tokens read from the provider's cache.
    pub cache_read_input_tokens: u64,
}

/// `{"type": "error", "error": {"type", "message"}}`.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorResponse {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The error of an [`ErrorResponse`].
#[derive(Debug, Clone, Serialize)]
pub struct ErrorDetail {
    /// `invalid_request_error`, `authentication_error`, `permission_error`, `not_found_error`,
    /// `request_too_large`, `rate_limit_error`, `api_error`, `overloaded_error`, `timeout_error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// For people.
    pub message: String,
}

/// One stream event (its `type` is the event's name).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent<'a> {
    /// The message begins (no content yet).
    MessageStart {
        /// The message so far.
        message: &'a MessageResponse,
    },
    /// A content block begins.
    ContentBlockStart {
        /// Its index among the message's blocks.
        index: usize,
        /// The block, empty.
        content_block: &'a OutputBlock,
    },
    /// More of a tool call's input, as a JSON fragment.
    ContentBlockDelta {
        /// The block.
        index: usize,
        /// The fragment.
        delta: InputJsonDelta<'a>,
    },
    /// A content block is complete.
    ContentBlockStop {
        /// The block.
        index: usize,
    },
    /// Why the message stopped, and its usage.
    MessageDelta {
        /// `stop_reason` and `stop_sequence`.
        delta: StopDelta<'a>,
        /// Token counts.
        usage: &'a Usage,
    },
    /// The message is complete.
    MessageStop,
    /// The stream failed.
    Error {
        /// What went wrong.
        error: ErrorDetail,
    },
}

impl StreamEvent<'_> {
    /// The event's name (its `type`).
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Error { .. } => "error",
        }
    }
}

/// `{type: input_json_delta, partial_json}` (text deltas are written directly).
#[derive(Debug, Clone, Serialize)]
pub struct InputJsonDelta<'a> {
    /// `input_json_delta`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The fragment.
    pub partial_json: &'a str,
}

/// The delta of `message_delta`.
#[derive(Debug, Clone, Serialize)]
pub struct StopDelta<'a> {
    /// Why the message stopped.
    pub stop_reason: &'a str,
    /// The stop sequence met, if one was.
    pub stop_sequence: Option<&'a str>,
}
