//! The internal model, typed where the translating adapters read and write it: the OpenAI-shaped
//! chat or completions request they read ([`ChatRequest`]), and the OpenAI-shaped answers
//! ([`Answer`]), stream chunks ([`Chunks`]) and embeddings ([`EmbeddingList`]) they write. The
//! OpenAI-compatible adapter reads none of this: its bodies pass through as bytes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Body, ProviderError, Task};

/// A chat or completions request in the internal model, after the Databricks fields are flattened
/// and the options the provider cannot honour are refused.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChatRequest {
    /// The conversation (chat).
    #[serde(default)]
    pub messages: Vec<Message>,
    /// The prompt (completions): a string or a list of one string.
    #[serde(default)]
    pub prompt: Option<Prompt>,
    /// Most tokens to generate.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// OpenAI's newer name for `max_tokens`.
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Top-k sampling (not OpenAI's; Cohere calls it `k`).
    #[serde(default, alias = "k")]
    pub top_k: Option<u64>,
    /// Stop sequences.
    #[serde(default)]
    pub stop: Option<Stop>,
    /// Answers to generate.
    #[serde(default)]
    pub n: Option<u64>,
    /// Sampling seed.
    #[serde(default)]
    pub seed: Option<i64>,
    /// Presence penalty.
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    /// Structured output.
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
    /// Tools the model may call.
    #[serde(default)]
    pub tools: Vec<Tool>,
    /// Which tool the model must or may call.
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    /// `false`: at most one tool call per turn.
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// The end user, for providers' abuse tracking.
    #[serde(default)]
    pub user: Option<String>,
    /// Everything else the adapter let through (`model`, `stream`, `stream_options`, ...).
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl ChatRequest {
    /// Reads the internal body; a field of the wrong shape is refused with a 400 naming it.
    pub fn from_body(body: Body) -> Result<ChatRequest, ProviderError> {
        serde_path_to_error::deserialize(Value::Object(body))
            .map_err(|e| ProviderError::Unsupported(format!("{}: {}", e.path(), e.inner())))
    }

    /// `max_tokens`, or its newer name.
    pub fn max_tokens(&self) -> Option<u64> {
        self.max_tokens.or(self.max_completion_tokens)
    }

    /// The conversation: the messages of a chat, or the prompt as one user message.
    pub fn conversation(&mut self, task: Task, provider: &str) -> Result<Vec<Message>, ProviderError> {
        match task {
            Task::Chat => Ok(std::mem::take(&mut self.messages)),
            Task::Embeddings | Task::Images | Task::Scoring => {
                Err(crate::shared::unsupported(provider, &format!("the task {}", task.as_task())))
            }
            Task::Completions => match self.prompt.take() {
                Some(Prompt::One(p)) => Ok(vec![Message::user(p)]),
                Some(Prompt::Many(list)) => match <[String; 1]>::try_from(list) {
                    Ok([one]) => Ok(vec![Message::user(one)]),
                    Err(_) => Err(crate::shared::unsupported(provider, "more than one prompt per request")),
                },
                None => Err(ProviderError::Unsupported("prompt is required".into())),
            },
        }
    }

    /// Refuses `parallel_tool_calls: false` for a provider that cannot keep the model to one call
    /// per turn (`true` is every provider's default).
    pub fn parallel_calls_only(&self, provider: &str) -> Result<(), ProviderError> {
        if self.parallel_tool_calls == Some(false) && !self.tools.is_empty() {
            return Err(crate::shared::unsupported(
                provider,
                "parallel_tool_calls false (it cannot limit the model to one tool call per turn)",
            ));
        }
        Ok(())
    }

    /// The stop sequences as a list.
    pub fn stop_sequences(&self) -> Option<Vec<String>> {
        match &self.stop {
            Some(Stop::One(s)) => Some(vec![s.clone()]),
            Some(Stop::Many(v)) => Some(v.clone()),
            None => None,
        }
    }
}

/// A completions prompt.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    /// One prompt.
    One(String),
    /// A list of prompts.
    Many(Vec<String>),
}

/// Stop sequences: one or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One sequence.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// OpenAI's newer name for system instructions.
    Developer,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

/// One message of a conversation.
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Text, parts, or nothing (an assistant message with only tool calls).
    #[serde(default)]
    pub content: Content,
    /// Tool calls of an assistant message.
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
    /// The call a `tool` message answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A user message with `text`.
    pub fn user(text: String) -> Message {
        Message { role: Role::User, content: Content::Text(text), tool_calls: Vec::new(), tool_call_id: None }
    }
}

