//! The OpenAI Responses API as clients send it to modelgate (`POST /v1/responses`): the
//! stateless subset (input items, instructions, function tools and their outputs, streaming).
//! Lenient on input: settings modelgate does not use are accepted and ignored; `store` is
//! accepted but nothing is stored (so `previous_response_id` is refused). What modelgate answers
//! ([`Response`], [`OutputItem`], the stream's [`Event`]s) is typed too.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A Responses request.
#[derive(Debug, Clone, Deserialize)]
pub struct ResponsesRequest {
    /// The serving endpoint to query.
    pub model: String,
    /// A string, or input items.
    pub input: Input,
    /// System (developer) instructions.
    #[serde(default)]
    pub instructions: Option<String>,
    /// Function tools.
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    /// `none`, `auto`, `required`, or `{type: "function", name}`.
    #[serde(default)]
    pub tool_choice: Option<Value>,
    /// Whether the model may call several tools at once.
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// Most output tokens.
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Stream typed events.
    #[serde(default)]
    pub stream: bool,
    /// The end user.
    #[serde(default)]
    pub user: Option<String>,
    /// A response to continue: refused (responses are not stored).
    #[serde(default)]
    pub previous_response_id: Option<String>,
    /// `{format: {type: text | json_object | json_schema, ...}}`.
    #[serde(default)]
    pub text: Option<TextConfig>,
}

/// The input: text, or items.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Input {
    /// One user message.
    Text(String),
    /// Messages, earlier outputs and tool outputs.
    Items(Vec<Item>),
}

/// An input item: typed, or a message without its `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Item {
    /// An item with its `type`.
    Typed(TypedItem),
    /// A message without `type`.
    Bare(BareMessage),
}

/// A message without its `type`.
#[derive(Debug, Clone, Deserialize)]
pub struct BareMessage {
    /// `user`, `assistant`, `system` or `developer`.
    pub role: String,
    /// Text or parts.
    pub content: MessageContent,
}

/// An input item with its `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TypedItem {
    /// A message.
    Message {
        /// `user`, `assistant`, `system` or `developer`.
        role: String,
        /// Text or parts.
        content: MessageContent,
    },
    /// A function call the model made earlier.
    FunctionCall {
        /// The call's id, which its output names.
        call_id: String,
        /// The function.
        name: String,
        /// JSON arguments, as text.
        arguments: String,
    },
    /// A function's output.
    FunctionCallOutput {
        /// The call it answers.
        call_id: String,
        /// Text (or parts).
        output: Value,
    },
    /// Earlier reasoning: not sent on.
    Reasoning {},
}

/// Text, or content parts.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Text.
    Text(String),
    /// Parts.
    Parts(Vec<Part>),
}

/// A content part.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    /// Text from the user.
    InputText {
        /// The text.
        text: String,
    },
    /// Text the model wrote (in an earlier assistant message).
    OutputText {
        /// The text.
        text: String,
    },
    /// An image by URL (a `data:` URL for inline bytes).
    InputImage {
        /// The image.
        #[serde(default)]
        image_url: Option<String>,
    },
    /// A refusal the model wrote earlier.
    Refusal {
        /// Why.
        refusal: String,
    },
}

/// A tool definition: functions only (built-in tools are refused).
#[derive(Debug, Clone, Deserialize)]
pub struct Tool {
    /// `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its name.
    #[serde(default)]
    pub name: Option<String>,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// JSON schema of its arguments.
    #[serde(default)]
    pub parameters: Option<Value>,
    /// Whether the arguments must follow the schema exactly.
    #[serde(default)]
    pub strict: Option<bool>,
}

/// How the answer is formatted.
#[derive(Debug, Clone, Deserialize)]
pub struct TextConfig {
    /// `{type: text}`, `{type: json_object}` or `{type: json_schema, name, schema, strict}`.
    #[serde(default)]
    pub format: Option<Value>,
}

/// A Response object: the whole answer, and the `response` of `response.created`,
/// `.in_progress`, `.completed`, `.incomplete` and `.failed` events.
#[derive(Debug, Clone, Serialize)]
pub struct Response<'a> {
    /// `resp_...`
    pub id: &'a str,
    /// `response`.
    pub object: &'static str,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// `in_progress`, `completed`, `incomplete` or `failed`.
    pub status: &'a str,
    /// The endpoint.
    pub model: &'a str,
    /// Messages and function calls, in order.
    pub output: &'a [OutputItem],
    /// Token counts.
    pub usage: &'a Usage,
    /// Why it failed.
    pub error: Option<ResponseError<'a>>,
    /// Why it is incomplete: `{reason}`.
    pub incomplete_details: Option<Incomplete>,
    /// Always true (the request's setting is applied upstream).
    pub parallel_tool_calls: bool,
    /// `auto`.
    pub tool_choice: &'static str,
    /// Not echoed: `[]`.
    pub tools: [(); 0],
    /// `{format: {type: text}}`.
    pub text: TextOut,
}

/// `error` of a failed Response.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseError<'a> {
    /// `server_error`.
    pub code: &'static str,
    /// Why.
    pub message: &'a str,
}

/// `incomplete_details`.
#[derive(Debug, Clone, Serialize)]
pub struct Incomplete {
    /// `max_output_tokens` or `content_filter`.
    pub reason: &'static str,
}

/// `text` of a Response.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TextOut {
    /// `{type: text}`.
    pub format: TextFormat,
}

