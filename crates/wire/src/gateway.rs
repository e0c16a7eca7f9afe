//! AI Gateway policies attached to an endpoint (`ai_gateway`, `PUT .../ai-gateway`) and the
//! legacy endpoint rate limits (`PUT .../rate-limits`).

use serde::{Deserialize, Serialize};

/// `ai_gateway` on an endpoint; also the body and response of `PUT .../ai-gateway`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AiGatewayConfig {
    /// Whether usage is recorded per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_tracking_config: Option<UsageTrackingConfig>,
    /// Where request and response payloads are logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_table_config: Option<InferenceTableConfig>,
    /// Calls/tokens per minute limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<Vec<AiGatewayRateLimit>>,
    /// Input and output checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrails: Option<Guardrails>,
    /// Retry other served entities on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_config: Option<FallbackConfig>,
    /// Active health checks of the served entities (our extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_config: Option<HealthCheckConfig>,
    /// Exact-match response cache (our extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_config: Option<CacheConfig>,
}

/// `usage_tracking_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageTrackingConfig {
    /// Record one usage row per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `inference_table_config` (and the legacy `auto_capture_config` input).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceTableConfig {
    /// Catalog of the payload table; required when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_name: Option<String>,
    /// Schema of the payload table; required when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_name: Option<String>,
    /// Table name prefix; defaults to the endpoint name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_name_prefix: Option<String>,
    /// Whether payloads are logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Our extension: share of queries logged, in (0, 1]; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling_fraction: Option<f64>,
    /// Our extension: largest request or response logged, in bytes; default 1 MiB, at most 10 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::lenient::opt_int")]
    pub max_payload_bytes: Option<i64>,
    /// Our extension: days payloads are kept; default 30.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::lenient::opt_int")]
    pub retention_days: Option<i64>,
    /// Our extension: mask personal data in payloads before they are written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_pii: Option<bool>,
}

/// One AI Gateway rate limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AiGatewayRateLimit {
    /// Only `minute`.
    pub renewal_period: String,
    /// Queries per period.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::lenient::opt_int")]
    pub calls: Option<i64>,
    /// Tokens per period.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::lenient::opt_int")]
    pub tokens: Option<i64>,
    /// `endpoint` (default), `user`, `user_group` or `service_principal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The user, group or service principal a keyed limit applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

/// `guardrails`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guardrails {
    /// Checks on the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<GuardrailParameters>,
    /// Checks on the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<GuardrailParameters>,
}

/// One side of `guardrails`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailParameters {
    /// Block unsafe content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety: Option<bool>,
    /// PII handling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii: Option<PiiBehavior>,
    /// Block requests containing any of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_keywords: Option<Vec<String>>,
    /// Only allow these topics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_topics: Option<Vec<String>>,
}

/// `pii`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiiBehavior {
    /// `BLOCK`, `MASK` or `NONE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<String>,
}

/// `fallback_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackConfig {
    /// Whether failed requests go to the other served entities.
    pub enabled: bool,
}

/// `health_check_config` (our extension): a minimal query to every served entity now and then;
/// the result shows in the entity's state and feeds its circuit breaker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Whether the entities are checked.
    pub enabled: bool,
    /// Seconds between two checks of an entity: 10 to 86400, default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u64>,
}

/// `cache_config` (our extension): answers to identical queries served from a cache instead of
/// the provider. Embeddings are always cacheable; chat and completions only when the query does
/// not sample (`temperature: 0`) unless `cache_sampled` is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Whether answers are cached.
    pub enabled: bool,
    /// How long an answer is served from the cache: 1 to 86400 seconds, default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// Cache chat and completions answers of queries that sample (no `temperature: 0`) too:
    /// repeated questions then get the first answer again. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_sampled: Option<bool>,
    /// Who shares answers: `endpoint` (default: every caller allowed to query the endpoint) or
    /// `caller` (each user or service principal has its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// A legacy endpoint rate limit (`rate_limits` on create, `PUT .../rate-limits`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Calls per period.
    #[serde(deserialize_with = "crate::lenient::int")]
    pub calls: i64,
    /// Only `minute`.
    pub renewal_period: String,
    /// `user` or `endpoint` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Body and response of `PUT .../rate-limits`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    /// The complete list; replaces the previous one.
    #[serde(default)]
    pub rate_limits: Vec<RateLimit>,
}
