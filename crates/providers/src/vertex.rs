//! Google Cloud Vertex AI: Gemini `generateContent` / `streamGenerateContent`, text embeddings
//! and Imagen images (`:predict`), and Anthropic's Claude models (a model named `claude-...`):
//! the Messages body at `publishers/anthropic/models/{m}:rawPredict` (`:streamRawPredict`), with
//! `anthropic_version` in the body instead of `model`.
//!
//! Authentication: the secret is the service account's JSON key file. modelgate signs a JWT
//! (RS256) naming the account, trades it at the key's `token_uri` for an access token
//! (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`), and caches that token until shortly
//! before it expires.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use modelgate_core::SecretString;
use modelgate_wire::ExternalModel;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::Value;

use crate::chat::{
    Answer, AnswerToolCall, ChatRequest, Choice, Chunks, Content, Delta, EmbeddingList, Part, ResponseFormat, Role,
    ToolChoice, ToolMode, Usage, embedding_texts, parse_answer,
};
use crate::images::{ImageRequest, imagen};
use crate::shared::{credential, flatten_databricks_fields, malformed_event, now_secs};
use crate::token_cache::TokenCache;
use crate::{Adapter, Body, Credentials, ProviderError, ResponseOptions, Settings, StreamItem, StreamTranslator, Task};

/// `anthropic_version` of Claude requests on Vertex AI.
pub const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";
/// OAuth scope requested for Vertex AI.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Token endpoint used when the key file names none.
pub const TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

fn is_google_https(uri: &str) -> bool {
    uri.strip_prefix("https://")
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .is_some_and(|host| host == "googleapis.com" || host.ends_with(".googleapis.com"))
}

/// A service account, parsed from its JSON key file.
pub struct ServiceAccount {
    /// The base64 lines of the PEM private key, each redacted on its own if echoed.
    pem_lines: Vec<String>,
    client_email: String,
    private_key_id: String,
    token_uri: String,
    key: RsaKeyPair,
}

impl ServiceAccount {
    /// Parses a JSON key file (`type: service_account`, `client_email`, `private_key` in PEM).
    pub fn from_key_file(text: &str) -> Result<Self, String> {
        let file: wire::KeyFile = serde_json::from_str(text).map_err(|e| {
            // Only a missing field is named: other parse errors may quote the (secret) text.
            let msg = e.to_string();
            match msg.strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
                Some(field) => format!("the service-account key file has no {field}"),
                None => "the Vertex AI private key must be the service account's JSON key file (it names the account)"
                    .to_string(),
            }
        })?;
        let pem = file.private_key;
        let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD.decode(der.trim()).map_err(|_| "the service-account private_key is not PEM".to_string())?;
        let key = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| format!("the service-account private_key is not a PKCS#8 RSA key: {e}"))?;
        let token_uri = file.token_uri.unwrap_or_else(|| TOKEN_URI.to_string());
        // The key file is user input: its token_uri must not point the gateway anywhere else.
        if !is_google_https(&token_uri) {
            return Err("the service-account key's token_uri is not an https://*.googleapis.com URL; \
                 modelgate only sends service-account assertions to Google"
                .to_string());
        }
        Ok(Self {
            pem_lines: pem.lines().filter(|l| !l.starts_with("-----") && l.len() >= 16).map(str::to_string).collect(),
            client_email: file.client_email,
            private_key_id: file.private_key_id.unwrap_or_default(),
            token_uri,
            key,
        })
    }

    /// The private key's base64 lines, for redaction.
    pub fn private_key_lines(&self) -> impl Iterator<Item = String> + '_ {
        self.pem_lines.iter().cloned()
    }

    /// A signed assertion valid for an hour from `now` (seconds).
    pub fn assertion(&self, audience: &str, now: i64) -> Result<String, ProviderError> {
        let header = wire::JwtHeader { alg: "RS256", typ: "JWT", kid: &self.private_key_id };
        let claims =
            wire::JwtClaims { iss: &self.client_email, scope: SCOPE, aud: audience, iat: now, exp: now + 3600 };
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let claims = serde_json::to_vec(&claims).unwrap_or_default();
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &ring::rand::SystemRandom::new(), signing_input.as_bytes(), &mut sig)
            .map_err(|_| ProviderError::BadResponse("could not sign the service-account assertion".into()))?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// Adapter for `provider: google-cloud-vertex-ai`.
