//! The endpoint inventory (our extension): `GET /api/2.0/inventory`.

use serde::{Deserialize, Serialize};

/// Why an endpoint deserves a look.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InventoryFlag {
    /// `duplicate`, `unused`, `poc`, `breaks_policy` or `deprecated`.
    pub flag: String,
    /// The reason, in words.
    pub reason: String,
}

/// One endpoint of the inventory.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InventoryEntry {
    /// Endpoint name.
    pub name: String,
    /// `external`, `custom` or `foundation`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The first served entity's model (`name` of an external model, `entity_name` otherwise).
    pub model: String,
    /// Its version, for registered models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// The first served entity's provider.
    pub provider: String,
    /// The task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// The `environment` (or `env`) tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Who created it.
    pub owner: String,
    /// The `team` tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Created, ms since the epoch.
    pub created: i64,
    /// Last changed, ms since the epoch.
    pub last_updated: i64,
    /// `Ready`, `Ready (updating)`, `Ready (update failed)`, `Not ready (updating)`,
    /// `Not ready (update failed)` or `Not ready (stopped)`.
    pub state: String,
    /// The budget policy its spend counts against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_policy_id: Option<String>,
    /// Cost since the start of the month (UTC), USD.
    pub spend_this_month_usd: f64,
    /// The last query, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_query: Option<i64>,
    /// Queries over the last 30 days.
    pub queries_30d: i64,
    /// Their cost, USD.
    pub cost_30d_usd: f64,
    /// Its deprecation notice, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecation: Option<crate::Deprecation>,
    /// What deserves a look, with the reasons.
    pub flags: Vec<InventoryFlag>,
}

/// Answer of `GET /api/2.0/inventory`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Inventory {
    /// When it was computed, ms since the epoch.
    pub generated_at: i64,
    /// One entry per endpoint the caller may view, by name.
    pub endpoints: Vec<InventoryEntry>,
}
