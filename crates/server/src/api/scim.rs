//! SCIM identities: `/api/2.0/preview/scim/v2/{Users,Groups,ServicePrincipals,Me}`.
//!
//! Anyone authenticated may read; only admins may create, change or delete. Membership changes
//! and deletions rebuild the snapshot before answering, so a removed principal's tokens stop
//! working on the very next request. The built-in `admins` group cannot be deleted, and nobody
//! can delete or deactivate themselves (the usual way to lock the last admin out).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use modelgate_core::{now_ms, token};
use modelgate_store::{MembershipRecord, PrincipalRecord, principal_kind};
use modelgate_wire::scim::*;
use serde::Deserialize;
use serde_json::Value;

use crate::access::require_admin;
use crate::bootstrap::{ADMINS_GROUP, CUSTOM_BASE_URLS_GROUP, MODEL_RUNNERS_GROUP, USERS_GROUP};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::snapshot::Principal;
use crate::state::AppState;

type Caller = Extension<Arc<Principal>>;

/// Query of the list routes.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    filter: Option<String>,
    start_index: Option<usize>,
    count: Option<usize>,
}

/// Every principal and direct membership, read once per request.
pub(super) struct Directory {
    by_id: HashMap<String, PrincipalRecord>,
    memberships: Vec<MembershipRecord>,
}

impl Directory {
    /// Every principal by id.
    pub(super) fn principals(&self) -> impl Iterator<Item = &PrincipalRecord> {
        self.by_id.values()
    }

    /// Every membership.
    pub(super) fn memberships(&self) -> &[MembershipRecord] {
        &self.memberships
    }

    pub(super) async fn load(app: &AppState) -> ApiResult<Directory> {
        let by_id = app.store.list_principals(None).await?.into_iter().map(|p| (p.id.clone(), p)).collect();
        Ok(Directory { by_id, memberships: app.store.list_memberships().await? })
    }

    fn get(&self, id: &str, kind: &str) -> ApiResult<&PrincipalRecord> {
        self.by_id
            .get(id)
            .filter(|p| p.kind == kind)
            .ok_or_else(|| ApiError::NotFound(format!("{} with id {id} does not exist.", noun(kind))))
    }

    fn reference(&self, id: &str) -> Option<ScimRef> {
        self.by_id.get(id).map(|p| ScimRef {
            value: p.id.clone(),
            display: Some(p.display_name.clone()),
            reference: Some(format!("{}/{}", collection(&p.kind), p.id)),
            kind: None,
        })
    }

    fn groups_of(&self, id: &str) -> Vec<ScimRef> {
        let mut refs: Vec<ScimRef> = self
            .memberships
            .iter()
            .filter(|m| m.member_id == id)
            .filter_map(|m| self.reference(&m.group_id))
            .map(|mut r| {
                r.kind = Some("direct".into());
                r
            })
            .collect();
        refs.sort_by(|a, b| a.display.cmp(&b.display));
        refs
    }

    fn members_of(&self, id: &str) -> Vec<ScimRef> {
        self.memberships.iter().filter(|m| m.group_id == id).filter_map(|m| self.reference(&m.member_id)).collect()
    }

    fn user(&self, p: &PrincipalRecord) -> ScimUser {
        ScimUser {
            id: Some(p.id.clone()),
            user_name: Some(p.name.clone()),
            display_name: Some(p.display_name.clone()),
            active: Some(p.active),
            emails: Some(vec![ScimEmail { value: p.name.clone(), kind: Some("work".into()), primary: Some(true) }]),
            groups: Some(self.groups_of(&p.id)),
            password: None,
            schemas: vec![USER_SCHEMA.into()],
        }
    }

    fn group(&self, p: &PrincipalRecord) -> ScimGroup {
        ScimGroup {
            id: Some(p.id.clone()),
            display_name: Some(p.name.clone()),
            members: Some(self.members_of(&p.id)),
            groups: Some(self.groups_of(&p.id)),
            schemas: vec![GROUP_SCHEMA.into()],
        }
    }

    fn service_principal(&self, p: &PrincipalRecord) -> ScimServicePrincipal {
        ScimServicePrincipal {
            id: Some(p.id.clone()),
            application_id: Some(p.name.clone()),
            display_name: Some(p.display_name.clone()),
            active: Some(p.active),
            groups: Some(self.groups_of(&p.id)),
            schemas: vec![SERVICE_PRINCIPAL_SCHEMA.into()],
        }
    }

