//! The endpoint list and an endpoint's page, with the changes a manager may make from it: stop,
//! start, delete, roll back, tags, permissions and the AI gateway (rate limits, guardrails). Each
//! change goes through the API's own handler, so its checks, audit record and errors are the API's.

use axum::extract::{Form, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use modelgate_wire::permissions::{AccessControlRequest, AccessControlResponse, ObjectPermissions, PermissionsRequest};
use modelgate_wire::{
    AiGatewayConfig, ConfigVersionInfo, EndpointTag, PatchTagsRequest, RollbackRequest, ServingEndpointDetailed,
};
use serde::Deserialize;

use super::{Viewer, api_error, console_page, date, error_page, metrics};
use crate::api;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

/// `?sort=&desc=&tag=key=value` of the endpoint list.
#[derive(Deserialize, Default)]
pub struct ListView {
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    desc: Option<bool>,
    #[serde(default)]
    tag: Option<String>,
}

/// The list's sortable columns: (key, heading).
const COLUMNS: [(&str, &str); 8] = [
    ("name", "Name"),
    ("state", "State"),
    ("task", "Task"),
    ("model", "Provider / model"),
    ("owner", "Owner"),
    ("tags", "Tags"),
    ("last_query", "Last query"),
    ("spend", "Spend this month"),
];

/// `GET /`: the endpoints the principal may view, sortable by any column and filtered by a tag.
pub async fn list_page(State(app): State<AppState>, viewer: Viewer, Query(view): Query<ListView>) -> Response {
    let inv = match api::inventory::inventory(&app, &viewer.principal, 30, 30).await {
        Ok(inv) => inv,
        Err(e) => return error_page(&viewer, "Endpoints", "endpoints", &e),
    };
    let snapshot = app.snapshot.load_full();
    let tags_of = |name: &str| snapshot.endpoints.get(name).map(|e| e.tag_map.clone()).unwrap_or_default();
    let mut rows: Vec<_> = inv.endpoints.iter().map(|e| (e, tags_of(&e.name))).collect();
    // Every tag pair among the endpoints the principal may see, for the tag filter.
    let mut pairs: Vec<String> = rows.iter().flat_map(|(_, t)| t.iter().map(|(k, v)| format!("{k}={v}"))).collect();
    pairs.sort();
    pairs.dedup();
    let tag = view.tag.clone().filter(|t| !t.is_empty());
    if let Some((k, v)) = tag.as_deref().map(|t| t.split_once('=').unwrap_or((t, ""))) {
        rows.retain(|(_, tags)| tags.get(k).is_some_and(|have| v.is_empty() || have == v));
    }
    let sort = view.sort.clone().filter(|s| COLUMNS.iter().any(|(k, _)| k == s)).unwrap_or_else(|| "name".into());
    let desc = view.desc.unwrap_or(false);
    rows.sort_by(|(a, at), (b, bt)| {
        let order = match sort.as_str() {
            "state" => a.state.cmp(&b.state),
            "task" => a.task.cmp(&b.task),
            "model" => (&a.provider, &a.model).cmp(&(&b.provider, &b.model)),
            "owner" => a.owner.cmp(&b.owner),
            "tags" => at.cmp(bt),
            "last_query" => a.last_query.cmp(&b.last_query),
            "spend" => a.spend_this_month_usd.total_cmp(&b.spend_this_month_usd),
            _ => std::cmp::Ordering::Equal,
        };
        let order = order.then_with(|| a.name.cmp(&b.name));
        if desc { order.reverse() } else { order }
    });
    let link = |key: &str| {
        let flip = key == sort && !desc;
        let tag = tag.as_deref().map(|t| format!("&tag={}", urlencoding(t))).unwrap_or_default();
        format!("/?sort={key}&desc={flip}{tag}")
    };
    let content = html! {
        h1 { "Endpoints" }
        @if inv.endpoints.is_empty() {
            div.empty {
                p { "No serving endpoints you may see yet." }
                p { "Create one with " code { "modelgate serving-endpoints create --json @chat.json" } " (see docs/cli.md), or ask an owner for CAN_VIEW." }
            }
        } @else {
            form.filters method="get" action="/" {
                input type="search" data-filter="endpoints" placeholder="Filter by name, model, owner, tag…" aria-label="Filter endpoints";
                label { "Tag " select name="tag" data-autosubmit {
                    option value="" { "any" }
                    @for p in &pairs { option value=(p) selected[tag.as_deref() == Some(p.as_str())] { (p) } }
                } }
                input type="hidden" name="sort" value=(sort);
                input type="hidden" name="desc" value=(desc);
                noscript { button type="submit" { "Apply" } }
            }
            div.table-wrap {
                table #endpoints {
                    thead { tr { @for (key, heading) in COLUMNS {
                        th aria-sort=[(key == sort).then_some(if desc { "descending" } else { "ascending" })] {
                            a href=(link(key)) { (heading) @if key == sort { (if desc { " ↓" } else { " ↑" }) } }
                        }
                    } } }
                    tbody {
                        @for (e, tags) in &rows {
                            tr {
                                td {
                                    a href=(format!("/console/endpoints/{}", e.name)) { (e.name) }
                                    @for f in &e.flags { " " span.flag title=(f.reason) { (f.flag) } }
                                }
                                td class=(if e.state.starts_with("Ready") { "state-ok" } else { "state-bad" }) { (e.state) }
                                td { (e.task.as_deref().unwrap_or("")) }
                                td { (e.provider) " / " (e.model) }
                                td { (e.owner) }
                                td { @for (k, v) in tags { span.tag { (k) "=" (v) } } }
                                td { (e.last_query.map(date).unwrap_or_else(|| "never".into())) }
                                td { (format!("${:.2}", e.spend_this_month_usd)) }
                            }
                        }
                    }
                }
            }
            @if inv.endpoints.iter().any(|e| !e.flags.is_empty()) {
                p.muted { "Flags (hover for the reason) come from the inventory: " code { "modelgate inventory" } " (docs/inventory.md)." }
            }
            @if rows.is_empty() { div.empty { p { "No endpoint has the tag " code { (tag.as_deref().unwrap_or("")) } ". " a href="/" { "Show all" } } } }
        }
    };
    console_page(&viewer, "Endpoints", "endpoints", content)
}