/// A message's content.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// No content.
    #[default]
    None,
    /// Plain text.
    Text(String),
    /// Typed parts.
    Parts(Vec<Part>),
}

impl Content {
    /// The text of the content: the string, or its text parts joined.
    pub fn text(&self) -> String {
        match self {
            Content::None => String::new(),
            Content::Text(s) => s.clone(),
            Content::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    Part::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect(),
        }
    }

    /// The content as parts: a string is one text part, nothing is none.
    pub fn into_parts(self) -> Vec<Part> {
        match self {
            Content::None => Vec::new(),
            Content::Text(text) => vec![Part::Text { text }],
            Content::Parts(parts) => parts,
        }
    }
}

/// A part of a message's content.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image, by URL or `data:` URL.
    ImageUrl {
        /// Where it is.
        image_url: ImageUrl,
    },
    /// Anything else (audio, files, ...): refused by the adapters that cannot send it.
    #[serde(other)]
    Other,
}

/// An image reference.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageUrl {
    /// `https://...` or `data:<type>;base64,<data>`.
    pub url: String,
}

impl ImageUrl {
    /// `(media type, base64 data)` of a `data:<type>;base64,<data>` URL.
    pub fn inline(&self) -> Option<(&str, &str)> {
        self.url.strip_prefix("data:").and_then(|r| r.split_once(";base64,"))
    }
}

/// A tool call of an assistant message.
#[derive(Debug, Clone, Deserialize)]
pub struct ToolCall {
    /// The call's id.
    #[serde(default)]
    pub id: String,
    /// The function called.
    pub function: FunctionCall,
}

impl ToolCall {
    /// The arguments as a JSON value; `at` names the message for the error.
    pub fn input(&self, at: usize) -> Result<Value, ProviderError> {
        let args = if self.function.arguments.trim().is_empty() { "{}" } else { &self.function.arguments };
        serde_json::from_str(args)
            .map_err(|_| ProviderError::Unsupported(format!("messages[{at}].tool_calls: arguments are not JSON")))
    }
}

/// A function call: its name and JSON-encoded arguments.
#[derive(Debug, Clone, Deserialize)]
pub struct FunctionCall {
    /// The function's name.
    pub name: String,
    /// The arguments, a JSON object as a string.
    #[serde(default)]
    pub arguments: String,
}

/// A tool the model may call.
#[derive(Debug, Clone, Deserialize)]
pub struct Tool {
    /// The function.
    pub function: FunctionDef,
}

/// A function the model may call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionDef {
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON schema of its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

impl FunctionDef {
    /// The argument schema, an empty object schema when none is given.
    pub fn schema(&self) -> Value {
        self.parameters.clone().unwrap_or_else(|| serde_json::json!({"type": "object"}))
    }
}

/// `tool_choice`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `auto`, `required` or `none`.
    Mode(ToolMode),
    /// A named function.
    Function {
        /// The function.
        function: FunctionName,
    },
}

/// A `tool_choice` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolMode {
    /// The model decides.
    Auto,
    /// The model must call a tool.
    Required,
    /// The model must not call a tool.
    None,
}

/// A function named by `tool_choice`.
#[derive(Debug, Clone, Deserialize)]
pub struct FunctionName {
    /// Its name.
    pub name: String,
}

/// `response_format`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text (the default).
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// The schema and its name.
        json_schema: JsonSchema,
    },
}

/// The schema of a `json_schema` response format.
#[derive(Debug, Clone, Deserialize)]
pub struct JsonSchema {
    /// The JSON schema.
    #[serde(default)]
    pub schema: Option<Value>,
    /// Its name.
    #[serde(default)]
    pub name: Option<String>,
    /// What it describes.
    #[serde(default)]
    pub description: Option<String>,
}

/// An OpenAI-shaped `usage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    /// Input tokens, cache reads and writes included.
    pub prompt_tokens: u64,
    /// Output tokens, reasoning included.
    pub completion_tokens: u64,
    /// Both.
    pub total_tokens: u64,
    /// Cache reads and writes, when the provider reports them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// Reasoning tokens, when the provider reports them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
}

impl Usage {
    /// Usage of `input` and `output` tokens.
    pub fn new(input: u64, output: u64) -> Usage {
        Usage { prompt_tokens: input, completion_tokens: output, total_tokens: input + output, ..Usage::default() }
    }

