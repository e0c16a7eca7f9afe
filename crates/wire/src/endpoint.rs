//! Serving endpoints: create/update requests, the endpoint object, served entities and the
//! external-model provider configs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::gateway::{AiGatewayConfig, InferenceTableConfig, RateLimit};

/// Body of `POST /api/2.0/serving-endpoints`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateServingEndpoint {
    /// Endpoint name: letters, digits, `-` and `_`.
    pub name: String,
    /// The first config version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<EndpointCoreConfigInput>,
    /// AI Gateway policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai_gateway: Option<AiGatewayConfig>,
    /// Budget policy the endpoint's spend counts against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_policy_id: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Addresses told about config updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_notifications: Option<EmailNotifications>,
    /// Deprecated endpoint rate limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<Vec<RateLimit>>,
    /// Accepted and stored; has no effect on a self-hosted server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_optimized: Option<bool>,
    /// Key/value labels (team, project, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<EndpointTag>>,
    /// Stored as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry_config: Option<serde_json::Value>,
    /// A deprecation notice (our extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecation: Option<Deprecation>,
    /// A built-in template to start from (our extension): `chatbot`, `document-analysis`,
    /// `code-generation`, `embeddings-search`; the body's own fields override it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// An endpoint's deprecation notice (our extension). From `notice_date` its answers carry the
/// `Deprecation` and `Sunset` headers and a `Link` to the replacement; from `sunset_date` it
/// answers 410 naming the replacement, or, with `forward`, sends its queries there.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deprecation {
    /// `YYYY-MM-DD` (UTC): from this day the endpoint is announced as deprecated.
    pub notice_date: String,
    /// `YYYY-MM-DD` (UTC): from this day the endpoint stops (or forwards).
    pub sunset_date: String,
    /// The endpoint to use instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    /// What callers should know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// At sunset, send queries to the replacement instead of answering 410.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<bool>,
}

/// A config version as the client sends it: in `create.config` and as the body of `PUT .../config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointCoreConfigInput {
    /// The SDK repeats the endpoint name here; ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the endpoint serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_entities: Option<Vec<ServedEntityInput>>,
    /// Legacy form of `served_entities` for registered models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_models: Option<Vec<ServedModelInput>>,
    /// How requests are split across the served entities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_config: Option<TrafficConfig>,
    /// Legacy inference table settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_capture_config: Option<InferenceTableConfig>,
}

/// One served entity of a config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServedEntityInput {
    /// Name used by routes, logs and the `served-model-name` header; derived when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Registered model or foundation model name (not with `external_model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_name: Option<String>,
    /// Version of `entity_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_version: Option<String>,
    /// An LLM provider behind this entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_model: Option<ExternalModel>,
    /// Environment of a model process; values may be secret references.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_vars: Option<BTreeMap<String, String>>,
    /// Stored as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_profile_arn: Option<String>,
    /// `Small`, `Medium`, `Large` or a custom size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_size: Option<String>,
    /// `CPU`, `GPU_SMALL`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_type: Option<String>,
    /// Whether the entity may scale to zero when idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_to_zero_enabled: Option<bool>,
    /// Sizing.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::lenient::opt_int")]
    pub min_provisioned_concurrency: Option<i64>,
    /// Sizing.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::lenient::opt_int")]
    pub max_provisioned_concurrency: Option<i64>,
    /// Sizing.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::lenient::opt_int")]
    pub min_provisioned_throughput: Option<i64>,
    /// Sizing.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::lenient::opt_int")]
    pub max_provisioned_throughput: Option<i64>,
    /// Sizing.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::lenient::opt_int")]
    pub provisioned_model_units: Option<i64>,
    /// Sizing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_scaling_enabled: Option<bool>,
    /// Backend pools (our extension): failover tier, lower is tried first. Setting it on any
    /// entity routes the endpoint by priority and weight instead of traffic percentages.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::lenient::opt_int")]
    pub priority: Option<i64>,
    /// Backend pools (our extension): share of traffic within its tier (default 1; 0 = standby).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::lenient::opt_int")]
    pub weight: Option<i64>,
}

