//! Endpoint permissions: effective levels, checks, and the Permissions API
//! (`/api/2.0/permissions/serving-endpoints/{id}`).
//!
//! A caller's level on an endpoint is the highest of its direct grants and the grants of every
//! group it belongs to (through nesting); admins have `CAN_MANAGE` everywhere. Checks read the
//! snapshot only. An endpoint the caller cannot view answers exactly like one that does not exist.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use modelgate_core::permission::Level;
use modelgate_store::{EndpointPermissionRecord, principal_kind};
use modelgate_wire::permissions::*;

use crate::access::{level_of, not_found, require};
use crate::bootstrap::ADMINS_GROUP;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::snapshot::{LiveEndpoint, Principal};
use crate::state::AppState;

/// Finds an endpoint by id (as the Permissions API addresses it) or, for convenience, by name.
fn by_id_or_name(app: &AppState, key: &str) -> Option<Arc<LiveEndpoint>> {
    let snap = app.snapshot.load();
    snap.endpoints.values().find(|e| e.id == key).or_else(|| snap.endpoints.get(key)).cloned()
}

/// [`require`] for an endpoint addressed by id or name. A caller who cannot view it gets the same
/// 404 as for a key that matches nothing, naming only the key it sent (never the endpoint's name).
fn require_key(app: &AppState, caller: &Principal, key: &str, needed: Level) -> ApiResult<Arc<LiveEndpoint>> {
    let ep = by_id_or_name(app, key).ok_or_else(|| not_found(key))?;
    if level_of(caller, &ep).is_none() {
        return Err(not_found(key));
    }
    require(app, caller, &ep.name, needed)
}

async fn render(app: &AppState, ep: &LiveEndpoint) -> ApiResult<Json<ObjectPermissions>> {
    let object = format!("/serving-endpoints/{}", ep.id);
    Ok(Json(render_grants(app, &ep.grants, object, "serving-endpoint", "/serving-endpoints/").await?))
}

/// An object's grants as the Permissions API shows them, with the admins' `CAN_MANAGE` inherited
/// from `root` (the root of all objects of its type).
pub(crate) async fn render_grants(
    app: &AppState,
    grants: &[(String, Level)],
    object_id: String,
    object_type: &str,
    root: &str,
) -> ApiResult<ObjectPermissions> {
    let principals = app.store.list_principals(None).await?;
    let mut acl = Vec::new();
    for (who, level) in grants {
        let Some(p) = principals.iter().find(|p| &p.id == who) else { continue };
        acl.push(entry(&p.kind, &p.name, &p.display_name, *level, None));
    }
    acl.push(entry(principal_kind::GROUP, ADMINS_GROUP, ADMINS_GROUP, Level::CanManage, Some(root)));
    Ok(ObjectPermissions { object_id, object_type: object_type.into(), access_control_list: acl })
}

fn entry(kind: &str, name: &str, display: &str, level: Level, inherited_from: Option<&str>) -> AccessControlResponse {
    let mut e = AccessControlResponse { display_name: Some(display.to_string()), ..Default::default() };
    match kind {
        principal_kind::USER => e.user_name = Some(name.into()),
        principal_kind::GROUP => e.group_name = Some(name.into()),
        _ => e.service_principal_name = Some(name.into()),
    }
    e.all_permissions = vec![Permission {
        permission_level: level.as_str().into(),
        inherited: inherited_from.is_some(),
        inherited_from_object: inherited_from.map(|o| vec![o.to_string()]),
    }];
    e
}

async fn resolve(app: &AppState, acl: &[AccessControlRequest]) -> ApiResult<Vec<EndpointPermissionRecord>> {
    Ok(resolve_grants(app, acl)
        .await?
        .into_iter()
        .map(|(principal_id, level)| EndpointPermissionRecord {
            endpoint_id: String::new(),
            principal_id,
            level: level.as_str().into(),
        })
        .collect())
}

/// The principals an access control list names, by id, with their levels; a 400 naming the
/// entry that names nobody or an unknown level.
pub(crate) async fn resolve_grants(app: &AppState, acl: &[AccessControlRequest]) -> ApiResult<Vec<(String, Level)>> {
    let mut out = Vec::new();
    for (i, a) in acl.iter().enumerate() {
        let path = format!("access_control_list[{i}]");
        let (kind, name) = match (&a.user_name, &a.group_name, &a.service_principal_name) {
            (Some(u), None, None) => (principal_kind::USER, u),
            (None, Some(g), None) => (principal_kind::GROUP, g),
            (None, None, Some(s)) => (principal_kind::SERVICE_PRINCIPAL, s),
            _ => {
                return Err(ApiError::invalid(
                    &path,
                    "set exactly one of user_name, group_name, service_principal_name",
                ));
            }
        };
        let level = Level::parse(&a.permission_level).ok_or_else(|| {
            ApiError::invalid(
                &format!("{path}.permission_level"),
                format!("'{}' is not one of CAN_VIEW, CAN_QUERY, CAN_MANAGE", a.permission_level),
            )
        })?;
        let p = app
            .store
            .find_principal(kind, name)
            .await?
            .ok_or_else(|| ApiError::invalid(&path, format!("no {} named '{name}'", kind.replace('_', " "))))?;
        out.push((p.id, level));
    }
    Ok(out)
}