    /// Records the cache reads and writes among the input tokens.
    pub fn with_cache(mut self, read: Option<u64>, written: Option<u64>) -> Usage {
        let details = PromptTokensDetails { cached_tokens: read, cache_write_tokens: written.filter(|w| *w > 0) };
        if details.cached_tokens.is_some() || details.cache_write_tokens.is_some() {
            self.prompt_tokens_details = Some(details);
        }
        self
    }

    /// Records the reasoning tokens among the output tokens.
    pub fn with_reasoning(mut self, reasoning: u64) -> Usage {
        if reasoning > 0 {
            self.completion_tokens_details = Some(CompletionTokensDetails { reasoning_tokens: reasoning });
        }
        self
    }
}

/// `prompt_tokens_details`: `cached_tokens` (OpenAI's name for cache reads) and our
/// `cache_write_tokens`, so cache writes can be priced as billed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PromptTokensDetails {
    /// Input tokens read from the provider's cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    /// Input tokens written to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
}

/// `completion_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CompletionTokensDetails {
    /// Output tokens spent thinking.
    pub reasoning_tokens: u64,
}

/// A tool call in an answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnswerToolCall {
    /// The call's id.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The function and its arguments (JSON text).
    pub function: AnswerFunction,
}

impl AnswerToolCall {
    /// A call of `name` with `input` (a JSON value, sent as JSON text).
    pub fn new(id: String, name: String, input: &Value) -> AnswerToolCall {
        AnswerToolCall { id, kind: "function", function: AnswerFunction { name, arguments: input.to_string() } }
    }
}

/// The function of a tool call in an answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnswerFunction {
    /// Its name.
    pub name: String,
    /// Its arguments, as JSON text.
    pub arguments: String,
}

/// One answer among the choices.
#[derive(Debug, Clone, Default)]
pub struct Choice {
    /// The text.
    pub text: String,
    /// Tool calls.
    pub tool_calls: Vec<AnswerToolCall>,
    /// OpenAI's `finish_reason`.
    pub finish_reason: Option<String>,
}

/// What a translating adapter read from its provider's answer.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// The provider's id for the answer.
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// The answers (one unless the provider was asked for several).
    pub choices: Vec<Choice>,
    /// The tokens used.
    pub usage: Usage,
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: Vec<CompletionChoice<'a>>,
    usage: &'a Usage,
}

#[derive(Serialize)]
#[serde(untagged)]
enum CompletionChoice<'a> {
    Chat { index: usize, message: AnswerMessage<'a>, finish_reason: Option<&'a str> },
    Text { index: usize, text: &'a str, finish_reason: Option<&'a str>, logprobs: Option<()> },
}

#[derive(Serialize)]
struct AnswerMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tool_calls: &'a [AnswerToolCall],
}

impl Answer {
    /// The answer as an OpenAI chat completion, or a text completion for the completions task.
    pub fn to_openai(&self, task: Task) -> String {
        let choices = self
            .choices
            .iter()
            .enumerate()
            .map(|(index, c)| {
                let finish_reason = c.finish_reason.as_deref();
                if task == Task::Completions {
                    return CompletionChoice::Text { index, text: &c.text, finish_reason, logprobs: None };
                }
                // OpenAI sends `content: null` when the model only calls tools.
                let content = (!c.text.is_empty() || c.tool_calls.is_empty()).then_some(c.text.as_str());
                let message = AnswerMessage { role: "assistant", content, tool_calls: &c.tool_calls };
                CompletionChoice::Chat { index, message, finish_reason }
            })
            .collect();
        let object = if task == Task::Completions { "text_completion" } else { "chat.completion" };
        to_json(&Completion {
            id: &self.id,
            object,
            created: crate::shared::now_secs(),
            model: &self.model,
            choices,
            usage: &self.usage,
        })
    }
}

/// The change one stream chunk carries.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<DeltaToolCall>,
}

#[derive(Debug, Clone, Serialize)]
struct DeltaToolCall {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: DeltaFunction,
}

#[derive(Debug, Clone, Serialize)]
struct DeltaFunction {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    arguments: String,
}

impl Delta {
    /// The first chunk: the assistant's role and empty content.
    pub fn start() -> Delta {
        Delta { role: Some("assistant"), content: Some(String::new()), tool_calls: Vec::new() }
    }

    /// More text.
    pub fn text(text: impl Into<String>) -> Delta {
        Delta { content: Some(text.into()), ..Delta::default() }
    }