pub struct Vertex {
    base: String,
    project: String,
    region: String,
    model: String,
    token_uri: String,
    account: ServiceAccount,
    key_text: SecretString,
    tokens: Arc<TokenCache>,
}

impl Vertex {
    /// Builds the adapter.
    pub fn new(model: &ExternalModel, creds: &Credentials, settings: &Settings) -> Result<Self, String> {
        let c = model.google_cloud_vertex_ai_config.clone().unwrap_or_default();
        let key_text = credential(creds, "google_cloud_vertex_ai_config.private_key")?;
        let account = ServiceAccount::from_key_file(key_text.expose())?;
        let region = c.region.unwrap_or_default();
        let token_uri = settings.base_urls.get("google-oauth").cloned().unwrap_or_else(|| account.token_uri.clone());
        let tokens = settings.token_caches.get(&["google", &token_uri, key_text.expose()]);
        Ok(Self {
            base: settings.base_url("google-cloud-vertex-ai", &format!("https://{region}-aiplatform.googleapis.com")),
            token_uri,
            project: c.project_id.unwrap_or_default(),
            region,
            model: model.name.clone(),
            account,
            key_text,
            tokens,
        })
    }

    async fn fetch_token(&self, http: &reqwest::Client) -> Result<(SecretString, Duration), ProviderError> {
        let assertion = self.account.assertion(&self.token_uri, now_secs())?;
        let form = [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion.as_str())];
        let resp =
            http.post(&self.token_uri).form(&form).send().await.map_err(|e| {
                ProviderError::Connect(format!("Google token endpoint: {}", crate::entra::without_url(&e)))
            })?;
        let status = resp.status();
        let body = crate::body::read_capped(resp, crate::entra::TOKEN_RESPONSE_LIMIT).await?;
        let v: wire::TokenResponse = serde_json::from_slice(&body).unwrap_or_default();
        if !status.is_success() {
            let reason = v.error_description.or(v.error).unwrap_or_else(|| "refused".into());
            return Err(ProviderError::Upstream {
                status: 401,
                message: format!("Google refused the service-account credentials: {reason}"),
                retry_after: None,
            });
        }
        let token = v
            .access_token
            .ok_or_else(|| ProviderError::BadResponse("Google token response has no access_token".into()))?;
        Ok((SecretString::new(token), Duration::from_secs(v.expires_in.unwrap_or(3600))))
    }

    fn url(&self, action: &str) -> String {
        format!(
            "{}/v1/projects/{}/locations/{}/publishers/{}/models/{}:{action}",
            self.base,
            self.project,
            self.region,
            if self.is_claude() { "anthropic" } else { "google" },
            self.model
        )
    }

    /// Claude on Vertex AI: Anthropic's publisher and wire format.
    fn is_claude(&self) -> bool {
        self.model.starts_with("claude")
    }
}

fn unsupported(what: &str) -> ProviderError {
    crate::shared::unsupported("google-cloud-vertex-ai", what)
}

const FIELDS: &[&str] = &[
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
    "n",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "user",
];

fn parts(content: Content) -> Result<Vec<wire::Part>, ProviderError> {
    content
        .into_parts()
        .into_iter()
        .map(|p| match p {
            Part::Text { text } => Ok(wire::Part::Text { text }),
            Part::ImageUrl { image_url } => {
                let (mime, data) =
                    image_url.inline().ok_or_else(|| unsupported("an image that is not a base64 data URL"))?;
                Ok(wire::Part::InlineData { inline_data: wire::Blob { mime_type: mime.into(), data: data.into() } })
            }
            Part::Other => Err(unsupported("message content that is not text or an image")),
        })
        .collect()
}

