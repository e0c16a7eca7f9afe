//! The model registry (our extension): `/api/2.0/registered-models` and their versions, and
//! `/api/2.0/permissions/registered-models/{name}`.
//!
//! Levels are the endpoints' levels with one meaning each: `CAN_VIEW` sees a model and its
//! versions, `CAN_QUERY` may serve its versions from an endpoint, `CAN_MANAGE` registers and
//! deletes versions and grants levels. The registrant manages it; admins manage every model. A
//! model the caller cannot view answers like one that does not exist. Registering a version whose
//! runtime starts a program runs code on the server, so it also takes an admin or a member of the
//! built-in group `model-runners`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use modelgate_core::models::{self, Runtime};
use modelgate_core::now_ms;
use modelgate_core::permission::Level;
use modelgate_store::{ModelPermissionRecord, ModelRecord, ModelVersionRecord};
use modelgate_wire::permissions::{ObjectPermissions, PermissionLevel, PermissionLevels, PermissionsRequest};
use modelgate_wire::{
    CreateModelRequest, CreateModelVersionRequest, ListModelVersionsResponse, ListModelsResponse, ModelVersion,
    RegisteredModel,
};

use crate::bootstrap::MODEL_RUNNERS_GROUP;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::snapshot::Principal;
use crate::state::AppState;

type Caller = Extension<Arc<Principal>>;

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("Registered model '{name}' does not exist."))
}

/// Every grant on every model, by model id.
async fn grants(app: &AppState) -> ApiResult<std::collections::HashMap<String, Vec<(String, Level)>>> {
    let mut out: std::collections::HashMap<String, Vec<(String, Level)>> = Default::default();
    for g in app.store.list_model_permissions().await? {
        if let Some(level) = Level::parse(&g.level) {
            out.entry(g.model_id).or_default().push((g.principal_id, level));
        }
    }
    Ok(out)
}

/// The model `name` and the caller's level on it, if it has at least `needed`: 404 when the
/// caller cannot view it (or it does not exist), 403 naming the level otherwise.
async fn require(app: &AppState, caller: &Principal, name: &str, needed: Level) -> ApiResult<(ModelRecord, Level)> {
    let model = app.store.get_model(name).await?.ok_or_else(|| not_found(name))?;
    let grants = grants(app).await?;
    let level = crate::access::level_in(caller, grants.get(&model.id).map(Vec::as_slice).unwrap_or_default())
        .ok_or_else(|| not_found(name))?;
    if level < needed {
        return Err(ApiError::PermissionDenied(format!(
            "{} on registered model '{name}' is required; you have {}.",
            needed.as_str(),
            level.as_str()
        )));
    }
    Ok((model, level))
}

fn render(m: &ModelRecord, level: Option<Level>) -> RegisteredModel {
    RegisteredModel {
        name: m.name.clone(),
        description: m.description.clone(),
        creator: m.creator.clone(),
        creation_timestamp: m.created_at,
        last_updated_timestamp: m.updated_at,
        latest_version: (m.latest_version > 0).then(|| m.latest_version.to_string()),
        permission_level: level.map(|l| l.as_str().to_string()),
    }
}

fn render_version(model: &str, v: &ModelVersionRecord) -> ModelVersion {
    ModelVersion {
        name: model.to_string(),
        version: v.version.to_string(),
        source: v.source.clone(),
        runtime: v.runtime.clone(),
        task: v.task.clone(),
        command: v.command.as_deref().and_then(|c| serde_json::from_str(c).ok()),
        env: v.env.as_deref().and_then(|e| serde_json::from_str(e).ok()),
        content_hash: v.content_hash.clone(),
        description: v.description.clone(),
        creator: v.creator.clone(),
        creation_timestamp: v.created_at,
    }
}

/// `POST /api/2.0/registered-models`: anyone may register a model, and manages it.
pub async fn create(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiJson(body): ApiJson<CreateModelRequest>,
) -> ApiResult<Json<RegisteredModel>> {
    models::check_name(&body.name)?;
    let now = now_ms();
    let record = ModelRecord {
        id: uuid::Uuid::new_v4().simple().to_string(),
        name: body.name,
        description: body.description.unwrap_or_default(),
        creator: caller.user_name.clone(),
        created_at: now,
        updated_at: now,
        latest_version: 0,
    };
    app.store.create_model(&record, &caller.id).await?;
    Ok(Json(render(&record, Some(Level::CanManage))))
}