    /// Would adding `member` to `group` make a group contain itself?
    pub(super) fn creates_cycle(&self, group: &str, member: &str) -> bool {
        let mut stack = vec![group.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(cur) = stack.pop() {
            if cur == member {
                return true;
            }
            for m in self.memberships.iter().filter(|m| m.member_id == cur) {
                if seen.insert(m.group_id.clone()) {
                    stack.push(m.group_id.clone());
                }
            }
        }
        false
    }
}

fn noun(kind: &str) -> &'static str {
    match kind {
        principal_kind::USER => "User",
        principal_kind::GROUP => "Group",
        _ => "Service principal",
    }
}

fn collection(kind: &str) -> &'static str {
    match kind {
        principal_kind::USER => "Users",
        principal_kind::GROUP => "Groups",
        _ => "ServicePrincipals",
    }
}

/// One comparison of a SCIM filter: `attribute op "value"`.
#[derive(Debug, PartialEq)]
struct Clause {
    attribute: String,
    op: String,
    value: String,
}

/// A parsed SCIM filter: alternatives (`or`) of conjunctions (`and`) of clauses. Values are
/// quoted strings (with `\"` and `\\` escapes) or bare `true`, `false` and numbers; operators are
/// `eq`, `ne`, `co` and `sw`, case-insensitive. Anything else is refused with a message saying
/// what, never silently read as "matches nothing".
#[derive(Debug)]
struct Filter(Vec<Vec<Clause>>);

impl Filter {
    fn parse(text: &str, attributes: &[&str]) -> ApiResult<Filter> {
        let bad = |m: String| ApiError::invalid("filter", m);
        let tokens = tokenize(text).map_err(bad)?;
        let mut alternatives = vec![Vec::new()];
        let mut i = 0;
        loop {
            let (Some(attr), Some(op), Some(value)) = (tokens.get(i), tokens.get(i + 1), tokens.get(i + 2)) else {
                return Err(bad(format!("expected attribute op \"value\" at token {}", i + 1)));
            };
            let Token::Word(attr) = attr else { return Err(bad("expected an attribute name".into())) };
            let Token::Word(op) = op else { return Err(bad(format!("expected an operator after '{attr}'"))) };
            let op = op.to_ascii_lowercase();
            if !["eq", "ne", "co", "sw"].contains(&op.as_str()) {
                return Err(bad(format!("operator '{op}' is not supported (use eq, ne, co, sw)")));
            }
            let Some(attribute) = attributes.iter().find(|a| a.eq_ignore_ascii_case(attr)) else {
                return Err(bad(format!("attribute '{attr}' cannot be filtered on (use {})", attributes.join(", "))));
            };
            let value = match value {
                Token::Quoted(v) => v.clone(),
                Token::Word(w) => w.clone(),
            };
            if let Some(all) = alternatives.last_mut() {
                all.push(Clause { attribute: attribute.to_string(), op, value });
            }
            i += 3;
            match tokens.get(i) {
                None => break,
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("and") => {}
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("or") => alternatives.push(Vec::new()),
                Some(_) => return Err(bad("expected 'and' or 'or' between comparisons".into())),
            }
            i += 1;
        }
        Ok(Filter(alternatives))
    }

    fn matches(&self, attr: &dyn Fn(&str) -> Option<String>) -> bool {
        self.0.iter().any(|all| {
            all.iter().all(|c| {
                let have = attr(&c.attribute).map(|v| v.to_lowercase()).unwrap_or_default();
                let want = c.value.to_lowercase();
                match c.op.as_str() {
                    "eq" => have == want,
                    "ne" => have != want,
                    "co" => have.contains(&want),
                    _ => have.starts_with(&want),
                }
            })
        })
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '"' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err("a quoted value is not closed".into()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\')) => value.push(e),
                            _ => return Err("only \\\" and \\\\ may be escaped in a quoted value".into()),
                        },
                        Some(ch) => value.push(ch),
                    }
                }
                out.push(Token::Quoted(value));
            }
            '(' | ')' | '[' | ']' => return Err(format!("'{c}' (grouping) is not supported")),
            _ => {
                let mut word = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch.is_whitespace() || "\"()[]".contains(ch) {
                        break;
                    }
                    word.push(ch);
                    chars.next();
                }
                out.push(Token::Word(word));
            }
        }
    }
    if out.is_empty() {
        return Err("the filter is empty".into());
    }
    Ok(out)
}