/// Turns the internal body into a Gemini `generateContent` request.
pub fn gemini_request(task: Task, mut body: Body) -> Result<wire::Request, ProviderError> {
    flatten_databricks_fields(&mut body)?;
    // `n` maps to candidateCount, so only unknown options are refused here.
    if let Some(k) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(unsupported(&format!("the option '{k}'")));
    }
    let mut req = ChatRequest::from_body(body)?;
    req.parallel_calls_only("google-cloud-vertex-ai")?;
    let mut system = Vec::new();
    let mut contents: Vec<wire::Content> = Vec::new();
    // Gemini names a function's result by the function, OpenAI by the call's id.
    let mut call_names = std::collections::HashMap::new();
    for (i, m) in req.conversation(task, "google-cloud-vertex-ai")?.into_iter().enumerate() {
        let (role, parts) = match m.role {
            Role::System | Role::Developer => {
                system.extend(parts(m.content)?);
                continue;
            }
            Role::User => (wire::Role::User, parts(m.content)?),
            Role::Assistant => {
                let mut out = parts(m.content)?;
                for call in &m.tool_calls {
                    let args = call.input(i)?;
                    call_names.insert(call.id.clone(), call.function.name.clone());
                    out.push(wire::Part::FunctionCall {
                        function_call: wire::FunctionCall { name: call.function.name.clone(), args },
                    });
                }
                (wire::Role::Model, out)
            }
            Role::Tool => {
                let id = m.tool_call_id.unwrap_or_default();
                let name = call_names.get(&id).cloned().ok_or_else(|| {
                    ProviderError::Unsupported(format!(
                        "messages[{i}]: tool_call_id '{id}' answers no earlier tool call; Gemini needs the function's name"
                    ))
                })?;
                let text = m.content.text();
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(o)) => Value::Object(o),
                    _ => serde_json::json!({ "content": text }),
                };
                let part =
                    wire::Part::FunctionResponse { function_response: wire::FunctionResponse { name, response } };
                (wire::Role::User, vec![part])
            }
        };
        match contents.last_mut() {
            Some(last) if last.role == role => last.parts.extend(parts),
            _ => contents.push(wire::Content { role, parts }),
        }
    }
    let (response_mime_type, response_schema) = match req.response_format.take() {
        None | Some(ResponseFormat::Text) => (None, None),
        Some(ResponseFormat::JsonObject) => (Some("application/json"), None),
        Some(ResponseFormat::JsonSchema { json_schema }) => (Some("application/json"), json_schema.schema),
    };
    let generation = wire::GenerationConfig {
        max_output_tokens: req.max_tokens(),
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        candidate_count: req.n,
        seed: req.seed,
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        stop_sequences: req.stop_sequences(),
        response_mime_type,
        response_schema,
    };
    let tools = if req.tools.is_empty() {
        Vec::new()
    } else {
        vec![wire::Tools { function_declarations: req.tools.iter().map(|t| t.function.clone()).collect() }]
    };
    let tool_config = req.tool_choice.as_ref().map(|choice| {
        let (mode, allowed_function_names) = match choice {
            ToolChoice::Mode(ToolMode::Auto) => ("AUTO", Vec::new()),
            ToolChoice::Mode(ToolMode::Required) => ("ANY", Vec::new()),
            ToolChoice::Mode(ToolMode::None) => ("NONE", Vec::new()),
            ToolChoice::Function { function } => ("ANY", vec![function.name.clone()]),
        };
        wire::ToolConfig { function_calling_config: wire::FunctionCallingConfig { mode, allowed_function_names } }
    });
    Ok(wire::Request {
        contents,
        system_instruction: (!system.is_empty()).then_some(wire::SystemInstruction { parts: system }),
        generation_config: (!generation.is_empty()).then_some(generation),
        tools,
        tool_config,
    })
}

fn finish_reason(reason: Option<&str>, has_calls: bool) -> Option<String> {
    if has_calls {
        return Some("tool_calls".into());
    }
    Some(match reason? {
        "STOP" => "stop".into(),
        "MAX_TOKENS" => "length".into(),
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" => "content_filter".into(),
        other => other.to_ascii_lowercase(),
    })
}

/// OpenAI usage from Gemini `usageMetadata`: thinking tokens are billed as output, and the cached
/// tokens are among the prompt's.
fn usage(u: &wire::UsageMetadata) -> Usage {
    Usage::new(u.prompt_token_count, u.candidates_token_count + u.thoughts_token_count)
        .with_cache(u.cached_content_token_count, None)
        .with_reasoning(u.thoughts_token_count)
}

