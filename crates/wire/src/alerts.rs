//! Alerting (our extension): destinations, rules and alerts.

use serde::{Deserialize, Serialize};

/// Body of `POST /api/2.0/alert-destinations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertDestinationInput {
    /// Unique name.
    pub name: String,
    /// Webhook URL (http or https).
    pub url: String,
    /// `json` (default), `slack` or `teams`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// A destination as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertDestination {
    /// Id.
    pub destination_id: String,
    /// Settings.
    #[serde(flatten)]
    pub input: AlertDestinationInput,
}

/// Body of `POST /api/2.0/alert-rules` and `PUT /api/2.0/alert-rules/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleInput {
    /// Unique name.
    pub name: String,
    /// `error_rate`, `latency_p95`, `not_ready`, `breaker_open`, `budget` or `rate_limit_usage`.
    pub kind: String,
    /// One endpoint; every endpoint when absent. (`budget` rules watch every policy.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `error_rate` and `rate_limit_usage`: a fraction (0.05); `latency_p95`: milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Window of `error_rate` and `latency_p95`; how long `not_ready` must last. E.g. `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// `error_rate` and `latency_p95` need at least this many queries in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<i64>,
    /// Off rules are not evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Destination ids to notify; every destination when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destinations: Option<Vec<String>>,
}

/// A rule as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    /// Id.
    pub rule_id: String,
    /// Settings.
    #[serde(flatten)]
    pub input: AlertRuleInput,
}

/// A firing (or recently resolved) alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable key: rule, endpoint and subject.
    pub alert_id: String,
    /// `FIRING` or `RESOLVED`.
    pub state: String,
    /// The rule.
    pub rule_id: String,
    /// Its name.
    pub rule_name: String,
    /// Its kind.
    pub kind: String,
    /// The endpoint, when the alert concerns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// What exactly: a served entity, a budget policy and threshold, a rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The measured value when it fired.
    pub value: f64,
    /// The threshold crossed.
    pub threshold: f64,
    /// Human summary.
    pub message: String,
    /// When it fired, ms.
    pub fired_at: i64,
    /// When it resolved, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<i64>,
}

/// `GET /api/2.0/alerts`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListAlerts {
    /// Firing now.
    pub firing: Vec<Alert>,
    /// Resolved lately, newest first (at most 100).
    pub resolved: Vec<Alert>,
}