    /// The start of tool call number `index`, with the first of its arguments.
    pub fn call_start(index: usize, id: String, name: String, arguments: String) -> Delta {
        let call = DeltaToolCall {
            index,
            id: Some(id),
            kind: Some("function"),
            function: DeltaFunction { name: Some(name), arguments },
        };
        Delta { tool_calls: vec![call], ..Delta::default() }
    }

    /// More arguments of tool call number `index`.
    pub fn call_arguments(index: usize, arguments: String) -> Delta {
        let call = DeltaToolCall { index, id: None, kind: None, function: DeltaFunction { name: None, arguments } };
        Delta { tool_calls: vec![call], ..Delta::default() }
    }
}

/// Writes the OpenAI stream chunks of one answer (chat chunks, or text-completion chunks for the
/// completions task).
pub struct Chunks {
    task: Task,
    /// Answer id; the adapters set it when the provider names one.
    pub id: String,
    /// Model name; the adapters set it when the provider names one.
    pub model: String,
    created: i64,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: Vec<ChunkChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<&'a Usage>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ChunkChoice<'a> {
    Chat { index: usize, delta: &'a Delta, finish_reason: Option<&'a str> },
    Text { index: usize, text: &'a str, finish_reason: Option<&'a str>, logprobs: Option<()> },
}

impl Chunks {
    /// A writer for a new answer.
    pub fn new(task: Task, model: &str) -> Self {
        Self {
            task,
            id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
            model: model.to_string(),
            created: crate::shared::now_secs(),
        }
    }

    fn chunk(&self, choices: Vec<ChunkChoice<'_>>, usage: Option<&Usage>) -> String {
        let object = if self.task == Task::Completions { "text_completion" } else { "chat.completion.chunk" };
        to_json(&Chunk { id: &self.id, object, created: self.created, model: &self.model, choices, usage })
    }

    /// A chunk carrying `delta` and, on the last one, the finish reason.
    pub fn delta(&self, delta: &Delta, finish_reason: Option<&str>) -> String {
        let choice = if self.task == Task::Completions {
            let text = delta.content.as_deref().unwrap_or_default();
            ChunkChoice::Text { index: 0, text, finish_reason, logprobs: None }
        } else {
            ChunkChoice::Chat { index: 0, delta, finish_reason }
        };
        self.chunk(vec![choice], None)
    }

    /// The final usage chunk (`stream_options.include_usage`): empty `choices` and `usage`.
    pub fn usage(&self, usage: &Usage) -> String {
        self.chunk(Vec::new(), Some(usage))
    }

    /// The provider's usage report as a stream item: sent when the client asked for it
    /// (`include_usage`), else only counted, so a stream is billed as the provider reports it
    /// whether or not the client asked.
    pub fn usage_item(&self, usage: &Usage, include_usage: bool) -> crate::StreamItem {
        let chunk = self.usage(usage);
        if include_usage { crate::StreamItem::Data(chunk) } else { crate::StreamItem::Usage(chunk) }
    }
}

/// An OpenAI embeddings list.
#[derive(Debug, Serialize)]
pub struct EmbeddingList {
    object: &'static str,
    model: String,
    data: Vec<EmbeddingItem>,
    usage: EmbeddingUsage,
}

#[derive(Debug, Serialize)]
struct EmbeddingItem {
    object: &'static str,
    index: usize,
    embedding: EmbeddingValue,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum EmbeddingValue {
    Floats(Vec<f64>),
    Base64(String),
}

#[derive(Debug, Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

impl EmbeddingList {
    /// The list of `vectors`, each as the client asked for it: a float array, or base64 of
    /// little-endian f32 (`encoding_format: base64`, the openai SDK's default).
    pub fn new(model: &str, vectors: Vec<Vec<f64>>, tokens: u64, base64: bool) -> EmbeddingList {
        use base64::Engine;
        let data = vectors
            .into_iter()
            .enumerate()
            .map(|(index, v)| {
                let embedding = if base64 {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect();
                    EmbeddingValue::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    EmbeddingValue::Floats(v)
                };
                EmbeddingItem { object: "embedding", index, embedding }
            })
            .collect();
        EmbeddingList {
            object: "list",
            model: model.to_string(),
            data,
            usage: EmbeddingUsage { prompt_tokens: tokens, total_tokens: tokens },
        }
    }

