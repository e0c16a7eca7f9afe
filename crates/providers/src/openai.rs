//! OpenAI and the providers that speak its wire format: Azure OpenAI (API key, Entra ID),
//! `custom` (any OpenAI-compatible server), `databricks-model-serving` (another
//! Databricks-compatible server, such as another modelgate) and `ai21labs` (AI21's Jamba chat
//! API is OpenAI-compatible).
//!
//! Answers are already in the internal shape, so their bytes pass through; streams are re-framed
//! event by event so that only `data:` lines reach the client.

use std::sync::Arc;

use bytes::Bytes;
use modelgate_core::{Provider, SecretString};
use modelgate_wire::ExternalModel;
use serde_json::Value;

use crate::entra::EntraTokens;
use crate::shared::{ParsedUrls, credential, flatten_databricks_fields};
use crate::{Adapter, Body, Credentials, ProviderError, ResponseOptions, Settings, StreamItem, StreamTranslator, Task};

/// Default OpenAI base URL.
pub const OPENAI_BASE: &str = "https://api.openai.com/v1";
/// Default AI21 Studio base URL.
pub const AI21_BASE: &str = "https://api.ai21.com/studio/v1";

enum Auth {
    Bearer(SecretString),
    Header(String, SecretString),
    Entra(Arc<EntraTokens>),
}

enum Flavor {
    OpenAi { base: String, organization: Option<String> },
    Azure { base: String, deployment: String, version: String },
    Custom { url: String },
    Databricks { workspace: String },
}

/// Adapter for the OpenAI wire format.
pub struct OpenAiCompatible {
    provider: &'static str,
    model: String,
    flavor: Flavor,
    auth: Auth,
    urls: ParsedUrls,
}

impl OpenAiCompatible {
    /// Builds the adapter for `model` (provider `openai`, `ai21labs`, `custom` or
    /// `databricks-model-serving`).
    pub fn new(
        provider: Provider,
        model: &ExternalModel,
        creds: &Credentials,
        settings: &Settings,
    ) -> Result<Self, String> {
        let (flavor, auth) = match provider {
            Provider::OpenAi => {
                let c = model.openai_config.clone().unwrap_or_default();
                let api_type = c.openai_api_type.as_deref().unwrap_or("openai");
                let auth = if c.microsoft_entra_client_id.is_some() {
                    Auth::Entra(Arc::new(EntraTokens::new(
                        settings.base_url("microsoft-entra", crate::entra::AUTHORITY),
                        c.microsoft_entra_tenant_id.unwrap_or_default(),
                        c.microsoft_entra_client_id.unwrap_or_default(),
                        credential(creds, "openai_config.microsoft_entra_client_secret")?,
                        &settings.token_caches,
                    )))
                } else {
                    let key = credential(creds, "openai_config.openai_api_key")?;
                    match api_type {
                        "azure" => Auth::Header("api-key".into(), key),
                        _ => Auth::Bearer(key),
                    }
                };
                let flavor = if api_type == "openai" {
                    let base = c.openai_api_base.unwrap_or_else(|| settings.base_url("openai", OPENAI_BASE));
                    Flavor::OpenAi { base: base.trim_end_matches('/').into(), organization: c.openai_organization }
                } else {
                    Flavor::Azure {
                        base: c.openai_api_base.unwrap_or_default().trim_end_matches('/').into(),
                        deployment: c.openai_deployment_name.unwrap_or_default(),
                        version: c.openai_api_version.unwrap_or_default(),
                    }
                };
                (flavor, auth)
            }
            Provider::Ai21Labs => {
                let key = credential(creds, "ai21labs_config.ai21labs_api_key")?;
                let base = settings.base_url("ai21labs", AI21_BASE);
                (Flavor::OpenAi { base, organization: None }, Auth::Bearer(key))
            }
            Provider::Custom => {
                let c = model.custom_provider_config.clone().unwrap_or_default();
                let auth = match c.api_key_auth {
                    Some(a) => Auth::Header(
                        a.key.unwrap_or_default(),
                        credential(creds, "custom_provider_config.api_key_auth.value")?,
                    ),
                    None => Auth::Bearer(credential(creds, "custom_provider_config.bearer_token_auth.token")?),
                };
                let url = c.custom_provider_url.unwrap_or_default().trim_end_matches('/').to_string();
                (Flavor::Custom { url }, auth)
            }
            Provider::DatabricksModelServing => {
                let c = model.databricks_model_serving_config.clone().unwrap_or_default();
                let token = credential(creds, "databricks_model_serving_config.databricks_api_token")?;
                let workspace = c.databricks_workspace_url.unwrap_or_default().trim_end_matches('/').to_string();
                (Flavor::Databricks { workspace }, Auth::Bearer(token))
            }
            other => return Err(format!("provider '{other}' does not speak the OpenAI wire format")),
        };
        Ok(Self { provider: provider.as_str(), model: model.name.clone(), flavor, auth, urls: ParsedUrls::default() })
    }