/// Percent-encodes a query value.
fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `?window=1h|1d|7d&entity=NAME&compare=VERSION` of the endpoint page.
#[derive(Deserialize, Default)]
pub struct PageView {
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    entity: Option<String>,
    #[serde(default)]
    compare: Option<i64>,
}

/// `GET /console/endpoints/{name}`: what the API's `get`, `config-versions`, permissions and logs
/// show, with the changes the principal may make.
pub async fn page(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(view): Query<PageView>,
) -> Response {
    let got = api::endpoints::get(State(app.clone()), viewer.caller(), ApiPath(name.clone())).await;
    let e = match got {
        Ok(axum::Json(e)) => e,
        Err(err) => return error_page(&viewer, &name, "endpoints", &err),
    };
    let versions = api::endpoints::config_versions(State(app.clone()), viewer.caller(), ApiPath(name.clone()))
        .await
        .map(|axum::Json(v)| v.config_versions)
        .unwrap_or_default();
    let acl = api::permissions::get(State(app.clone()), viewer.caller(), ApiPath(e.id.clone())).await;
    let entities = metrics::entity_names(&e);
    let mut logs = Vec::new();
    for entity in &entities {
        let path = ApiPath((name.clone(), entity.clone()));
        let text = api::endpoints::logs(State(app.clone()), viewer.caller(), path).await.map(|axum::Json(l)| l.logs);
        logs.push((entity.clone(), text.unwrap_or_default()));
    }
    let manage = e.permission_level.as_deref() == Some("CAN_MANAGE");
    let form = Forms { name: &e.name, csrf: &viewer.session.csrf };
    let window = view.window.as_deref().unwrap_or("1h");
    let content = html! {
        p { a href="/" { "← Endpoints" } }
        (summary(&e, manage, &form))
        (entities_table(&e, &logs))
        div #metrics data-refresh=(format!("/console/endpoints/{}/metrics?window={window}&entity={}", e.name, view.entity.as_deref().map(urlencoding).unwrap_or_default())) {
            (metrics::section(&app, &e.name, &entities, view.entity.as_deref(), window).await)
        }
        (ai_gateway(e.ai_gateway.as_ref(), manage, &form))
        h2 { "Permissions" }
        @match &acl {
            Err(err) => (api_error(err)),
            Ok(axum::Json(acl)) => (permissions(acl, manage, &form)),
        }
        (config_versions(&e, &versions, view.compare, manage, &form))
        @if let Some(log) = versions.first().map(|v| v.build_logs.as_str()).filter(|l| !l.is_empty()) {
            h2 { "Build log of the latest version" }
            pre { (log) }
        }
        @if manage { (danger_zone(&form)) }
    };
    console_page(&viewer, &e.name, "endpoints", content)
}

