//! The control plane: every `/api/2.0/...` handler, the Databricks-compatible REST API and our
//! extensions. Handlers check permissions, validate, write through the store and refresh the
//! snapshot; none of them is on the data plane's path.

pub(crate) mod alerts;
pub(crate) mod audit;
pub(crate) mod budgets;
pub(crate) mod endpoints;
pub(crate) mod groups;
pub(crate) mod inference;
pub(crate) mod inventory;
pub(crate) mod models;
pub(crate) mod observability;
pub(crate) mod openapi;
pub(crate) mod permissions;
pub(crate) mod render;
pub(crate) mod requests;
pub(crate) mod scim;
pub(crate) mod secrets;
pub(crate) mod standards;
pub(crate) mod tokens;
pub(crate) mod usage;

#[cfg(test)]
mod tests;

/// A value as the JSON text the store keeps.
fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}
