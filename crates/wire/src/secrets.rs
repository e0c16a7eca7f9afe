//! Secrets API (`/api/2.0/secrets/...`).

use serde::{Deserialize, Serialize};

/// Body of `POST /api/2.0/secrets/scopes/create`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateScopeRequest {
    /// Scope name: letters, digits, `-`, `_`, `.`, at most 128 characters.
    pub scope: String,
    /// Only `users` is accepted, as in Databricks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_manage_principal: Option<String>,
    /// Only `DATABRICKS` (the built-in encrypted store) is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_backend_type: Option<String>,
    /// Accepted for compatibility; a Key Vault backend is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_azure_keyvault: Option<serde_json::Value>,
}

/// Body of `POST /api/2.0/secrets/scopes/delete`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteScopeRequest {
    /// Scope to delete, with all its secrets.
    pub scope: String,
}

/// One entry of `GET /api/2.0/secrets/scopes/list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretScope {
    /// Scope name.
    pub name: String,
    /// Always `DATABRICKS`.
    pub backend_type: String,
}

/// Response of `GET /api/2.0/secrets/scopes/list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListScopesResponse {
    /// Every scope.
    pub scopes: Vec<SecretScope>,
}

/// Body of `POST /api/2.0/secrets/put`: exactly one of the two values.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutSecretRequest {
    /// Scope holding the secret.
    pub scope: String,
    /// Key name within the scope.
    pub key: String,
    /// A UTF-8 value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    /// Base64 of arbitrary bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_value: Option<String>,
}

/// Body of `POST /api/2.0/secrets/delete`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteSecretRequest {
    /// Scope holding the secret.
    pub scope: String,
    /// Key to delete.
    pub key: String,
}

/// One entry of `GET /api/2.0/secrets/list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretMetadata {
    /// Key name.
    pub key: String,
    /// Milliseconds since the epoch.
    pub last_updated_timestamp: i64,
}

/// Response of `GET /api/2.0/secrets/list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListSecretsResponse {
    /// Keys in the scope, never their values.
    pub secrets: Vec<SecretMetadata>,
}

/// Response of `GET /api/2.0/secrets/get`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetSecretResponse {
    /// Key name.
    pub key: String,
    /// Base64 of the stored bytes.
    pub value: String,
}

/// Body of `POST /api/2.0/secrets/acls/put`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutAclRequest {
    /// The scope.
    pub scope: String,
    /// A user name, group name or service principal application id.
    pub principal: String,
    /// `READ`, `WRITE` or `MANAGE`.
    pub permission: String,
}

/// Body of `POST /api/2.0/secrets/acls/delete`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteAclRequest {
    /// The scope.
    pub scope: String,
    /// Whose grant to remove.
    pub principal: String,
}

/// One scope grant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AclItem {
    /// User name, group name or service principal application id.
    pub principal: String,
    /// `READ`, `WRITE` or `MANAGE`.
    pub permission: String,
}

/// Response of `GET /api/2.0/secrets/acls/list`. The SDK reads `items`; the docs show `acls`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListAclsResponse {
    /// The grants.
    pub items: Vec<AclItem>,
    /// The same grants.
    pub acls: Vec<AclItem>,
}
