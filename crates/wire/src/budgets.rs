//! Budget policies (our extension): `/api/2.0/budget-policies`.

use serde::{Deserialize, Serialize};

/// `key` = `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyValue {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// What a policy counts, besides the endpoints that name it in `budget_policy_id`. At most one
/// field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetScope {
    /// One endpoint, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Every endpoint with this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<KeyValue>,
    /// Every query with this `usage_context` entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_context: Option<KeyValue>,
    /// Every query of this user, by user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Every query of the members of this group (nested groups included), by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Every query of this service principal, by application id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_principal: Option<String>,
}

/// Body of create and update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetPolicyInput {
    /// Unique name.
    pub name: String,
    /// What it counts.
    #[serde(default)]
    pub scope: BudgetScope,
    /// `day`, `week` (from Monday) or `month`, in UTC.
    pub period: String,
    /// Budget per period, in USD.
    pub amount_usd: f64,
    /// Percentages of the amount that raise an alert; default 50, 80, 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_thresholds: Option<Vec<f64>>,
    /// At 100 %: `ALERT` (default) or `BLOCK` (queries get 429 until the period ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

/// Spend of the current period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetSpend {
    /// Start of the period, ms since the epoch.
    pub period_start: i64,
    /// End of the period (exclusive).
    pub period_end: i64,
    /// Spent so far, USD.
    pub spent_usd: f64,
    /// Spent as a percentage of the amount.
    pub percent: f64,
}

/// A policy as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetPolicy {
    /// Id.
    pub policy_id: String,
    /// The settings.
    #[serde(flatten)]
    pub input: BudgetPolicyInput,
    /// Endpoints that name this policy in `budget_policy_id`.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// The current period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend: Option<BudgetSpend>,
}

/// `GET /api/2.0/budget-policies`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListBudgetPolicies {
    /// Every policy.
    pub policies: Vec<BudgetPolicy>,
}

/// Body of `PUT /api/2.0/serving-endpoints/{name}/budget-policy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetBudgetPolicy {
    /// The policy, or `null` to detach.
    pub budget_policy_id: Option<String>,
}
