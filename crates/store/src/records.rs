//! Rows as plain structs.

/// Kinds of principal.
pub mod principal_kind {
    /// A person (SCIM User).
    pub const USER: &str = "user";
    /// A group of principals.
    pub const GROUP: &str = "group";
    /// An application identity.
    pub const SERVICE_PRINCIPAL: &str = "service_principal";
}

/// A user, group or service principal.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PrincipalRecord {
    /// SCIM id.
    pub id: String,
    /// See [`principal_kind`].
    pub kind: String,
    /// userName, group displayName, or service principal applicationId; unique per kind.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Inactive principals cannot authenticate.
    pub active: bool,
    /// ms since the epoch.
    pub created_at: i64,
}

/// A user's console password, as its hash.
#[derive(Clone, PartialEq, sqlx::FromRow)]
pub struct PasswordRecord {
    /// The user.
    pub principal_id: String,
    /// Argon2id PHC string.
    pub hash: String,
    /// When it was set, ms since the epoch.
    pub updated_at: i64,
}

impl std::fmt::Debug for PasswordRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordRecord")
            .field("principal_id", &self.principal_id)
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

/// A registered model (our extension): a name whose versions hosted entities serve.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ModelRecord {
    /// Server-assigned id.
    pub id: String,
    /// `team.models.churn` or a plain name; unique.
    pub name: String,
    /// Free text.
    pub description: String,
    /// User name of who registered it.
    pub creator: String,
    /// ms since the epoch.
    pub created_at: i64,
    /// ms since the epoch.
    pub updated_at: i64,
    /// The highest version number ever given (numbers are never reused).
    pub latest_version: i64,
}

/// One version of a registered model.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ModelVersionRecord {
    /// The model.
    pub model_id: String,
    /// 1, 2, ...
    pub version: i64,
    /// Where its files are: a directory on the server.
    pub source: String,
    /// `process` or `embedded`.
    pub runtime: String,
    /// `llm/v1/chat`, `llm/v1/completions`, `llm/v1/embeddings` or `llm/v1/images`.
    pub task: String,
    /// The process runtime's argv as a JSON array.
    pub command: Option<String>,
    /// Declared environment as a JSON object.
    pub env: Option<String>,
    /// `sha256:` of the source's files, names and contents.
    pub content_hash: String,
    /// Free text.
    pub description: String,
    /// User name of who registered it.
    pub creator: String,
    /// ms since the epoch.
    pub created_at: i64,
}

/// A direct permission grant on a registered model.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ModelPermissionRecord {
    /// The model.
    pub model_id: String,
    /// The user, group or service principal.
    pub principal_id: String,
    /// `CAN_VIEW`, `CAN_QUERY` (serve it) or `CAN_MANAGE`.
    pub level: String,
}

/// A direct permission grant on an endpoint.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EndpointPermissionRecord {
    /// The endpoint.
    pub endpoint_id: String,
    /// The user, group or service principal.
    pub principal_id: String,
    /// `CAN_VIEW`, `CAN_QUERY` or `CAN_MANAGE`.
    pub level: String,
}

/// One change of an endpoint setting kept outside its config versions.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SettingChange {
    /// Increasing id (0 before it is stored).
    pub change_id: i64,
    /// The endpoint.
    pub endpoint_id: String,
    /// `ai_gateway`, `rate_limits`, `tags`, `permissions`, ...
    pub field: String,
    /// JSON before the change; `None` when unset.
    pub before: Option<String>,
    /// JSON after the change; `None` when removed.
    pub after: Option<String>,
    /// Who changed it.
    pub changed_by: String,
    /// ms since the epoch.
    pub changed_at: i64,
}

/// A grant on a secret scope.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ScopeAclRecord {
    /// The scope.
    pub scope: String,
    /// The user, group or service principal.
    pub principal_id: String,
    /// `READ`, `WRITE` or `MANAGE`.
    pub permission: String,
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditRecord {
    /// Order of recording.
    pub seq: i64,
    /// ms since the epoch.
    pub at: i64,
    /// Name of the authenticated principal, if any.
    pub principal: Option<String>,
    /// Its id.
    pub principal_id: Option<String>,
    /// Id of the token used (never the token).
    pub token_id: Option<String>,
    /// Client address.
    pub address: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// What was acted on, e.g. `serving-endpoint:chat`, `secret-scope:llm`.
    pub object: Option<String>,
    /// The request body with secret values removed.
    pub summary: Option<String>,
    /// HTTP status of the answer.
    pub status: i64,
    /// `error_code` of a failed answer.
    pub error_code: Option<String>,
}

/// Which audit records to read.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// From (ms, inclusive).
    pub since: Option<i64>,
    /// Until (ms, exclusive).
    pub until: Option<i64>,
    /// Principal name.
    pub principal: Option<String>,
    /// Object, e.g. `serving-endpoint:chat`.
    pub object: Option<String>,
    /// HTTP method (the action).
    pub method: Option<String>,
    /// Most records, newest first.
    pub limit: i64,
}

