#![warn(missing_docs)]
//! LLM provider adapters.
//!
//! The gateway has one internal request model: the OpenAI chat/completions/embeddings body (a
//! JSON object), plus the Databricks fields (`extra_params`, `client_request_id`,
//! `usage_context`). Each provider is one [`Adapter`] that turns that body into its own wire
//! request, turns its answer back into the OpenAI shape, and translates its stream event by
//! event through a [`StreamTranslator`]. Where the provider already speaks OpenAI, the answer's
//! bytes pass through untouched.

pub mod anthropic;
pub mod bedrock;
pub mod body;
pub mod chat;
pub mod cohere;
pub mod entra;
pub mod framing;
pub mod images;
pub mod openai;
pub mod scoring;
mod shared;
pub mod token_cache;
pub mod tokens;
pub mod vertex;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use modelgate_core::{Provider, SecretString};
use modelgate_wire::ExternalModel;
use serde_json::{Map, Value};

/// What a query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// `llm/v1/chat`
    Chat,
    /// `llm/v1/completions`
    Completions,
    /// `llm/v1/embeddings`
    Embeddings,
    /// `llm/v1/images` (our extension): OpenAI's `images/generations`.
    Images,
    /// `mlflow/scoring` (our extension): the MLflow scoring protocol of a hosted custom model
    /// (`dataframe_split`, `dataframe_records`, `instances` or `inputs` in, `predictions` out).
    Scoring,
}

impl Task {
    /// Parses an endpoint task string.
    pub fn from_task(s: &str) -> Option<Task> {
        match s {
            "llm/v1/chat" => Some(Task::Chat),
            "llm/v1/completions" => Some(Task::Completions),
            "llm/v1/embeddings" => Some(Task::Embeddings),
            "llm/v1/images" => Some(Task::Images),
            "mlflow/scoring" => Some(Task::Scoring),
            _ => None,
        }
    }

    /// The endpoint task string.
    pub fn as_task(self) -> &'static str {
        match self {
            Task::Chat => "llm/v1/chat",
            Task::Completions => "llm/v1/completions",
            Task::Embeddings => "llm/v1/embeddings",
            Task::Images => "llm/v1/images",
            Task::Scoring => "mlflow/scoring",
        }
    }

    /// The OpenAI route for this task (`chat/completions`, ...).
    pub fn openai_path(self) -> &'static str {
        match self {
            Task::Chat => "chat/completions",
            Task::Completions => "completions",
            Task::Embeddings => "embeddings",
            Task::Images => "images/generations",
            Task::Scoring => "invocations",
        }
    }
}

/// A request body in the internal model.
pub type Body = Map<String, Value>;

/// Resolved credentials of a served entity, keyed by the reference field path
/// (`openai_config.openai_api_key`, ...).
pub type Credentials = BTreeMap<&'static str, SecretString>;

/// Why a call through a provider failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The request asks for something the provider cannot do, or is malformed.
    #[error("{0}")]
    Unsupported(String),
    /// The provider answered with an error status.
    #[error("{message}")]
    Upstream {
        /// The provider's HTTP status.
        status: u16,
        /// The provider's reason, credentials redacted.
        message: String,
        /// Seconds from the provider's `Retry-After`.
        retry_after: Option<u64>,
    },
    /// The provider could not be reached.
    #[error("{0}")]
    Connect(String),
    /// The provider did not answer in time.
    #[error("{0}")]
    Timeout(String),
    /// The provider answered with something that does not parse.
    #[error("{0}")]
    BadResponse(String),
    /// The provider's answer (or one event of its stream) is over the server's size limit.
    #[error("{0}")]
    TooLarge(String),
}

/// What the client asked about the shape of the answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseOptions {
    /// Embeddings as base64 of little-endian f32 (`encoding_format: base64`, the openai SDK's
    /// default) instead of float arrays.
    pub embeddings_base64: bool,
}