/// `GET /api/2.0/registered-models`: the models the caller may view.
pub async fn list(State(app): State<AppState>, Extension(caller): Caller) -> ApiResult<Json<ListModelsResponse>> {
    let grants = grants(&app).await?;
    let registered_models = app
        .store
        .list_models()
        .await?
        .iter()
        .filter_map(|m| {
            let level = crate::access::level_in(&caller, grants.get(&m.id).map(Vec::as_slice).unwrap_or_default())?;
            Some(render(m, Some(level)))
        })
        .collect();
    Ok(Json(ListModelsResponse { registered_models }))
}

/// `GET /api/2.0/registered-models/{name}`
pub async fn get(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<RegisteredModel>> {
    let (model, level) = require(&app, &caller, &name, Level::CanView).await?;
    Ok(Json(render(&model, Some(level))))
}

/// Endpoints whose active or pending config serves a version of `model` (`version`, if given).
async fn served_by(app: &AppState, model: &str, version: Option<i64>) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    for e in app.store.list_endpoints().await? {
        for v in [e.active_version, e.pending_version].into_iter().flatten() {
            let Some(c) = app.store.get_config(&e.id, v).await? else { continue };
            let config = crate::configs::parse_stored(&c)?;
            let serves = config.served_entities.iter().flatten().any(|s| {
                s.entity_name.as_deref() == Some(model)
                    && version.is_none_or(|v| s.entity_version.as_deref() == Some(v.to_string().as_str()))
            });
            if serves && !out.contains(&e.name) {
                out.push(e.name.clone());
            }
        }
    }
    Ok(out)
}

