//! Secrets API (`/api/2.0/secrets/...`).
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
use modelgate_core::secret_ref::SecretRef;
use modelgate_store::{ScopeRecord, SecretRecord};
use modelgate_wire::*;
use serde::Deserialize;
use serde_json::json;

use crate::auth::require_admin;
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
    app.store
        .create_scope(&ScopeRecord { name: req.scope, creator: caller.user_name.clone(), created_at: now_ms() })
        .await?;
    Ok(Json(json!({})))
}

/// `POST /api/2.0/secrets/scopes/delete`
pub async fn delete_scope(
    State(app): State<AppState>,
    ApiJson(req): ApiJson<DeleteScopeRequest>,
) -> ApiResult<Json<serde_json::Value>> {
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
    Ok(Json(json!({})))
}

/// Query of the secret routes.
#[derive(Deserialize)]
pub struct SecretQuery {
    scope: Option<String>,
    key: Option<String>,
}

fn required(v: Option<String>, name: &str) -> ApiResult<String> {
    v.filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::InvalidParameter(format!("query parameter '{name}' is required")))
}

/// `GET /api/2.0/secrets/get?scope=&key=`: the value, base64-encoded. Admins only.
pub async fn get(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiQuery(q): ApiQuery<SecretQuery>,
) -> ApiResult<Json<GetSecretResponse>> {
    require_admin(&caller, "read secret values")?;
    let (scope, key) = (required(q.scope, "scope")?, required(q.key, "key")?);
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
    ApiQuery(q): ApiQuery<SecretQuery>,
) -> ApiResult<Json<ListSecretsResponse>> {
    let scope = required(q.scope, "scope")?;
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
    ApiJson(req): ApiJson<DeleteSecretRequest>,
) -> ApiResult<Json<serde_json::Value>> {
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
