//! Serving-endpoint control plane (`/api/2.0/serving-endpoints/...`).

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use modelgate_core::permission::Level;
use modelgate_core::validate::{self, NormalizedConfig};
use modelgate_core::{now_ms, token};
use modelgate_store::{ConfigRecord, EndpointMutation, EndpointRecord, SettingChange, StoreError, config_status};
use modelgate_wire::*;
use serde_json::json;

use crate::access;
use crate::api::openapi;
use crate::api::render;
use crate::configs;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::snapshot::Principal;
use crate::state::AppState;

type Caller = Extension<Arc<Principal>>;

use super::to_json;

/// Guardrails that need a judge cannot be switched on when the server has none. (A new endpoint's
/// guardrails are checked by its deployment instead, which fails with a build-log line.)
fn require_judge(app: &AppState, g: &AiGatewayConfig) -> ApiResult<()> {
    let fields = g.guardrails.as_ref().map(crate::policy::guardrails::judge_fields).unwrap_or_default();
    let Some(field) = fields.first() else { return Ok(()) };
    match &app.judge_endpoint {
        None => Err(ApiError::invalid(field, crate::policy::guardrails::no_judge_message(&fields))),
        Some(judge) if !app.snapshot.load().endpoints.contains_key(judge) => Err(ApiError::invalid(
            field,
            format!(
                "needs the guardrail judge endpoint '{judge}' (--guardrail-judge-endpoint), which does not exist; \
                 create it first"
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// Validates an `ai_gateway` block at `path` and checks what it names: the guardrail judge
/// endpoint, and the users, groups and service principals of its rate limits, so that a typo is
/// refused now rather than found when the limit does not apply.
async fn check_ai_gateway(app: &AppState, g: &AiGatewayConfig, path: &str) -> ApiResult<()> {
    use modelgate_store::principal_kind::{GROUP, SERVICE_PRINCIPAL, USER};
    validate::ai_gateway(g, path)?;
    require_judge(app, g)?;
    let prefix = if path.is_empty() { String::new() } else { format!("{path}.") };
    for (i, limit) in g.rate_limits.iter().flatten().enumerate() {
        let Some(name) = limit.principal.as_deref() else { continue };
        let (kinds, what, command): (&[&str], &str, &str) = match limit.key.as_deref() {
            Some("user_group") => (&[GROUP], "group", "modelgate groups create"),
            Some("service_principal") => {
                (&[SERVICE_PRINCIPAL], "service principal", "modelgate service-principals create")
            }
            _ => (&[USER, SERVICE_PRINCIPAL], "user or service principal", "modelgate users create"),
        };
        let mut found = false;
        for kind in kinds {
            found |= app.store.find_principal(kind, name).await?.is_some();
        }
        if !found {
            return Err(ApiError::invalid(
                &format!("{prefix}rate_limits[{i}].principal"),
                format!("no {what} named '{name}' exists; check the spelling, or create it first ({command})"),
            ));
        }
    }
    Ok(())
}

/// Checks the custom base URLs of `config` (field paths under `path`) against the outbound policy:
/// a URL is accepted if the server allows it for everyone, if it is already in the endpoint's
/// config versions (`approved`), or if the caller may use custom base URLs (admins and members of
/// the `custom-base-urls` group).
fn check_outbound(
    app: &AppState,
    caller: &Principal,
    config: &EndpointCoreConfigInput,
    path: &str,
    approved: &[String],
) -> ApiResult<()> {
    let trusted = caller.is_admin || caller.groups.contains(crate::bootstrap::CUSTOM_BASE_URLS_GROUP);
    for (i, e) in config.served_entities.iter().flatten().enumerate() {
        let Some(m) = &e.external_model else { continue };
        let prefix = if path.is_empty() { String::new() } else { format!("{path}.") };
        for (field, raw) in validate::base_urls(m, &format!("{prefix}served_entities[{i}].external_model")) {
            let url = modelgate_core::outbound::parse_url(&raw).map_err(|m| ApiError::invalid(&field, m))?;
            if trusted || approved.contains(&raw) || app.outbound.allows(&url) {
                continue;
            }
            let origin = url.origin().ascii_serialization();
            return Err(ApiError::PermissionDenied(format!(
                "{field}: {origin} is not on the server's outbound allow-list, and only admins and members of \
                 the '{}' group may use other base URLs. Ask an admin to add you to that group, or to allow \
                 the URL with `modelgate serve --outbound-allow`.",
                crate::bootstrap::CUSTOM_BASE_URLS_GROUP
            )));
        }
    }
    Ok(())
}

/// The custom base URLs of every config version the endpoint has had: each was accepted when it
/// was written, so updates and rollbacks may keep using them.
async fn approved_urls(app: &AppState, e: &EndpointRecord) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    for c in app.store.list_configs(&e.id).await? {
        let config = configs::parse_stored(&c)?;
        for m in config.served_entities.iter().flatten().filter_map(|s| s.external_model.as_ref()) {
            out.extend(validate::base_urls(m, "").into_iter().map(|(_, u)| u));
        }
    }
    Ok(out)
}

async fn load(app: &AppState, name: &str) -> ApiResult<EndpointRecord> {
    app.store
        .get_endpoint(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Endpoint with name '{name}' does not exist.")))
}

async fn config_at(app: &AppState, e: &EndpointRecord, version: Option<i64>) -> ApiResult<Option<ConfigRecord>> {
    match version {
        Some(v) => Ok(app.store.get_config(&e.id, v).await?),
        None => Ok(None),
    }
}

async fn detailed(app: &AppState, caller: &Principal, e: &EndpointRecord) -> ApiResult<ServingEndpointDetailed> {
    let active = config_at(app, e, e.active_version).await?;
    let pending = config_at(app, e, e.pending_version).await?;
    let live = app.snapshot.load().endpoints.get(&e.name).cloned();
    let level = live.as_ref().and_then(|ep| access::level_of(caller, ep));
    let mut out = render::detailed(e, active.as_ref(), pending.as_ref(), level)?;
    // A policy that does not parse keeps the endpoint from serving; say so where people look.
    if let Some(why) = live.as_ref().and_then(|ep| ep.unservable.as_ref()) {
        out.state.ready = Ready::NotReady;
        for entity in out.config.iter_mut().flat_map(|c| c.served_entities.iter_mut().flatten()) {
            if let Some(state) = entity.state.as_mut() {
                state.deployment_state_message = Some(format!("The endpoint refuses queries: {why}."));
            }
        }
    }
    // Breaker state shows in the serving entities' state messages.
    let now = std::time::Instant::now();
    let mut hosted_down = 0;
    let alone = out.config.as_ref().and_then(|c| c.served_entities.as_ref()).is_some_and(|v| v.len() == 1);
    for entity in out.config.iter_mut().flat_map(|c| c.served_entities.iter_mut().flatten()) {
        let name = entity.spec.name.clone().unwrap_or_default();
        let note = match app.breakers.status(&e.id, &name, now) {
            crate::policy::breaker::Status::Open(d) => Some(format!(
                "Circuit breaker open for another {}s after repeated upstream failures; {}",
                d.as_secs().max(1),
                if alone {
                    "it is the only entity, so queries still reach it."
                } else {
                    "traffic goes to other entities."
                }
            )),
            crate::policy::breaker::Status::HalfOpen => {
                Some("Circuit breaker half-open: the next request probes the upstream.".to_string())
            }
            crate::policy::breaker::Status::Probing => {
                Some("Circuit breaker half-open: a probe request is in flight.".to_string())
            }
            crate::policy::breaker::Status::Closed => None,
        };
        // A hosted entity says how many replicas serve it (or that it scaled to zero); one whose
        // replicas all failed to start again is not ready.
        let status =
            live.as_ref().and_then(|ep| ep.entities.iter().find(|x| x.name == name)).and_then(|x| x.hosted.as_ref());
        let hosted_note = status.map(|set| {
            let s = set.status();
            if s.ready == 0 && s.last_failure.is_some() {
                hosted_down += 1;
            }
            match set.throughput.as_ref().map(|t| t.status()) {
                Some(t) => format!(
                    "{} Provisioned throughput: {} band(s) held, {} tokens/s ({} waiting for their turn).",
                    replicas_note(&s),
                    t.bands,
                    t.tokens_per_second,
                    t.waiting
                ),
                None => replicas_note(&s),
            }
        });
        if let (Some(note), Some(state)) = (note.or(hosted_note), entity.state.as_mut()) {
            state.deployment_state_message = Some(note);
        }
    }
    let entities = out.config.as_ref().and_then(|c| c.served_entities.as_ref()).map_or(0, Vec::len);
    if hosted_down > 0 && hosted_down == entities {
        out.state.ready = Ready::NotReady;
    }
    health_notes(app, e, &mut out);
    Ok(out)
}

/// A hosted entity's replicas in words.
fn replicas_note(s: &crate::hosting::replicas::Status) -> String {
    let plural = |n: usize, what: &str| match (n, what) {
        (1, _) => format!("1 {what}"),
        (_, "query") => format!("{n} queries"),
        _ => format!("{n} {what}s"),
    };
    match (s.ready, s.starting, &s.last_failure) {
        (0, 0, Some(why)) => format!("No replica is serving: the last one failed to start ({why})."),
        (0, 0, None) => "Scaled to zero: the next query starts a replica.".to_string(),
        (0, n, _) => format!("Starting {}.", plural(n, "replica")),
        (r, n, _) => format!(
            "Served by {}{} ({} in flight, {} waiting).",
            plural(r, "replica"),
            if n > 0 { format!(", {} starting", plural(n, "more")) } else { String::new() },
            plural(s.in_flight, "query"),
            s.waiting
        ),
    }
}

/// The latest failed health check of each entity shows in its state message; an endpoint none of
/// whose entities passed its latest check is not READY, whatever its config says.
fn health_notes(app: &AppState, e: &EndpointRecord, out: &mut ServingEndpointDetailed) {
    let now = modelgate_core::now_ms();
    let mut checked = 0;
    let mut failing = 0;
    for entity in out.config.iter_mut().flat_map(|c| c.served_entities.iter_mut().flatten()) {
        let name = entity.spec.name.clone().unwrap_or_default();
        let Some(h) = app.health.get(&e.id, &name) else { continue };
        checked += 1;
        if h.ok {
            continue;
        }
        failing += 1;
        if let Some(state) = entity.state.as_mut() {
            let ago = ((now - h.checked_at).max(0) / 1000).max(1);
            let why = h.message.as_deref().unwrap_or("no answer");
            state.deployment_state_message = Some(format!("Health check failed {ago}s ago: {why}"));
        }
    }
    let entities = out.config.as_ref().and_then(|c| c.served_entities.as_ref()).map_or(0, Vec::len);
    if entities > 0 && checked == entities && failing == entities {
        out.state.ready = Ready::NotReady;
    }
}

/// `POST /api/2.0/serving-endpoints/{name}/test` (our extension; `CAN_QUERY`): sends a minimal
/// real query to every served entity, at once, and reports what each showed.
pub async fn test(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<EndpointHealth>> {
    let ep = access::require(&app, &caller, &name, Level::CanQuery)?;
    if ep.entities.is_empty() {
        return Err(ApiError::BadRequest(format!("Endpoint '{name}' has no served entity to test.")));
    }
    let probes = ep.entities.iter().map(|entity| crate::gateway::probe::probe(&app, &ep, entity));
    let served_entities = futures::future::join_all(probes).await;
    for h in &served_entities {
        app.health.record(&ep.id, h.clone());
    }
    Ok(Json(EndpointHealth { name, ok: served_entities.iter().all(|h| h.ok), served_entities }))
}

/// Checks the caller's level on `name`, then loads the endpoint from the store.
async fn load_as(app: &AppState, caller: &Principal, name: &str, needed: Level) -> ApiResult<EndpointRecord> {
    access::require(app, caller, name, needed)?;
    load(app, name).await
}

/// `POST /api/2.0/serving-endpoints`
pub async fn create(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiJson(req): ApiJson<CreateServingEndpoint>,
) -> ApiResult<axum::response::Response> {
    let mut req = with_template(req)?;
    validate::endpoint_name(&req.name, "name")?;
    let config = req.config.take().ok_or_else(|| ApiError::invalid("config", "is required"))?;
    let NormalizedConfig { mut config, task, .. } = validate::normalize_config(config, "config")?;
    check_outbound(&app, &caller, &config, "config", &[])?;
    crate::api::models::check_served(&app, &caller, &config, "config").await?;
    if let Some(d) = &req.description
        && let Some(p) = modelgate_core::names::text_problem(d, modelgate_core::names::MAX_TEXT_LEN, true)
    {
        return Err(ApiError::invalid("description", p));
    }
    if let Some(g) = &req.ai_gateway {
        check_ai_gateway(&app, g, "ai_gateway").await?;
    }
    crate::api::budgets::check_reference(&app, req.budget_policy_id.as_deref())?;
    if let Some(r) = &req.rate_limits {
        validate::legacy_rate_limits(r, "rate_limits")?;
    }
    if let Some(t) = &req.tags {
        validate::tags(t, "tags")?;
    }
    let policy = crate::api::standards::load(&app).await?;
    let min_notice =
        policy.as_ref().and_then(|p| p.min_deprecation_notice_days).unwrap_or(app.min_deprecation_notice_days);
    if let Some(d) = &req.deprecation {
        validate::deprecation(d, &req.name, min_notice, "deprecation")?;
    }
    let tag_map: std::collections::BTreeMap<String, String> =
        req.tags.iter().flatten().map(|t| (t.key.clone(), t.value.clone().unwrap_or_default())).collect();
    let entities = crate::api::standards::entities_of(&config);
    let facts = modelgate_core::standards::Facts { name: &req.name, tags: &tag_map, entities: &entities };
    let warnings = crate::api::standards::enforce(&app, &facts).await?;
    if req.ai_gateway.as_ref().and_then(|g| g.rate_limits.as_ref()).is_none()
        && let Some(defaults) = crate::api::standards::default_rate_limits(&app, &tag_map).await?
    {
        req.ai_gateway.get_or_insert_with(Default::default).rate_limits = Some(defaults);
    }
    let id = token::random_hex(16);
    configs::seal_plaintext(&mut config, &app.cipher, &id)?;
    let now = now_ms();
    let endpoint = EndpointRecord {
        id: id.clone(),
        name: req.name.clone(),
        creator: caller.user_name.clone(),
        created_at: now,
        updated_at: now,
        task,
        description: req.description,
        budget_policy_id: req.budget_policy_id,
        route_optimized: req.route_optimized,
        tags: to_json(&req.tags.unwrap_or_default()),
        ai_gateway: req.ai_gateway.as_ref().map(to_json),
        rate_limits: req.rate_limits.as_ref().map(to_json),
        email_notifications: req.email_notifications.as_ref().map(to_json),
        telemetry_config: req.telemetry_config.as_ref().map(to_json),
        deprecation: req.deprecation.as_ref().map(to_json),
        config_update: ConfigUpdate::InProgress.as_str().into(),
        stopped: false,
        latest_version: 1,
        active_version: None,
        pending_version: Some(1),
        pending_since: Some(now),
    };
    let record = ConfigRecord {
        endpoint_id: id.clone(),
        version: 1,
        config: to_json(&config),
        creator: caller.user_name.clone(),
        created_at: now,
        status: config_status::PENDING.into(),
        build_log: String::new(),
    };
    app.store.create_endpoint(&endpoint, &record, &caller.id).await?;
    app.refresh().await?;
    crate::api::budgets::after_create(&app, endpoint.budget_policy_id.as_deref()).await?;
    // Rendered from what was just written, so the reply shows IN_PROGRESS even if the deployer
    // finishes before the response is serialised.
    let body = render::detailed(&endpoint, None, Some(&record), Some(Level::CanManage))?;
    app.deployer.enqueue(&id, 1);
    Ok(crate::api::standards::with_warnings(Json(body).into_response(), &warnings))
}

/// A create body on top of its template, if it names one (the body's fields win).
fn with_template(mut req: CreateServingEndpoint) -> ApiResult<CreateServingEndpoint> {
    let Some(name) = req.template.take() else { return Ok(req) };
    let t = modelgate_core::templates::find(&name).ok_or_else(|| {
        let known: Vec<&str> = modelgate_core::templates::TEMPLATES.iter().map(|t| t.name).collect();
        ApiError::invalid("template", format!("'{name}' is not a template (templates: {})", known.join(", ")))
    })?;
    let tasks =
        req.config.iter().flat_map(|c| c.served_entities.iter().flatten()).filter_map(|e| e.external_model.as_ref());
    for (i, m) in tasks.enumerate() {
        if m.task != t.task {
            return Err(ApiError::invalid(
                &format!("config.served_entities[{i}].external_model.task"),
                format!("is {}, but template '{name}' is for {}", m.task, t.task),
            ));
        }
    }
    let body = serde_json::to_value(&req).map_err(|e| ApiError::Internal(e.to_string()))?;
    serde_json::from_value(modelgate_core::templates::apply(t, &body))
        .map_err(|e| ApiError::Internal(format!("template '{name}' does not apply: {e}")))
}

/// `GET /api/2.0/endpoint-templates` (our extension): the built-in templates.
pub async fn templates() -> Json<serde_json::Value> {
    let list: Vec<serde_json::Value> = modelgate_core::templates::TEMPLATES
        .iter()
        .map(|t| json!({"name": t.name, "task": t.task, "description": t.description, "body": (t.body)()}))
        .collect();
    Json(json!({"templates": list}))
}

/// `GET /api/2.0/serving-endpoints`
pub async fn list(State(app): State<AppState>, Extension(caller): Caller) -> ApiResult<Json<ListEndpointsResponse>> {
    let _settled = app.settled().await;
    let snapshot = app.snapshot.load_full();
    let mut endpoints = Vec::new();
    for e in app.store.list_endpoints().await? {
        let Some(live) = snapshot.endpoints.get(&e.name).filter(|ep| access::level_of(&caller, ep).is_some()) else {
            continue;
        };
        let config = config_at(&app, &e, e.active_version.or(e.pending_version)).await?;
        let mut summary = render::summary(&e, config.as_ref());
        if live.unservable.is_some() {
            summary.state.ready = Ready::NotReady;
        }
        endpoints.push(summary);
    }
    Ok(Json(ListEndpointsResponse { endpoints }))
}

/// `GET /api/2.0/serving-endpoints/{name}`
pub async fn get(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ServingEndpointDetailed>> {
    let _settled = app.settled().await;
    let e = load_as(&app, &caller, &name, Level::CanView).await?;
    Ok(Json(detailed(&app, &caller, &e).await?))
}

/// `DELETE /api/2.0/serving-endpoints/{name}`
pub async fn delete(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let e = load_as(&app, &caller, &name, Level::CanManage).await?;
    app.store.delete_endpoint(&name).await?;
    app.events.forget(&e.id);
    app.refresh().await?;
    Ok(Json(json!({})))
}

/// Starts a new pending config version with `config` (already normalised and sealed).
async fn begin_update(
    app: &AppState,
    name: &str,
    creator: &str,
    config: EndpointCoreConfigInput,
) -> ApiResult<EndpointRecord> {
    let config_json = to_json(&config);
    let creator = creator.to_string();
    let mutation: EndpointMutation = Box::new(move |e| {
        if e.config_update == ConfigUpdate::InProgress.as_str() {
            return Err(StoreError::Conflict(format!(
                "Endpoint '{}' has a config update in progress (version {}); wait for it to finish.",
                e.name,
                e.pending_version.unwrap_or(e.latest_version)
            )));
        }
        let now = now_ms();
        e.latest_version += 1;
        e.pending_version = Some(e.latest_version);
        e.pending_since = Some(now);
        e.config_update = ConfigUpdate::InProgress.as_str().into();
        e.updated_at = now;
        Ok(Some(ConfigRecord {
            endpoint_id: e.id.clone(),
            version: e.latest_version,
            config: config_json,
            creator,
            created_at: now,
            status: config_status::PENDING.into(),
            build_log: String::new(),
        }))
    });
    let e = app.store.update_endpoint(name, mutation).await?;
    app.refresh().await?;
    if let Some(v) = e.pending_version {
        app.deployer.enqueue(&e.id, v);
    }
    Ok(e)
}

async fn kind_of_latest(app: &AppState, e: &EndpointRecord) -> ApiResult<Option<validate::ServingKind>> {
    let latest = config_at(app, e, e.active_version.or(Some(e.latest_version))).await?;
    Ok(latest.map(|c| configs::parse_stored(&c)).transpose()?.map(|c| validate::kind_of(&c)))
}

/// `POST /api/2.0/serving-endpoints/pt` (`create_provisioned_throughput_endpoint`), routed through
/// `{name}` = `pt`: an endpoint whose every served entity is a foundation model with
/// `provisioned_model_units`; otherwise the same as create.
pub async fn create_pt(
    State(app): State<AppState>,
    caller: Extension<Arc<Principal>>,
    ApiPath(name): ApiPath<String>,
    request: axum::extract::Request,
) -> ApiResult<axum::response::Response> {
    if name != "pt" {
        return Err(ApiError::NotFound(format!("No API found for 'POST /api/2.0/serving-endpoints/{name}'.")));
    }
    let ApiJson(req) =
        <ApiJson<CreateServingEndpoint> as axum::extract::FromRequest<AppState>>::from_request(request, &app).await?;
    require_units(req.config.as_ref(), "config")?;
    create(State(app), caller, ApiJson(req)).await
}

/// Body of `PUT /api/2.0/serving-endpoints/pt/{name}/config`.
#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PtConfigBody {
    config: Option<EndpointCoreConfigInput>,
}

/// `PUT /api/2.0/serving-endpoints/pt/{name}/config` (`update_provisioned_throughput_endpoint_config`):
/// a new config version whose every served entity has `provisioned_model_units`.
pub async fn update_pt_config(
    State(app): State<AppState>,
    caller: Extension<Arc<Principal>>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<PtConfigBody>,
) -> ApiResult<axum::response::Response> {
    let config = body.config.ok_or_else(|| ApiError::invalid("config", "is required"))?;
    require_units(Some(&config), "config")?;
    update_config(State(app), caller, ApiPath(name), ApiJson(config)).await
}

/// Every served entity of a provisioned-throughput config names its units.
fn require_units(config: Option<&EndpointCoreConfigInput>, path: &str) -> ApiResult<()> {
    let entities = config.and_then(|c| c.served_entities.as_ref());
    let Some(entities) = entities.filter(|e| !e.is_empty()) else {
        return Err(ApiError::invalid(&format!("{path}.served_entities"), "is required"));
    };
    for (i, e) in entities.iter().enumerate() {
        if e.provisioned_model_units.is_none() {
            return Err(ApiError::invalid(
                &format!("{path}.served_entities[{i}].provisioned_model_units"),
                "is required for a provisioned-throughput endpoint",
            ));
        }
    }
    Ok(())
}

/// `PUT /api/2.0/serving-endpoints/{name}/config`
pub async fn update_config(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<EndpointCoreConfigInput>,
) -> ApiResult<axum::response::Response> {
    let current = load_as(&app, &caller, &name, Level::CanManage).await?;
    let latest = match app.store.get_config(&current.id, current.latest_version).await? {
        Some(l) => {
            let mut stored = configs::parse_stored(&l)?;
            configs::unseal_plaintext(&mut stored, &app.cipher, &current.id)?;
            Some((l.status, stored))
        }
        None => None,
    };
    let mut body = body;
    if let Some((_, stored)) = &latest {
        configs::keep_unchanged_credentials(&mut body, stored);
    }
    let NormalizedConfig { mut config, kind, .. } = validate::normalize_config(body, "")?;
    check_outbound(&app, &caller, &config, "", &approved_urls(&app, &current).await?)?;
    if let Some(old) = kind_of_latest(&app, &current).await?
        && old != kind
    {
        return Err(ApiError::invalid(
            "served_entities",
            format!(
                "an endpoint cannot switch between external models and other served entities \
                 (this endpoint serves {})",
                if old == validate::ServingKind::ExternalModel {
                    "external models"
                } else {
                    "registered or foundation models"
                }
            ),
        ));
    }
    crate::api::models::check_served(&app, &caller, &config, "").await?;
    // The same config again is not a change: no new version (so `apply` twice is safe). A
    // failed latest version is retried, though.
    if let Some((status, stored)) = latest
        && status != config_status::FAILED
        && validate::normalize_config(stored, "").is_ok_and(|n| to_json(&n.config) == to_json(&config))
    {
        return Ok(Json(detailed(&app, &caller, &current).await?).into_response());
    }
    let tag_map: std::collections::BTreeMap<String, String> =
        render::tags(&current).into_iter().map(|t| (t.key, t.value.unwrap_or_default())).collect();
    let entities = crate::api::standards::entities_of(&config);
    let facts = modelgate_core::standards::Facts { name: &name, tags: &tag_map, entities: &entities };
    let warnings = crate::api::standards::enforce(&app, &facts).await?;
    configs::seal_plaintext(&mut config, &app.cipher, &current.id)?;
    let e = begin_update(&app, &name, &caller.user_name, config).await?;
    let resp = Json(detailed(&app, &caller, &e).await?).into_response();
    Ok(crate::api::standards::with_warnings(resp, &warnings))
}

/// `POST /api/2.0/serving-endpoints/{name}/config:rollback` (our extension): deploys the content
/// of an earlier version as a new version.
pub async fn rollback(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<RollbackRequest>,
) -> ApiResult<Json<ServingEndpointDetailed>> {
    let current = load_as(&app, &caller, &name, Level::CanManage).await?;
    let target = app.store.get_config(&current.id, body.config_version).await?.ok_or_else(|| {
        ApiError::NotFound(format!("Endpoint '{name}' has no config version {}.", body.config_version))
    })?;
    let config = configs::parse_stored(&target)?;
    check_outbound(&app, &caller, &config, "", &approved_urls(&app, &current).await?)?;
    crate::api::models::check_served(&app, &caller, &config, "").await?;
    let e = begin_update(&app, &name, &caller.user_name, config).await?;
    Ok(Json(detailed(&app, &caller, &e).await?))
}

/// `GET /api/2.0/serving-endpoints/{name}/config-versions` (our extension).
pub async fn config_versions(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ConfigVersionsResponse>> {
    let e = load_as(&app, &caller, &name, Level::CanView).await?;
    let mut config_versions = Vec::new();
    for c in app.store.list_configs(&e.id).await? {
        config_versions.push(ConfigVersionInfo {
            config_version: c.version,
            status: c.status.clone(),
            creator: c.creator.clone(),
            creation_timestamp: c.created_at,
            config: configs::public(configs::parse_stored(&c)?),
            build_logs: c.build_log,
        });
    }
    Ok(Json(ConfigVersionsResponse { config_versions }))
}

/// Sets the endpoint's `budget_policy_id` (`CAN_MANAGE`).
pub async fn set_budget_policy(app: &AppState, caller: &Principal, name: &str, id: Option<String>) -> ApiResult<()> {
    mutate(app, caller, name, move |e| {
        e.budget_policy_id = id;
        Ok(())
    })
    .await?;
    Ok(())
}

/// The endpoint settings kept outside config versions whose changes are recorded, with their
/// stored JSON.
fn tracked(e: &EndpointRecord) -> [(&'static str, Option<String>); 7] {
    [
        ("ai_gateway", e.ai_gateway.clone()),
        ("rate_limits", e.rate_limits.clone()),
        ("tags", Some(e.tags.clone()).filter(|t| t != "[]")),
        ("budget_policy_id", e.budget_policy_id.as_ref().map(to_json)),
        ("email_notifications", e.email_notifications.clone()),
        ("telemetry_config", e.telemetry_config.clone()),
        ("deprecation", e.deprecation.clone()),
    ]
}

/// Changes an endpoint's settings (`CAN_MANAGE`) and records in its settings history what
/// changed, with the values before and after.
async fn mutate(
    app: &AppState,
    caller: &Principal,
    name: &str,
    f: impl FnOnce(&mut EndpointRecord) -> Result<(), StoreError> + Send + 'static,
) -> ApiResult<EndpointRecord> {
    access::require(app, caller, name, Level::CanManage)?;
    let before = Arc::new(std::sync::Mutex::new(None));
    let seen = before.clone();
    let e = app
        .store
        .update_endpoint(
            name,
            Box::new(move |e| {
                *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(tracked(e));
                f(e)?;
                e.updated_at = now_ms();
                Ok(None)
            }),
        )
        .await?;
    let before = before.lock().unwrap_or_else(|p| p.into_inner()).take();
    let changes: Vec<SettingChange> = before
        .into_iter()
        .flat_map(|b| b.into_iter().zip(tracked(&e)))
        .filter(|((_, old), (_, new))| old != new)
        .map(|((field, before), (_, after))| SettingChange {
            change_id: 0,
            endpoint_id: e.id.clone(),
            field: field.to_string(),
            before,
            after,
            changed_by: caller.user_name.clone(),
            changed_at: e.updated_at,
        })
        .collect();
    if !changes.is_empty() {
        app.store.record_setting_changes(&changes).await?;
    }
    app.refresh().await?;
    Ok(e)
}

/// `GET .../settings-history` (our extension; `CAN_VIEW`): every change of the settings kept
/// outside config versions (ai_gateway, rate limits, tags, permissions, budget policy,
/// notifications, telemetry), newest first, with the values before and after.
pub async fn settings_history(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let e = load_as(&app, &caller, &name, Level::CanView).await?;
    let parse = |v: &Option<String>| v.as_deref().and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok());
    let changes: Vec<serde_json::Value> = app
        .store
        .list_setting_changes(&e.id)
        .await?
        .iter()
        .map(|c| {
            json!({"change_id": c.change_id, "field": c.field, "before": parse(&c.before), "after": parse(&c.after),
                   "changed_by": c.changed_by, "changed_at": c.changed_at})
        })
        .collect();
    Ok(Json(json!({"changes": changes})))
}

/// Body of `POST .../settings:restore`.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreSettingRequest {
    /// The change to undo: its field gets back the value it had before.
    change_id: i64,
}

/// `POST .../settings:restore` (our extension; `CAN_MANAGE`): undoes one change of the settings
/// history by setting its field back to the value before it (itself recorded as a change).
pub async fn restore_setting(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<RestoreSettingRequest>,
) -> ApiResult<Json<ServingEndpointDetailed>> {
    let e = load_as(&app, &caller, &name, Level::CanManage).await?;
    let change = app.store.list_setting_changes(&e.id).await?.into_iter().find(|c| c.change_id == body.change_id);
    let change = change.ok_or_else(|| {
        ApiError::NotFound(format!(
            "Endpoint '{name}' has no settings change {}; see its settings-history.",
            body.change_id
        ))
    })?;
    let before = change.before.clone();
    match change.field.as_str() {
        "permissions" => {
            let grants = crate::api::permissions::grants_from_json(&e.id, before.as_deref())?;
            crate::api::permissions::write_grants(&app, &caller, &e.id, grants, true).await?;
        }
        "ai_gateway" => {
            if let Some(g) = before.as_deref() {
                let g: AiGatewayConfig = serde_json::from_str(g)
                    .map_err(|err| ApiError::Internal(format!("stored ai_gateway does not parse: {err}")))?;
                check_ai_gateway(&app, &g, "ai_gateway").await?;
            }
            mutate(&app, &caller, &name, move |e| {
                e.ai_gateway = before;
                Ok(())
            })
            .await?;
        }
        "budget_policy_id" => {
            let id = before.as_deref().and_then(|j| serde_json::from_str::<String>(j).ok());
            crate::api::budgets::check_reference(&app, id.as_deref())?;
            set_budget_policy(&app, &caller, &name, id).await?;
        }
        field @ ("rate_limits" | "tags" | "email_notifications" | "telemetry_config" | "deprecation") => {
            let field = field.to_string();
            mutate(&app, &caller, &name, move |e| {
                match field.as_str() {
                    "rate_limits" => e.rate_limits = before,
                    "tags" => e.tags = before.unwrap_or_else(|| "[]".into()),
                    "email_notifications" => e.email_notifications = before,
                    "deprecation" => e.deprecation = before,
                    _ => e.telemetry_config = before,
                }
                Ok(())
            })
            .await?;
        }
        other => return Err(ApiError::BadRequest(format!("Changes of '{other}' cannot be restored."))),
    }
    let e = load(&app, &name).await?;
    Ok(Json(detailed(&app, &caller, &e).await?))
}

/// `POST .../config:stop`: the endpoint refuses queries until started.
pub async fn stop(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ServingEndpointDetailed>> {
    let e = mutate(&app, &caller, &name, |e| {
        e.stopped = true;
        Ok(())
    })
    .await?;
    log_all_entities(&app, &e, "endpoint stopped").await;
    Ok(Json(detailed(&app, &caller, &e).await?))
}

/// `POST .../config:start`
pub async fn start(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ServingEndpointDetailed>> {
    let e = mutate(&app, &caller, &name, |e| {
        e.stopped = false;
        Ok(())
    })
    .await?;
    log_all_entities(&app, &e, "endpoint started").await;
    Ok(Json(detailed(&app, &caller, &e).await?))
}

async fn log_all_entities(app: &AppState, e: &EndpointRecord, line: &str) {
    if let Ok(Some(c)) = config_at(app, e, e.active_version).await
        && let Ok(cfg) = configs::parse_stored(&c)
    {
        for name in cfg.served_entities.iter().flatten().filter_map(|s| s.name.as_deref()) {
            app.events.push(&e.id, name, line);
        }
    }
}

/// `PUT .../ai-gateway`
pub async fn put_ai_gateway(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<AiGatewayConfig>,
) -> ApiResult<axum::response::Response> {
    check_ai_gateway(&app, &body, "").await?;
    let stored = to_json(&body);
    let before = Arc::new(std::sync::Mutex::new(None));
    let seen = before.clone();
    let e = mutate(&app, &caller, &name, move |e| {
        *seen.lock().unwrap_or_else(|p| p.into_inner()) = e.ai_gateway.take();
        e.ai_gateway = Some(stored);
        Ok(())
    })
    .await?;
    // The call replaces the whole block, as in Databricks; what it removed is said, not silent.
    let old = before.lock().unwrap_or_else(|p| p.into_inner()).take();
    let removed = removed_keys(old.as_deref(), e.ai_gateway.as_deref());
    let mut resp = Json(body).into_response();
    if !removed.is_empty() {
        let text = format!(
            "299 modelgate \"put-ai-gateway replaces the whole ai_gateway: it removed {} (set before). \
             Undo with: modelgate serving-endpoints settings-history {name}, then restore-settings {name} CHANGE_ID\"",
            removed.join(", ")
        );
        if let Ok(v) = axum::http::HeaderValue::from_str(&text) {
            resp.headers_mut().insert(axum::http::header::WARNING, v);
        }
    }
    Ok(resp)
}

/// Top-level keys of the JSON object `old` that `new` no longer has.
fn removed_keys(old: Option<&str>, new: Option<&str>) -> Vec<String> {
    let keys = |j: Option<&str>| -> Vec<String> {
        j.and_then(|j| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(j).ok())
            .map(|m| m.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k).collect())
            .unwrap_or_default()
    };
    let now = keys(new);
    keys(old).into_iter().filter(|k| !now.contains(k)).collect()
}

/// `PUT .../deprecation` (our extension; `CAN_MANAGE`): announces the endpoint's retirement.
pub async fn put_deprecation(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<Deprecation>,
) -> ApiResult<Json<Deprecation>> {
    let policy = crate::api::standards::load(&app).await?;
    let min_notice = policy.and_then(|p| p.min_deprecation_notice_days).unwrap_or(app.min_deprecation_notice_days);
    validate::deprecation(&body, &name, min_notice, "")?;
    let stored = to_json(&body);
    mutate(&app, &caller, &name, move |e| {
        e.deprecation = Some(stored);
        Ok(())
    })
    .await?;
    Ok(Json(body))
}

/// `DELETE .../deprecation` (our extension; `CAN_MANAGE`): withdraws the notice.
pub async fn delete_deprecation(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<serde_json::Value>> {
    mutate(&app, &caller, &name, |e| {
        e.deprecation = None;
        Ok(())
    })
    .await?;
    Ok(Json(json!({})))
}

/// `PUT .../rate-limits` (legacy)
pub async fn put_rate_limits(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<RateLimits>,
) -> ApiResult<Json<RateLimits>> {
    validate::legacy_rate_limits(&body.rate_limits, "rate_limits")?;
    let stored = to_json(&body.rate_limits);
    mutate(&app, &caller, &name, move |e| {
        e.rate_limits = Some(stored);
        Ok(())
    })
    .await?;
    Ok(Json(body))
}

/// `PATCH .../tags`
pub async fn patch_tags(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<PatchTagsRequest>,
) -> ApiResult<Json<EndpointTags>> {
    validate::tags(&body.add_tags, "add_tags")?;
    let e = mutate(&app, &caller, &name, move |e| {
        let mut tags = render::tags(e);
        tags.retain(|t| !body.delete_tags.contains(&t.key) && !body.add_tags.iter().any(|a| a.key == t.key));
        tags.extend(body.add_tags);
        e.tags = to_json(&tags);
        Ok(())
    })
    .await?;
    Ok(Json(EndpointTags { tags: render::tags(&e) }))
}

/// `PATCH .../notifications`
pub async fn patch_notifications(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateNotificationsRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let stored = body.email_notifications.as_ref().map(to_json);
    mutate(&app, &caller, &name, move |e| {
        e.email_notifications = stored;
        Ok(())
    })
    .await?;
    Ok(Json(json!({"name": name, "email_notifications": body.email_notifications})))
}

/// `PATCH .../telemetry-config`
pub async fn patch_telemetry(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<PatchTelemetryConfigRequest>,
) -> ApiResult<Json<ServingEndpointDetailed>> {
    let stored = body.telemetry_config.as_ref().map(to_json);
    let e = mutate(&app, &caller, &name, move |e| {
        e.telemetry_config = stored;
        Ok(())
    })
    .await?;
    Ok(Json(detailed(&app, &caller, &e).await?))
}

/// Finds the newest config version that has a served entity (or model) called `entity`.
async fn version_with_entity(app: &AppState, e: &EndpointRecord, entity: &str) -> ApiResult<ConfigRecord> {
    for c in app.store.list_configs(&e.id).await? {
        let cfg = configs::parse_stored(&c)?;
        let names = cfg
            .served_entities
            .iter()
            .flatten()
            .filter_map(|s| s.name.as_deref())
            .chain(cfg.served_models.iter().flatten().filter_map(|m| m.name.as_deref()));
        if names.into_iter().any(|n| n == entity) {
            return Ok(c);
        }
    }
    Err(ApiError::NotFound(format!("Served model '{entity}' does not exist in endpoint '{}'.", e.name)))
}

/// `GET .../served-models/{entity}/build-logs`: the deployment log of the newest version that
/// contains the entity.
pub async fn build_logs(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath((name, entity)): ApiPath<(String, String)>,
) -> ApiResult<Json<LogsResponse>> {
    let e = load_as(&app, &caller, &name, Level::CanView).await?;
    let c = version_with_entity(&app, &e, &entity).await?;
    let logs =
        if c.build_log.is_empty() { format!("config version {} is still deploying\n", c.version) } else { c.build_log };
    Ok(Json(LogsResponse { logs }))
}

/// `GET .../served-models/{entity}/logs`: recent runtime events of the entity.
pub async fn logs(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath((name, entity)): ApiPath<(String, String)>,
) -> ApiResult<Json<LogsResponse>> {
    let e = load_as(&app, &caller, &name, Level::CanView).await?;
    version_with_entity(&app, &e, &entity).await?;
    Ok(Json(LogsResponse { logs: app.events.text(&e.id, &entity) }))
}

/// `GET .../openapi`: an OpenAPI 3 document for this endpoint's invocations.
pub async fn get_openapi(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let e = load_as(&app, &caller, &name, Level::CanView).await?;
    let doc = openapi::document(&e.name, e.task.as_deref());
    let text = serde_json::to_string_pretty(&doc).map_err(|err| ApiError::Internal(err.to_string()))?;
    Ok(([(CONTENT_TYPE, "application/json")], text))
}