/// The answer's text (thoughts left out) and tool calls, numbered from `first_call`.
fn candidate_choice(c: wire::Candidate, first_call: usize) -> Choice {
    let mut choice = Choice::default();
    for p in c.content.map(|c| c.parts).unwrap_or_default() {
        if let Some(t) = p.text.filter(|_| p.thought != Some(true)) {
            choice.text.push_str(&t);
        }
        if let Some(f) = p.function_call {
            let id = format!("call_{}", first_call + choice.tool_calls.len());
            choice.tool_calls.push(AnswerToolCall::new(id, f.name, &f.args));
        }
    }
    choice.finish_reason = finish_reason(c.finish_reason.as_deref(), !choice.tool_calls.is_empty());
    choice
}

/// Turns a Gemini answer into the internal answer.
pub fn from_gemini(model: &str, r: wire::Response) -> Answer {
    Answer {
        id: r.response_id.unwrap_or_else(|| format!("vertex-{}", now_secs())),
        model: r.model_version.unwrap_or_else(|| model.to_string()),
        choices: r.candidates.into_iter().map(|c| candidate_choice(c, 0)).collect(),
        usage: usage(&r.usage_metadata.unwrap_or_default()),
    }
}

#[async_trait::async_trait]
impl Adapter for Vertex {
    fn provider(&self) -> &'static str {
        "google-cloud-vertex-ai"
    }

    async fn request(
        &self,
        http: &reqwest::Client,
        task: Task,
        mut body: Body,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let request = match task {
            _ if self.is_claude() => {
                let mut payload = crate::anthropic::to_messages_request(&self.model, task, body, stream)?;
                payload.model = None;
                payload.anthropic_version = Some(ANTHROPIC_VERSION);
                http.post(self.url(if stream { "streamRawPredict" } else { "rawPredict" })).json(&payload)
            }
            Task::Embeddings => {
                let texts = embedding_texts(body.remove("input"), "google-cloud-vertex-ai")?;
                let instances = texts.into_iter().map(|content| wire::Instance { content }).collect();
                http.post(self.url("predict")).json(&wire::PredictRequest { instances })
            }
            Task::Images => http
                .post(self.url("predict"))
                .json(&imagen::request(ImageRequest::read("google-cloud-vertex-ai", body)?)?),
            _ if stream => {
                http.post(format!("{}?alt=sse", self.url("streamGenerateContent"))).json(&gemini_request(task, body)?)
            }
            _ => http.post(self.url("generateContent")).json(&gemini_request(task, body)?),
        };
        let token = self.tokens.get(|| self.fetch_token(http)).await?;
        Ok(request.bearer_auth(token.expose()))
    }

    fn response(&self, task: Task, body: Bytes, options: ResponseOptions) -> Result<Bytes, ProviderError> {
        if self.is_claude() {
            return crate::anthropic::answer(task, &body);
        }
        let out = match task {
            Task::Embeddings => {
                let r: wire::PredictResponse = parse_answer(&body, "Vertex AI")?;
                let tokens = r.predictions.iter().map(|p| p.embeddings.statistics.token_count as u64).sum();
                let vectors = r.predictions.into_iter().map(|p| p.embeddings.values).collect();
                EmbeddingList::new(&self.model, vectors, tokens, options.embeddings_base64).to_json()
            }
            Task::Images => crate::images::answer(imagen::images(parse_answer(&body, "Vertex AI")?)?),
            _ => from_gemini(&self.model, parse_answer(&body, "Vertex AI")?).to_openai(task),
        };
        Ok(Bytes::from(out))
    }

    fn stream(&self, task: Task, include_usage: bool) -> Box<dyn StreamTranslator> {
        if self.is_claude() {
            return crate::anthropic::translator(task, &self.model, include_usage);
        }
        Box::new(StreamState {
            out: Chunks::new(task, &self.model),
            include_usage,
            started: false,
            finished: false,
            usage: wire::UsageMetadata::default(),
            calls: 0,
        })
    }

    fn error_message(&self, body: &[u8]) -> String {
        crate::shared::error_message(body)
    }

    fn secrets(&self) -> Vec<String> {
        let mut out = vec![self.key_text.expose().to_string()];
        out.extend(self.account.private_key_lines());
        out.extend(self.tokens.current());
        out
    }
}

struct StreamState {
    out: Chunks,
    include_usage: bool,
    started: bool,
    finished: bool,
    usage: wire::UsageMetadata,
    calls: usize,
}

