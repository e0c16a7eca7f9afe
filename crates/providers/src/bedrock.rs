//! Amazon Bedrock: the Converse and ConverseStream APIs for chat (all four `bedrock_provider`
//! families), InvokeModel for embeddings (Amazon Titan and Cohere models) and images (Amazon Titan
//! Image Generator), every request signed
//! with AWS Signature Version 4. Streams arrive as AWS event-stream binary frames.

use std::time::SystemTime;

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use modelgate_core::SecretString;
use modelgate_wire::ExternalModel;
use serde_json::Value;

use crate::chat::{
    Answer, AnswerToolCall, ChatRequest, Choice, Chunks, Content, Delta, EmbeddingList, Part, ResponseFormat, Role,
    ToolChoice, ToolMode, Usage, embedding_texts, parse_answer,
};
use crate::framing::Framing;
use crate::images::{ImageRequest, titan};
use crate::shared::{credential, malformed_event};
use crate::{Adapter, Body, Credentials, ProviderError, ResponseOptions, Settings, StreamItem, StreamTranslator, Task};

/// What is escaped in a model id: everything but RFC 3986 unreserved characters.
const MODEL_ID: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Signing name of the Bedrock runtime.
pub const SERVICE: &str = "bedrock";

/// The model family on Bedrock (`bedrock_provider`): it decides the InvokeModel body of
/// embeddings; chat goes through Converse, which is the same for every family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Anthropic Claude.
    Anthropic,
    /// Cohere Command and Embed.
    Cohere,
    /// AI21 Jamba.
    Ai21Labs,
    /// Amazon Titan and Nova.
    Amazon,
}

impl Family {
    /// Parses `bedrock_provider`, in any case.
    pub fn parse(name: &str) -> Result<Family, String> {
        match name.to_ascii_lowercase().as_str() {
            "anthropic" => Ok(Family::Anthropic),
            "cohere" => Ok(Family::Cohere),
            "ai21labs" => Ok(Family::Ai21Labs),
            "amazon" => Ok(Family::Amazon),
            _ => Err(format!("bedrock_provider '{name}' is not one of anthropic, cohere, ai21labs, amazon")),
        }
    }
}

/// Adapter for `provider: amazon-bedrock`.
pub struct Bedrock {
    base: String,
    region: String,
    model: String,
    family: Family,
    access_key: SecretString,
    secret_key: SecretString,
}

impl Bedrock {
    /// Builds the adapter. Only access-key authentication can be used by a self-hosted server.
    pub fn new(model: &ExternalModel, creds: &Credentials, settings: &Settings) -> Result<Self, String> {
        let c = model.amazon_bedrock_config.clone().unwrap_or_default();
        if c.instance_profile_arn.is_some() || c.uc_service_credential_name.is_some() {
            return Err("instance_profile_arn and uc_service_credential_name are Databricks-hosted credentials; \
                 use aws_access_key_id and aws_secret_access_key"
                .into());
        }
        let region = c.aws_region.unwrap_or_default();
        Ok(Self {
            base: settings.base_url("amazon-bedrock", &format!("https://bedrock-runtime.{region}.amazonaws.com")),
            region,
            model: model.name.clone(),
            family: Family::parse(c.bedrock_provider.as_deref().unwrap_or_default())?,
            access_key: credential(creds, "amazon_bedrock_config.aws_access_key_id")?,
            secret_key: credential(creds, "amazon_bedrock_config.aws_secret_access_key")?,
        })
    }

    fn url(&self, action: &str) -> String {
        // Model ids contain ':' (`anthropic.claude-3-haiku-20240307-v1:0`) and may be ARNs with '/';
        // the AWS SDKs send the id as one encoded path segment.
        let id = percent_encoding::utf8_percent_encode(&self.model, MODEL_ID);
        format!("{}/model/{id}/{action}", self.base)
    }

