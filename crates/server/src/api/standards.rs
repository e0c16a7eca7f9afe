//! Workspace standards (our extension): the policy every endpoint follows whatever client creates
//! it. `GET|PUT /api/2.0/workspace-policy`, `GET /api/2.0/workspace-policy/check`. The rules
//! themselves are in `modelgate_core::standards`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::{Extension, Json};
use modelgate_core::standards::{self, Facts};
use modelgate_wire::{EndpointCoreConfigInput, PolicyViolation, WorkspacePolicy};
use serde_json::{Value, json};

use crate::access::require_admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::snapshot::Principal;
use crate::state::AppState;

const META_KEY: &str = "workspace_policy";

/// The workspace policy, if one is set.
pub async fn load(app: &AppState) -> ApiResult<Option<WorkspacePolicy>> {
    match app.store.get_meta(META_KEY).await? {
        None => Ok(None),
        Some(j) => serde_json::from_str(&j)
            .map(Some)
            .map_err(|e| ApiError::Internal(format!("the stored workspace policy does not parse: {e}"))),
    }
}

/// Provider and model of each external served entity of a config.
pub fn entities_of(config: &EndpointCoreConfigInput) -> Vec<(String, String)> {
    config
        .served_entities
        .iter()
        .flatten()
        .filter_map(|e| e.external_model.as_ref().map(|m| (m.provider.clone(), m.name.clone())))
        .collect()
}

/// Applies the policy to an endpoint about to be created or changed: in `enforce` mode a broken
/// rule is a 400 naming it; in `warn` mode the broken rules come back, to be sent as warnings.
pub async fn enforce(app: &AppState, facts: &Facts<'_>) -> ApiResult<Vec<String>> {
    let Some(policy) = load(app).await? else { return Ok(Vec::new()) };
    let broken = standards::violations(&policy, facts);
    if broken.is_empty() {
        return Ok(Vec::new());
    }
    let lines: Vec<String> =
        broken.into_iter().map(|(rule, message)| format!("workspace policy {rule}: {message}")).collect();
    if policy.mode.as_deref() == Some("warn") {
        return Ok(lines);
    }
    Err(ApiError::InvalidParameter(format!("{} (see GET /api/2.0/workspace-policy)", lines.join("; "))))
}

/// The policy's default rate limits for an environment, for an endpoint created without any.
pub async fn default_rate_limits(
    app: &AppState,
    tags: &BTreeMap<String, String>,
) -> ApiResult<Option<Vec<modelgate_wire::AiGatewayRateLimit>>> {
    let Some(policy) = load(app).await? else { return Ok(None) };
    let Some(env) = tags.get(standards::environment_tag(&policy)) else { return Ok(None) };
    Ok(policy.environments.as_ref().and_then(|e| e.get(env)).and_then(|r| r.default_rate_limits.clone()))
}

/// Adds the warnings of a `warn`-mode policy to a response.
pub fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 modelgate \"{}\"", w.replace('"', "'"))) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// `GET /api/2.0/workspace-policy`: the policy (`{}` when none is set).
pub async fn get(State(app): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(load(&app).await?.map_or_else(|| json!({}), |p| serde_json::to_value(p).unwrap_or_default())))
}

/// `PUT /api/2.0/workspace-policy` (admins): replaces the policy (`{}` removes it).
pub async fn put(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    ApiJson(policy): ApiJson<WorkspacePolicy>,
) -> ApiResult<Json<WorkspacePolicy>> {
    require_admin(&caller, "set the workspace policy")?;
    standards::validate(&policy).map_err(|(field, message)| ApiError::invalid(&field, message))?;
    for (env, rules) in policy.environments.iter().flatten() {
        if let Some(limits) = &rules.default_rate_limits {
            let g = modelgate_wire::AiGatewayConfig { rate_limits: Some(limits.clone()), ..Default::default() };
            let path = format!("environments.{env}.default_rate_limits");
            modelgate_core::validate::ai_gateway(&g, "").map_err(|e| {
                ApiError::invalid(&format!("{path}{}", e.path.trim_start_matches("rate_limits")), e.message)
            })?;
        }
    }
    let json = serde_json::to_string(&policy).map_err(|e| ApiError::Internal(e.to_string()))?;
    app.store.put_meta(META_KEY, &json).await?;
    Ok(Json(policy))
}

/// `GET /api/2.0/workspace-policy/check`: every existing endpoint (that the caller may view) that
/// breaks a rule, and how; with `mode: off` too, so a policy can be tried before it is enforced.
pub async fn check(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
) -> ApiResult<Json<Value>> {
    let mut policy = load(&app).await?.unwrap_or_default();
    policy.mode = None;
    Ok(Json(json!({"violations": violations(&app, &caller, &policy)})))
}

/// The violations of every endpoint the caller may view.
pub fn violations(app: &AppState, caller: &Principal, policy: &WorkspacePolicy) -> Vec<PolicyViolation> {
    let snapshot = app.snapshot.load_full();
    let mut names: Vec<&String> = snapshot.endpoints.keys().collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let Some(ep) = snapshot.endpoints.get(name).filter(|ep| crate::access::level_of(caller, ep).is_some()) else {
            continue;
        };
        let entities: Vec<(String, String)> = ep
            .entities
            .iter()
            .filter_map(|e| e.external_model.as_ref().map(|m| (m.provider.clone(), m.name.clone())))
            .collect();
        let facts = Facts { name: &ep.name, tags: &ep.tag_map, entities: &entities };
        for (rule, message) in standards::violations(policy, &facts) {
            out.push(PolicyViolation { endpoint: ep.name.clone(), rule, message });
        }
    }
    out
}