/// Legacy served model (registered model version).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServedModelInput {
    /// Name used by routes; defaults to `model_name-model_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Registered model name (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    /// Registered model version (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// Required by the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_to_zero_enabled: Option<bool>,
    /// Environment of the model process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_vars: Option<BTreeMap<String, String>>,
    /// Stored as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_profile_arn: Option<String>,
    /// Sizing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_size: Option<String>,
    /// Sizing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_type: Option<String>,
    /// Sizing.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::lenient::opt_int")]
    pub min_provisioned_concurrency: Option<i64>,
    /// Sizing.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::lenient::opt_int")]
    pub max_provisioned_concurrency: Option<i64>,
    /// Sizing.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::lenient::opt_int")]
    pub min_provisioned_throughput: Option<i64>,
    /// Sizing.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::lenient::opt_int")]
    pub max_provisioned_throughput: Option<i64>,
    /// Sizing.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::lenient::opt_int")]
    pub provisioned_model_units: Option<i64>,
    /// Sizing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_scaling_enabled: Option<bool>,
}

/// `external_model`: an LLM provider and model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalModel {
    /// `openai`, `anthropic`, `cohere`, `ai21labs`, `amazon-bedrock`,
    /// `google-cloud-vertex-ai`, `databricks-model-serving` or `custom`.
    pub provider: String,
    /// The provider's model name.
    pub name: String,
    /// `llm/v1/chat`, `llm/v1/completions`, `llm/v1/embeddings` or `llm/v1/images`.
    pub task: String,
    /// Config for `openai` (also Azure OpenAI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openai_config: Option<OpenAiConfig>,
    /// Config for `anthropic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anthropic_config: Option<AnthropicConfig>,
    /// Config for `cohere`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cohere_config: Option<CohereConfig>,
    /// Config for `ai21labs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai21labs_config: Option<Ai21LabsConfig>,
    /// Config for `amazon-bedrock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amazon_bedrock_config: Option<AmazonBedrockConfig>,
    /// Config for `google-cloud-vertex-ai`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google_cloud_vertex_ai_config: Option<GoogleCloudVertexAiConfig>,
    /// Config for the retired `palm` provider; rejected at validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub palm_config: Option<PalmConfig>,
    /// Config for `databricks-model-serving`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub databricks_model_serving_config: Option<DatabricksModelServingConfig>,
    /// Config for `custom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_provider_config: Option<CustomProviderConfig>,
}

/// `openai_config`. Secret-reference fields hold `{{secrets/scope/key}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub openai_api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub openai_api_key_plaintext: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub openai_api_base: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub openai_api_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub openai_api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub openai_deployment_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub openai_organization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub microsoft_entra_client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub microsoft_entra_client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub microsoft_entra_client_secret_plaintext: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub microsoft_entra_tenant_id: Option<String>,
}

/// `anthropic_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnthropicConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub anthropic_api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub anthropic_api_key_plaintext: Option<String>,
}

/// `cohere_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CohereConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub cohere_api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub cohere_api_key_plaintext: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub cohere_api_base: Option<String>,
}

/// `ai21labs_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ai21LabsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub ai21labs_api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub ai21labs_api_key_plaintext: Option<String>,
}

/// `amazon_bedrock_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmazonBedrockConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub aws_region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub bedrock_provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub aws_access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub aws_access_key_id_plaintext: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub aws_secret_access_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub aws_secret_access_key_plaintext: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub instance_profile_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub uc_service_credential_name: Option<String>,
}

/// `google_cloud_vertex_ai_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleCloudVertexAiConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub private_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub private_key_plaintext: Option<String>,
}

/// `palm_config` (PaLM is retired; kept so the error can say so).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PalmConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub palm_api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub palm_api_key_plaintext: Option<String>,
}

/// `databricks_model_serving_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabricksModelServingConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub databricks_workspace_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub databricks_api_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub databricks_api_token_plaintext: Option<String>,
}

/// `custom_provider_config`: any OpenAI-compatible server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomProviderConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub custom_provider_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub api_key_auth: Option<ApiKeyAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub bearer_token_auth: Option<BearerTokenAuth>,
}

/// Header-based API key for `custom`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyAuth {
    /// Header name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Secret reference holding the header value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The header value itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_plaintext: Option<String>,
}

