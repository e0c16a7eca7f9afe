//! Health of served entities (our extension): `POST /api/2.0/serving-endpoints/{name}/test` and
//! the results of active health checks.

use serde::{Deserialize, Serialize};

/// What one minimal query to a served entity showed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EntityHealth {
    /// The served entity.
    pub name: String,
    /// Its provider.
    pub provider: String,
    /// Its model.
    pub model: String,
    /// `host:port` it was sent to, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Whether it answered the query.
    pub ok: bool,
    /// Whether a connection was made (absent: not tried, e.g. a credential is missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachable: Option<bool>,
    /// Whether the provider accepted the credentials (absent: unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated: Option<bool>,
    /// Whether the provider knows the model (absent: unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_exists: Option<bool>,
    /// The provider's HTTP status, when it answered with an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    /// From sending the query to its answer.
    pub latency_ms: f64,
    /// What went wrong, named as query errors are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When it was checked, ms since the epoch.
    pub checked_at: i64,
}

/// Answer of `POST /api/2.0/serving-endpoints/{name}/test`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EndpointHealth {
    /// The endpoint.
    pub name: String,
    /// Whether every served entity answered.
    pub ok: bool,
    /// One result per served entity, in config order.
    pub served_entities: Vec<EntityHealth>,
}