    /// Signs a POST of `body` to `url` and returns the request.
    pub fn signed(
        &self,
        http: &reqwest::Client,
        url: &str,
        body: Vec<u8>,
        accept: &str,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let identity =
            AwsCredentials::new(self.access_key.expose(), self.secret_key.expose(), None, None, "modelgate").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| ProviderError::Unsupported(format!("cannot sign the Bedrock request: {e}")))?
            .into();
        let headers = [("content-type", "application/json"), ("accept", accept)];
        let signable = SignableRequest::new("POST", url, headers.iter().copied(), SignableBody::Bytes(&body))
            .map_err(|e| ProviderError::Unsupported(format!("cannot sign the Bedrock request: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| ProviderError::Unsupported(format!("cannot sign the Bedrock request: {e}")))?
            .into_parts();
        let mut req = http.post(url).header("content-type", "application/json").header("accept", accept).body(body);
        for (name, value) in instructions.headers() {
            req = req.header(name, value);
        }
        Ok(req)
    }
}

fn unsupported(what: &str) -> ProviderError {
    crate::shared::unsupported("amazon-bedrock", what)
}

const FIELDS: &[&str] = &[
    "model",
    "messages",
    "prompt",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "stream",
    "stream_options",
    "n",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "user",
    "extra_params",
    "client_request_id",
    "usage_context",
];

fn content_blocks(content: Content) -> Result<Vec<wire::Block>, ProviderError> {
    content
        .into_parts()
        .into_iter()
        .map(|p| match p {
            Part::Text { text } => Ok(wire::Block::Text { text }),
            Part::ImageUrl { image_url } => {
                let (mime, data) =
                    image_url.inline().ok_or_else(|| unsupported("an image that is not a base64 data URL"))?;
                let format = mime.strip_prefix("image/").unwrap_or(mime).to_string();
                Ok(wire::Block::Image {
                    image: wire::Image { format, source: wire::ImageSource { bytes: data.into() } },
                })
            }
            Part::Other => Err(unsupported("message content that is not text or an image")),
        })
        .collect()
}

/// Turns the internal body into a Converse request.
pub fn converse_request(task: Task, mut body: Body) -> Result<wire::ConverseRequest, ProviderError> {
    crate::shared::refuse_unknown(&body, FIELDS, "amazon-bedrock")?;
    // Model-family parameters (e.g. top_k) go through untouched.
    let additional = match body.remove("extra_params") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) if o.is_empty() => None,
        Some(Value::Object(o)) => Some(o),
        Some(_) => return Err(ProviderError::Unsupported("extra_params must be an object".into())),
    };
    let mut req = ChatRequest::from_body(body)?;
    req.parallel_calls_only("amazon-bedrock")?;
    let mut system = Vec::new();
    let mut turns: Vec<wire::Message> = Vec::new();
    for (i, m) in req.conversation(task, "amazon-bedrock")?.into_iter().enumerate() {
        let (role, blocks) = match m.role {
            Role::System | Role::Developer => {
                system.extend(content_blocks(m.content)?);
                continue;
            }
            Role::User => (wire::Role::User, content_blocks(m.content)?),
            Role::Assistant => {
                let mut blocks = content_blocks(m.content)?;
                for call in &m.tool_calls {
                    blocks.push(wire::Block::ToolUse {
                        tool_use: wire::ToolUse {
                            tool_use_id: call.id.clone(),
                            name: call.function.name.clone(),
                            input: call.input(i)?,
                        },
                    });
                }
                (wire::Role::Assistant, blocks)
            }
            Role::Tool => {
                let result = wire::ToolResult {
                    tool_use_id: m.tool_call_id.unwrap_or_default(),
                    content: vec![wire::ResultText { text: m.content.text() }],
                };
                (wire::Role::User, vec![wire::Block::ToolResult { tool_result: result }])
            }
        };
        match turns.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => turns.push(wire::Message { role, content: blocks }),
        }
    }
    let inference = wire::InferenceConfig {
        max_tokens: req.max_tokens(),
        temperature: req.temperature,
        top_p: req.top_p,
        stop_sequences: req.stop_sequences(),
    };
    let tool_config = if req.tools.is_empty() {
        None
    } else {
        let tool_choice = match req.tool_choice.take() {
            None => None,
            Some(ToolChoice::Mode(ToolMode::Auto)) => Some(wire::ToolChoice::Auto {}),
            Some(ToolChoice::Mode(ToolMode::Required)) => Some(wire::ToolChoice::Any {}),
            Some(ToolChoice::Mode(ToolMode::None)) => return Err(unsupported("tool_choice none")),
            Some(ToolChoice::Function { function }) => Some(wire::ToolChoice::Tool { name: function.name }),
        };
        let tools = req
            .tools
            .iter()
            .map(|t| wire::Tool {
                tool_spec: wire::ToolSpec {
                    name: t.function.name.clone(),
                    description: t.function.description.clone(),
                    input_schema: wire::Schema { json: t.function.schema() },
                },
            })
            .collect();
        Some(wire::ToolConfig { tools, tool_choice })
    };
    let output_config = match req.response_format.take() {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => {
            return Err(unsupported(
                "response_format json_object (Converse constrains output to a schema: use json_schema)",
            ));
        }
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            let schema = json_schema.schema.unwrap_or_else(|| serde_json::json!({"type": "object"}));
            Some(wire::OutputConfig {
                text_format: wire::TextFormat {
                    kind: "json_schema",
                    structure: wire::Structure {
                        json_schema: wire::JsonSchemaDefinition {
                            schema: schema.to_string(),
                            name: json_schema.name,
                            description: json_schema.description,
                        },
                    },
                },
            })
        }
    };
    Ok(wire::ConverseRequest {
        messages: turns,
        system,
        inference_config: (!inference.is_empty()).then_some(inference),
        tool_config,
        output_config,
        additional_model_request_fields: additional,
    })
}

