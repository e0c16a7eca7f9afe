//! Secrets API (`/api/2.0/secrets/...`).
//!
//! Who may do what is set per scope (`READ` < `WRITE` < `MANAGE`, for users, groups and service
//! principals; admins may do everything): reading keys and values needs `READ`, putting and
//! deleting secrets `WRITE`, ACLs and deleting the scope `MANAGE`. A scope's creator gets `MANAGE`.
//!
//! Values are sealed with the master key before they reach the store. A secret that an
//! endpoint's active or pending config references cannot be deleted (nor its scope): the request
//! is refused with `INVALID_STATE` naming the endpoints, so a serving endpoint never loses its
//! credentials silently. Overwriting a secret (key rotation) takes effect on the next request.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use modelgate_core::names::secret_name_problem;
use modelgate_core::now_ms;
use modelgate_core::permission::ScopePermission;
use modelgate_core::secret_ref::SecretRef;
use modelgate_store::{PrincipalRecord, ScopeAclRecord, ScopeRecord, SecretRecord, principal_kind};
use modelgate_wire::*;
use serde::Deserialize;
use serde_json::json;

use crate::configs::secret_context;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::snapshot::Principal;
use crate::state::AppState;

/// Largest secret value, in bytes.
pub const MAX_SECRET_BYTES: usize = 128 * 1024;
/// Most secrets one scope holds.
pub const MAX_SECRETS_PER_SCOPE: usize = 1000;

type Caller = Extension<Arc<Principal>>;

fn check_name(what: &str, name: &str) -> ApiResult<()> {
    match secret_name_problem(name) {
        Some(p) => Err(ApiError::invalid(what, format!("invalid {what} name: {p}"))),
        None => Ok(()),
    }
}

/// The caller's permission on `scope`: the highest of its own and its groups' grants.
pub fn scope_permission(app: &AppState, caller: &Principal, scope: &str) -> Option<ScopePermission> {
    if caller.is_admin {
        return Some(ScopePermission::Manage);
    }
    let snap = app.snapshot.load();
    snap.scope_acls
        .get(scope)?
        .iter()
        .filter(|(who, _)| *who == caller.id || caller.group_ids.contains(who))
        .map(|(_, p)| *p)
        .max()
}

/// 404 for a missing scope, 403 naming the permission the caller lacks.
async fn require_scope(app: &AppState, caller: &Principal, scope: &str, needed: ScopePermission) -> ApiResult<()> {
    if !app.store.list_scopes().await?.iter().any(|s| s.name == scope) {
        return Err(ApiError::NotFound(format!("Scope '{scope}' does not exist.")));
    }
    match scope_permission(app, caller, scope) {
        Some(p) if p >= needed => Ok(()),
        _ => Err(ApiError::PermissionDenied(format!(
            "{} permission on secret scope '{scope}' is required.",
            needed.as_str()
        ))),
    }
}

/// A principal by the name ACLs use: user name, group name or service principal application id.
async fn principal_named(app: &AppState, name: &str) -> ApiResult<PrincipalRecord> {
    for kind in [principal_kind::USER, principal_kind::GROUP, principal_kind::SERVICE_PRINCIPAL] {
        if let Some(p) = app.store.find_principal(kind, name).await? {
            return Ok(p);
        }
    }
    Err(ApiError::invalid("principal", format!("no user, group or service principal named '{name}'")))
}

fn users_of(app: &AppState, pred: impl Fn(&SecretRef) -> bool) -> Vec<String> {
    let snap = app.snapshot.load();
    let mut users: Vec<String> = snap
        .secret_users
        .iter()
        .filter(|(r, _)| pred(r))
        .flat_map(|(r, uses)| uses.iter().map(move |(ep, ent)| format!("endpoint '{ep}' (served entity '{ent}', {r})")))
        .collect();
    users.sort();
    users.dedup();
    users
}

/// `POST /api/2.0/secrets/scopes/create`
pub async fn create_scope(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiJson(req): ApiJson<CreateScopeRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    check_name("scope", &req.scope)?;
    if let Some(t) = req.scope_backend_type.as_deref().filter(|t| *t != "DATABRICKS") {
        return Err(ApiError::invalid(
            "scope_backend_type",
            format!(
                "'{t}' scopes are not supported; modelgate stores secrets itself (use DATABRICKS or omit the field)"
            ),
        ));
    }
    if req.backend_azure_keyvault.is_some() {
        return Err(ApiError::invalid("backend_azure_keyvault", "Azure Key Vault-backed scopes are not supported"));
    }
    if let Some(p) = req.initial_manage_principal.as_deref().filter(|p| *p != "users") {
        return Err(ApiError::invalid("initial_manage_principal", format!("only 'users' is allowed, got '{p}'")));
    }
    let everyone = req.initial_manage_principal.is_some();
    app.store
        .create_scope(&ScopeRecord { name: req.scope.clone(), creator: caller.user_name.clone(), created_at: now_ms() })
        .await?;
    let mut owners = vec![caller.id.clone()];
    if everyone
        && let Some(users) = app.store.find_principal(principal_kind::GROUP, crate::bootstrap::USERS_GROUP).await?
    {
        owners.push(users.id);
    }
    for principal_id in owners {
        let acl = ScopeAclRecord {
            scope: req.scope.clone(),
            principal_id,
            permission: ScopePermission::Manage.as_str().into(),
        };
        app.store.put_scope_acl(&acl).await?;
    }
    app.refresh().await?;
    Ok(Json(json!({})))
}