impl StreamTranslator for StreamState {
    fn on_event(&mut self, _event: &str, data: &str) -> Vec<StreamItem> {
        let r = match serde_json::from_str::<wire::Response>(data) {
            Ok(r) => r,
            Err(e) => return vec![malformed_event("Vertex AI", data, &e)],
        };
        if let Some(e) = r.error {
            return vec![StreamItem::Error(format!("Vertex AI: {}", e.message))];
        }
        let mut items = Vec::new();
        if !self.started {
            self.started = true;
            items.push(StreamItem::Data(self.out.delta(&Delta::start(), None)));
        }
        if let Some(u) = r.usage_metadata {
            self.usage = u;
        }
        let Some(candidate) = r.candidates.into_iter().next() else {
            return items;
        };
        let reason = candidate.finish_reason.clone();
        let choice = candidate_choice(candidate, self.calls);
        if !choice.text.is_empty() {
            items.push(StreamItem::Data(self.out.delta(&Delta::text(choice.text), None)));
        }
        for call in choice.tool_calls {
            let delta = Delta::call_start(self.calls, call.id, call.function.name, call.function.arguments);
            self.calls += 1;
            items.push(StreamItem::Data(self.out.delta(&delta, None)));
        }
        if reason.is_some() {
            self.finished = true;
            let finish = finish_reason(reason.as_deref(), self.calls > 0);
            items.push(StreamItem::Data(self.out.delta(&Delta::default(), finish.as_deref())));
        }
        items
    }

    /// Gemini streams have no end sentinel: the connection closing after a finish reason is the end.
    fn on_end(&mut self) -> Vec<StreamItem> {
        if !self.finished {
            return Vec::new();
        }
        vec![self.out.usage_item(&usage(&self.usage), self.include_usage), StreamItem::Done]
    }
}

/// Vertex AI's wire format: Gemini `generateContent`, text-embedding `predict`, and the OAuth
/// pieces.
pub mod wire {
    use serde::{Deserialize, Serialize};
    use serde_json::Value;

    use crate::chat::FunctionDef;

    /// A `generateContent` request.
    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Request {
        /// The conversation.
        pub contents: Vec<Content>,
        /// The system prompt.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub system_instruction: Option<SystemInstruction>,
        /// Sampling and output options.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub generation_config: Option<GenerationConfig>,
        /// Functions the model may call.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub tools: Vec<Tools>,
        /// Whether and which functions the model must call.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tool_config: Option<ToolConfig>,
    }

