//! Personal access tokens (`/api/2.0/token/...`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use modelgate_core::{now_ms, token};
use modelgate_store::TokenRecord;
use modelgate_wire::*;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::snapshot::Principal;
use crate::state::AppState;

/// Public facts about a token; `names` maps principal ids to names.
pub fn info(t: TokenRecord, names: &HashMap<String, String>) -> TokenInfo {
    let limits = t.limits.as_deref().and_then(|l| serde_json::from_str::<TokenLimits>(l).ok());
    TokenInfo {
        limits,
        budget_spent_usd: None,
        owner: names.get(&t.principal_id).cloned(),
        owner_id: t.principal_id.parse().ok(),
        created_by_id: t.created_by.parse().ok(),
        created_by_username: names.get(&t.created_by).cloned(),
        token_id: t.token_id,
        creation_time: t.created_at,
        expiry_time: t.expires_at.unwrap_or(-1),
        comment: t.comment,
    }
}

/// Longest token lifetime accepted: ten years.
pub const MAX_LIFETIME_SECONDS: i64 = 10 * 365 * 24 * 3600;

/// A token's facts with the current spend against its budget.
fn info_now(app: &AppState, t: TokenRecord, names: &HashMap<String, String>) -> TokenInfo {
    let mut i = info(t, names);
    if i.limits.as_ref().is_some_and(|l| l.budget.is_some()) {
        i.budget_spent_usd = app.budgets.token_spent(&i.token_id);
    }
    i
}

/// `limits` checked and as stored (`None` for none at all).
fn stored_limits(limits: Option<&TokenLimits>) -> ApiResult<Option<String>> {
    match limits.filter(|l| **l != TokenLimits::default()) {
        None => Ok(None),
        Some(l) => {
            modelgate_core::validate::token_limits(l)?;
            Ok(Some(serde_json::to_string(l).map_err(|e| ApiError::Internal(e.to_string()))?))
        }
    }
}

/// Makes a change to tokens live: the snapshot (who a token is, its limits) and the budgets
/// (token budgets start tracking their spend).
async fn refresh_tokens(app: &AppState) -> ApiResult<()> {
    app.refresh().await?;
    app.usage.flush().await;
    app.reload_budgets().await
}

/// A token with `lifetime_seconds` (absent: no expiry), `comment` and `limits`, after checking them.
fn new_token(
    principal_id: &str,
    created_by: &str,
    lifetime_seconds: Option<i64>,
    comment: Option<String>,
    limits: Option<&TokenLimits>,
) -> ApiResult<(String, TokenRecord)> {
    if let Some(s) = lifetime_seconds
        && !(1..=MAX_LIFETIME_SECONDS).contains(&s)
    {
        return Err(ApiError::invalid(
            "lifetime_seconds",
            format!("must be between 1 and {MAX_LIFETIME_SECONDS} (omit it for a token that does not expire), got {s}"),
        ));
    }
    if let Some(p) = comment.as_deref().and_then(|c| modelgate_core::names::text_problem(c, 1024, false)) {
        return Err(ApiError::invalid("comment", p));
    }
    let limits = stored_limits(limits)?;
    let now = now_ms();
    let value = token::generate();
    let record = TokenRecord {
        token_id: token::random_hex(16),
        token_hash: token::hash(&value),
        principal_id: principal_id.to_string(),
        comment: comment.unwrap_or_default(),
        created_by: created_by.to_string(),
        created_at: now,
        expires_at: lifetime_seconds.map(|s| now.saturating_add(s.saturating_mul(1000))),
        limits,
    };
    Ok((value, record))
}

/// `POST /api/2.0/token/create`: a new token for the caller. The value is in this response only.
pub async fn create(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    ApiJson(req): ApiJson<CreateTokenRequest>,
) -> ApiResult<Json<CreateTokenResponse>> {
    let (value, record) = new_token(&caller.id, &caller.id, req.lifetime_seconds, req.comment, req.limits.as_ref())?;
    app.store.insert_token(&record).await?;
    refresh_tokens(&app).await?;
    let names = app.snapshot.load().principal_names.clone();
    Ok(Json(CreateTokenResponse { token_value: value, token_info: info_now(&app, record, &names) }))
}

/// `GET /api/2.0/token/list`: the caller's own tokens (admins see all through token management).
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
) -> ApiResult<Json<ListTokensResponse>> {
    let names = app.snapshot.load().principal_names.clone();
    let token_infos =
        app.store.list_tokens(Some(&caller.id)).await?.into_iter().map(|t| info_now(&app, t, &names)).collect();
    Ok(Json(ListTokensResponse { token_infos }))
}

/// `POST /api/2.0/token/delete`: revokes one of the caller's tokens; effective on the very next request.
pub async fn delete(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    ApiJson(req): ApiJson<RevokeTokenRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    app.store.delete_token(&req.token_id, Some(&caller.id)).await?;
    app.refresh().await?;
    Ok(Json(json!({})))
}