/// What every form of an endpoint's page needs.
struct Forms<'a> {
    name: &'a str,
    csrf: &'a str,
}

impl Forms<'_> {
    /// A form posting `action` with `fields` (hidden), `inputs` (visible) and a button; asks
    /// `confirm` first when it is not empty.
    fn form(&self, action: &str, fields: &[(&str, String)], inputs: Markup, label: &str, confirm: &str) -> Markup {
        html! {
            form.inline method="post" action=(format!("/console/endpoints/{}/{action}", self.name)) data-confirm=[(!confirm.is_empty()).then_some(confirm)] {
                input type="hidden" name="csrf" value=(self.csrf);
                @for (k, v) in fields { input type="hidden" name=(k) value=(v); }
                (inputs)
                button.quiet type="submit" { (label) }
            }
        }
    }
}

fn summary(e: &ServingEndpointDetailed, manage: bool, f: &Forms<'_>) -> Markup {
    let ready = e.state.ready == modelgate_wire::Ready::Ready;
    html! {
        h1 { (e.name) }
        p {
            span class=(if ready { "state-ok" } else { "state-bad" }) { (if ready { "READY" } else { "NOT_READY" }) }
            " · " (e.state.config_update.as_str()) " · " (e.task.as_deref().unwrap_or("")) " · created by " (e.creator)
            " · your permission: " (e.permission_level.as_deref().unwrap_or("none"))
            @if e.stopped { " · " strong { "stopped" } }
        }
        @if let Some(d) = &e.deprecation {
            div.error { "Deprecated: sunset on " (d.sunset_date) @if let Some(r) = &d.replacement { "; use " (r) } }
        }
        div.tags {
            @if e.tags.is_empty() { span.muted { "No tags. " } }
            @for t in &e.tags {
                span.tag { (t.key) @if let Some(v) = &t.value { "=" (v) }
                    @if manage { (f.form("tags-remove", &[("key", t.key.clone())], html! {}, "×", "")) }
                }
            }
            @if manage {
                (f.form("tags-add", &[], html! {
                    input type="text" name="key" placeholder="key" aria-label="Tag key" required size="10";
                    input type="text" name="value" placeholder="value" aria-label="Tag value" size="12";
                }, "Add tag", ""))
            }
        }
        @if manage {
            div.actions {
                @if e.stopped { (f.form("start", &[], html! {}, "Start", "Start this endpoint?")) }
                @else { (f.form("stop", &[], html! {}, "Stop", "Stop this endpoint? It will refuse queries until started.")) }
            }
        }
    }
}