/// One outbound stream item.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// A `data:` payload (a chunk JSON).
    Data(String),
    /// The stream finished cleanly; send `data: [DONE]`.
    Done,
    /// The provider reported an error mid-stream; send it as an error event and stop.
    Error(String),
    /// A chunk that carries only the provider's usage report, which the gateway asked for and the
    /// client did not: it counts for usage and cost, and is not sent.
    Usage(String),
}

/// Translates a provider's stream, one server-sent event at a time.
pub trait StreamTranslator: Send {
    /// Handles one upstream event (`event` is the SSE event name, empty if none).
    fn on_event(&mut self, event: &str, data: &str) -> Vec<StreamItem>;

    /// Called when the upstream closes the stream without a terminal item. Providers whose
    /// streams end by closing (Gemini) finish here; by default a close is a broken stream.
    fn on_end(&mut self) -> Vec<StreamItem> {
        Vec::new()
    }
}

/// A provider adapter bound to one served entity's config and credentials.
#[async_trait::async_trait]
pub trait Adapter: Send + Sync {
    /// The provider name (`openai`, `anthropic`, ...).
    fn provider(&self) -> &'static str;
    /// Builds the upstream HTTP request for `body` (in the internal model).
    async fn request(
        &self,
        http: &reqwest::Client,
        task: Task,
        body: Body,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder, ProviderError>;
    /// Turns a successful non-streaming answer into the OpenAI shape.
    fn response(&self, task: Task, body: Bytes, options: ResponseOptions) -> Result<Bytes, ProviderError>;
    /// How the provider frames streamed answers.
    fn framing(&self) -> framing::Framing {
        framing::Framing::Sse
    }
    /// A translator for one streamed answer.
    fn stream(&self, task: Task, include_usage: bool) -> Box<dyn StreamTranslator>;
    /// The reason in a provider error body.
    fn error_message(&self, body: &[u8]) -> String;
    /// Credential values (keys, and access tokens obtained with them), to redact from anything
    /// shown to clients, logs or the inference table.
    fn secrets(&self) -> Vec<String>;
}

/// Server-wide provider settings.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Base-URL overrides by provider name (`anthropic`, `amazon-bedrock`,
    /// `google-cloud-vertex-ai`, `ai21labs`, `cohere`, `openai`, `microsoft-entra`, ...), for
    /// air-gapped proxies and tests.
    pub base_urls: HashMap<String, String>,
    /// OAuth token caches (Entra, Google), kept across adapter rebuilds.
    pub token_caches: token_cache::TokenCaches,
}

impl Settings {
    /// The base URL for `provider`: the override if any, else `default`.
    pub fn base_url(&self, provider: &str, default: &str) -> String {
        self.base_urls.get(provider).map(String::as_str).unwrap_or(default).trim_end_matches('/').to_string()
    }
}

/// Builds the adapter for an external model. Fails with a reason when a credential is missing.
pub fn build(model: &ExternalModel, creds: &Credentials, settings: &Settings) -> Result<Arc<dyn Adapter>, String> {
    let provider = Provider::parse(&model.provider)
        .ok_or_else(|| format!("provider '{}' cannot serve queries in this version", model.provider))?;
    match provider {
        Provider::OpenAi | Provider::Custom | Provider::DatabricksModelServing | Provider::Ai21Labs => {
            Ok(Arc::new(openai::OpenAiCompatible::new(provider, model, creds, settings)?))
        }
        Provider::Anthropic => Ok(Arc::new(anthropic::Anthropic::new(model, creds, settings)?)),
        Provider::Cohere => Ok(Arc::new(cohere::Cohere::new(model, creds, settings)?)),
        Provider::GoogleCloudVertexAi => Ok(Arc::new(vertex::Vertex::new(model, creds, settings)?)),
        Provider::AmazonBedrock => Ok(Arc::new(bedrock::Bedrock::new(model, creds, settings)?)),
    }
}

/// Replaces every credential value inside `text` with `***`.
pub fn redact<S: AsRef<str>>(text: &str, secrets: &[S]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().map(AsRef::as_ref).filter(|s| s.len() >= 4) {
        out = out.replace(s, "***");
    }
    out
}
