#![warn(missing_docs)]
//! Persistent state of modelgate.
//!
//! Callers use the [`Store`] trait only; [`SqliteStore`] is the embedded implementation and
//! [`PostgresStore`] the one replicas share. Usage records ([`UsageDb`]) and inference payloads
//! ([`InferenceDb`]) live in databases of their own, on either engine. The store keeps opaque
//! values: configs are JSON text and secrets are ciphertext sealed by the caller, so every
//! implementation stores the same bytes and encryption lives in one place.

mod bulk;
pub mod cluster;
mod dialect;
mod inference;
mod location;
mod logdb;
mod records;
mod sql;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transfer;
mod usage;

pub use inference::*;
pub use location::{Location, redacted};
pub use records::*;
pub use sql::{PostgresStore, SqlStore, SqliteStore};
pub use usage::*;

use async_trait::async_trait;

/// Outcomes of store operations that callers act on, plus database failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// An object with that name already exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// The object is busy (e.g. a config update is in progress).
    #[error("{0}")]
    Conflict(String),
    /// The change is not allowed in the object's current state.
    #[error("{0}")]
    InvalidState(String),
    /// The change was refused by the caller's mutation, with a reason for the client.
    #[error("{0}")]
    Invalid(String),
    /// A quota would be exceeded.
    #[error("{0}")]
    LimitExceeded(String),
    /// The database cannot be reached (down, restarting, the network cut): worth retrying later.
    #[error("the database is not reachable: {0}")]
    Unavailable(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The schema could not be migrated.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // SQLSTATE classes 08 (connection exception) and 57 (operator intervention: shutdown,
        // restart) mean the server went away, not that the statement was wrong.
        let gone =
            e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c.starts_with("08") || c.starts_with("57"));
        match e {
            // Protocol: a connection cut during the handshake reads as garbage.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
            e if gone => StoreError::Unavailable(e.to_string()),
            e => StoreError::Database(e),
        }
    }
}

/// Result of store operations.
pub type Result<T> = std::result::Result<T, StoreError>;

/// A read-modify-write of one endpoint, run inside a transaction. It may change the record and
/// return a new config version to insert; returning an error aborts without writing.
pub type EndpointMutation = Box<dyn FnOnce(&mut EndpointRecord) -> Result<Option<ConfigRecord>> + Send + 'static>;