fn entities_table(e: &ServingEndpointDetailed, logs: &[(String, String)]) -> Markup {
    let routes = e.config.as_ref().and_then(|c| c.traffic_config.as_ref()).and_then(|t| t.routes.as_ref());
    html! {
        h2 { "Served entities" }
        div.table-wrap { table {
            thead { tr { th { "Name" } th { "Provider / model" } th { "Traffic" } th { "State" } } }
            tbody {
                @for s in e.config.iter().flat_map(|c| c.served_entities.iter().flatten()) {
                    @let entity = s.spec.name.clone().unwrap_or_default();
                    @let share = routes.and_then(|r| r.iter().find(|r| r.served_entity_name.as_deref() == Some(entity.as_str())).map(|r| r.traffic_percentage));
                    tr {
                        td { (entity) }
                        td { @if let Some(m) = &s.spec.external_model { (m.provider) " / " (m.name) } @else { "registered model " (s.spec.entity_name.as_deref().unwrap_or("")) " v" (s.spec.entity_version.as_deref().unwrap_or("")) } }
                        td { @if let Some(p) = share { (p) "%" } }
                        td { @if let Some(st) = &s.state { (st.deployment_state_message.as_deref().unwrap_or("")) } }
                    }
                }
            }
        } }
        @for (entity, text) in logs {
            details {
                summary { "Logs of " (entity) }
                @if text.is_empty() { p.muted { "Nothing logged yet." } } @else { pre { (text) } }
            }
        }
    }
}

/// A JSON value as `key: value` lines (nested objects compact), for a readable summary.
fn fields(v: &serde_json::Value) -> Markup {
    html! {
        @if let Some(map) = v.as_object() {
            ul.fields { @for (k, v) in map { @if !v.is_null() { li { code { (k) } ": " (v.as_str().map_or_else(|| v.to_string(), str::to_string)) } } } }
        }
    }
}

/// `on (300 s, shared by every caller)` or `off`.
fn cache_summary(c: Option<&modelgate_wire::CacheConfig>) -> String {
    match c.filter(|c| c.enabled) {
        None => "off".into(),
        Some(c) => format!(
            "on ({} s, {}{})",
            c.ttl_seconds.unwrap_or(crate::policy::cache::DEFAULT_TTL_SECONDS),
            if c.scope.as_deref() == Some("caller") { "per caller" } else { "shared by every caller" },
            if c.cache_sampled == Some(true) { ", sampled answers too" } else { "" }
        ),
    }
}

fn ai_gateway(g: Option<&AiGatewayConfig>, manage: bool, f: &Forms<'_>) -> Markup {
    let json = g.map(|g| serde_json::to_string_pretty(g).unwrap_or_default()).unwrap_or_else(|| "{}".into());
    let value = |x: Option<serde_json::Value>| x.unwrap_or_default();
    html! {
        h2 { "AI gateway" }
        @if g.is_none() { p.muted { "No AI gateway settings: no rate limits, guardrails, usage tracking or inference table." } }
        @if let Some(g) = g {
            h3 { "Rate limits" }
            @match g.rate_limits.as_deref() {
                None | Some([]) => p.muted { "None." },
                Some(limits) => div.table-wrap { table {
                    thead { tr { th { "Key" } th { "Principal" } th { "Calls" } th { "Tokens" } th { "Per" } } }
                    tbody { @for l in limits { tr {
                        td { (l.key.as_deref().unwrap_or("endpoint")) }
                        td { (l.principal.as_deref().unwrap_or("")) }
                        td { (l.calls.map(|c| c.to_string()).unwrap_or_default()) }
                        td { (l.tokens.map(|c| c.to_string()).unwrap_or_default()) }
                        td { (l.renewal_period) }
                    } } }
                } },
            }
            h3 { "Guardrails" }
            @match &g.guardrails {
                None => p.muted { "None." },
                Some(gr) => {
                    p { strong { "Input: " } @if gr.input.is_none() { span.muted { "none" } } }
                    (fields(&value(gr.input.as_ref().and_then(|i| serde_json::to_value(i).ok()))))
                    p { strong { "Output: " } @if gr.output.is_none() { span.muted { "none" } } }
                    (fields(&value(gr.output.as_ref().and_then(|o| serde_json::to_value(o).ok()))))
                },
            }
            h3 { "Usage tracking, inference table, fallbacks, response cache" }
            p {
                "Usage tracking: " (if g.usage_tracking_config.as_ref().and_then(|u| u.enabled).unwrap_or(false) { "on" } else { "off" })
                " · inference table: " (if g.inference_table_config.as_ref().and_then(|i| i.enabled).unwrap_or(false) { "on" } else { "off" })
                " · fallbacks: " (if g.fallback_config.as_ref().is_some_and(|x| x.enabled) { "on" } else { "off" })
                " · response cache: " (cache_summary(g.cache_config.as_ref()))
            }
        }
        @if manage {
            details {
                summary { "Edit the AI gateway as JSON" }
                p.muted { "This replaces the whole block, as " code { "PUT .../ai-gateway" } " does; each change is kept in the settings history and can be restored." }
                form method="post" action=(format!("/console/endpoints/{}/ai-gateway", f.name)) {
                    input type="hidden" name="csrf" value=(f.csrf);
                    textarea name="json" rows="14" aria-label="AI gateway JSON" spellcheck="false" { (json) }
                    p { button type="submit" { "Save" } }
                }
            }
        }
    }
}