fn finish_reason(reason: &str) -> String {
    match reason {
        "end_turn" | "stop_sequence" => "stop",
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        other => other,
    }
    .to_string()
}

/// OpenAI usage from Converse usage; cache reads and writes count as prompt tokens.
fn usage(u: &wire::Usage) -> Usage {
    let read = u.cache_read_input_tokens.unwrap_or(0);
    let written = u.cache_write_input_tokens.unwrap_or(0);
    Usage::new(u.input_tokens + read + written, u.output_tokens)
        .with_cache(u.cache_read_input_tokens, u.cache_write_input_tokens)
}

/// Turns a Converse answer into the internal answer.
pub fn from_converse(model: &str, r: wire::ConverseResponse) -> Answer {
    let mut choice = Choice { finish_reason: r.stop_reason.as_deref().map(finish_reason), ..Choice::default() };
    for block in r.output.message.content {
        if let Some(t) = block.text {
            choice.text.push_str(&t);
        }
        if let Some(t) = block.tool_use {
            choice.tool_calls.push(AnswerToolCall::new(t.tool_use_id, t.name, &t.input));
        }
    }
    Answer {
        id: format!("bedrock-{}", uuid::Uuid::new_v4().simple()),
        model: model.to_string(),
        choices: vec![choice],
        usage: usage(&r.usage),
    }
}

/// The InvokeModel body of an embeddings request, by model family.
fn embed_request(family: Family, mut body: Body) -> Result<wire::EmbedRequest, ProviderError> {
    let mut texts = embedding_texts(body.remove("input"), "amazon-bedrock")?;
    match family {
        Family::Amazon => match texts.pop() {
            Some(input_text) if texts.is_empty() => Ok(wire::EmbedRequest::Titan { input_text }),
            _ => Err(unsupported("more than one input per request for Amazon Titan embeddings")),
        },
        Family::Cohere => {
            let input_type = match body.remove("input_type") {
                None => "search_document".to_string(),
                Some(Value::String(t)) => t,
                Some(_) => return Err(ProviderError::Unsupported("input_type must be a string".into())),
            };
            Ok(wire::EmbedRequest::Cohere { texts, input_type })
        }
        other => Err(unsupported(&format!("embeddings with bedrock_provider {other:?}"))),
    }
}

