//! Personal access tokens (`/api/2.0/token/...`).

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use modelgate_core::{now_ms, token};
use modelgate_store::TokenRecord;
use modelgate_wire::*;
use serde_json::json;

use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::snapshot::Principal;
use crate::state::AppState;

/// Public facts about a token; `names` maps principal ids to names.
pub fn info(t: TokenRecord, names: &std::collections::HashMap<String, String>) -> TokenInfo {
    TokenInfo {
        owner: names.get(&t.principal_id).cloned(),
        token_id: t.token_id,
        creation_time: t.created_at,
        expiry_time: t.expires_at.unwrap_or(-1),
        comment: t.comment,
    }
}

/// `POST /api/2.0/token/create`: a new token for the caller. The value is in this response only.
pub async fn create(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    ApiJson(req): ApiJson<CreateTokenRequest>,
) -> ApiResult<Json<CreateTokenResponse>> {
    let now = now_ms();
    let value = token::generate();
    let record = TokenRecord {
        token_id: token::random_hex(16),
        token_hash: token::hash(&value),
        principal_id: caller.id.clone(),
        comment: req.comment.unwrap_or_default(),
        created_by: caller.id.clone(),
        created_at: now,
        expires_at: req.lifetime_seconds.filter(|s| *s > 0).map(|s| now.saturating_add(s.saturating_mul(1000))),
    };
    app.store.insert_token(&record).await?;
    app.refresh().await?;
    let names = app.snapshot.load().principal_names.clone();
    Ok(Json(CreateTokenResponse { token_value: value, token_info: info(record, &names) }))
}

/// `GET /api/2.0/token/list`: the caller's own tokens (admins see all through token management).
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
) -> ApiResult<Json<ListTokensResponse>> {
    let names = app.snapshot.load().principal_names.clone();
    let token_infos = app.store.list_tokens(Some(&caller.id)).await?.into_iter().map(|t| info(t, &names)).collect();
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