/// `POST /api/2.0/secrets/scopes/delete`
pub async fn delete_scope(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiJson(req): ApiJson<DeleteScopeRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    require_scope(&app, &caller, &req.scope, ScopePermission::Manage).await?;
    let users = users_of(&app, |r| r.scope == req.scope);
    if !users.is_empty() {
        return Err(ApiError::InvalidState(format!(
            "Scope '{}' holds secrets in use by {}; change those endpoints first.",
            req.scope,
            users.join(", ")
        )));
    }
    app.store.delete_scope(&req.scope).await?;
    app.refresh().await?;
    Ok(Json(json!({})))
}

/// `GET /api/2.0/secrets/scopes/list`
pub async fn list_scopes(State(app): State<AppState>) -> ApiResult<Json<ListScopesResponse>> {
    let scopes = app
        .store
        .list_scopes()
        .await?
        .into_iter()
        .map(|s| SecretScope { name: s.name, backend_type: "DATABRICKS".into() })
        .collect();
    Ok(Json(ListScopesResponse { scopes }))
}

/// `POST /api/2.0/secrets/put`
pub async fn put(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiJson(req): ApiJson<PutSecretRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    check_name("scope", &req.scope)?;
    check_name("key", &req.key)?;
    require_scope(&app, &caller, &req.scope, ScopePermission::Write).await?;
    let value = match (req.string_value, req.bytes_value) {
        (Some(s), None) => s.into_bytes(),
        (None, Some(b)) => {
            B64.decode(b.trim()).map_err(|_| ApiError::invalid("bytes_value", "must be base64-encoded"))?
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("string_value", "set exactly one of string_value or bytes_value"));
        }
        (None, None) => {
            return Err(ApiError::invalid("string_value", "one of string_value or bytes_value is required"));
        }
    };
    if value.len() > MAX_SECRET_BYTES {
        return Err(ApiError::invalid(
            "string_value",
            format!("the value is {} bytes; the limit is {MAX_SECRET_BYTES}", value.len()),
        ));
    }
    // Stored as sent (a secret may be anything), but a value that cannot be a provider key is
    // pointed out now rather than as a failed query later.
    let problem = std::str::from_utf8(&value).ok().and_then(crate::configs::credential_problem);
    let sealed = app
        .cipher
        .seal(&secret_context(&req.scope, &req.key), &value)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let record = SecretRecord {
        scope: req.scope,
        key: req.key,
        value: sealed,
        updated_by: caller.user_name.clone(),
        updated_at: now_ms(),
    };
    app.store.put_secret(&record, MAX_SECRETS_PER_SCOPE).await?;
    app.refresh().await?;
    Ok(Json(match problem {
        Some(why) => json!({"warnings": [format!(
            "the value {why}; if it is an API key or token, put it again without that, or queries that use it will fail"
        )]}),
        None => json!({}),
    }))
}

/// Query of the secret routes.
#[derive(Deserialize)]
pub struct SecretQuery {
    scope: Option<String>,
    key: Option<String>,
}

impl SecretQuery {
    /// The keys of one scope.
    pub fn scope(scope: &str) -> Self {
        SecretQuery { scope: Some(scope.to_string()), key: None }
    }
}

fn required(v: Option<String>, name: &str) -> ApiResult<String> {
    v.filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::InvalidParameter(format!("query parameter '{name}' is required")))
}

/// `GET /api/2.0/secrets/get?scope=&key=`: the value, base64-encoded. Needs `READ`.
pub async fn get(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiQuery(q): ApiQuery<SecretQuery>,
) -> ApiResult<Json<GetSecretResponse>> {
    let (scope, key) = (required(q.scope, "scope")?, required(q.key, "key")?);
    require_scope(&app, &caller, &scope, ScopePermission::Read).await?;
    let record = app
        .store
        .get_secret(&scope, &key)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Secret '{key}' does not exist in scope '{scope}'.")))?;
    let plain = app
        .cipher
        .open(&secret_context(&scope, &key), &record.value)
        .map_err(|e| ApiError::Internal(format!("secret {scope}/{key}: {e}")))?;
    Ok(Json(GetSecretResponse { key, value: B64.encode(plain) }))
}