    /// The list as JSON.
    pub fn to_json(&self) -> String {
        to_json(self)
    }
}

/// The texts of an embeddings request's `input`: one string or a list of strings.
pub fn embedding_texts(input: Option<Value>, provider: &str) -> Result<Vec<String>, ProviderError> {
    match input {
        Some(Value::String(s)) => Ok(vec![s]),
        Some(v @ Value::Array(_)) => serde_json::from_value(v)
            .map_err(|_| crate::shared::unsupported(provider, "embedding input that is not text")),
        _ => Err(crate::shared::unsupported(provider, "embedding input that is not text")),
    }
}

/// Serialises one of the output types above. They hold only strings, numbers, lists and
/// string-keyed objects, which always serialise.
fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Parses a provider's answer into its wire type; `provider` names it in the error.
pub fn parse_answer<'a, T: Deserialize<'a>>(body: &'a [u8], provider: &str) -> Result<T, ProviderError> {
    serde_json::from_slice(body)
        .map_err(|e| ProviderError::BadResponse(format!("{provider} answered with something unexpected: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Body {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_field_of_the_wrong_shape_is_named() {
        for (input, path) in [
            (json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": "ten"}), "max_tokens"),
            (json!({"messages": [{"role": "wizard", "content": "x"}]}), "messages[0].role"),
            (json!({"messages": [{"role": "user", "content": 5}]}), "messages[0].content"),
            (json!({"messages": [], "tool_choice": "sometimes"}), "tool_choice"),
            (json!({"messages": [], "tools": [{"function": {}}]}), "tools[0].function"),
        ] {
            let err = ChatRequest::from_body(body(input)).unwrap_err().to_string();
            assert!(err.starts_with(path), "{path}: {err}");
        }
    }

    #[test]
    fn answers_are_openai_shaped() {
        let answer = Answer {
            id: "a".into(),
            model: "m".into(),
            choices: vec![Choice {
                text: String::new(),
                tool_calls: vec![AnswerToolCall::new("c".into(), "f".into(), &json!({"x": 1}))],
                finish_reason: Some("tool_calls".into()),
            }],
            usage: Usage::new(3, 4).with_cache(Some(1), Some(0)),
        };
        let out: Value = serde_json::from_str(&answer.to_openai(Task::Chat)).unwrap();
        assert_eq!(out["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"x\":1}");
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7,
                   "prompt_tokens_details": {"cached_tokens": 1}})
        );
        let text: Value = serde_json::from_str(&answer.to_openai(Task::Completions)).unwrap();
        assert_eq!(text["object"], "text_completion");
        assert_eq!(text["choices"][0]["logprobs"], Value::Null);
    }

    #[test]
    fn chunks_are_openai_shaped() {
        let chunks = Chunks::new(Task::Chat, "m");
        let first: Value = serde_json::from_str(&chunks.delta(&Delta::start(), None)).unwrap();
        assert_eq!(first["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
        assert_eq!(first["choices"][0]["finish_reason"], Value::Null);
        let call: Value =
            serde_json::from_str(&chunks.delta(&Delta::call_arguments(1, "{".into()), Some("stop"))).unwrap();
        assert_eq!(call["choices"][0]["delta"], json!({"tool_calls": [{"index": 1, "function": {"arguments": "{"}}]}));
        assert_eq!(call["choices"][0]["finish_reason"], "stop");
        let usage: Value = serde_json::from_str(&chunks.usage(&Usage::new(1, 2))).unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["total_tokens"], 3);
        let text = Chunks::new(Task::Completions, "m");
        let t: Value = serde_json::from_str(&text.delta(&Delta::text("hi"), None)).unwrap();
        assert_eq!((t["object"].clone(), t["choices"][0]["text"].clone()), (json!("text_completion"), json!("hi")));
    }

    #[test]
    fn embeddings_in_either_encoding() {
        use base64::Engine;
        let list: Value =
            serde_json::from_str(&EmbeddingList::new("e", vec![vec![1.0, 2.0]], 3, true).to_json()).unwrap();
        assert_eq!(
            list["data"][0]["embedding"],
            base64::engine::general_purpose::STANDARD.encode([0, 0, 128, 63, 0, 0, 0, 64u8])
        );
        assert_eq!(list["usage"], json!({"prompt_tokens": 3, "total_tokens": 3}));
        let floats: Value =
            serde_json::from_str(&EmbeddingList::new("e", vec![vec![0.5]], 1, false).to_json()).unwrap();
        assert_eq!(floats["data"][0]["embedding"], json!([0.5]));
        assert!(embedding_texts(Some(json!([1, 2])), "p").is_err());
        assert_eq!(embedding_texts(Some(json!("a")), "p").unwrap(), vec!["a"]);
    }
}