/// The attributes each kind of principal can be filtered on.
fn filterable(kind: &str) -> &'static [&'static str] {
    match kind {
        principal_kind::USER => &["id", "userName", "displayName", "active"],
        principal_kind::GROUP => &["id", "displayName"],
        _ => &["id", "applicationId", "displayName", "active"],
    }
}

fn page<T>(items: Vec<T>, q: &ListQuery) -> ScimList<T> {
    let total = items.len();
    let start = q.start_index.unwrap_or(1).max(1);
    let count = q.count.unwrap_or(10_000);
    let resources: Vec<T> = items.into_iter().skip(start - 1).take(count).collect();
    ScimList {
        schemas: vec![LIST_SCHEMA.into()],
        total_results: total,
        start_index: start,
        items_per_page: resources.len(),
        resources,
    }
}

fn attribute(p: &PrincipalRecord, name: &str) -> Option<String> {
    match name {
        "id" => Some(p.id.clone()),
        "userName" | "applicationId" => Some(p.name.clone()),
        "displayName" => Some(if p.kind == principal_kind::GROUP { p.name.clone() } else { p.display_name.clone() }),
        "active" => Some(p.active.to_string()),
        _ => None,
    }
}

fn listed<'a>(dir: &'a Directory, kind: &str, q: &ListQuery) -> ApiResult<Vec<&'a PrincipalRecord>> {
    let filter = match q.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(f) => Some(Filter::parse(f, filterable(kind))?),
        None => None,
    };
    let mut all: Vec<&PrincipalRecord> = dir
        .by_id
        .values()
        .filter(|p| p.kind == kind)
        .filter(|p| filter.as_ref().is_none_or(|f| f.matches(&|a| attribute(p, a))))
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

/// Checks a name or display name (no control or invisible formatting characters, at most 256
/// bytes); the error names the attribute.
pub(super) fn check_label(attribute: &str, value: &str) -> ApiResult<()> {
    match modelgate_core::names::label_problem(value, modelgate_core::names::MAX_PRINCIPAL_NAME_LEN) {
        Some(p) => Err(ApiError::invalid(attribute, p)),
        None => Ok(()),
    }
}

/// Creates a principal; users and service principals also join the built-in `users` group.
pub(super) async fn create(
    app: &AppState,
    kind: &str,
    name: String,
    display: Option<String>,
    active: Option<bool>,
) -> ApiResult<PrincipalRecord> {
    let p = PrincipalRecord {
        id: token::random_digits(16),
        kind: kind.into(),
        display_name: display.unwrap_or_else(|| name.clone()),
        name,
        active: active.unwrap_or(true),
        created_at: now_ms(),
    };
    app.store.create_principal(&p).await?;
    if kind != principal_kind::GROUP
        && let Some(everyone) = app.store.find_principal(principal_kind::GROUP, USERS_GROUP).await?
    {
        app.store.add_member(&everyone.id, &p.id).await?;
    }
    Ok(p)
}

/// Adds `member` to the groups named by `refs` (ids), refusing unknown groups and cycles.
async fn join_groups(app: &AppState, member: &str, refs: &[ScimRef]) -> ApiResult<()> {
    let dir = Directory::load(app).await?;
    for r in refs {
        dir.get(&r.value, principal_kind::GROUP)?;
        if dir.creates_cycle(&r.value, member) {
            return Err(ApiError::invalid(
                "groups",
                format!("adding {member} to group {} would make a group contain itself", r.value),
            ));
        }
        app.store.add_member(&r.value, member).await?;
    }
    Ok(())
}

fn created<T: serde::Serialize>(body: T) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