/// `DELETE /api/2.0/registered-models/{name}` (`CAN_MANAGE`): refused while an endpoint serves it.
pub async fn delete(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    require(&app, &caller, &name, Level::CanManage).await?;
    let serving = served_by(&app, &name, None).await?;
    if !serving.is_empty() {
        return Err(ApiError::InvalidState(format!(
            "Registered model '{name}' is served by {}; change their configs first.",
            serving.join(", ")
        )));
    }
    app.store.delete_model(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/2.0/registered-models/{name}/versions` (`CAN_MANAGE`; a runtime that runs a program
/// also takes an admin or a member of `model-runners`). The source is read to record its hash.
pub async fn create_version(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<CreateModelVersionRequest>,
) -> ApiResult<Json<ModelVersion>> {
    let (model, _) = require(&app, &caller, &name, Level::CanManage).await?;
    let (runtime, task) =
        models::check_version(&body.runtime, body.task.as_deref(), body.command.as_deref(), body.env.as_ref())?;
    if runtime.runs_code() && !caller.is_admin && !caller.groups.contains(MODEL_RUNNERS_GROUP) {
        return Err(ApiError::PermissionDenied(format!(
            "Registering a '{}' version runs a program on the server: only admins and members of the \
             '{MODEL_RUNNERS_GROUP}' group may.",
            runtime.as_str()
        )));
    }
    let dir = crate::hosting::source::directory(&body.source).map_err(|m| ApiError::invalid("source", m))?;
    if runtime == Runtime::Embedded {
        let missing: Vec<&str> = models::EMBEDDED_FILES.into_iter().filter(|f| !dir.join(f).is_file()).collect();
        if !missing.is_empty() {
            return Err(ApiError::invalid(
                "source",
                format!(
                    "an embedded model's directory needs {}; missing: {}",
                    models::EMBEDDED_FILES.join(", "),
                    missing.join(", ")
                ),
            ));
        }
    }
    let hashed = dir.clone();
    let content_hash = tokio::task::spawn_blocking(move || crate::hosting::source::content_hash(&hashed))
        .await
        .map_err(|e| ApiError::Internal(format!("hashing the source stopped: {e}")))?
        .map_err(|m| ApiError::invalid("source", m))?;
    let record = ModelVersionRecord {
        model_id: model.id.clone(),
        version: 0,
        source: dir.display().to_string(),
        runtime: runtime.as_str().to_string(),
        task,
        command: body.command.as_ref().map(super::to_json),
        env: body.env.as_ref().filter(|e| !e.is_empty()).map(super::to_json),
        content_hash,
        description: body.description.unwrap_or_default(),
        creator: caller.user_name.clone(),
        created_at: now_ms(),
    };
    let record = app.store.add_model_version(&record).await?;
    Ok(Json(render_version(&name, &record)))
}

/// `GET /api/2.0/registered-models/{name}/versions` (`CAN_VIEW`): newest first.
pub async fn list_versions(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ListModelVersionsResponse>> {
    let (model, _) = require(&app, &caller, &name, Level::CanView).await?;
    let versions = app.store.list_model_versions(&model.id).await?;
    Ok(Json(ListModelVersionsResponse { model_versions: versions.iter().map(|v| render_version(&name, v)).collect() }))
}

/// The version `version` of `model`, parsed from the path.
async fn find_version(app: &AppState, model: &ModelRecord, version: &str) -> ApiResult<ModelVersionRecord> {
    let missing =
        || ApiError::NotFound(format!("Version '{version}' of registered model '{}' does not exist.", model.name));
    let number: i64 = version.parse().map_err(|_| missing())?;
    app.store.list_model_versions(&model.id).await?.into_iter().find(|v| v.version == number).ok_or_else(missing)
}

/// `GET /api/2.0/registered-models/{name}/versions/{version}` (`CAN_VIEW`).
pub async fn get_version(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> ApiResult<Json<ModelVersion>> {
    let (model, _) = require(&app, &caller, &name, Level::CanView).await?;
    Ok(Json(render_version(&name, &find_version(&app, &model, &version).await?)))
}

/// `DELETE /api/2.0/registered-models/{name}/versions/{version}` (`CAN_MANAGE`): refused while
/// an endpoint serves it.
pub async fn delete_version(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let (model, _) = require(&app, &caller, &name, Level::CanManage).await?;
    let v = find_version(&app, &model, &version).await?;
    let serving = served_by(&app, &name, Some(v.version)).await?;
    if !serving.is_empty() {
        return Err(ApiError::InvalidState(format!(
            "Version {version} of '{name}' is served by {}; change their configs first.",
            serving.join(", ")
        )));
    }
    app.store.delete_model_version(&model.id, v.version).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn render_acl(app: &AppState, model: &ModelRecord) -> ApiResult<Json<ObjectPermissions>> {
    let grants = grants(app).await?.remove(&model.id).unwrap_or_default();
    let object = format!("/registered-models/{}", model.name);
    Ok(Json(
        crate::api::permissions::render_grants(app, &grants, object, "registered-model", "/registered-models/").await?,
    ))
}

/// Checks the registered model versions a config serves: each exists, and the caller may serve it
/// (`CAN_QUERY`); `path` is where the config sits in the request body.
pub async fn check_served(
    app: &AppState,
    caller: &Principal,
    config: &modelgate_wire::EndpointCoreConfigInput,
    path: &str,
) -> ApiResult<()> {
    for (i, e) in config.served_entities.iter().flatten().enumerate() {
        let at = |field: &str| {
            let p = format!("served_entities[{i}].{field}");
            if path.is_empty() { p } else { format!("{path}.{p}") }
        };
        let foundation = e.entity_name.as_deref().and_then(|n| app.hosting.settings.catalog.find(n));
        let (Some(name), None) = (e.entity_name.as_deref(), &e.external_model) else {
            refuse_provisioned(e, &at)?;
            continue;
        };
        // A foundation model: anyone may serve it, once its files are installed, paying per token
        // or with provisioned throughput in whole bands.
        if let Some(m) = foundation {
            crate::hosting::entity::foundation_files(m, &app.hosting.settings.foundation_dir)
                .map_err(|why| ApiError::invalid(&at("entity_name"), why))?;
            let asked = modelgate_core::foundation::provisioned(
                m,
                e.min_provisioned_throughput,
                e.max_provisioned_throughput,
                e.provisioned_model_units,
            )
            .map_err(|(field, why)| ApiError::invalid(&at(field), why))?;
            if asked.is_some() && e.workload_size.is_some() {
                return Err(ApiError::invalid(
                    &at("workload_size"),
                    "provisioned throughput sizes this entity; drop workload_size or the throughput",
                ));
            }
            continue;
        }
        refuse_provisioned(e, &at)?;
        let model = match require(app, caller, name, Level::CanQuery).await {
            Ok((m, _)) => m,
            Err(ApiError::NotFound(_)) => {
                return Err(ApiError::invalid(&at("entity_name"), format!("registered model '{name}' does not exist")));
            }
            Err(e) => return Err(e),
        };
        let version = e.entity_version.as_deref().ok_or_else(|| {
            ApiError::invalid(&at("entity_version"), format!("is required to serve registered model '{name}'"))
        })?;
        if find_version(app, &model, version).await.is_err() {
            return Err(ApiError::invalid(
                &at("entity_version"),
                format!("version '{version}' of registered model '{name}' does not exist"),
            ));
        }
    }
    Ok(())
}

/// Provisioned throughput is a foundation model's: anything else asking for it is a 400 naming the
/// field.
fn refuse_provisioned(e: &modelgate_wire::ServedEntityInput, at: &dyn Fn(&str) -> String) -> ApiResult<()> {
    let asked = [
        ("min_provisioned_throughput", e.min_provisioned_throughput),
        ("max_provisioned_throughput", e.max_provisioned_throughput),
        ("provisioned_model_units", e.provisioned_model_units),
    ];
    match asked.into_iter().find(|(_, v)| v.is_some()) {
        Some((field, _)) => Err(ApiError::invalid(
            &at(field),
            "provisioned throughput is for foundation models (entity_name system.ai.*, see \
             `modelgate foundation-models list`); size other entities with workload_size",
        )),
        None => Ok(()),
    }
}

/// `GET /api/2.0/foundation-models` (our extension): the catalog, with whether each model's files
/// are installed on this server and where they go.
pub async fn foundation_models(State(app): State<AppState>) -> Json<serde_json::Value> {
    let dir = &app.hosting.settings.foundation_dir;
    let prices = app.usage.prices();
    let models: Vec<serde_json::Value> = app
        .hosting
        .settings
        .catalog
        .models()
        .iter()
        .map(|m| {
            let installed = crate::hosting::entity::foundation_files(m, dir);
            let price =
                prices.lookup("modelgate", &m.name).map(|p| serde_json::json!({"input": p.input, "output": p.output}));
            serde_json::json!({
                "name": m.name, "task": m.task, "runtime": m.runtime.as_str(), "description": m.description,
                "available": installed.is_ok(), "files": dir.join(&m.dir).display().to_string(),
                "reason": installed.err(), "price_per_million_tokens": price,
                "throughput_chunk_size": m.band_tokens_per_second, "band_usd_per_hour": m.band_usd_per_hour,
            })
        })
        .collect();
    Json(serde_json::json!({"foundation_models": models}))
}

/// `GET /api/2.0/permissions/registered-models/{name}` (`CAN_VIEW`).
pub async fn get_permissions(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ObjectPermissions>> {
    let (model, _) = require(&app, &caller, &name, Level::CanView).await?;
    render_acl(&app, &model).await
}

async fn write_permissions(
    app: AppState,
    caller: &Principal,
    name: &str,
    body: PermissionsRequest,
    replace: bool,
) -> ApiResult<Json<ObjectPermissions>> {
    let (model, _) = require(&app, caller, name, Level::CanManage).await?;
    let grants: Vec<ModelPermissionRecord> = crate::api::permissions::resolve_grants(&app, &body.access_control_list)
        .await?
        .into_iter()
        .map(|(principal_id, level)| ModelPermissionRecord {
            model_id: model.id.clone(),
            principal_id,
            level: level.as_str().into(),
        })
        .collect();
    app.store.write_model_permissions(&model.id, &grants, replace).await?;
    render_acl(&app, &model).await
}

/// `GET /api/2.0/permissions/registered-models/{name}/permissionLevels` (`CAN_VIEW`): what each
/// level allows on a model.
pub async fn permission_levels(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<PermissionLevels>> {
    require(&app, &caller, &name, Level::CanView).await?;
    let described = [
        (Level::CanView, "See the model and its versions"),
        (Level::CanQuery, "Serve its versions from an endpoint you manage"),
        (Level::CanManage, "Register and delete versions, delete the model and grant levels"),
    ];
    Ok(Json(PermissionLevels {
        permission_levels: described
            .into_iter()
            .map(|(l, d)| PermissionLevel { permission_level: l.as_str().into(), description: d.into() })
            .collect(),
    }))
}

/// `PUT /api/2.0/permissions/registered-models/{name}` (`CAN_MANAGE`): replaces every direct grant.
pub async fn set_permissions(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<PermissionsRequest>,
) -> ApiResult<Json<ObjectPermissions>> {
    write_permissions(app, &caller, &name, body, true).await
}

/// `PATCH /api/2.0/permissions/registered-models/{name}` (`CAN_MANAGE`): adds or changes grants.
pub async fn update_permissions(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<PermissionsRequest>,
) -> ApiResult<Json<ObjectPermissions>> {
    write_permissions(app, &caller, &name, body, false).await
}