/// `GET /api/2.0/secrets/list?scope=`: keys and update times, never values.
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiQuery(q): ApiQuery<SecretQuery>,
) -> ApiResult<Json<ListSecretsResponse>> {
    let scope = required(q.scope, "scope")?;
    require_scope(&app, &caller, &scope, ScopePermission::Read).await?;
    let secrets = app
        .store
        .list_secrets(&scope)
        .await?
        .into_iter()
        .map(|s| SecretMetadata { key: s.key, last_updated_timestamp: s.updated_at })
        .collect();
    Ok(Json(ListSecretsResponse { secrets }))
}

/// `POST /api/2.0/secrets/delete`
pub async fn delete(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiJson(req): ApiJson<DeleteSecretRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    require_scope(&app, &caller, &req.scope, ScopePermission::Write).await?;
    let users = users_of(&app, |r| r.scope == req.scope && r.key == req.key);
    if !users.is_empty() {
        return Err(ApiError::InvalidState(format!(
            "Secret '{}' in scope '{}' is in use by {}; change those endpoints first.",
            req.key,
            req.scope,
            users.join(", ")
        )));
    }
    app.store.delete_secret(&req.scope, &req.key).await?;
    app.refresh().await?;
    Ok(Json(json!({})))
}

/// Query of the ACL routes.
#[derive(Deserialize)]
pub struct AclQuery {
    scope: Option<String>,
    principal: Option<String>,
}

/// `POST /api/2.0/secrets/acls/put`: creates or overwrites a grant. Needs `MANAGE`.
pub async fn put_acl(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiJson(req): ApiJson<PutAclRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let permission = ScopePermission::parse(&req.permission).ok_or_else(|| {
        ApiError::invalid("permission", format!("'{}' is not one of READ, WRITE, MANAGE", req.permission))
    })?;
    require_scope(&app, &caller, &req.scope, ScopePermission::Manage).await?;
    let p = principal_named(&app, &req.principal).await?;
    app.store
        .put_scope_acl(&ScopeAclRecord { scope: req.scope, principal_id: p.id, permission: permission.as_str().into() })
        .await?;
    app.refresh().await?;
    Ok(Json(json!({})))
}

/// `GET /api/2.0/secrets/acls/get?scope=&principal=`. Needs `MANAGE`.
pub async fn get_acl(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiQuery(q): ApiQuery<AclQuery>,
) -> ApiResult<Json<AclItem>> {
    let (scope, principal) = (required(q.scope, "scope")?, required(q.principal, "principal")?);
    require_scope(&app, &caller, &scope, ScopePermission::Manage).await?;
    let p = principal_named(&app, &principal).await?;
    let snap = app.snapshot.load();
    let grant = snap.scope_acls.get(&scope).and_then(|acl| acl.iter().find(|(who, _)| *who == p.id));
    match grant {
        Some((_, perm)) => Ok(Json(AclItem { principal, permission: perm.as_str().into() })),
        None => Err(ApiError::NotFound(format!("No ACL for '{principal}' on scope '{scope}'."))),
    }
}

/// `GET /api/2.0/secrets/acls/list?scope=`. Needs `MANAGE`.
pub async fn list_acls(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiQuery(q): ApiQuery<AclQuery>,
) -> ApiResult<Json<ListAclsResponse>> {
    let scope = required(q.scope, "scope")?;
    require_scope(&app, &caller, &scope, ScopePermission::Manage).await?;
    let snap = app.snapshot.load();
    let mut items: Vec<AclItem> = snap
        .scope_acls
        .get(&scope)
        .into_iter()
        .flatten()
        .filter_map(|(who, perm)| {
            snap.principal_names.get(who).map(|n| AclItem { principal: n.clone(), permission: perm.as_str().into() })
        })
        .collect();
    items.sort_by(|a, b| a.principal.cmp(&b.principal));
    Ok(Json(ListAclsResponse { acls: items.clone(), items }))
}

/// `POST /api/2.0/secrets/acls/delete`. Needs `MANAGE`.
pub async fn delete_acl(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiJson(req): ApiJson<DeleteAclRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    require_scope(&app, &caller, &req.scope, ScopePermission::Manage).await?;
    let p = principal_named(&app, &req.principal).await?;
    app.store.delete_scope_acl(&req.scope, &p.id).await?;
    app.refresh().await?;
    Ok(Json(json!({})))
}