/// Bearer token for `custom`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BearerTokenAuth {
    /// Secret reference holding the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The token itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_plaintext: Option<String>,
}

/// `traffic_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficConfig {
    /// One route per served entity that receives traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<Route>>,
}

/// A share of traffic for one served entity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Served entity this route points at (legacy spelling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_model_name: Option<String>,
    /// Served entity this route points at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_entity_name: Option<String>,
    /// 0 to 100; all routes sum to 100.
    #[serde(deserialize_with = "crate::lenient::int")]
    pub traffic_percentage: i64,
}

/// A key/value tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointTag {
    /// Tag key.
    pub key: String,
    /// Tag value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `email_notifications`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailNotifications {
    /// Told when an update fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_update_failure: Option<Vec<String>>,
    /// Told when an update succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_update_success: Option<Vec<String>>,
}

/// Body of `PATCH .../tags`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchTagsRequest {
    /// Tags to add or overwrite.
    #[serde(default)]
    pub add_tags: Vec<EndpointTag>,
    /// Keys to remove.
    #[serde(default)]
    pub delete_tags: Vec<String>,
}

/// Response of `PATCH .../tags`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EndpointTags {
    /// All tags after the patch.
    pub tags: Vec<EndpointTag>,
}

/// Body of `PATCH .../notifications`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateNotificationsRequest {
    /// The new settings; absent clears them.
    #[serde(default)]
    pub email_notifications: Option<EmailNotifications>,
}

/// Body of `PATCH .../telemetry-config`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchTelemetryConfigRequest {
    /// Stored as given.
    #[serde(default)]
    pub telemetry_config: Option<serde_json::Value>,
}

/// Body of `POST .../config:rollback` (our extension).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The earlier version whose content becomes the next version.
    #[serde(deserialize_with = "crate::lenient::int")]
    pub config_version: i64,
}

/// `state` of an endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointState {
    /// Whether the endpoint serves queries.
    pub ready: Ready,
    /// Whether a config update is under way, or how the last one ended.
    pub config_update: ConfigUpdate,
}

/// `state.ready` of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Ready {
    /// A config is active and the endpoint is not stopped or refusing queries.
    Ready,
    /// It does not serve.
    NotReady,
}

/// `state.config_update` of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConfigUpdate {
    /// No update under way.
    NotUpdating,
    /// A new config version is being deployed.
    InProgress,
    /// The last update failed.
    UpdateFailed,
    /// The last update was cancelled.
    UpdateCanceled,
}

impl ConfigUpdate {
    /// The wire name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigUpdate::NotUpdating => "NOT_UPDATING",
            ConfigUpdate::InProgress => "IN_PROGRESS",
            ConfigUpdate::UpdateFailed => "UPDATE_FAILED",
            ConfigUpdate::UpdateCanceled => "UPDATE_CANCELED",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<ConfigUpdate> {
        [ConfigUpdate::NotUpdating, ConfigUpdate::InProgress, ConfigUpdate::UpdateFailed, ConfigUpdate::UpdateCanceled]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

/// `state.deployment` of a served entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Deployment {
    /// Its config version is being deployed.
    DeploymentCreating,
    /// It serves.
    DeploymentReady,
    /// Its deployment failed.
    DeploymentFailed,
    /// The endpoint is stopped.
    DeploymentAborted,
    /// It is coming back after a failure.
    DeploymentRecovering,
}

/// `state` of a served entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServedEntityState {
    /// Where its deployment stands.
    pub deployment: Deployment,
    /// Why it is in that state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_state_message: Option<String>,
}

/// A served entity as the server reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServedEntityOutput {
    /// The stored entity, with its name filled in and `*_plaintext` values removed.
    #[serde(flatten)]
    pub spec: ServedEntityInput,
    /// Who created the config version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<String>,
    /// When the config version was created (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<i64>,
    /// Deployment state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ServedEntityState>,
}

/// A legacy served model as the server reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServedModelOutput {
    /// The stored model, with its name filled in.
    #[serde(flatten)]
    pub spec: ServedModelInput,
    /// Who created the config version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<String>,
    /// When the config version was created (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<i64>,
    /// Deployment state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ServedEntityState>,
}

