//! The model registry (our extension): registered models and their versions, which hosted served
//! entities reference by `entity_name` and `entity_version`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Body of `POST /api/2.0/registered-models`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateModelRequest {
    /// `team.models.churn` or a plain name.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A registered model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModel {
    /// Its name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Who registered it.
    pub creator: String,
    /// ms since the epoch.
    pub creation_timestamp: i64,
    /// ms since the epoch.
    pub last_updated_timestamp: i64,
    /// The newest version number, if it has versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_version: Option<String>,
    /// The caller's level on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_level: Option<String>,
}

/// Answer of `GET /api/2.0/registered-models`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListModelsResponse {
    /// The models the caller may view, by name.
    pub registered_models: Vec<RegisteredModel>,
}

/// Body of `POST /api/2.0/registered-models/{name}/versions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateModelVersionRequest {
    /// A directory on the server holding the model's files (a path, or a `file://` URI).
    pub source: String,
    /// `process` (a command modelgate starts) or `embedded` (a sentence-embedding model run
    /// in-process).
    pub runtime: String,
    /// What it serves: `llm/v1/chat`, `llm/v1/completions`, `llm/v1/embeddings`, `llm/v1/images`
    /// or `mlflow/scoring` (default: chat for `process`, embeddings for `embedded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// For `process`: the program and its arguments, never a shell string. `$PORT` and
    /// `$MODEL_PATH` in an argument are replaced by the replica's port and the source directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Environment of the process; values may be `{{secrets/scope/key}}` references.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One version of a registered model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// The model's name.
    pub name: String,
    /// `1`, `2`, ... (a string, as `entity_version` is).
    pub version: String,
    /// Where its files are.
    pub source: String,
    /// `process` or `embedded`.
    pub runtime: String,
    /// What it serves.
    pub task: String,
    /// The process runtime's command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Declared environment (secret references shown as references).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// `sha256:` of the source's file names and contents when it was registered.
    pub content_hash: String,
    /// Free text.
    pub description: String,
    /// Who registered it.
    pub creator: String,
    /// ms since the epoch.
    pub creation_timestamp: i64,
}

/// Answer of `GET /api/2.0/registered-models/{name}/versions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListModelVersionsResponse {
    /// Newest first.
    pub model_versions: Vec<ModelVersion>,
}