/// `text.format`.
#[derive(Debug, Clone, Serialize)]
pub struct TextFormat {
    /// `text`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

impl Default for TextFormat {
    fn default() -> Self {
        TextFormat { kind: "text" }
    }
}

/// Token counts of a Response.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    /// Input tokens, cached ones included.
    pub input_tokens: u64,
    /// `{cached_tokens}`.
    pub input_tokens_details: InputDetails,
    /// Output tokens, reasoning ones included.
    pub output_tokens: u64,
    /// `{reasoning_tokens}`.
    pub output_tokens_details: OutputDetails,
    /// Input plus output.
    pub total_tokens: u64,
}

/// `input_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct InputDetails {
    /// Read from the provider's cache.
    pub cached_tokens: u64,
}

/// `output_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OutputDetails {
    /// Spent reasoning.
    pub reasoning_tokens: u64,
}

/// An output item.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    /// An assistant message.
    Message {
        /// `msg_...`
        id: String,
        /// `assistant`.
        role: &'static str,
        /// `in_progress` or `completed`.
        status: &'static str,
        /// Its text parts (none while in progress).
        content: Vec<OutputText>,
    },
    /// A call of a function tool.
    FunctionCall {
        /// `fc_...`
        id: String,
        /// The id the call's output names.
        call_id: String,
        /// The function.
        name: String,
        /// Its arguments, a JSON string.
        arguments: String,
        /// `in_progress` or `completed`.
        status: &'static str,
    },
}

/// An `output_text` content part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputText {
    /// `output_text`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The text.
    pub text: String,
    /// Always `[]`.
    pub annotations: [(); 0],
}

impl OutputText {
    /// A text part.
    pub fn new(text: String) -> Self {
        OutputText { kind: "output_text", text, annotations: [] }
    }
}

/// One stream event's body (its `type` is the event's name); `sequence_number` is added when it
/// is written.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum Event<'a> {
    /// `response.created`, `response.in_progress`, and the terminal `response.completed`,
    /// `response.incomplete`, `response.failed`.
    #[serde(rename = "response.created")]
    Created {
        /// The Response so far.
        response: Response<'a>,
    },
    /// See [`Event::Created`].
    #[serde(rename = "response.in_progress")]
    InProgress {
        /// The Response so far.
        response: Response<'a>,
    },
    /// See [`Event::Created`].
    #[serde(rename = "response.completed")]
    Completed {
        /// The whole Response.
        response: Response<'a>,
    },
    /// See [`Event::Created`].
    #[serde(rename = "response.incomplete")]
    Incomplete {
        /// The whole Response.
        response: Response<'a>,
    },
    /// See [`Event::Created`].
    #[serde(rename = "response.failed")]
    Failed {
        /// The Response with its error.
        response: Response<'a>,
    },
    /// An item begins.
    #[serde(rename = "response.output_item.added")]
    ItemAdded {
        /// Its place in `output`.
        output_index: usize,
        /// The item, in progress.
        item: &'a OutputItem,
    },
    /// An item is complete.
    #[serde(rename = "response.output_item.done")]
    ItemDone {
        /// Its place in `output`.
        output_index: usize,
        /// The item.
        item: &'a OutputItem,
    },
    /// A message's text part begins.
    #[serde(rename = "response.content_part.added")]
    PartAdded {
        /// The message.
        item_id: &'a str,
        /// Its place in `output`.
        output_index: usize,
        /// Always 0.
        content_index: usize,
        /// The empty part.
        part: &'a OutputText,
    },
    /// A message's text part is complete.
    #[serde(rename = "response.content_part.done")]
    PartDone {
        /// The message.
        item_id: &'a str,
        /// Its place in `output`.
        output_index: usize,
        /// Always 0.
        content_index: usize,
        /// The part.
        part: &'a OutputText,
    },
    /// A message's text is complete.
    #[serde(rename = "response.output_text.done")]
    TextDone {
        /// The message.
        item_id: &'a str,
        /// Its place in `output`.
        output_index: usize,
        /// Always 0.
        content_index: usize,
        /// The whole text.
        text: &'a str,
        /// Always `[]`.
        logprobs: [(); 0],
    },
    /// More of a call's arguments.
    #[serde(rename = "response.function_call_arguments.delta")]
    ArgumentsDelta {
        /// The call.
        item_id: &'a str,
        /// Its place in `output`.
        output_index: usize,
        /// The piece.
        delta: &'a str,
    },
    /// A call's arguments are complete.
    #[serde(rename = "response.function_call_arguments.done")]
    ArgumentsDone {
        /// The call.
        item_id: &'a str,
        /// Its place in `output`.
        output_index: usize,
        /// The function.
        name: &'a str,
        /// The whole arguments.
        arguments: &'a str,
    },
    /// The stream failed (after `response.failed`).
    #[serde(rename = "error")]
    Error {
        /// `server_error`.
        code: &'static str,
        /// Why.
        message: &'a str,
        /// Always null.
        param: Option<&'static str>,
    },
}

impl Event<'_> {
    /// The event's name (its `type`).
    pub fn name(&self) -> &'static str {
        match self {
            Event::Created { .. } => "response.created",
            Event::InProgress { .. } => "response.in_progress",
            Event::Completed { .. } => "response.completed",
            Event::Incomplete { .. } => "response.incomplete",
            Event::Failed { .. } => "response.failed",
            Event::ItemAdded { .. } => "response.output_item.added",
            Event::ItemDone { .. } => "response.output_item.done",
            Event::PartAdded { .. } => "response.content_part.added",
            Event::PartDone { .. } => "response.content_part.done",
            Event::TextDone { .. } => "response.output_text.done",
            Event::ArgumentsDelta { .. } => "response.function_call_arguments.delta",
            Event::ArgumentsDone { .. } => "response.function_call_arguments.done",
            Event::Error { .. } => "error",
        }
    }
}