/// `config` (active) or `pending_config` of an endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointConfigOutput {
    /// Version number, starting at 1.
    pub config_version: i64,
    /// Served entities with their state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_entities: Option<Vec<ServedEntityOutput>>,
    /// Legacy served models with their state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_models: Option<Vec<ServedModelOutput>>,
    /// The effective traffic split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_config: Option<TrafficConfig>,
    /// Legacy inference table settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_capture_config: Option<InferenceTableConfig>,
    /// Only on `pending_config`: when the update started (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<i64>,
}

/// The full endpoint object (`ServingEndpointDetailed`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServingEndpointDetailed {
    #[allow(missing_docs)]
    pub name: String,
    /// 32 hex characters.
    pub id: String,
    #[allow(missing_docs)]
    pub creator: String,
    /// ms since the epoch.
    pub creation_timestamp: i64,
    /// ms since the epoch.
    pub last_updated_timestamp: i64,
    #[allow(missing_docs)]
    pub state: EndpointState,
    /// The config being served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<EndpointConfigOutput>,
    /// The config being deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_config: Option<EndpointConfigOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub ai_gateway: Option<AiGatewayConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub rate_limits: Option<Vec<RateLimit>>,
    #[serde(default)]
    #[allow(missing_docs)]
    pub tags: Vec<EndpointTag>,
    /// Task of the external models (`llm/v1/chat`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub budget_policy_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub email_notifications: Option<EmailNotifications>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub route_optimized: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub telemetry_config: Option<serde_json::Value>,
    /// The caller's permission on this endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_level: Option<String>,
    /// `EXTERNAL_MODEL` or `CUSTOM_MODEL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_type: Option<String>,
    /// Whether the endpoint was stopped with `config:stop` (our extension).
    #[serde(default)]
    pub stopped: bool,
    /// Its deprecation notice (our extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecation: Option<Deprecation>,
}

/// Summary of a served entity in list responses.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServedEntitySpec {
    #[allow(missing_docs)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub entity_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub entity_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub external_model: Option<ExternalModel>,
}

/// Summary config in list responses.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointConfigSummary {
    #[allow(missing_docs)]
    pub served_entities: Vec<ServedEntitySpec>,
}

/// One item of `GET /api/2.0/serving-endpoints`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServingEndpoint {
    #[allow(missing_docs)]
    pub name: String,
    #[allow(missing_docs)]
    pub id: String,
    #[allow(missing_docs)]
    pub creator: String,
    #[allow(missing_docs)]
    pub creation_timestamp: i64,
    #[allow(missing_docs)]
    pub last_updated_timestamp: i64,
    #[allow(missing_docs)]
    pub state: EndpointState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub config: Option<EndpointConfigSummary>,
    #[serde(default)]
    #[allow(missing_docs)]
    pub tags: Vec<EndpointTag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub ai_gateway: Option<AiGatewayConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub budget_policy_id: Option<String>,
    /// Whether the endpoint is stopped (our extension, as on the detailed endpoint).
    #[serde(default)]
    pub stopped: bool,
}

/// Response of `GET /api/2.0/serving-endpoints`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListEndpointsResponse {
    /// Always present, possibly empty (mlflow reads it unconditionally).
    pub endpoints: Vec<ServingEndpoint>,
}

/// Response of the `logs` and `build-logs` routes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogsResponse {
    /// Log text, one event per line.
    pub logs: String,
}

/// One entry of `GET .../config-versions` (our extension).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigVersionInfo {
    #[allow(missing_docs)]
    pub config_version: i64,
    /// `PENDING`, `ACTIVE`, `SUPERSEDED` or `FAILED`.
    pub status: String,
    /// Who created the version.
    pub creator: String,
    /// ms since the epoch.
    pub creation_timestamp: i64,
    /// The version's content, as it would be sent to `PUT .../config` (plaintext credentials removed).
    pub config: EndpointCoreConfigInput,
    /// Deployment log of this version.
    #[serde(default)]
    pub build_logs: String,
}

/// Response of `GET .../config-versions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigVersionsResponse {
    /// Newest first.
    pub config_versions: Vec<ConfigVersionInfo>,
}