/// A direct group membership.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MembershipRecord {
    /// The group.
    pub group_id: String,
    /// The member (user, service principal or group).
    pub member_id: String,
}

/// A bearer token, by hash.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TokenRecord {
    /// Public identifier.
    pub token_id: String,
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// Who the token authenticates as.
    pub principal_id: String,
    /// Free text.
    pub comment: String,
    /// Principal id of whoever created it (differs from `principal_id` for on-behalf-of tokens).
    pub created_by: String,
    /// ms since the epoch.
    pub created_at: i64,
    /// ms since the epoch; `None` never expires.
    pub expires_at: Option<i64>,
    /// The token's own limits, as JSON (`TokenLimits`); `None` without any.
    pub limits: Option<String>,
}

/// An endpoint's current state and settings; configs are kept as [`ConfigRecord`]s.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EndpointRecord {
    /// 32 hex characters.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Who created it.
    pub creator: String,
    /// ms since the epoch.
    pub created_at: i64,
    /// ms since the epoch.
    pub updated_at: i64,
    /// Task of the active config's external models.
    pub task: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Budget policy reference.
    pub budget_policy_id: Option<String>,
    /// Stored as given.
    pub route_optimized: Option<bool>,
    /// JSON array of tags.
    pub tags: String,
    /// JSON of `ai_gateway`.
    pub ai_gateway: Option<String>,
    /// JSON of legacy `rate_limits`.
    pub rate_limits: Option<String>,
    /// JSON of `email_notifications`.
    pub email_notifications: Option<String>,
    /// JSON of `telemetry_config`.
    pub telemetry_config: Option<String>,
    /// JSON of the deprecation notice (our extension).
    pub deprecation: Option<String>,
    /// `NOT_UPDATING`, `IN_PROGRESS` or `UPDATE_FAILED`.
    pub config_update: String,
    /// Refuses queries until started.
    pub stopped: bool,
    /// Highest config version ever created.
    pub latest_version: i64,
    /// Version being served.
    pub active_version: Option<i64>,
    /// Version being deployed.
    pub pending_version: Option<i64>,
    /// When the pending deployment started (ms).
    pub pending_since: Option<i64>,
}

/// Status of a config version.
pub mod config_status {
    /// Being deployed.
    pub const PENDING: &str = "PENDING";
    /// Being served.
    pub const ACTIVE: &str = "ACTIVE";
    /// Served before, replaced by a newer version.
    pub const SUPERSEDED: &str = "SUPERSEDED";
    /// Failed to deploy.
    pub const FAILED: &str = "FAILED";
}

/// One version of an endpoint's config.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ConfigRecord {
    /// Owning endpoint.
    pub endpoint_id: String,
    /// 1, 2, ...
    pub version: i64,
    /// JSON of the normalised config, plaintext credentials sealed.
    pub config: String,
    /// Who created this version.
    pub creator: String,
    /// ms since the epoch.
    pub created_at: i64,
    /// See [`config_status`].
    pub status: String,
    /// Deployment log.
    pub build_log: String,
}

/// What deploying a version produced.
#[derive(Debug, Clone, PartialEq)]
pub enum DeployOutcome {
    /// The version now serves; `task` is its task.
    Ready {
        /// Task of the config's external models.
        task: Option<String>,
        /// Deployment log.
        build_log: String,
    },
    /// The version failed; the previous active version keeps serving.
    Failed {
        /// Deployment log saying which entity failed and why.
        build_log: String,
    },
}

/// A secret scope.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ScopeRecord {
    /// Unique name.
    pub name: String,
    /// Who created it.
    pub creator: String,
    /// ms since the epoch.
    pub created_at: i64,
}

/// A secret, sealed by the caller.
#[derive(Clone, PartialEq, sqlx::FromRow)]
pub struct SecretRecord {
    /// Scope name.
    pub scope: String,
    /// Key name.
    pub key: String,
    /// Ciphertext.
    pub value: Vec<u8>,
    /// Who last wrote the value.
    pub updated_by: String,
    /// ms since the epoch.
    pub updated_at: i64,
}

impl std::fmt::Debug for SecretRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRecord")
            .field("scope", &self.scope)
            .field("key", &self.key)
            .field("updated_by", &self.updated_by)
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

/// A policy object stored as JSON (budget policies, alert rules and destinations).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// What it is: `budget_policy`, `alert_rule`, `alert_destination`.
    pub kind: String,
    /// Id.
    pub id: String,
    /// Unique name within the kind.
    pub name: String,
    /// The JSON body.
    pub body: String,
    /// ms since the epoch.
    pub updated_at: i64,
}
