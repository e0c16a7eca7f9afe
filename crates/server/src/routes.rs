//! The route table.

use axum::extract::State;
use axum::http::{Method, Uri};
use axum::routing::{delete, get, patch, post, put};
use axum::{Json, Router, middleware};
use serde_json::json;

use crate::error::ApiError;
use crate::http::{audit, auth, limits};
use crate::state::AppState;
use crate::{api, gateway};

/// Every route, with its layers, outside in: request logging, the audit log, authentication, the
/// request-body limits (so anonymous bodies are never read), the handler. (The listener applies
/// the connection and in-flight limits before the router.)
pub fn router(app: AppState, gate: limits::Gate) -> Router {
    let se = "/api/2.0/serving-endpoints";
    let one = "/api/2.0/serving-endpoints/{name}";
    let api = Router::new()
        .route(se, get(api::endpoints::list).post(api::endpoints::create))
        .route(&format!("{se}/"), get(api::endpoints::list).post(api::endpoints::create))
        .route(one, get(api::endpoints::get).delete(api::endpoints::delete).post(api::endpoints::create_pt))
        .route(&format!("{se}/pt/{{name}}/config"), put(api::endpoints::update_pt_config))
        .route(&format!("{one}/config"), put(api::endpoints::update_config))
        .route(&format!("{one}/config:stop"), post(api::endpoints::stop))
        .route(&format!("{one}/config:start"), post(api::endpoints::start))
        .route(&format!("{one}/config:rollback"), post(api::endpoints::rollback))
        .route(&format!("{one}/config-versions"), get(api::endpoints::config_versions))
        .route(&format!("{one}/settings-history"), get(api::endpoints::settings_history))
        .route(&format!("{one}/settings:restore"), post(api::endpoints::restore_setting))
        .route(&format!("{one}/ai-gateway"), put(api::endpoints::put_ai_gateway))
        .route(&format!("{one}/rate-limits"), put(api::endpoints::put_rate_limits))
        .route(
            &format!("{one}/deprecation"),
            put(api::endpoints::put_deprecation).delete(api::endpoints::delete_deprecation),
        )
        .route(&format!("{one}/tags"), patch(api::endpoints::patch_tags))
        .route(&format!("{one}/notifications"), patch(api::endpoints::patch_notifications))
        .route(&format!("{one}/telemetry-config"), patch(api::endpoints::patch_telemetry))
        .route(&format!("{one}/openapi"), get(api::endpoints::get_openapi))
        .route(&format!("{one}/test"), post(api::endpoints::test))
        .route(&format!("{one}/metrics"), get(api::observability::endpoint_metrics))
        .route(&format!("{one}/budget-policy"), put(api::budgets::set_for_endpoint))
        .route(&format!("{one}/metrics-summary"), get(api::observability::endpoint_summary))
        .route(&format!("{one}/inference-table"), get(api::inference::table))
        .route(&format!("{one}/served-models/{{entity}}/logs"), get(api::endpoints::logs))
        .route(&format!("{one}/served-models/{{entity}}/build-logs"), get(api::endpoints::build_logs))
        .route(
            "/api/2.0/permissions/serving-endpoints/{id}",
            get(api::permissions::get).put(api::permissions::set).patch(api::permissions::update),
        )
        .route("/api/2.0/permissions/serving-endpoints/{id}/permissionLevels", get(api::permissions::levels))
        .route("/api/2.0/registered-models", get(api::models::list).post(api::models::create))
        .route("/api/2.0/foundation-models", get(api::models::foundation_models))
        .route("/api/2.0/registered-models/{name}", get(api::models::get).delete(api::models::delete))
        .route(
            "/api/2.0/registered-models/{name}/versions",
            get(api::models::list_versions).post(api::models::create_version),
        )
        .route(
            "/api/2.0/registered-models/{name}/versions/{version}",
            get(api::models::get_version).delete(api::models::delete_version),
        )
        .route(
            "/api/2.0/permissions/registered-models/{name}",
            get(api::models::get_permissions).put(api::models::set_permissions).patch(api::models::update_permissions),
        )
        .route("/api/2.0/permissions/registered-models/{name}/permissionLevels", get(api::models::permission_levels))
        .route("/api/2.0/secrets/scopes/create", post(api::secrets::create_scope))
        .route("/api/2.0/secrets/scopes/delete", post(api::secrets::delete_scope))
        .route("/api/2.0/secrets/scopes/list", get(api::secrets::list_scopes))
        .route("/api/2.0/secrets/put", post(api::secrets::put))
        .route("/api/2.0/secrets/get", get(api::secrets::get))
        .route("/api/2.0/secrets/list", get(api::secrets::list))
        .route("/api/2.0/secrets/delete", post(api::secrets::delete))
        .route("/api/2.0/secrets/acls/put", post(api::secrets::put_acl))
        .route("/api/2.0/secrets/acls/get", get(api::secrets::get_acl))
        .route("/api/2.0/secrets/acls/list", get(api::secrets::list_acls))
        .route("/api/2.0/secrets/acls/delete", post(api::secrets::delete_acl))
        .route("/api/2.0/groups/list", get(api::groups::list))
        .route("/api/2.0/groups/create", post(api::groups::create_group))
        .route("/api/2.0/groups/delete", post(api::groups::delete_group))
        .route("/api/2.0/groups/add-member", post(api::groups::add_member))
        .route("/api/2.0/groups/remove-member", post(api::groups::remove_member))
        .route("/api/2.0/groups/list-members", get(api::groups::list_members))
        .route("/api/2.0/groups/list-parents", get(api::groups::list_parents))
        .route("/api/2.0/token/create", post(api::tokens::create))
        .route("/api/2.0/token/list", get(api::tokens::list))
        .route("/api/2.0/token/delete", post(api::tokens::delete))
        .route("/api/2.0/audit-log", get(api::audit::list))
        .route("/api/2.0/usage", get(api::usage::report))
        .route("/api/2.0/requests", get(api::requests::list))
        .route("/api/2.0/inventory", get(api::inventory::list))
        .route("/api/2.0/endpoint-templates", get(api::endpoints::templates))
        .route("/api/2.0/workspace-policy", get(api::standards::get).put(api::standards::put))
        .route("/api/2.0/workspace-policy/check", get(api::standards::check))
        .route("/api/2.0/requests/{id}", get(api::requests::get))
        .route("/api/2.0/budget-policies", get(api::budgets::list).post(api::budgets::create))
        .route("/api/2.0/alert-destinations", get(api::alerts::list_destinations).post(api::alerts::create_destination))
        .route("/api/2.0/alert-destinations/{id}", delete(api::alerts::delete_destination))
        .route("/api/2.0/alert-rules", get(api::alerts::list_rules).post(api::alerts::create_rule))
        .route("/api/2.0/alert-rules/{id}", put(api::alerts::update_rule).delete(api::alerts::delete_rule))
        .route("/api/2.0/alerts", get(api::alerts::list_alerts))
        .route(
            "/api/2.0/budget-policies/{id}",
            get(api::budgets::get).put(api::budgets::update).delete(api::budgets::delete),
        )
        .route("/api/2.0/usage/recompute", post(api::usage::recompute))
        .route("/api/2.0/usage/break-even", get(api::usage::break_even))
        .route("/api/2.0/token-management/tokens", get(api::tokens::manage_list))
        .route(
            "/api/2.0/token-management/tokens/{token_id}",
            get(api::tokens::manage_get).patch(api::tokens::manage_update).delete(api::tokens::manage_delete),
        )
        .route("/api/2.0/token-management/on-behalf-of/tokens", post(api::tokens::create_obo))
        .route("/api/2.0/preview/scim/v2/Me", get(api::scim::me))
        .route("/api/2.0/preview/scim/v2/Users", get(api::scim::list_users).post(api::scim::create_user))
        .route(
            "/api/2.0/preview/scim/v2/Users/{id}",
            get(api::scim::get_user).patch(api::scim::patch_user).delete(api::scim::delete_user),
        )
        .route("/api/2.0/preview/scim/v2/Groups", get(api::scim::list_groups).post(api::scim::create_group))
        .route(
            "/api/2.0/preview/scim/v2/Groups/{id}",
            get(api::scim::get_group).patch(api::scim::patch_group).delete(api::scim::delete_group),
        )
        .route(
            "/api/2.0/preview/scim/v2/ServicePrincipals",
            get(api::scim::list_service_principals).post(api::scim::create_service_principal),
        )
        .route(
            "/api/2.0/preview/scim/v2/ServicePrincipals/{id}",
            get(api::scim::get_service_principal)
                .patch(api::scim::patch_service_principal)
                .delete(api::scim::delete_service_principal),
        )
        .route("/serving-endpoints/{name}/invocations", post(gateway::handlers::invocations))
        .route("/serving-endpoints/chat/completions", post(gateway::handlers::chat))
        .route("/serving-endpoints/completions", post(gateway::handlers::completions))
        .route("/serving-endpoints/embeddings", post(gateway::handlers::embeddings))
        .route("/serving-endpoints/images/generations", post(gateway::handlers::images))
        .route("/serving-endpoints/models", get(gateway::handlers::models))
        .route("/v1/chat/completions", post(gateway::handlers::chat))
        .route("/v1/responses", post(gateway::translate::handle::<gateway::responses::Responses>))
        .route("/serving-endpoints/responses", post(gateway::translate::handle::<gateway::responses::Responses>))
        .route("/v1/messages", post(gateway::translate::handle::<gateway::anthropic::Messages>))
        .route("/v1/messages/count_tokens", post(gateway::anthropic::count_tokens))
        .route("/anthropic/v1/messages", post(gateway::translate::handle::<gateway::anthropic::Messages>))
        .route("/anthropic/v1/messages/count_tokens", post(gateway::anthropic::count_tokens))
        .route("/v1/completions", post(gateway::handlers::completions))
        .route("/v1/embeddings", post(gateway::handlers::embeddings))
        .route("/v1/images/generations", post(gateway::handlers::images))
        .route("/v1/models", get(gateway::handlers::models))
        .route("/metrics", get(api::observability::server_metrics))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/.well-known/databricks-config", get(well_known))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed);
    let audit_log = audit::AuditLog::new(app.store.clone(), app.metrics.clone());
    let api = api
        .layer(middleware::from_fn_with_state(gate, limits::read_body))
        .layer(middleware::from_fn_with_state(app.clone(), auth::authenticate));
    // The console authenticates with its session cookie, not a bearer token; both are audited.
    crate::console::router()
        .merge(api)
        .layer(middleware::from_fn_with_state(audit_log, audit::record))
        .layer(middleware::from_fn(auth::log_requests))
        .with_state(app)
}