#[async_trait::async_trait]
impl Adapter for Bedrock {
    fn provider(&self) -> &'static str {
        "amazon-bedrock"
    }

    fn framing(&self) -> Framing {
        Framing::AwsEventStream
    }

    async fn request(
        &self,
        http: &reqwest::Client,
        task: Task,
        body: Body,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        match task {
            Task::Embeddings => {
                let payload = to_body(&embed_request(self.family, body)?)?;
                return self.signed(http, &self.url("invoke"), payload, "application/json");
            }
            Task::Images if self.family == Family::Amazon => {
                let payload = to_body(&titan::request(ImageRequest::read("amazon-bedrock", body)?)?)?;
                return self.signed(http, &self.url("invoke"), payload, "application/json");
            }
            Task::Images => return Err(unsupported("image generation outside bedrock_provider amazon (Titan)")),
            _ => {}
        }
        let payload = to_body(&converse_request(task, body)?)?;
        let (action, accept) = if stream {
            ("converse-stream", "application/vnd.amazon.eventstream")
        } else {
            ("converse", "application/json")
        };
        self.signed(http, &self.url(action), payload, accept)
    }

    fn response(&self, task: Task, body: Bytes, options: ResponseOptions) -> Result<Bytes, ProviderError> {
        let out = if task == Task::Images {
            crate::images::answer(titan::images(parse_answer(&body, "Bedrock")?)?)
        } else if task == Task::Embeddings {
            let (vectors, tokens) = match parse_answer(&body, "Bedrock")? {
                wire::EmbedResponse::Titan { embedding, input_text_token_count } => {
                    (vec![embedding], input_text_token_count)
                }
                // Cohere-on-Bedrock reports no token count; it echoes the texts, so count them.
                wire::EmbedResponse::Cohere { embeddings, texts } => {
                    (embeddings, texts.iter().map(|t| crate::tokens::count(t)).sum())
                }
            };
            EmbeddingList::new(&self.model, vectors, tokens, options.embeddings_base64).to_json()
        } else {
            from_converse(&self.model, parse_answer(&body, "Bedrock")?).to_openai(task)
        };
        Ok(Bytes::from(out))
    }

    fn stream(&self, task: Task, include_usage: bool) -> Box<dyn StreamTranslator> {
        Box::new(StreamState { out: Chunks::new(task, &self.model), include_usage, tools: Vec::new(), stopped: false })
    }

    fn error_message(&self, body: &[u8]) -> String {
        crate::shared::error_message(body)
    }

    fn secrets(&self) -> Vec<String> {
        vec![self.access_key.expose().to_string(), self.secret_key.expose().to_string()]
    }
}

struct StreamState {
    out: Chunks,
    include_usage: bool,
    /// Bedrock content-block index of each tool call, in order.
    tools: Vec<u64>,
    stopped: bool,
}

impl StreamTranslator for StreamState {
    fn on_event(&mut self, event: &str, data: &str) -> Vec<StreamItem> {
        if let Some(kind) = event.strip_prefix("exception:") {
            let msg = serde_json::from_str::<wire::Exception>(data).map(|e| e.message).unwrap_or_default();
            return vec![StreamItem::Error(format!("Bedrock {kind}: {msg}"))];
        }
        // The event's type is its frame's `:event-type` header; the payload is that type's body.
        let parsed = match event {
            "messageStart" => serde_json::from_str::<wire::MessageStart>(data).map(|_| Event::Start),
            "contentBlockStart" => serde_json::from_str(data).map(Event::BlockStart),
            "contentBlockDelta" => serde_json::from_str(data).map(Event::BlockDelta),
            "messageStop" => serde_json::from_str(data).map(Event::Stop),
            "metadata" => serde_json::from_str(data).map(Event::Metadata),
            _ => Ok(Event::Other),
        };
        let ev = match parsed {
            Ok(ev) => ev,
            Err(e) => return vec![malformed_event("Bedrock", data, &e)],
        };
        match ev {
            Event::Start => vec![StreamItem::Data(self.out.delta(&Delta::start(), None))],
            Event::BlockStart(b) => match b.start.tool_use {
                Some(t) => {
                    let index = self.tools.len();
                    self.tools.push(b.content_block_index);
                    vec![StreamItem::Data(
                        self.out.delta(&Delta::call_start(index, t.tool_use_id, t.name, String::new()), None),
                    )]
                }
                None => Vec::new(),
            },
            Event::BlockDelta(b) => {
                if let Some(t) = b.delta.text {
                    return vec![StreamItem::Data(self.out.delta(&Delta::text(t), None))];
                }
                if let Some(input) = b.delta.tool_use.map(|t| t.input) {
                    let index = self.tools.iter().position(|i| *i == b.content_block_index).unwrap_or(0);
                    return vec![StreamItem::Data(self.out.delta(&Delta::call_arguments(index, input), None))];
                }
                Vec::new()
            }
            Event::Stop(stop) => {
                self.stopped = true;
                let finish = stop.stop_reason.as_deref().map(finish_reason);
                vec![StreamItem::Data(self.out.delta(&Delta::default(), finish.as_deref()))]
            }
            Event::Metadata(m) => {
                vec![self.out.usage_item(&usage(&m.usage.unwrap_or_default()), self.include_usage), StreamItem::Done]
            }
            Event::Other => Vec::new(),
        }
    }