fn permissions(acl: &ObjectPermissions, manage: bool, f: &Forms<'_>) -> Markup {
    html! {
        div.table-wrap { table {
            thead { tr { th { "Principal" } th { "Kind" } th { "Level" } th { "Granted" } th {} } }
            tbody { @for a in &acl.access_control_list {
                @let (kind, who) = principal_of(a);
                @for p in &a.all_permissions { tr {
                    td { (who) }
                    td { (kind.replace('_', " ").trim_end_matches(" name")) }
                    td { (p.permission_level) }
                    td { @if p.inherited { "inherited from " (p.inherited_from_object.as_ref().map(|o| o.join(", ")).unwrap_or_default()) } @else { "directly" } }
                    td { @if manage && !p.inherited {
                        (f.form("revoke", &[("kind", kind.to_string()), ("principal", who.to_string())], html! {}, "Revoke", &format!("Revoke {}'s {}?", who, p.permission_level)))
                    } }
                } }
            } }
        } }
        @if manage {
            (f.form("grant", &[], html! {
                label { "Grant " select name="level" { @for l in ["CAN_VIEW", "CAN_QUERY", "CAN_MANAGE"] { option { (l) } } } }
                " to "
                select name="kind" aria-label="Kind of principal" {
                    option value="user_name" { "user" } option value="group_name" { "group" } option value="service_principal_name" { "service principal" }
                }
                input type="text" name="principal" placeholder="user name, group or application id" aria-label="Principal" required size="28";
            }, "Grant", ""))
        }
    }
}

/// `(kind, name)` of an access control entry: the field it is named by, and the name.
fn principal_of(a: &AccessControlResponse) -> (&'static str, &str) {
    match (&a.user_name, &a.group_name, &a.service_principal_name) {
        (Some(u), _, _) => ("user_name", u),
        (_, Some(g), _) => ("group_name", g),
        (_, _, Some(s)) => ("service_principal_name", s),
        _ => ("user_name", ""),
    }
}

fn config_versions(
    e: &ServingEndpointDetailed,
    versions: &[ConfigVersionInfo],
    compare: Option<i64>,
    manage: bool,
    f: &Forms<'_>,
) -> Markup {
    let active = e.config.as_ref().map(|c| c.config_version);
    let json = |v: &ConfigVersionInfo| serde_json::to_value(&v.config).unwrap_or_default();
    let active_config = versions.iter().find(|v| Some(v.config_version) == active).map(json);
    let compared = compare.and_then(|c| versions.iter().find(|v| v.config_version == c));
    html! {
        h2 { "Config versions" }
        div.table-wrap { table {
            thead { tr { th { "Version" } th { "Status" } th { "By" } th { "Created" } th { "Changes from the active version" } th {} } }
            tbody {
                @for v in versions {
                    @let changes = active_config.as_ref().map(|a| {
                        let mut out = Vec::new();
                        modelgate_core::jsondiff::diff("", a, &json(v), &mut out);
                        out
                    }).unwrap_or_default();
                    tr {
                        td { (v.config_version) }
                        td { (v.status) }
                        td { (v.creator) }
                        td { (date(v.creation_timestamp)) }
                        td {
                            @if Some(v.config_version) == active { span.muted { "active" } }
                            @else if changes.is_empty() { span.muted { "same as active" } }
                            @else {
                                ul.diff { @for c in &changes { li { code { (c) } } } }
                                a href=(format!("/console/endpoints/{}?compare={}#compare", e.name, v.config_version)) { "Side by side" }
                            }
                        }
                        td { @if manage && Some(v.config_version) != active && v.status != "FAILED" {
                            (f.form("rollback", &[("config_version", v.config_version.to_string())], html! {}, "Roll back to this",
                                &format!("Deploy version {} again as a new version?", v.config_version)))
                        } }
                    }
                }
            }
        } }
        @if let (Some(old), Some(new)) = (versions.iter().find(|v| Some(v.config_version) == active), compared) {
            h3 #compare { "Version " (old.config_version) " (active) and version " (new.config_version) }
            (side_by_side(&pretty(&old.config), &pretty(&new.config)))
        }
    }
}