    /// Who wrote a turn.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Role {
        /// The user (function results included).
        User,
        /// The model.
        Model,
    }

    /// One turn.
    #[derive(Debug, Serialize)]
    pub struct Content {
        /// Who wrote it.
        pub role: Role,
        /// Its parts.
        pub parts: Vec<Part>,
    }

    /// The system prompt.
    #[derive(Debug, Serialize)]
    pub struct SystemInstruction {
        /// Its parts.
        pub parts: Vec<Part>,
    }

    /// A part of a turn, as sent.
    #[derive(Debug, Serialize)]
    #[serde(untagged)]
    pub enum Part {
        /// Text.
        Text {
            /// The text.
            text: String,
        },
        /// Inline data (images).
        InlineData {
            /// The data.
            #[serde(rename = "inlineData")]
            inline_data: Blob,
        },
        /// A call the model made.
        FunctionCall {
            /// The call.
            #[serde(rename = "functionCall")]
            function_call: FunctionCall,
        },
        /// A function's result.
        FunctionResponse {
            /// The result.
            #[serde(rename = "functionResponse")]
            function_response: FunctionResponse,
        },
    }

    /// Inline data.
    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Blob {
        /// Its media type.
        pub mime_type: String,
        /// Base64 data.
        pub data: String,
    }

    /// A function call.
    #[derive(Debug, Serialize, Deserialize)]
    pub struct FunctionCall {
        /// The function.
        pub name: String,
        /// Its arguments.
        #[serde(default)]
        pub args: Value,
    }

    /// A function's result.
    #[derive(Debug, Serialize)]
    pub struct FunctionResponse {
        /// The function.
        pub name: String,
        /// Its result, an object.
        pub response: Value,
    }

    /// `generationConfig`.
    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct GenerationConfig {
        /// Most tokens to generate.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub max_output_tokens: Option<u64>,
        /// Sampling temperature.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub temperature: Option<f64>,
        /// Nucleus sampling.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub top_p: Option<f64>,
        /// Top-k sampling.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub top_k: Option<u64>,
        /// Answers to generate (`n`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub candidate_count: Option<u64>,
        /// Sampling seed.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub seed: Option<i64>,
        /// Presence penalty.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub presence_penalty: Option<f64>,
        /// Frequency penalty.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub frequency_penalty: Option<f64>,
        /// Stop sequences.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub stop_sequences: Option<Vec<String>>,
        /// `application/json` for JSON output.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub response_mime_type: Option<&'static str>,
        /// The schema of JSON output.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub response_schema: Option<Value>,
    }

    impl GenerationConfig {
        /// Whether no option is set (the config is then left out).
        pub fn is_empty(&self) -> bool {
            serde_json::to_value(self).is_ok_and(|v| v.as_object().is_some_and(serde_json::Map::is_empty))
        }
    }

    /// A tool: function declarations.
    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Tools {
        /// The functions.
        pub function_declarations: Vec<FunctionDef>,
    }

    /// `toolConfig`.
    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ToolConfig {
        /// How functions are called.
        pub function_calling_config: FunctionCallingConfig,
    }

    /// `functionCallingConfig`.
    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct FunctionCallingConfig {
        /// `AUTO`, `ANY` or `NONE`.
        pub mode: &'static str,
        /// The only functions the model may call.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub allowed_function_names: Vec<String>,
    }

    /// An answer, or one event of a streamed answer.
    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Response {
        /// The answers.
        #[serde(default)]
        pub candidates: Vec<Candidate>,
        /// The tokens used (so far, in a stream).
        #[serde(default)]
        pub usage_metadata: Option<UsageMetadata>,
        /// The model version that answered.
        #[serde(default)]
        pub model_version: Option<String>,
        /// The answer's id.
        #[serde(default)]
        pub response_id: Option<String>,
        /// A mid-stream error.
        #[serde(default)]
        pub error: Option<Error>,
    }

    /// One answer.
    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Candidate {
        /// Its content (absent when blocked).
        #[serde(default)]
        pub content: Option<CandidateContent>,
        /// Why it stopped.
        #[serde(default)]
        pub finish_reason: Option<String>,
    }

    /// An answer's content.
    #[derive(Debug, Default, Deserialize)]
    pub struct CandidateContent {
        /// Its parts.
        #[serde(default)]
        pub parts: Vec<AnswerPart>,
    }

    /// A part of an answer.
    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct AnswerPart {
        /// Text.
        #[serde(default)]
        pub text: Option<String>,
        /// Whether the text is the model's thinking.
        #[serde(default)]
        pub thought: Option<bool>,
        /// A function call.
        #[serde(default)]
        pub function_call: Option<FunctionCall>,
    }

    /// `usageMetadata`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct UsageMetadata {
        /// Prompt tokens, cached ones included.
        #[serde(default)]
        pub prompt_token_count: u64,
        /// Answer tokens.
        #[serde(default)]
        pub candidates_token_count: u64,
        /// Thinking tokens (billed as output).
        #[serde(default)]
        pub thoughts_token_count: u64,
        /// Prompt tokens read from the context cache.
        #[serde(default)]
        pub cached_content_token_count: Option<u64>,
    }

    /// An error.
    #[derive(Debug, Deserialize)]
    pub struct Error {
        /// Why.
        #[serde(default)]
        pub message: String,
    }

    /// A text-embedding `predict` request.
    #[derive(Debug, Serialize)]
    pub struct PredictRequest {
        /// One instance per text.
        pub instances: Vec<Instance>,
    }

    /// One text to embed.
    #[derive(Debug, Serialize)]
    pub struct Instance {
        /// The text.
        pub content: String,
    }

    /// A `predict` answer.
    #[derive(Debug, Deserialize)]
    pub struct PredictResponse {
        /// One prediction per instance.
        #[serde(default)]
        pub predictions: Vec<Prediction>,
    }

    /// One embedding.
    #[derive(Debug, Deserialize)]
    pub struct Prediction {
        /// The embedding.
        pub embeddings: Embedding,
    }

    /// An embedding and its statistics.
    #[derive(Debug, Deserialize)]
    pub struct Embedding {
        /// The vector.
        pub values: Vec<f64>,
        /// Token count.
        #[serde(default)]
        pub statistics: Statistics,
    }

    /// Embedding statistics.
    #[derive(Debug, Default, Deserialize)]
    pub struct Statistics {
        /// Tokens in the text.
        #[serde(default)]
        pub token_count: f64,
    }

    /// A service account's JSON key file (the fields used).
    #[derive(Deserialize)]
    pub struct KeyFile {
        /// The account.
        pub client_email: String,
        /// The PEM private key.
        pub private_key: String,
        /// The key's id.
        #[serde(default)]
        pub private_key_id: Option<String>,
        /// Where tokens are issued.
        #[serde(default)]
        pub token_uri: Option<String>,
    }

    /// The header of the service-account assertion.
    #[derive(Serialize)]
    pub struct JwtHeader<'a> {
        /// `RS256`.
        pub alg: &'static str,
        /// `JWT`.
        pub typ: &'static str,
        /// The key's id.
        pub kid: &'a str,
    }

    /// The claims of the service-account assertion.
    #[derive(Serialize)]
    pub struct JwtClaims<'a> {
        /// The account.
        pub iss: &'a str,
        /// The scope asked for.
        pub scope: &'static str,
        /// The token endpoint.
        pub aud: &'a str,
        /// Issued at (Unix seconds).
        pub iat: i64,
        /// Expires at.
        pub exp: i64,
    }

    /// The token endpoint's answer.
    #[derive(Debug, Default, Deserialize)]
    pub struct TokenResponse {
        /// The access token.
        #[serde(default)]
        pub access_token: Option<String>,
        /// Seconds it is valid.
        #[serde(default)]
        pub expires_in: Option<u64>,
        /// The error code.
        #[serde(default)]
        pub error: Option<String>,
        /// The error's description.
        #[serde(default)]
        pub error_description: Option<String>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: Value) -> Result<Value, ProviderError> {
        gemini_request(Task::Chat, body.as_object().unwrap().clone()).map(|r| serde_json::to_value(r).unwrap())
    }

    #[test]
    fn request_translation() {
        let body = json!({"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "wx", "arguments": "{\"city\":\"Oslo\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "{\"temp\": 3}"}],
            "max_tokens": 50, "top_p": 0.8, "stop": "END", "response_format": {"type": "json_object"},
            "tools": [{"type": "function", "function": {"name": "wx", "parameters": {"type": "object"}}}], "tool_choice": "required"});
        let r = request(body).unwrap();
        assert_eq!(r["systemInstruction"], json!({"parts": [{"text": "Be brief."}]}));
        assert_eq!(
            r["contents"][1],
            json!({"role": "model", "parts": [{"functionCall": {"name": "wx", "args": {"city": "Oslo"}}}]})
        );
        assert_eq!(r["contents"][2]["parts"][0]["functionResponse"], json!({"name": "wx", "response": {"temp": 3}}));
        assert_eq!(
            r["generationConfig"],
            json!({"maxOutputTokens": 50, "topP": 0.8, "stopSequences": ["END"], "responseMimeType": "application/json"})
        );
        assert_eq!(r["toolConfig"], json!({"functionCallingConfig": {"mode": "ANY"}}));
        let bad = json!({"messages": [{"role": "user", "content": "x"}], "logit_bias": {}});
        assert!(request(bad).unwrap_err().to_string().contains("'logit_bias'"));
        let orphan = json!({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]});
        assert!(request(orphan).unwrap_err().to_string().contains("'nope' answers no earlier tool call"));
    }

    #[test]
    fn answer_translation() {
        let r = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}, "finishReason": "MAX_TOKENS"}],
                       "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2, "thoughtsTokenCount": 3, "totalTokenCount": 9},
                       "modelVersion": "gemini-2.0-flash"});
        let out: Value =
            serde_json::from_str(&from_gemini("m", serde_json::from_value(r).unwrap()).to_openai(Task::Chat)).unwrap();
        assert_eq!(out["choices"][0]["message"]["content"], "Hi");
        assert_eq!(out["choices"][0]["finish_reason"], "length");
        assert_eq!(out["usage"]["completion_tokens"], 5, "thinking tokens are billed as output");
        assert_eq!(out["model"], "gemini-2.0-flash");
        assert_eq!(out["usage"]["completion_tokens_details"]["reasoning_tokens"], 3);
    }
}