/// Query of the token-management listing.
#[derive(serde::Deserialize, Default)]
pub struct ManagementQuery {
    created_by_id: Option<String>,
    created_by_username: Option<String>,
}

/// `GET /api/2.0/token-management/tokens`: every token (admins).
pub async fn manage_list(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    crate::extract::ApiQuery(q): crate::extract::ApiQuery<ManagementQuery>,
) -> ApiResult<Json<ListTokensResponse>> {
    crate::access::require_admin(&caller, "manage other principals' tokens")?;
    let names = app.snapshot.load().principal_names.clone();
    let token_infos = app
        .store
        .list_tokens(None)
        .await?
        .into_iter()
        .filter(|t| q.created_by_id.as_deref().is_none_or(|id| t.created_by == id))
        .filter(|t| {
            q.created_by_username.as_deref().is_none_or(|n| names.get(&t.created_by).map(String::as_str) == Some(n))
        })
        .map(|t| info_now(&app, t, &names))
        .collect();
    Ok(Json(ListTokensResponse { token_infos }))
}

async fn find(app: &AppState, token_id: &str) -> ApiResult<TokenRecord> {
    app.store
        .list_tokens(None)
        .await?
        .into_iter()
        .find(|t| t.token_id == token_id)
        .ok_or_else(|| crate::error::ApiError::NotFound(format!("Token '{token_id}' does not exist.")))
}

/// `GET /api/2.0/token-management/tokens/{token_id}` (admins).
pub async fn manage_get(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    ApiPath(token_id): ApiPath<String>,
) -> ApiResult<Json<GetTokenResponse>> {
    crate::access::require_admin(&caller, "manage other principals' tokens")?;
    let names = app.snapshot.load().principal_names.clone();
    Ok(Json(GetTokenResponse { token_info: info_now(&app, find(&app, &token_id).await?, &names) }))
}

/// `PATCH /api/2.0/token-management/tokens/{token_id}` (our extension): replaces a token's
/// limits. Admins may change any token's; others only those of tokens they created themselves
/// (not limits an admin put on a token made for them).
pub async fn manage_update(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    ApiPath(token_id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateTokenRequest>,
) -> ApiResult<Json<GetTokenResponse>> {
    let token = find(&app, &token_id).await?;
    if !caller.is_admin && token.created_by != caller.id {
        return Err(ApiError::PermissionDenied(
            "Only admins may change the limits of a token someone else created for you.".into(),
        ));
    }
    let limits = stored_limits(Some(&req.limits))?;
    app.store.set_token_limits(&token_id, limits.as_deref()).await?;
    refresh_tokens(&app).await?;
    let names = app.snapshot.load().principal_names.clone();
    Ok(Json(GetTokenResponse { token_info: info_now(&app, find(&app, &token_id).await?, &names) }))
}

/// `DELETE /api/2.0/token-management/tokens/{token_id}` (admins); effective on the next request.
pub async fn manage_delete(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    ApiPath(token_id): ApiPath<String>,
) -> ApiResult<Json<serde_json::Value>> {
    crate::access::require_admin(&caller, "manage other principals' tokens")?;
    app.store.delete_token(&token_id, None).await?;
    app.refresh().await?;
    Ok(Json(json!({})))
}

/// `POST /api/2.0/token-management/on-behalf-of/tokens` (admins): a token for a service principal
/// (`application_id`), or for a user (`user_name`, our extension). The value is shown once.
pub async fn create_obo(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    crate::extract::ApiJson(req): crate::extract::ApiJson<CreateOboTokenRequest>,
) -> ApiResult<Json<CreateTokenResponse>> {
    use modelgate_store::principal_kind;
    crate::access::require_admin(&caller, "create tokens for other principals")?;
    let (kind, name, field) = match (req.application_id.as_deref(), req.user_name.as_deref()) {
        (Some(a), None) => (principal_kind::SERVICE_PRINCIPAL, a, "application_id"),
        (None, Some(u)) => (principal_kind::USER, u, "user_name"),
        _ => {
            return Err(crate::error::ApiError::invalid(
                "application_id",
                "set exactly one of application_id or user_name",
            ));
        }
    };
    let owner = app
        .store
        .find_principal(kind, name)
        .await?
        .ok_or_else(|| crate::error::ApiError::NotFound(format!("No principal with {field} '{name}'.")))?;
    let (value, record) = new_token(&owner.id, &caller.id, req.lifetime_seconds, req.comment, req.limits.as_ref())?;
    app.store.insert_token(&record).await?;
    refresh_tokens(&app).await?;
    let names = app.snapshot.load().principal_names.clone();
    Ok(Json(CreateTokenResponse { token_value: value, token_info: info_now(&app, record, &names) }))
}