fn pretty<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Two texts line by line, side by side, with what was removed and added marked.
fn side_by_side(old: &str, new: &str) -> Markup {
    use similar::DiffOp;
    let diff = similar::TextDiff::from_lines(old, new);
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let mut rows: Vec<(Option<&str>, Option<&str>, &str)> = Vec::new();
    for op in diff.ops() {
        match *op {
            DiffOp::Equal { old_index, new_index, len } => {
                rows.extend((0..len).map(|i| (a.get(old_index + i).copied(), b.get(new_index + i).copied(), "same")));
            }
            DiffOp::Delete { old_index, old_len, .. } => {
                rows.extend((0..old_len).map(|i| (a.get(old_index + i).copied(), None, "changed")));
            }
            DiffOp::Insert { new_index, new_len, .. } => {
                rows.extend((0..new_len).map(|i| (None, b.get(new_index + i).copied(), "changed")));
            }
            DiffOp::Replace { old_index, old_len, new_index, new_len } => {
                rows.extend((0..old_len.max(new_len)).map(|i| {
                    (
                        a.get(old_index + i).copied().filter(|_| i < old_len),
                        b.get(new_index + i).copied().filter(|_| i < new_len),
                        "changed",
                    )
                }));
            }
        }
    }
    html! {
        div.table-wrap { table.side-by-side {
            tbody { @for (l, r, class) in &rows { tr class=(class) {
                td.old { @if let Some(l) = l { code { (l) } } }
                td.new { @if let Some(r) = r { code { (r) } } }
            } } }
        } }
    }
}

fn danger_zone(f: &Forms<'_>) -> Markup {
    html! {
        h2 { "Delete" }
        form.delete method="post" action=(format!("/console/endpoints/{}/delete", f.name)) {
            input type="hidden" name="csrf" value=(f.csrf);
            p { "Deleting removes the endpoint, its config versions and its grants; its usage records stay. Type its name to confirm." }
            input type="text" name="confirm" aria-label="The endpoint's name, to confirm" autocomplete="off" required size="24";
            " " button.danger type="submit" { "Delete endpoint" }
        }
    }
}

/// Every field a change from the endpoint page may carry; each action reads its own.
#[derive(Deserialize)]
pub struct ActionForm {
    csrf: String,
    #[serde(default)]
    config_version: Option<i64>,
    #[serde(default)]
    confirm: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    principal: Option<String>,
    #[serde(default)]
    level: Option<String>,
    #[serde(default)]
    json: Option<String>,
}

/// `POST /console/endpoints/{name}/{action}`: a change, through the same handler (and
/// permission checks) as the API; back to the endpoint's page, or the API's error as it is.
pub async fn action(
    State(app): State<AppState>,
    viewer: Viewer,
    Path((name, action)): Path<(String, String)>,
    headers: HeaderMap,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Some(refused) = viewer.refusal(&headers, &f.csrf) {
        return refused;
    }
    let mut resp = match change(&app, &viewer, &name, &action, f).await {
        Ok(to) => Redirect::to(&to).into_response(),
        Err(e) => error_page(&viewer, &name, "endpoints", &e),
    };
    // The audit log records who did it, as for the API.
    resp.extensions_mut().insert(viewer.principal.clone());
    resp
}

