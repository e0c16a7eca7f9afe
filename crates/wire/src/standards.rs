//! Workspace standards (our extension): `GET|PUT /api/2.0/workspace-policy` and
//! `GET /api/2.0/workspace-policy/check`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::AiGatewayRateLimit;

/// The rules every endpoint of the workspace follows, whatever client creates it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspacePolicy {
    /// `enforce` (default: a create or update that breaks a rule is refused), `warn` (it is
    /// accepted with a `Warning` header naming the rule) or `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// How endpoints are named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub naming: Option<NamingRule>,
    /// Tags every endpoint must have, e.g. `team`, `project`, `cost_center`, `environment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_tags: Option<Vec<String>>,
    /// The tag that names an endpoint's environment (default `environment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_tag: Option<String>,
    /// Rules per environment (the value of the environment tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environments: Option<BTreeMap<String, EnvironmentRules>>,
    /// The shortest time between a deprecation's notice and its sunset, in days (overrides the
    /// server's `--min-deprecation-notice`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_deprecation_notice_days: Option<i64>,
}

/// How endpoint names are formed: a template, a regular expression, or both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamingRule {
    /// E.g. `{provider}-{model}-{environment}-{purpose}`: `{provider}`, `{model}` and
    /// `{environment}` must be the endpoint's own (the first served entity's provider and model,
    /// the environment tag; characters a name cannot hold become `-`); any other `{word}` is free
    /// text of letters, digits and `_`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// A regular expression the whole name must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

/// What one environment allows and defaults to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentRules {
    /// Providers allowed (absent: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_providers: Option<Vec<String>>,
    /// Models allowed (absent: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_models: Option<Vec<String>>,
    /// Rate limits an endpoint created without any gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_rate_limits: Option<Vec<AiGatewayRateLimit>>,
}

/// One rule an endpoint breaks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyViolation {
    /// The endpoint.
    pub endpoint: String,
    /// `naming`, `required_tags`, `allowed_providers` or `allowed_models`.
    pub rule: String,
    /// What is wrong, in words.
    pub message: String,
}
