//! The OpenAI Responses API as clients send it to modelgate (`POST /v1/responses`): the
//! stateless subset (input items, instructions, function tools and their outputs, streaming).
//! Lenient on input: settings modelgate does not use are accepted and ignored; `store` is
//! accepted but nothing is stored (so `previous_response_id` is refused).

use serde::Deserialize;
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