    fn on_end(&mut self) -> Vec<StreamItem> {
        if self.stopped { vec![StreamItem::Done] } else { Vec::new() }
    }
}

/// A ConverseStream event, by its frame's event type.
enum Event {
    Start,
    BlockStart(wire::BlockStart),
    BlockDelta(wire::BlockDelta),
    Stop(wire::MessageStop),
    Metadata(wire::Metadata),
    Other,
}

fn to_body<T: serde::Serialize>(payload: &T) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(payload)
        .map_err(|e| ProviderError::Unsupported(format!("cannot encode the Bedrock request: {e}")))
}

/// Bedrock's wire format: Converse, ConverseStream events, and InvokeModel embeddings.
pub mod wire {
    use serde::{Deserialize, Serialize};
    use serde_json::{Map, Value};

    /// A Converse request.
    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ConverseRequest {
        /// Alternating user and assistant turns.
        pub messages: Vec<Message>,
        /// The system prompt.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub system: Vec<Block>,
        /// Sampling options.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub inference_config: Option<InferenceConfig>,
        /// Tools.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tool_config: Option<ToolConfig>,
        /// Structured output.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub output_config: Option<OutputConfig>,
        /// The model family's own parameters (`extra_params`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub additional_model_request_fields: Option<Map<String, Value>>,
    }

    /// `outputConfig`: the answer's text follows a JSON schema.
    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct OutputConfig {
        /// The format.
        pub text_format: TextFormat,
    }

    /// `textFormat`.
    #[derive(Debug, Serialize)]
    pub struct TextFormat {
        /// `json_schema`.
        #[serde(rename = "type")]
        pub kind: &'static str,
        /// The schema.
        pub structure: Structure,
    }

    /// `structure`.
    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Structure {
        /// The schema definition.
        pub json_schema: JsonSchemaDefinition,
    }

    /// `jsonSchema`: the schema travels as a JSON string.
    #[derive(Debug, Serialize)]
    pub struct JsonSchemaDefinition {
        /// The schema, serialised.
        pub schema: String,
        /// Its name.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        /// What it describes.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
    }

