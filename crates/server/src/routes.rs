//! The route table.

use axum::extract::State;
use axum::http::{Method, Uri};
use axum::routing::{delete, get, patch, post, put};
use axum::{Json, Router, middleware};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;
use crate::{
    alerts_api, audit, auth, budgets_api, dataplane, endpoints, inference, limits, observability, permissions, scim,
    secrets, tokens, usage_api,
};

/// Every route, with its layers, outside in: request logging, the audit log, authentication, the
/// request-body limits (so anonymous bodies are never read), the handler. (The listener applies
/// the connection and in-flight limits before the router.)
pub fn router(app: AppState) -> Router {
    let se = "/api/2.0/serving-endpoints";
    let one = "/api/2.0/serving-endpoints/{name}";
    let api = Router::new()
        .route(se, get(endpoints::list).post(endpoints::create))
        .route(&format!("{se}/"), get(endpoints::list).post(endpoints::create))
        .route(one, get(endpoints::get).delete(endpoints::delete))
        .route(&format!("{one}/config"), put(endpoints::update_config))
        .route(&format!("{one}/config:stop"), post(endpoints::stop))
        .route(&format!("{one}/config:start"), post(endpoints::start))
        .route(&format!("{one}/config:rollback"), post(endpoints::rollback))
        .route(&format!("{one}/config-versions"), get(endpoints::config_versions))
        .route(&format!("{one}/ai-gateway"), put(endpoints::put_ai_gateway))
        .route(&format!("{one}/rate-limits"), put(endpoints::put_rate_limits))
        .route(&format!("{one}/tags"), patch(endpoints::patch_tags))
        .route(&format!("{one}/notifications"), patch(endpoints::patch_notifications))
        .route(&format!("{one}/telemetry-config"), patch(endpoints::patch_telemetry))
        .route(&format!("{one}/openapi"), get(endpoints::get_openapi))
        .route(&format!("{one}/metrics"), get(observability::endpoint_metrics))
        .route(&format!("{one}/budget-policy"), put(budgets_api::set_for_endpoint))
        .route(&format!("{one}/metrics-summary"), get(observability::endpoint_summary))
        .route(&format!("{one}/inference-table"), get(inference::table))
        .route(&format!("{one}/served-models/{{entity}}/logs"), get(endpoints::logs))
        .route(&format!("{one}/served-models/{{entity}}/build-logs"), get(endpoints::build_logs))
        .route(
            "/api/2.0/permissions/serving-endpoints/{id}",
            get(permissions::get).put(permissions::set).patch(permissions::update),
        )
        .route("/api/2.0/permissions/serving-endpoints/{id}/permissionLevels", get(permissions::levels))
        .route("/api/2.0/secrets/scopes/create", post(secrets::create_scope))
        .route("/api/2.0/secrets/scopes/delete", post(secrets::delete_scope))
        .route("/api/2.0/secrets/scopes/list", get(secrets::list_scopes))
        .route("/api/2.0/secrets/put", post(secrets::put))
        .route("/api/2.0/secrets/get", get(secrets::get))
        .route("/api/2.0/secrets/list", get(secrets::list))
        .route("/api/2.0/secrets/delete", post(secrets::delete))
        .route("/api/2.0/secrets/acls/put", post(secrets::put_acl))
        .route("/api/2.0/secrets/acls/get", get(secrets::get_acl))
        .route("/api/2.0/secrets/acls/list", get(secrets::list_acls))
        .route("/api/2.0/secrets/acls/delete", post(secrets::delete_acl))
        .route("/api/2.0/token/create", post(tokens::create))
        .route("/api/2.0/token/list", get(tokens::list))
        .route("/api/2.0/token/delete", post(tokens::delete))
        .route("/api/2.0/audit-log", get(audit::list))
        .route("/api/2.0/usage", get(usage_api::report))
        .route("/api/2.0/budget-policies", get(budgets_api::list).post(budgets_api::create))
        .route("/api/2.0/alert-destinations", get(alerts_api::list_destinations).post(alerts_api::create_destination))
        .route("/api/2.0/alert-destinations/{id}", delete(alerts_api::delete_destination))
        .route("/api/2.0/alert-rules", get(alerts_api::list_rules).post(alerts_api::create_rule))
        .route("/api/2.0/alert-rules/{id}", put(alerts_api::update_rule).delete(alerts_api::delete_rule))
        .route("/api/2.0/alerts", get(alerts_api::list_alerts))
        .route(
            "/api/2.0/budget-policies/{id}",
            get(budgets_api::get).put(budgets_api::update).delete(budgets_api::delete),
        )
        .route("/api/2.0/usage/recompute", post(usage_api::recompute))
        .route("/api/2.0/token-management/tokens", get(tokens::manage_list))
        .route("/api/2.0/token-management/tokens/{token_id}", get(tokens::manage_get).delete(tokens::manage_delete))
        .route("/api/2.0/token-management/on-behalf-of/tokens", post(tokens::create_obo))
        .route("/api/2.0/preview/scim/v2/Me", get(scim::me))
        .route("/api/2.0/preview/scim/v2/Users", get(scim::list_users).post(scim::create_user))
        .route(
            "/api/2.0/preview/scim/v2/Users/{id}",
            get(scim::get_user).patch(scim::patch_user).delete(scim::delete_user),
        )
        .route("/api/2.0/preview/scim/v2/Groups", get(scim::list_groups).post(scim::create_group))
        .route(
            "/api/2.0/preview/scim/v2/Groups/{id}",
            get(scim::get_group).patch(scim::patch_group).delete(scim::delete_group),
        )
        .route(
            "/api/2.0/preview/scim/v2/ServicePrincipals",
            get(scim::list_service_principals).post(scim::create_service_principal),
        )
        .route(
            "/api/2.0/preview/scim/v2/ServicePrincipals/{id}",
            get(scim::get_service_principal)
                .patch(scim::patch_service_principal)
                .delete(scim::delete_service_principal),
        )
        .route("/serving-endpoints/{name}/invocations", post(dataplane::invocations))
        .route("/serving-endpoints/chat/completions", post(dataplane::chat))
        .route("/serving-endpoints/completions", post(dataplane::completions))
        .route("/serving-endpoints/embeddings", post(dataplane::embeddings))
        .route("/serving-endpoints/models", get(dataplane::models))
        .route("/v1/chat/completions", post(dataplane::chat))
        .route("/v1/completions", post(dataplane::completions))
        .route("/v1/embeddings", post(dataplane::embeddings))
        .route("/v1/models", get(dataplane::models))
        .route("/metrics", get(observability::server_metrics))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/.well-known/databricks-config", get(well_known))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed);
    api.layer(middleware::from_fn_with_state(app.gate.clone(), limits::read_body))
        .layer(middleware::from_fn_with_state(app.clone(), auth::authenticate))
        .layer(middleware::from_fn_with_state(app.clone(), audit::record))
        .layer(middleware::from_fn(auth::log_requests))
        .with_state(app)
}

async fn readyz(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    match app.store.ping().await {
        Ok(()) => Ok(Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::error!(error = %e, "readiness check failed");
            Err(ApiError::Unavailable("The store is not reachable.".into()))
        }
    }
}

/// The Databricks SDK probes this on every client start. Answering with a workspace id (and no
/// OIDC endpoint) avoids a warning on every client and leaves PAT authentication in charge.
async fn well_known(State(app): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({"oidc_endpoint": "", "workspace_id": app.workspace_id.as_ref()}))
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NoRoute(format!("No API found for '{method} {}'", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("Method {method} is not allowed for '{}'", uri.path()))
}