/// Ready while the store answers. Redis is reported, not required: without it the replica serves
/// with per-replica rate limits.
async fn readyz(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let redis = match app.counters.shared_store() {
        None => "not configured",
        Some(s) if s.up() => "up",
        Some(_) => "down: rate limits count per replica",
    };
    let age = app.cluster.snapshot_age_secs();
    let role = match (app.cluster.is_shared(), app.cluster.is_leader()) {
        (false, _) => "single",
        (true, true) => "leader",
        (true, false) => "follower",
    };
    let ready = |database: String| {
        Json(json!({
            "status": "ready",
            "database": database,
            "redis": redis,
            "snapshot_age_seconds": (age * 10.0).round() / 10.0,
            "replica": {"id": app.cluster.replica, "role": role},
        }))
    };
    // A load balancer's probe must not hang on a database that does not answer.
    let ping = tokio::time::timeout(std::time::Duration::from_secs(1), app.store.ping()).await;
    let ping = ping.unwrap_or_else(|_| Err(modelgate_store::StoreError::Invalid("no answer within 1 s".into())));
    match ping {
        Ok(()) => Ok(ready("up".into())),
        // Replicas of a shared database keep serving from their snapshot while it is away; the
        // snapshot's age tells how stale their configuration may be.
        Err(e) if app.cluster.is_shared() => {
            tracing::warn!(error = %e, "readiness: the database does not answer");
            Ok(ready(format!("down: serving from a snapshot {age:.0} s old")))
        }
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