    /// Who wrote a turn.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Role {
        /// The user (tool results included).
        User,
        /// The model.
        Assistant,
    }

    /// One turn.
    #[derive(Debug, Serialize)]
    pub struct Message {
        /// Who wrote it.
        pub role: Role,
        /// Its blocks.
        pub content: Vec<Block>,
    }

    /// A content block, as sent.
    #[derive(Debug, Serialize)]
    #[serde(untagged)]
    pub enum Block {
        /// Text.
        Text {
            /// The text.
            text: String,
        },
        /// An image.
        Image {
            /// The image.
            image: Image,
        },
        /// A tool call the model made.
        ToolUse {
            /// The call.
            #[serde(rename = "toolUse")]
            tool_use: ToolUse,
        },
        /// A tool's result.
        ToolResult {
            /// The result.
            #[serde(rename = "toolResult")]
            tool_result: ToolResult,
        },
    }

    /// An image.
    #[derive(Debug, Serialize)]
    pub struct Image {
        /// `png`, `jpeg`, `gif` or `webp`.
        pub format: String,
        /// The bytes.
        pub source: ImageSource,
    }

    /// An image's bytes.
    #[derive(Debug, Serialize)]
    pub struct ImageSource {
        /// Base64 data.
        pub bytes: String,
    }

    /// A tool call.
    #[derive(Debug, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ToolUse {
        /// The call's id.
        pub tool_use_id: String,
        /// The tool.
        pub name: String,
        /// Its input.
        #[serde(default)]
        pub input: Value,
    }

    /// A tool's result.
    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ToolResult {
        /// The call it answers.
        pub tool_use_id: String,
        /// The result.
        pub content: Vec<ResultText>,
    }

    /// Text of a tool's result.
    #[derive(Debug, Serialize)]
    pub struct ResultText {
        /// The text.
        pub text: String,
    }

    /// `inferenceConfig`.
    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct InferenceConfig {
        /// Most tokens to generate.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub max_tokens: Option<u64>,
        /// Sampling temperature.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub temperature: Option<f64>,
        /// Nucleus sampling.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub top_p: Option<f64>,
        /// Stop sequences.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub stop_sequences: Option<Vec<String>>,
    }

    impl InferenceConfig {
        /// Whether no option is set (the config is then left out).
        pub fn is_empty(&self) -> bool {
            self.max_tokens.is_none()
                && self.temperature.is_none()
                && self.top_p.is_none()
                && self.stop_sequences.is_none()
        }
    }

    /// `toolConfig`.
    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ToolConfig {
        /// The tools.
        pub tools: Vec<Tool>,
        /// Whether and which tool the model must call.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tool_choice: Option<ToolChoice>,
    }

    /// A tool.
    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Tool {
        /// Its specification.
        pub tool_spec: ToolSpec,
    }

    /// A tool's specification.
    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ToolSpec {
        /// Its name.
        pub name: String,
        /// What it does.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        /// Its input schema.
        pub input_schema: Schema,
    }

    /// A JSON schema.
    #[derive(Debug, Serialize)]
    pub struct Schema {
        /// The schema.
        pub json: Value,
    }

    /// `toolChoice`.
    #[derive(Debug, Serialize)]
    #[serde(rename_all = "lowercase")]
    pub enum ToolChoice {
        /// The model decides.
        Auto {},
        /// The model must call some tool.
        Any {},
        /// The model must call this tool.
        Tool {
            /// The tool.
            name: String,
        },
    }

    /// A Converse answer.
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ConverseResponse {
        /// The answer.
        pub output: Output,
        /// Why it stopped.
        #[serde(default)]
        pub stop_reason: Option<String>,
        /// The tokens used.
        #[serde(default)]
        pub usage: Usage,
    }

    /// The output of an answer.
    #[derive(Debug, Deserialize)]
    pub struct Output {
        /// The message.
        pub message: OutputMessage,
    }

    /// The message of an answer.
    #[derive(Debug, Deserialize)]
    pub struct OutputMessage {
        /// Its blocks.
        #[serde(default)]
        pub content: Vec<OutputBlock>,
    }

    /// A block of an answer (one of its fields is set).
    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct OutputBlock {
        /// Text.
        #[serde(default)]
        pub text: Option<String>,
        /// A tool call.
        #[serde(default)]
        pub tool_use: Option<ToolUse>,
    }

    /// Token usage; cache reads and writes are not part of `inputTokens`.
    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Usage {
        /// Uncached input tokens.
        #[serde(default)]
        pub input_tokens: u64,
        /// Output tokens.
        #[serde(default)]
        pub output_tokens: u64,
        /// Input tokens read from the cache.
        #[serde(default)]
        pub cache_read_input_tokens: Option<u64>,
        /// Input tokens written to the cache.
        #[serde(default)]
        pub cache_write_input_tokens: Option<u64>,
    }

    /// `messageStart`.
    #[derive(Debug, Deserialize)]
    pub struct MessageStart {
        /// Always `assistant`.
        #[serde(default)]
        pub role: String,
    }

    /// `contentBlockStart`.
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct BlockStart {
        /// The block's index.
        #[serde(default)]
        pub content_block_index: u64,
        /// What starts.
        #[serde(default)]
        pub start: StartOf,
    }

    /// What a `contentBlockStart` starts.
    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct StartOf {
        /// A tool call.
        #[serde(default)]
        pub tool_use: Option<ToolUseStart>,
    }

    /// The start of a tool call.
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ToolUseStart {
        /// The call's id.
        pub tool_use_id: String,
        /// The tool.
        pub name: String,
    }

    /// `contentBlockDelta`.
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct BlockDelta {
        /// The block's index.
        #[serde(default)]
        pub content_block_index: u64,
        /// What was added.
        #[serde(default)]
        pub delta: DeltaOf,
    }

    /// What a `contentBlockDelta` adds (one field is set; reasoning is not translated).
    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct DeltaOf {
        /// Text.
        #[serde(default)]
        pub text: Option<String>,
        /// Part of a tool call's input.
        #[serde(default)]
        pub tool_use: Option<ToolUseDelta>,
    }

    /// Part of a tool call's input, as JSON text.
    #[derive(Debug, Deserialize)]
    pub struct ToolUseDelta {
        /// The JSON text.
        #[serde(default)]
        pub input: String,
    }

    /// `messageStop`.
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct MessageStop {
        /// Why the answer stopped.
        #[serde(default)]
        pub stop_reason: Option<String>,
    }

    /// `metadata`, the last event.
    #[derive(Debug, Deserialize)]
    pub struct Metadata {
        /// The tokens used.
        #[serde(default)]
        pub usage: Option<Usage>,
    }

    /// An exception event's payload.
    #[derive(Debug, Deserialize)]
    pub struct Exception {
        /// Why.
        #[serde(default)]
        pub message: String,
    }

    /// An InvokeModel embeddings body.
    #[derive(Debug, Serialize)]
    #[serde(untagged)]
    pub enum EmbedRequest {
        /// Amazon Titan: one text.
        Titan {
            /// The text.
            #[serde(rename = "inputText")]
            input_text: String,
        },
        /// Cohere Embed: several texts.
        Cohere {
            /// The texts.
            texts: Vec<String>,
            /// What the embeddings are for.
            input_type: String,
        },
    }

    /// An InvokeModel embeddings answer.
    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    pub enum EmbedResponse {
        /// Amazon Titan.
        Titan {
            /// The vector.
            embedding: Vec<f64>,
            /// Tokens in the text.
            #[serde(rename = "inputTextTokenCount", default)]
            input_text_token_count: u64,
        },
        /// Cohere Embed (echoes the texts).
        Cohere {
            /// The vectors.
            embeddings: Vec<Vec<f64>>,
            /// The texts.
            #[serde(default)]
            texts: Vec<String>,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converse_translation() {
        let body = json!({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "ok"}],
            "max_tokens": 10, "stop": ["X"], "extra_params": {"top_k": 3},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}], "tool_choice": "required"});
        let r = serde_json::to_value(converse_request(Task::Chat, body.as_object().unwrap().clone()).unwrap()).unwrap();
        assert_eq!(r["system"], json!([{"text": "s"}]));
        assert_eq!(r["inferenceConfig"], json!({"maxTokens": 10, "stopSequences": ["X"]}));
        assert_eq!(r["messages"][1]["content"][0]["toolUse"]["name"], "f");
        assert_eq!(r["messages"][2]["content"][0]["toolResult"]["content"][0]["text"], "ok");
        assert_eq!(r["toolConfig"]["toolChoice"], json!({"any": {}}));
        assert_eq!(r["additionalModelRequestFields"], json!({"top_k": 3}));
        let answer = json!({"output": {"message": {"role": "assistant", "content": [{"text": "yo"}]}},
            "stopReason": "max_tokens", "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}});
        let out: Value =
            serde_json::from_str(&from_converse("m", serde_json::from_value(answer).unwrap()).to_openai(Task::Chat))
                .unwrap();
        assert_eq!(
            (out["choices"][0]["message"]["content"].clone(), out["choices"][0]["finish_reason"].clone()),
            (json!("yo"), json!("length"))
        );
        assert_eq!(out["usage"]["total_tokens"], 7);
    }
}