/// `GET .../Users`
pub async fn list_users(
    State(app): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<ScimList<ScimUser>>> {
    let dir = Directory::load(&app).await?;
    let users = listed(&dir, principal_kind::USER, &q)?.into_iter().map(|p| dir.user(p)).collect();
    Ok(Json(page(users, &q)))
}

/// `POST .../Users`
pub async fn create_user(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiJson(body): ApiJson<ScimUser>,
) -> ApiResult<Response> {
    require_admin(&caller, "create users")?;
    let name = body
        .user_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("userName", "is required"))?;
    check_label("userName", &name)?;
    if let Some(d) = &body.display_name {
        check_label("displayName", d)?;
    }
    // A password that breaks the rule is refused before anything is created.
    let hash = match &body.password {
        Some(pw) => Some(hash_password(&pw.0, "password").await?),
        None => None,
    };
    let p = create(&app, principal_kind::USER, name, body.display_name.clone(), body.active).await?;
    if let Some(hash) = hash {
        app.store.set_password(&p.id, Some(&hash), now_ms()).await?;
    }
    join_groups(&app, &p.id, body.groups.as_deref().unwrap_or_default()).await?;
    app.refresh().await?;
    let dir = Directory::load(&app).await?;
    Ok(created(dir.user(dir.get(&p.id, principal_kind::USER)?)))
}

