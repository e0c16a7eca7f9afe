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

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The share of failed queries of an endpoint over a window.
    ErrorRate,
    /// The 95th-percentile latency of an endpoint over a window.
    LatencyP95,
    /// An endpoint without a working config.
    NotReady,
    /// A served entity whose circuit breaker is open.
    BreakerOpen,
    /// A budget policy past one of its alert thresholds.
    Budget,
    /// A rate limit close to its cap.
    RateLimitUsage,
    /// An endpoint's deprecation notice is due, and again a week before its sunset.
    Deprecation,
}

impl AlertKind {
    /// Every kind.
    pub const ALL: [AlertKind; 7] = [
        AlertKind::ErrorRate,
        AlertKind::LatencyP95,
        AlertKind::NotReady,
        AlertKind::BreakerOpen,
        AlertKind::Budget,
        AlertKind::RateLimitUsage,
        AlertKind::Deprecation,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::ErrorRate => "error_rate",
            AlertKind::LatencyP95 => "latency_p95",
            AlertKind::NotReady => "not_ready",
            AlertKind::BreakerOpen => "breaker_open",
            AlertKind::Budget => "budget",
            AlertKind::RateLimitUsage => "rate_limit_usage",
            AlertKind::Deprecation => "deprecation",
        }
    }
}

impl std::fmt::Display for AlertKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an alert is still firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertStatus {
    /// The condition holds.
    Firing,
    /// The condition held and no longer does.
    Resolved,
}

impl AlertStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "FIRING",
            AlertStatus::Resolved => "RESOLVED",
        }
    }
}

impl std::fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Body of `POST /api/2.0/alert-rules` and `PUT /api/2.0/alert-rules/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleInput {
    /// Unique name.
    pub name: String,
    /// What the rule watches.
    pub kind: AlertKind,
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
    pub state: AlertStatus,
    /// The rule.
    pub rule_id: String,
    /// Its name.
    pub rule_name: String,
    /// Its kind.
    pub kind: AlertKind,
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
