//! Alerting routes (our extension, admins): `/api/2.0/alert-destinations`,
//! `/api/2.0/alert-rules` and `GET /api/2.0/alerts`.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use modelgate_store::Document;
use modelgate_wire::{AlertDestination, AlertDestinationInput, AlertRule, AlertRuleInput, ListAlerts};
use serde_json::{Value, json};

use crate::access::require_admin;
use crate::background::alerts::{self, DESTINATION_KIND, RULE_KIND};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::snapshot::Principal;
use crate::state::AppState;

type Caller = Extension<Arc<Principal>>;

async fn put(app: &AppState, kind: &str, id: &str, name: &str, body: &impl serde::Serialize) -> ApiResult<()> {
    let doc = Document {
        kind: kind.into(),
        id: id.into(),
        name: name.into(),
        body: serde_json::to_string(body).map_err(|e| ApiError::Internal(e.to_string()))?,
        updated_at: modelgate_core::now_ms(),
    };
    app.store.put_document(&doc).await?;
    Ok(())
}

/// `POST /api/2.0/alert-destinations`
pub async fn create_destination(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiJson(input): ApiJson<AlertDestinationInput>,
) -> ApiResult<Json<AlertDestination>> {
    require_admin(&caller, "manage alert destinations")?;
    alerts::validate_destination(&input)?;
    let id = modelgate_core::token::random_hex(16);
    put(&app, DESTINATION_KIND, &id, &input.name, &input).await?;
    Ok(Json(alerts::masked(AlertDestination { destination_id: id, input })))
}

/// `GET /api/2.0/alert-destinations`
pub async fn list_destinations(State(app): State<AppState>, Extension(caller): Caller) -> ApiResult<Json<Value>> {
    require_admin(&caller, "read alert destinations")?;
    let all: Vec<AlertDestination> =
        alerts::destinations(app.store.as_ref()).await?.into_iter().map(alerts::masked).collect();
    Ok(Json(json!({"destinations": all})))
}

/// `DELETE /api/2.0/alert-destinations/{id}`
pub async fn delete_destination(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    require_admin(&caller, "manage alert destinations")?;
    if !app.store.delete_document(DESTINATION_KIND, &id).await? {
        return Err(ApiError::NotFound(format!("Alert destination '{id}' does not exist.")));
    }
    Ok(Json(json!({})))
}

/// `POST /api/2.0/alert-rules`
pub async fn create_rule(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiJson(input): ApiJson<AlertRuleInput>,
) -> ApiResult<Json<AlertRule>> {
    require_admin(&caller, "manage alert rules")?;
    alerts::validate_rule(&input)?;
    let id = modelgate_core::token::random_hex(16);
    put(&app, RULE_KIND, &id, &input.name, &input).await?;
    Ok(Json(AlertRule { rule_id: id, input }))
}

/// `GET /api/2.0/alert-rules`
pub async fn list_rules(State(app): State<AppState>, Extension(caller): Caller) -> ApiResult<Json<Value>> {
    require_admin(&caller, "read alert rules")?;
    Ok(Json(json!({"rules": alerts::rules(app.store.as_ref()).await?})))
}

/// `PUT /api/2.0/alert-rules/{id}`: replaces a rule.
pub async fn update_rule(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<AlertRuleInput>,
) -> ApiResult<Json<AlertRule>> {
    require_admin(&caller, "manage alert rules")?;
    alerts::validate_rule(&input)?;
    if !alerts::rules(app.store.as_ref()).await?.iter().any(|r| r.rule_id == id) {
        return Err(ApiError::NotFound(format!("Alert rule '{id}' does not exist.")));
    }
    put(&app, RULE_KIND, &id, &input.name, &input).await?;
    Ok(Json(AlertRule { rule_id: id, input }))
}

/// `DELETE /api/2.0/alert-rules/{id}`
pub async fn delete_rule(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    require_admin(&caller, "manage alert rules")?;
    if !app.store.delete_document(RULE_KIND, &id).await? {
        return Err(ApiError::NotFound(format!("Alert rule '{id}' does not exist.")));
    }
    Ok(Json(json!({})))
}

/// `GET /api/2.0/alerts`: what is firing, and what resolved lately.
pub async fn list_alerts(State(app): State<AppState>, Extension(caller): Caller) -> ApiResult<Json<ListAlerts>> {
    require_admin(&caller, "read alerts")?;
    Ok(Json(alerts::current(app.store.as_ref()).await?))
}