/// `GET /api/2.0/permissions/serving-endpoints/{id}`: needs `CAN_VIEW`.
pub async fn get(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ObjectPermissions>> {
    let ep = require_key(&app, &caller, &id, Level::CanView)?;
    render(&app, &ep).await
}

async fn write(
    app: AppState,
    caller: &Principal,
    id: &str,
    body: PermissionsRequest,
    replace: bool,
) -> ApiResult<Json<ObjectPermissions>> {
    let ep = require_key(&app, caller, id, Level::CanManage)?;
    let grants = resolve(&app, &body.access_control_list).await?;
    write_grants(&app, caller, &ep.id, grants, replace).await?;
    let ep = by_id_or_name(&app, &ep.id).ok_or_else(|| not_found(id))?;
    render(&app, &ep).await
}

/// An endpoint's direct grants as stored in its settings history: sorted, `None` when empty.
async fn grants_json(app: &AppState, endpoint_id: &str) -> ApiResult<Option<String>> {
    let mut grants: Vec<(String, String)> = app
        .store
        .list_endpoint_permissions()
        .await?
        .into_iter()
        .filter(|g| g.endpoint_id == endpoint_id)
        .map(|g| (g.principal_id, g.level))
        .collect();
    grants.sort();
    let list: Vec<serde_json::Value> =
        grants.into_iter().map(|(p, l)| serde_json::json!({"principal_id": p, "level": l})).collect();
    Ok((!list.is_empty()).then(|| serde_json::Value::from(list).to_string()))
}

/// Writes an endpoint's grants and records the change in its settings history.
pub(crate) async fn write_grants(
    app: &AppState,
    caller: &Principal,
    endpoint_id: &str,
    grants: Vec<EndpointPermissionRecord>,
    replace: bool,
) -> ApiResult<()> {
    let before = grants_json(app, endpoint_id).await?;
    app.commit_and_refresh(async { Ok(app.store.write_endpoint_permissions(endpoint_id, &grants, replace).await?) })
        .await?;
    let after = grants_json(app, endpoint_id).await?;
    if before != after {
        let change = modelgate_store::SettingChange {
            change_id: 0,
            endpoint_id: endpoint_id.to_string(),
            field: "permissions".into(),
            before,
            after,
            changed_by: caller.user_name.clone(),
            changed_at: modelgate_core::now_ms(),
        };
        app.store.record_setting_changes(&[change]).await?;
    }
    Ok(())
}

/// Grants as stored in the settings history, for a restore.
pub(crate) fn grants_from_json(endpoint_id: &str, json: Option<&str>) -> ApiResult<Vec<EndpointPermissionRecord>> {
    #[derive(serde::Deserialize)]
    struct Grant {
        principal_id: String,
        level: String,
    }
    let grants: Vec<Grant> = match json {
        Some(j) => {
            serde_json::from_str(j).map_err(|e| ApiError::Internal(format!("stored grants do not parse: {e}")))?
        }
        None => Vec::new(),
    };
    Ok(grants
        .into_iter()
        .map(|g| EndpointPermissionRecord {
            endpoint_id: endpoint_id.to_string(),
            principal_id: g.principal_id,
            level: g.level,
        })
        .collect())
}

/// `PUT ...`: replaces every direct grant (an empty list removes them all; admins keep access).
pub async fn set(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PermissionsRequest>,
) -> ApiResult<Json<ObjectPermissions>> {
    write(app, &caller, &id, body, true).await
}

/// `PATCH ...`: adds or changes the given grants.
pub async fn update(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PermissionsRequest>,
) -> ApiResult<Json<ObjectPermissions>> {
    write(app, &caller, &id, body, false).await
}

/// `GET .../{id}/permissionLevels`
pub async fn levels(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<PermissionLevels>> {
    require_key(&app, &caller, &id, Level::CanView)?;
    Ok(Json(PermissionLevels {
        permission_levels: Level::ALL
            .iter()
            .map(|l| PermissionLevel { permission_level: l.as_str().into(), description: l.description().into() })
            .collect(),
    }))
}
