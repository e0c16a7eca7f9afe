//! The legacy Groups API 2.0 (`/api/2.0/groups/...`), which the legacy `databricks-cli` (0.18)
//! uses for `databricks groups ...`. Groups are addressed by name; the same groups as SCIM.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use modelgate_store::{PrincipalRecord, principal_kind};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::scim::{Directory, check_label, create, delete};
use crate::access::require_admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::snapshot::Principal;
use crate::state::AppState;

type Caller = Extension<Arc<Principal>>;

/// `{"group_name"}`
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupName {
    group_name: String,
}

/// A member and its parent group: `{"user_name" | "group_name", "parent_name"}`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    #[serde(default)]
    user_name: Option<String>,
    #[serde(default)]
    group_name: Option<String>,
    parent_name: String,
}

/// Query of `list-parents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    #[serde(default)]
    user_name: Option<String>,
    #[serde(default)]
    group_name: Option<String>,
}

fn by_name<'a>(dir: &'a Directory, kinds: &[&str], name: &str) -> Option<&'a PrincipalRecord> {
    dir.principals().find(|p| kinds.contains(&p.kind.as_str()) && p.name == name)
}

fn group<'a>(dir: &'a Directory, name: &str) -> ApiResult<&'a PrincipalRecord> {
    by_name(dir, &[principal_kind::GROUP], name)
        .ok_or_else(|| ApiError::NotFound(format!("Group '{name}' does not exist.")))
}

/// The member a body names: a user (or service principal, by application id) or a group.
fn member<'a>(dir: &'a Directory, user: Option<&str>, group_name: Option<&str>) -> ApiResult<&'a PrincipalRecord> {
    match (user, group_name) {
        (Some(u), None) => by_name(dir, &[principal_kind::USER, principal_kind::SERVICE_PRINCIPAL], u)
            .ok_or_else(|| ApiError::NotFound(format!("User '{u}' does not exist."))),
        (None, Some(g)) => group(dir, g),
        _ => Err(ApiError::invalid("user_name", "give exactly one of user_name and group_name")),
    }
}

/// `GET /api/2.0/groups/list`: `{"group_names": [...]}`.
pub async fn list(State(app): State<AppState>) -> ApiResult<Json<Value>> {
    let dir = Directory::load(&app).await?;
    let mut names: Vec<&str> =
        dir.principals().filter(|p| p.kind == principal_kind::GROUP).map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    Ok(Json(json!({"group_names": names})))
}

/// `POST /api/2.0/groups/create` (admins).
pub async fn create_group(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiJson(body): ApiJson<GroupName>,
) -> ApiResult<Json<Value>> {
    require_admin(&caller, "create groups")?;
    check_label("group_name", &body.group_name)?;
    if by_name(&Directory::load(&app).await?, &[principal_kind::GROUP], &body.group_name).is_some() {
        return Err(ApiError::AlreadyExists(format!("Group '{}' already exists.", body.group_name)));
    }
    create(&app, principal_kind::GROUP, body.group_name.clone(), None, Some(true)).await?;
    app.refresh().await?;
    Ok(Json(json!({"group_name": body.group_name})))
}

/// `POST /api/2.0/groups/delete` (admins).
pub async fn delete_group(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiJson(body): ApiJson<GroupName>,
) -> ApiResult<Json<Value>> {
    let id = group(&Directory::load(&app).await?, &body.group_name)?.id.clone();
    delete(&app, &caller, &id, principal_kind::GROUP).await?;
    Ok(Json(json!({})))
}

/// `POST /api/2.0/groups/add-member` (admins).
pub async fn add_member(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiJson(body): ApiJson<Membership>,
) -> ApiResult<Json<Value>> {
    change_membership(&app, &caller, &body, true).await
}

/// `POST /api/2.0/groups/remove-member` (admins).
pub async fn remove_member(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiJson(body): ApiJson<Membership>,
) -> ApiResult<Json<Value>> {
    change_membership(&app, &caller, &body, false).await
}

/// Adds (`add`) or removes a member of a group, both by name.
async fn change_membership(app: &AppState, caller: &Principal, body: &Membership, add: bool) -> ApiResult<Json<Value>> {
    require_admin(caller, "change group members")?;
    let dir = Directory::load(app).await?;
    let parent = group(&dir, &body.parent_name)?;
    let m = member(&dir, body.user_name.as_deref(), body.group_name.as_deref())?;
    if add {
        if dir.creates_cycle(&parent.id, &m.id) {
            return Err(ApiError::invalid(
                "group_name",
                format!("adding '{}' to '{}' would make a group contain itself", m.name, parent.name),
            ));
        }
        app.store.add_member(&parent.id, &m.id).await?;
    } else {
        app.store.remove_member(&parent.id, &m.id).await?;
    }
    app.refresh().await?;
    Ok(Json(json!({})))
}

/// `GET /api/2.0/groups/list-members?group_name=`: `{"members": [{"user_name"} | {"group_name"}]}`.
pub async fn list_members(State(app): State<AppState>, ApiQuery(q): ApiQuery<GroupName>) -> ApiResult<Json<Value>> {
    let dir = Directory::load(&app).await?;
    let parent = group(&dir, &q.group_name)?;
    let mut members: Vec<Value> = dir
        .memberships()
        .iter()
        .filter(|m| m.group_id == parent.id)
        .filter_map(|m| dir.principals().find(|p| p.id == m.member_id))
        .map(|p| match p.kind.as_str() {
            principal_kind::GROUP => json!({"group_name": p.name}),
            _ => json!({"user_name": p.name}),
        })
        .collect();
    members.sort_by_key(Value::to_string);
    Ok(Json(json!({"members": members})))
}

/// `GET /api/2.0/groups/list-parents?user_name=|group_name=`: `{"group_names": [...]}`, direct
/// parents only (as Databricks answers).
pub async fn list_parents(State(app): State<AppState>, ApiQuery(q): ApiQuery<Subject>) -> ApiResult<Json<Value>> {
    let dir = Directory::load(&app).await?;
    let m = member(&dir, q.user_name.as_deref(), q.group_name.as_deref())?;
    let mut names: Vec<&str> = dir
        .memberships()
        .iter()
        .filter(|x| x.member_id == m.id)
        .filter_map(|x| dir.principals().find(|p| p.id == x.group_id))
        .map(|p| p.name.as_str())
        .collect();
    names.sort_unstable();
    Ok(Json(json!({"group_names": names})))
}