/// Everything modelgate persists.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> Result<()>;
    /// Brings the schema up to date.
    async fn migrate(&self) -> Result<()>;
    /// Waits for in-flight statements and closes connections.
    async fn close(&self);

    /// Reads a metadata value; `None` also on a database that was never migrated.
    async fn get_meta(&self, key: &str) -> Result<Option<String>>;
    /// Sets a metadata value.
    async fn put_meta(&self, key: &str, value: &str) -> Result<()>;
    /// Sets a metadata value unless one is set, and returns the value that holds: replicas
    /// starting at once on a new database agree on one.
    async fn init_meta(&self, key: &str, value: &str) -> Result<String>;

    /// Creates a principal; `AlreadyExists` if one of that kind has that name.
    async fn create_principal(&self, principal: &PrincipalRecord) -> Result<()>;
    /// One principal by id.
    async fn get_principal(&self, id: &str) -> Result<Option<PrincipalRecord>>;
    /// One principal by kind and name.
    async fn find_principal(&self, kind: &str, name: &str) -> Result<Option<PrincipalRecord>>;
    /// Principals of one kind, or all, by name.
    async fn list_principals(&self, kind: Option<&str>) -> Result<Vec<PrincipalRecord>>;
    /// Writes a principal's display name and active flag; `NotFound` if missing.
    async fn update_principal(&self, principal: &PrincipalRecord) -> Result<()>;
    /// Deletes a principal with its memberships and tokens; `NotFound` if missing.
    async fn delete_principal(&self, id: &str) -> Result<()>;
    /// Every direct membership.
    async fn list_memberships(&self) -> Result<Vec<MembershipRecord>>;
    /// Adds a member to a group (no-op if present).
    async fn add_member(&self, group_id: &str, member_id: &str) -> Result<()>;
    /// Removes a member from a group (no-op if absent).
    async fn remove_member(&self, group_id: &str, member_id: &str) -> Result<()>;
    /// Sets a user's console password hash (an Argon2id PHC string), or removes it with `None`;
    /// `NotFound` if the principal does not exist.
    async fn set_password(&self, principal_id: &str, hash: Option<&str>, at: i64) -> Result<()>;
    /// Every console password hash.
    async fn list_passwords(&self) -> Result<Vec<PasswordRecord>>;
    /// Registers a model with its creator's `CAN_MANAGE` grant, atomically; `AlreadyExists` on a
    /// taken name.
    async fn create_model(&self, model: &ModelRecord, owner_id: &str) -> Result<()>;
    /// One registered model by name.
    async fn get_model(&self, name: &str) -> Result<Option<ModelRecord>>;
    /// Every registered model, by name.
    async fn list_models(&self) -> Result<Vec<ModelRecord>>;
    /// Deletes a model with its versions and grants; `NotFound` if missing.
    async fn delete_model(&self, name: &str) -> Result<()>;
    /// Adds a version to the model `version.model_id` with the next number; returns it numbered.
    async fn add_model_version(&self, version: &ModelVersionRecord) -> Result<ModelVersionRecord>;
    /// A model's versions, newest first.
    async fn list_model_versions(&self, model_id: &str) -> Result<Vec<ModelVersionRecord>>;
    /// Every version of every model.
    async fn list_all_model_versions(&self) -> Result<Vec<ModelVersionRecord>>;
    /// Deletes one version; `NotFound` if missing.
    async fn delete_model_version(&self, model_id: &str, version: i64) -> Result<()>;
    /// Every direct grant on every model.
    async fn list_model_permissions(&self) -> Result<Vec<ModelPermissionRecord>>;
    /// Writes grants on a model; `replace` removes the others first.
    async fn write_model_permissions(
        &self,
        model_id: &str,
        grants: &[ModelPermissionRecord],
        replace: bool,
    ) -> Result<()>;
    /// Stores a token (hash only).
    async fn insert_token(&self, token: &TokenRecord) -> Result<()>;
    /// Tokens of one principal, or of everyone.
    async fn list_tokens(&self, principal_id: Option<&str>) -> Result<Vec<TokenRecord>>;
    /// Deletes a token; `NotFound` if it does not exist (or belongs to another principal when `owner` is given).
    async fn delete_token(&self, token_id: &str, owner: Option<&str>) -> Result<()>;
    /// Replaces a token's limits (JSON; `None` removes them); `NotFound` if it does not exist.
    async fn set_token_limits(&self, token_id: &str, limits: Option<&str>) -> Result<()>;

    /// Inserts an endpoint, its first config version and its owner's `CAN_MANAGE` grant atomically;
    /// `AlreadyExists` on a taken name.
    async fn create_endpoint(&self, endpoint: &EndpointRecord, config: &ConfigRecord, owner_id: &str) -> Result<()>;
    /// Every direct endpoint grant.
    async fn list_endpoint_permissions(&self) -> Result<Vec<EndpointPermissionRecord>>;
    /// Sets an endpoint's direct grants: with `replace`, exactly `grants`; otherwise `grants` are
    /// merged in (a principal's grant is overwritten).
    async fn write_endpoint_permissions(
        &self,
        endpoint_id: &str,
        grants: &[EndpointPermissionRecord],
        replace: bool,
    ) -> Result<()>;
    /// One endpoint by name.
    async fn get_endpoint(&self, name: &str) -> Result<Option<EndpointRecord>>;
    /// One endpoint by id.
    async fn get_endpoint_by_id(&self, id: &str) -> Result<Option<EndpointRecord>>;
    /// Every endpoint, by name.
    async fn list_endpoints(&self) -> Result<Vec<EndpointRecord>>;
    /// Deletes an endpoint and its config history.
    async fn delete_endpoint(&self, name: &str) -> Result<()>;
    /// Applies `mutation` to the named endpoint atomically and returns the stored result.
    async fn update_endpoint(&self, name: &str, mutation: EndpointMutation) -> Result<EndpointRecord>;
    /// Records the outcome of deploying `version`; returns false if that version is no longer
    /// pending (the endpoint was deleted or moved on).
    async fn finish_deployment(&self, endpoint_id: &str, version: i64, outcome: &DeployOutcome) -> Result<bool>;
    /// Records changes of an endpoint's settings.
    async fn record_setting_changes(&self, changes: &[SettingChange]) -> Result<()>;
    /// An endpoint's setting changes, newest first.
    async fn list_setting_changes(&self, endpoint_id: &str) -> Result<Vec<SettingChange>>;
    /// Every config version of an endpoint, newest first.
    async fn list_configs(&self, endpoint_id: &str) -> Result<Vec<ConfigRecord>>;
    /// One config version.
    async fn get_config(&self, endpoint_id: &str, version: i64) -> Result<Option<ConfigRecord>>;

    /// Creates a secret scope; `AlreadyExists` if taken.
    async fn create_scope(&self, scope: &ScopeRecord) -> Result<()>;
    /// Deletes a scope and its secrets; `NotFound` if missing.
    async fn delete_scope(&self, name: &str) -> Result<()>;
    /// Every scope.
    async fn list_scopes(&self) -> Result<Vec<ScopeRecord>>;
    /// Creates or overwrites a secret; `NotFound` if the scope is missing, `LimitExceeded` past
    /// `max_per_scope` secrets.
    async fn put_secret(&self, secret: &SecretRecord, max_per_scope: usize) -> Result<()>;
    /// One secret.
    async fn get_secret(&self, scope: &str, key: &str) -> Result<Option<SecretRecord>>;
    /// Secrets of a scope; `NotFound` if the scope is missing.
    async fn list_secrets(&self, scope: &str) -> Result<Vec<SecretRecord>>;
    /// Deletes a secret; `NotFound` if missing.
    async fn delete_secret(&self, scope: &str, key: &str) -> Result<()>;
    /// Every secret of every scope.
    async fn all_secrets(&self) -> Result<Vec<SecretRecord>>;
    /// Appends an audit record (`seq` is assigned).
    async fn append_audit(&self, record: &AuditRecord) -> Result<()>;
    /// Reads audit records, newest first.
    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>>;
    /// Deletes audit records older than `before` (ms since the epoch); how many went.
    async fn delete_audit_before(&self, before: i64) -> Result<u64>;
    /// Creates or replaces the document `(kind, id)`; `AlreadyExists` if another document of the
    /// kind has that name.
    async fn put_document(&self, doc: &Document) -> Result<()>;
    /// Every document of a kind, by name.
    async fn list_documents(&self, kind: &str) -> Result<Vec<Document>>;
    /// Deletes a document; whether it existed.
    async fn delete_document(&self, kind: &str, id: &str) -> Result<bool>;
    /// Every scope grant.
    async fn list_scope_acls(&self) -> Result<Vec<ScopeAclRecord>>;
    /// Creates or overwrites a scope grant; `NotFound` if the scope is missing.
    async fn put_scope_acl(&self, acl: &ScopeAclRecord) -> Result<()>;
    /// Removes a scope grant; `NotFound` if there is none.
    async fn delete_scope_acl(&self, scope: &str, principal_id: &str) -> Result<()>;
}