    fn url(&self, task: Task) -> String {
        let path = task.openai_path();
        match &self.flavor {
            Flavor::OpenAi { base, .. } => format!("{base}/{path}"),
            Flavor::Azure { base, deployment, version } => {
                format!("{base}/openai/deployments/{deployment}/{path}?api-version={version}")
            }
            Flavor::Custom { url } => {
                // A URL that already names the operation is used as is; a base gets the path.
                if ["/chat/completions", "/completions", "/embeddings", "/images/generations"]
                    .iter()
                    .any(|s| url.ends_with(s))
                {
                    url.clone()
                } else {
                    format!("{url}/{path}")
                }
            }
            Flavor::Databricks { workspace } => {
                format!("{workspace}/serving-endpoints/{}/invocations", self.model)
            }
        }
    }

    /// Whether this upstream is asked for a usage chunk at the end of every chat or completions
    /// stream, so usage and cost are the provider's own figures rather than our tokenizer's
    /// estimate. Only where the option is known to be accepted: OpenAI, and Azure OpenAI from API
    /// version 2024-09-01 (older versions refuse unknown fields). Other OpenAI-compatible servers
    /// vary, so they are left as they are.
    fn asks_for_usage(&self, task: Task) -> bool {
        matches!(task, Task::Chat | Task::Completions)
            && match &self.flavor {
                Flavor::OpenAi { .. } => true,
                Flavor::Azure { version, .. } => version.as_str() >= "2024-09-01",
                Flavor::Custom { .. } | Flavor::Databricks { .. } => false,
            }
    }
}

#[async_trait::async_trait]
impl Adapter for OpenAiCompatible {
    fn provider(&self) -> &'static str {
        self.provider
    }

    async fn request(
        &self,
        http: &reqwest::Client,
        task: Task,
        mut body: Body,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        match self.flavor {
            // Another Databricks-compatible server understands (and logs) the Databricks fields,
            // and names the model by its URL.
            Flavor::Databricks { .. } => {
                body.remove("model");
            }
            Flavor::Azure { .. } => {
                flatten_databricks_fields(&mut body)?;
                body.remove("model");
            }
            _ => {
                flatten_databricks_fields(&mut body)?;
                body.insert("model".into(), Value::String(self.model.clone()));
            }
        }
        if stream {
            body.insert("stream".into(), Value::Bool(true));
            if self.asks_for_usage(task) {
                let options = body.entry("stream_options").or_insert_with(|| Value::Object(Default::default()));
                if let Value::Object(o) = options {
                    o.insert("include_usage".into(), Value::Bool(true));
                }
            }
        }
        let mut req = match self.urls.get(task, || self.url(task)) {
            Some(url) => http.post(url),
            None => http.post(self.url(task)),
        }
        .json(&body);
        if let Flavor::OpenAi { organization: Some(org), .. } = &self.flavor {
            req = req.header("OpenAI-Organization", org);
        }
        req = match &self.auth {
            Auth::Bearer(t) => req.bearer_auth(t.expose()),
            Auth::Header(name, v) => req.header(name.as_str(), v.expose()),
            Auth::Entra(tokens) => req.bearer_auth(tokens.token(http).await?.expose()),
        };
        Ok(req)
    }

    fn response(&self, _task: Task, body: Bytes, _options: ResponseOptions) -> Result<Bytes, ProviderError> {
        // The bytes pass through, but only if they are JSON: a truncated body must not reach the
        // client as a success.
        serde_json::from_slice::<serde::de::IgnoredAny>(&body)
            .map_err(|e| ProviderError::BadResponse(format!("the answer is not valid JSON: {e}")))?;
        Ok(body)
    }

    fn stream(&self, task: Task, include_usage: bool) -> Box<dyn StreamTranslator> {
        Box::new(PassThrough { hide_usage: self.asks_for_usage(task) && !include_usage })
    }

    fn error_message(&self, body: &[u8]) -> String {
        crate::shared::error_message(body)
    }

    fn secrets(&self) -> Vec<String> {
        match &self.auth {
            Auth::Bearer(t) | Auth::Header(_, t) => vec![t.expose().to_string()],
            Auth::Entra(e) => e.secrets(),
        }
    }
}

/// Just enough of a chunk to tell a usage-only chunk.
#[derive(serde::Deserialize)]
struct UsageChunk {
    #[serde(default)]
    choices: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    usage: Option<serde_json::Map<String, Value>>,
}

/// OpenAI chunks go out as they came, minus anything that is not a `data:` event, and minus the
/// usage chunk when only the gateway asked for it. A server that sends usage unasked (some
/// OpenAI-compatible ones do) is billed by it all the same: settlement reads every chunk's usage.
struct PassThrough {
    hide_usage: bool,
}

impl StreamTranslator for PassThrough {
    fn on_event(&mut self, _event: &str, data: &str) -> Vec<StreamItem> {
        let data = data.trim();
        if data == "[DONE]" {
            return vec![StreamItem::Done];
        }
        if data.is_empty() {
            return Vec::new();
        }
        // An OpenAI-style error object inside the stream ends it.
        if data.starts_with("{\"error\"")
            && let Ok(v) = serde_json::from_str::<Value>(data)
            && v.get("choices").is_none()
        {
            return vec![StreamItem::Error(crate::shared::error_message(data.as_bytes()))];
        }
        // The usage chunk has no choices; the cheap byte test spares parsing every other chunk.
        if self.hide_usage
            && data.contains("\"choices\":[]")
            && let Ok(c) = serde_json::from_str::<UsageChunk>(data)
            && c.choices.is_empty()
            && c.usage.is_some()
        {
            return vec![StreamItem::Usage(data.to_string())];
        }
        vec![StreamItem::Data(data.to_string())]
    }
}