/// Makes the change; returns where the browser goes next.
async fn change(app: &AppState, viewer: &Viewer, name: &str, action: &str, f: ActionForm) -> Result<String, ApiError> {
    let st = || State(app.clone());
    let path = || ApiPath(name.to_string());
    let missing = |field: &str| ApiError::invalid(field, format!("the form has no '{field}'"));
    let back = format!("/console/endpoints/{name}");
    match action {
        "stop" => api::endpoints::stop(st(), viewer.caller(), path()).await.map(drop)?,
        "start" => api::endpoints::start(st(), viewer.caller(), path()).await.map(drop)?,
        "rollback" => {
            let body =
                ApiJson(RollbackRequest { config_version: f.config_version.ok_or_else(|| missing("config_version"))? });
            api::endpoints::rollback(st(), viewer.caller(), path(), body).await.map(drop)?
        }
        "delete" => {
            if f.confirm.as_deref().map(str::trim) != Some(name) {
                return Err(ApiError::invalid("confirm", format!("type the endpoint's name, '{name}', to delete it")));
            }
            api::endpoints::delete(st(), viewer.caller(), path()).await.map(drop)?;
            return Ok("/".into());
        }
        "tags-add" => {
            let key = f.key.filter(|k| !k.trim().is_empty()).ok_or_else(|| missing("key"))?;
            let value = f.value.filter(|v| !v.is_empty());
            let body =
                PatchTagsRequest { add_tags: vec![EndpointTag { key: key.trim().into(), value }], delete_tags: vec![] };
            api::endpoints::patch_tags(st(), viewer.caller(), path(), ApiJson(body)).await.map(drop)?;
        }
        "tags-remove" => {
            let body = PatchTagsRequest { add_tags: vec![], delete_tags: vec![f.key.ok_or_else(|| missing("key"))?] };
            api::endpoints::patch_tags(st(), viewer.caller(), path(), ApiJson(body)).await.map(drop)?;
        }
        "grant" | "revoke" => {
            let id = api::endpoints::get(st(), viewer.caller(), path()).await?.0.id;
            let who = f
                .principal
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .ok_or_else(|| missing("principal"))?;
            let kind = f.kind.as_deref().unwrap_or("user_name");
            if action == "grant" {
                let level = f.level.ok_or_else(|| missing("level"))?;
                let body = PermissionsRequest { access_control_list: vec![grant(kind, &who, &level)] };
                api::permissions::update(st(), viewer.caller(), ApiPath(id), ApiJson(body)).await.map(drop)?;
            } else {
                // The API removes a grant by replacing the direct grants: every one but this.
                let acl = api::permissions::get(st(), viewer.caller(), ApiPath(id.clone())).await?.0;
                let kept = acl
                    .access_control_list
                    .iter()
                    .filter(|a| principal_of(a) != (kind, who.as_str()))
                    .flat_map(|a| {
                        let (kind, name) = principal_of(a);
                        a.all_permissions
                            .iter()
                            .filter(|p| !p.inherited)
                            .map(move |p| grant(kind, name, &p.permission_level))
                    })
                    .collect();
                let body = PermissionsRequest { access_control_list: kept };
                api::permissions::set(st(), viewer.caller(), ApiPath(id), ApiJson(body)).await.map(drop)?;
            }
        }
        "ai-gateway" => {
            let text = f.json.ok_or_else(|| missing("json"))?;
            let body: AiGatewayConfig = serde_json::from_str(&text)
                .map_err(|e| ApiError::invalid("ai_gateway", format!("the AI gateway JSON does not parse: {e}")))?;
            api::endpoints::put_ai_gateway(st(), viewer.caller(), path(), ApiJson(body)).await.map(drop)?;
        }
        other => return Err(ApiError::NoRoute(format!("The console has no action '{other}'."))),
    }
    Ok(back)
}

/// A grant of `level` to the principal `who`, named by `kind` (`user_name`, `group_name` or
/// `service_principal_name`).
fn grant(kind: &str, who: &str, level: &str) -> AccessControlRequest {
    let mut a = AccessControlRequest { permission_level: level.into(), ..Default::default() };
    match kind {
        "group_name" => a.group_name = Some(who.into()),
        "service_principal_name" => a.service_principal_name = Some(who.into()),
        _ => a.user_name = Some(who.into()),
    }
    a
}