/// `GET .../Users/{id}`
pub async fn get_user(State(app): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult<Json<ScimUser>> {
    let dir = Directory::load(&app).await?;
    Ok(Json(dir.user(dir.get(&id, principal_kind::USER)?)))
}

/// `GET .../Me`
pub async fn me(State(app): State<AppState>, Extension(caller): Caller) -> ApiResult<Json<ScimUser>> {
    let dir = Directory::load(&app).await?;
    let p =
        dir.by_id.get(&caller.id).ok_or_else(|| ApiError::Unauthenticated("The caller no longer exists.".into()))?;
    Ok(Json(dir.user(p)))
}

/// `GET .../Groups`
pub async fn list_groups(
    State(app): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<ScimList<ScimGroup>>> {
    let dir = Directory::load(&app).await?;
    let groups = listed(&dir, principal_kind::GROUP, &q)?.into_iter().map(|p| dir.group(p)).collect();
    Ok(Json(page(groups, &q)))
}

/// `POST .../Groups`
pub async fn create_group(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiJson(body): ApiJson<ScimGroup>,
) -> ApiResult<Response> {
    require_admin(&caller, "create groups")?;
    let name = body
        .display_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("displayName", "is required"))?;
    check_label("displayName", &name)?;
    let g = create(&app, principal_kind::GROUP, name, None, Some(true)).await?;
    add_members(&app, &g.id, body.members.as_deref().unwrap_or_default()).await?;
    join_groups(&app, &g.id, body.groups.as_deref().unwrap_or_default()).await?;
    app.refresh().await?;
    let dir = Directory::load(&app).await?;
    Ok(created(dir.group(dir.get(&g.id, principal_kind::GROUP)?)))
}

async fn add_members(app: &AppState, group: &str, members: &[ScimRef]) -> ApiResult<()> {
    let dir = Directory::load(app).await?;
    for m in members {
        if !dir.by_id.contains_key(&m.value) {
            return Err(ApiError::NotFound(format!("Principal with id {} does not exist.", m.value)));
        }
        if dir.creates_cycle(group, &m.value) {
            return Err(ApiError::invalid(
                "members",
                format!("adding {} would make group {group} contain itself", m.value),
            ));
        }
        app.store.add_member(group, &m.value).await?;
    }
    Ok(())
}

/// `GET .../Groups/{id}`
pub async fn get_group(State(app): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult<Json<ScimGroup>> {
    let dir = Directory::load(&app).await?;
    Ok(Json(dir.group(dir.get(&id, principal_kind::GROUP)?)))
}

/// `GET .../ServicePrincipals`
pub async fn list_service_principals(
    State(app): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<ScimList<ScimServicePrincipal>>> {
    let dir = Directory::load(&app).await?;
    let sps =
        listed(&dir, principal_kind::SERVICE_PRINCIPAL, &q)?.into_iter().map(|p| dir.service_principal(p)).collect();
    Ok(Json(page(sps, &q)))
}

/// `POST .../ServicePrincipals`
pub async fn create_service_principal(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiJson(body): ApiJson<ScimServicePrincipal>,
) -> ApiResult<Response> {
    require_admin(&caller, "create service principals")?;
    let app_id = body
        .application_id
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    check_label("applicationId", &app_id)?;
    if let Some(d) = &body.display_name {
        check_label("displayName", d)?;
    }
    let sp = create(&app, principal_kind::SERVICE_PRINCIPAL, app_id, body.display_name.clone(), body.active).await?;
    join_groups(&app, &sp.id, body.groups.as_deref().unwrap_or_default()).await?;
    app.refresh().await?;
    let dir = Directory::load(&app).await?;
    Ok(created(dir.service_principal(dir.get(&sp.id, principal_kind::SERVICE_PRINCIPAL)?)))
}

/// `GET .../ServicePrincipals/{id}`
pub async fn get_service_principal(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ScimServicePrincipal>> {
    let dir = Directory::load(&app).await?;
    Ok(Json(dir.service_principal(dir.get(&id, principal_kind::SERVICE_PRINCIPAL)?)))
}

/// The id in a path filter such as `members[value eq "123"]`.
fn path_value(path: &str) -> Option<String> {
    let inner = path.split_once('[')?.1.strip_suffix(']')?;
    let (_, value) = inner.split_once(" eq ")?;
    Some(value.trim().trim_matches('"').to_string())
}

fn refs(value: Option<&Value>) -> ApiResult<Vec<ScimRef>> {
    match value {
        None => Ok(Vec::new()),
        Some(v) => {
            let list = if v.is_array() { v.clone() } else { Value::Array(vec![v.clone()]) };
            serde_json::from_value(list)
                .map_err(|e| ApiError::invalid("Operations[].value", format!("expected [{{\"value\": id}}]: {e}")))
        }
    }
}

async fn patch(app: &AppState, caller: &Principal, id: &str, kind: &str, body: ScimPatch) -> ApiResult<()> {
    require_admin(caller, &format!("change {}", collection(kind).to_lowercase()))?;
    let mut p = Directory::load(app).await?.get(id, kind)?.clone();
    for (i, op) in body.operations.iter().enumerate() {
        let path = op.path.as_deref().unwrap_or_default();
        let base = path.split('[').next().unwrap_or_default();
        match (op.op.to_ascii_lowercase().as_str(), base) {
            ("add", "members") if kind == principal_kind::GROUP => {
                add_members(app, id, &refs(op.value.as_ref())?).await?
            }
            ("remove", "members") if kind == principal_kind::GROUP => {
                let mut ids: Vec<String> = refs(op.value.as_ref())?.into_iter().map(|r| r.value).collect();
                ids.extend(path_value(path));
                for m in ids {
                    app.store.remove_member(id, &m).await?;
                }
            }
            ("add", "groups") => join_groups(app, id, &refs(op.value.as_ref())?).await?,
            ("remove", "groups") => {
                let mut ids: Vec<String> = refs(op.value.as_ref())?.into_iter().map(|r| r.value).collect();
                ids.extend(path_value(path));
                for g in ids {
                    app.store.remove_member(&g, id).await?;
                }
            }
            ("replace" | "add", "active") => {
                let active = op.value.as_ref().and_then(|v| v.as_bool().or_else(|| v.as_str().map(|s| s == "true")));
                let active = active.ok_or_else(|| {
                    ApiError::invalid(&format!("Operations[{i}].value"), "active must be true or false")
                })?;
                if !active && p.id == caller.id {
                    return Err(ApiError::InvalidState("You cannot deactivate yourself.".into()));
                }
                p.active = active;
                app.store.update_principal(&p).await?;
            }
            ("replace" | "add", "displayName") if kind != principal_kind::GROUP => {
                let name = op.value.as_ref().and_then(Value::as_str).ok_or_else(|| {
                    ApiError::invalid(&format!("Operations[{i}].value"), "displayName must be a string")
                })?;
                check_label(&format!("Operations[{i}].value"), name)?;
                p.display_name = name.to_string();
                app.store.update_principal(&p).await?;
            }
            ("replace" | "add", "password") if kind == principal_kind::USER => {
                let field = format!("Operations[{i}].value");
                let pw = op
                    .value
                    .as_ref()
                    .and_then(Value::as_str)
                    .ok_or_else(|| ApiError::invalid(&field, "password must be a string"))?;
                let hash = hash_password(pw, &field).await?;
                app.store.set_password(id, Some(&hash), now_ms()).await?;
            }
            ("remove", "password") if kind == principal_kind::USER => {
                app.store.set_password(id, None, now_ms()).await?;
            }
            (o, _) => {
                return Err(ApiError::invalid(
                    &format!("Operations[{i}]"),
                    format!("'{o}' of '{path}' is not supported"),
                ));
            }
        }
    }
    app.refresh().await
}

/// The hash of a new console password, after checking it against the rule (`field` names it
/// in the error). Hashing is slow by design, so it runs off the async threads.
async fn hash_password(password: &str, field: &str) -> ApiResult<String> {
    modelgate_core::password::check(password).map_err(|why| ApiError::invalid(field, format!("password {why}")))?;
    let password = password.to_string();
    tokio::task::spawn_blocking(move || modelgate_core::password::hash(&password))
        .await
        .map_err(|e| ApiError::Internal(format!("password hashing stopped: {e}")))?
        .map_err(ApiError::Internal)
}

/// `PATCH .../Users/{id}`
pub async fn patch_user(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ScimPatch>,
) -> ApiResult<Json<ScimUser>> {
    patch(&app, &caller, &id, principal_kind::USER, body).await?;
    get_user(State(app), ApiPath(id)).await
}

/// `PATCH .../Groups/{id}`
pub async fn patch_group(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ScimPatch>,
) -> ApiResult<Json<ScimGroup>> {
    patch(&app, &caller, &id, principal_kind::GROUP, body).await?;
    get_group(State(app), ApiPath(id)).await
}

/// `PATCH .../ServicePrincipals/{id}`
pub async fn patch_service_principal(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ScimPatch>,
) -> ApiResult<Json<ScimServicePrincipal>> {
    patch(&app, &caller, &id, principal_kind::SERVICE_PRINCIPAL, body).await?;
    get_service_principal(State(app), ApiPath(id)).await
}

pub(super) async fn delete(app: &AppState, caller: &Principal, id: &str, kind: &str) -> ApiResult<StatusCode> {
    require_admin(caller, &format!("delete {}", collection(kind).to_lowercase()))?;
    let p = Directory::load(app).await?.get(id, kind)?.clone();
    if p.kind == principal_kind::GROUP
        && [ADMINS_GROUP, USERS_GROUP, CUSTOM_BASE_URLS_GROUP, MODEL_RUNNERS_GROUP].contains(&p.name.as_str())
    {
        return Err(ApiError::InvalidState(format!("The built-in {} group cannot be deleted.", p.name)));
    }
    if p.id == caller.id {
        return Err(ApiError::InvalidState("You cannot delete yourself.".into()));
    }
    app.store.delete_principal(id).await?;
    app.refresh().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE .../Users/{id}`: the user's tokens stop working at once.
pub async fn delete_user(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    delete(&app, &caller, &id, principal_kind::USER).await
}

/// `DELETE .../Groups/{id}`
pub async fn delete_group(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    delete(&app, &caller, &id, principal_kind::GROUP).await
}

/// `DELETE .../ServicePrincipals/{id}`
pub async fn delete_service_principal(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    delete(&app, &caller, &id, principal_kind::SERVICE_PRINCIPAL).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(filter: &str, attr: &dyn Fn(&str) -> Option<String>) -> ApiResult<bool> {
        Filter::parse(filter, filterable(principal_kind::USER)).map(|f| f.matches(attr))
    }

    #[test]
    fn filters() {
        let attr = |a: &str| match a {
            "userName" => Some("Alice@Example.com".to_string()),
            "active" => Some("true".to_string()),
            _ => None,
        };
        assert!(matches("userName eq \"alice@example.com\"", &attr).unwrap());
        assert!(matches("username EQ \"alice@example.com\"", &attr).unwrap(), "names and operators ignore case");
        assert!(matches("userName sw \"ali\" and active eq \"true\"", &attr).unwrap());
        assert!(matches("active eq true", &attr).unwrap());
        assert!(!matches("userName co \"bob\"", &attr).unwrap());
        assert!(matches("userName co \"bob\" or userName co \"example\"", &attr).unwrap());
        assert!(matches("userName eq \"a and b or c\"", &|_| Some("a and b or c".into())).unwrap());
        assert!(matches("userName gt \"a\"", &attr).is_err());
        assert_eq!(path_value("members[value eq \"42\"]").as_deref(), Some("42"));
    }

    #[test]
    fn bad_filters_are_errors_not_empty_lists() {
        let attr = |_: &str| None;
        for (f, says) in [
            ("emails eq \"x\"", "cannot be filtered on"),
            ("userName eq \"unclosed", "not closed"),
            ("userName eq", "expected attribute op"),
            ("userName eq \"a\" userName eq \"b\"", "'and' or 'or'"),
            ("(userName eq \"a\")", "grouping"),
        ] {
            let e = matches(f, &attr).unwrap_err().to_string();
            assert!(e.contains(says), "{f}: {e}");
        }
    }
}
