//! The web console, served by the same binary at `/`: server-rendered pages (no build step, a
//! few kilobytes of CSS and JavaScript embedded in the binary) that show what the API shows,
//! exactly as the signed-in principal may see it. Sign-in takes a personal access token; the
//! session lives in an `HttpOnly`, `SameSite=Strict` cookie and every form carries a CSRF token.

mod charts;
mod session;

use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use maud::{DOCTYPE, Markup, html};
use modelgate_core::{now_ms, token};
use serde::Deserialize;

use crate::snapshot::Principal;
use crate::state::AppState;
use session::{PRE_SESSION_COOKIE, SESSION_COOKIE, Session, Sessions, cookie, same_origin, same_secret, set_cookie};

const CSS: &str = include_str!("../../console/console.css");
const JS: &str = include_str!("../../console/console.js");

/// The console's routes; they sit outside the API's bearer-token check and use the session.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(endpoints_page))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/endpoints/{name}", get(endpoint_page))
        .route("/console/playground", get(playground_page))
        .route("/console/operations", get(operations_page))
        .route("/console/usage", get(usage_page))
        .route("/console/playground/{name}", post(playground_query))
        .route("/console/endpoints/{name}/{action}", post(endpoint_action))
        .route("/console/assets/{file}", get(asset))
        .layer(Extension(Arc::new(Sessions::default())))
}

type SessionsExt = Extension<Arc<Sessions>>;

/// The signed-in principal, its session id and session; `None` sends the browser to sign in.
fn signed_in(app: &AppState, sessions: &Sessions, headers: &HeaderMap) -> Option<(Arc<Principal>, String, Session)> {
    let id = cookie(headers, SESSION_COOKIE)?;
    let session = sessions.get(&id)?;
    let principal = app.snapshot.load().tokens.get(&session.token_hash).cloned();
    match principal {
        Some(p) if p.expires_at.is_none_or(|t| t > now_ms()) => Some((p, id, session)),
        _ => {
            // The token was revoked or expired, or its principal deactivated: the session ends.
            sessions.end(&id);
            None
        }
    }
}

fn to_sign_in() -> Response {
    Redirect::to("/console/sign-in").into_response()
}

/// The answer to a form that failed its CSRF or origin check.
fn refused_form(title: &str, who: Option<(&Principal, &Session)>) -> Response {
    let message = "This form expired or came from another site; open the page again.";
    page(StatusCode::FORBIDDEN, layout(title, who, "", html! { div.error role="alert" { (message) } }))
}

/// `resp` setting the cookie `name` (`max_age` 0 removes it).
fn with_cookie(mut resp: Response, name: &str, value: &str, max_age_secs: Option<i64>) -> Response {
    if let Ok(v) = HeaderValue::from_str(&set_cookie(name, value, max_age_secs, false)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// Headers every page carries: no framing, no sniffing, scripts and styles from here only.
fn page(status: StatusCode, body: Markup) -> Response {
    let mut resp = (status, body.into_string()).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn layout(title: &str, who: Option<(&Principal, &Session)>, current: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · modelgate" }
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body {
                header {
                    a.brand href="/" { "modelgate" }
                    @if let Some((p, s)) = who {
                        nav aria-label="Sections" {
                            a href="/" aria-current=[(current == "endpoints").then_some("page")] { "Endpoints" }
                            a href="/console/playground" aria-current=[(current == "playground").then_some("page")] { "Playground" }
                            a href="/console/usage" aria-current=[(current == "usage").then_some("page")] { "Cost and usage" }
                            a href="/console/operations" aria-current=[(current == "operations").then_some("page")] { "Operations" }
                        }
                        form method="post" action="/console/sign-out" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            span.muted { (p.user_name) " " }
                            button.quiet type="submit" { "Sign out" }
                        }
                    }
                }
                main { (content) }
                script src="/console/assets/console.js" defer {}
            }
        }
    }
}

/// `GET /`: the endpoints the principal may view.
async fn endpoints_page(State(app): State<AppState>, Extension(sessions): SessionsExt, headers: HeaderMap) -> Response {
    let Some((principal, _, session)) = signed_in(&app, &sessions, &headers) else { return to_sign_in() };
    let content = match crate::api::inventory::inventory(&app, &principal, 30, 30).await {
        Err(e) => html! { div.error role="alert" { (e.to_string()) } },
        Ok(inv) if inv.endpoints.is_empty() => html! {
            h1 { "Endpoints" }
            div.empty {
                p { "No serving endpoints you may see yet." }
                p { "Create one with " code { "modelgate serving-endpoints create --json @chat.json" } " (see docs/cli.md), or ask an owner for access." }
            }
        },
        Ok(inv) => html! {
            h1 { "Endpoints" }
            p { input type="search" data-filter="endpoints" placeholder="Filter by name, model, owner, tag…" aria-label="Filter endpoints"; }
            div.table-wrap {
                table #endpoints {
                    thead { tr { th { "Name" } th { "State" } th { "Task" } th { "Provider / model" } th { "Owner" } th { "Team" } th { "Last query" } th { "Spend this month" } } }
                    tbody {
                        @for e in &inv.endpoints {
                            tr {
                                td { a href=(format!("/console/endpoints/{}", e.name)) { (e.name) } }
                                td class=(if e.state.starts_with("Ready") { "state-ok" } else { "state-bad" }) { (e.state) }
                                td { (e.task.as_deref().unwrap_or("")) }
                                td { (e.provider) " / " (e.model) }
                                td { (e.owner) }
                                td { (e.team.as_deref().unwrap_or("")) }
                                td { (e.last_query.map(date).unwrap_or_else(|| "never".into())) }
                                td { (format!("${:.2}", e.spend_this_month_usd)) }
                            }
                        }
                    }
                }
            }
        },
    };
    page(StatusCode::OK, layout("Endpoints", Some((&principal, &session)), "endpoints", content))
}

fn date(ms: i64) -> String {
    let t =
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64))
            .to_string();
    t.replace('T', " ").trim_end_matches('Z').to_string()
}

fn sign_in_form(csrf: &str, error: Option<&str>) -> Markup {
    html! {
        form.sign-in method="post" action="/console/sign-in" {
            h1 { "Sign in" }
            @if let Some(e) = error { div.error role="alert" { (e) } }
            label for="token" { "Personal access token" }
            input #token type="password" name="token" autocomplete="off" required autofocus;
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" { "Sign in" }
            p.muted { "Create a token with " code { "modelgate tokens create" } "; the first admin token is printed when the server first starts." }
        }
    }
}

/// `GET /console/sign-in`: the form, and the cookie its CSRF token is checked against.
async fn sign_in_page(headers: HeaderMap) -> Response {
    let csrf = cookie(&headers, PRE_SESSION_COOKIE).filter(|c| c.len() == 48).unwrap_or_else(|| token::random_hex(24));
    let resp = page(StatusCode::OK, layout("Sign in", None, "", sign_in_form(&csrf, None)));
    with_cookie(resp, PRE_SESSION_COOKIE, &csrf, Some(3600))
}

/// The sign-in form.
#[derive(Deserialize)]
struct SignIn {
    token: String,
    csrf: String,
}

/// `POST /console/sign-in`.
async fn sign_in(
    State(app): State<AppState>,
    Extension(sessions): SessionsExt,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let expected = cookie(&headers, PRE_SESSION_COOKIE).unwrap_or_default();
    if !same_origin(&headers) || expected.is_empty() || !same_secret(&expected, &form.csrf) {
        return refused_form("Sign in", None);
    }
    let hash = token::hash(form.token.trim());
    let valid = app.snapshot.load().tokens.get(&hash).is_some_and(|p| p.expires_at.is_none_or(|t| t > now_ms()));
    if !valid {
        let body =
            layout("Sign in", None, "", sign_in_form(&expected, Some("That token is not valid (or has expired).")));
        return page(StatusCode::UNAUTHORIZED, body);
    }
    let (id, _) = sessions.start(hash);
    with_cookie(Redirect::to("/").into_response(), SESSION_COOKIE, &id, None)
}

/// A form that only carries the CSRF token.
#[derive(Deserialize)]
struct Csrf {
    csrf: String,
}

/// `POST /console/sign-out`.
async fn sign_out(
    State(app): State<AppState>,
    Extension(sessions): SessionsExt,
    headers: HeaderMap,
    Form(form): Form<Csrf>,
) -> Response {
    let Some((_, id, session)) = signed_in(&app, &sessions, &headers) else { return to_sign_in() };
    if !same_origin(&headers) || !same_secret(&session.csrf, &form.csrf) {
        return refused_form("Sign out", None);
    }
    sessions.end(&id);
    with_cookie(Redirect::to("/console/sign-in").into_response(), SESSION_COOKIE, "", Some(0))
}

/// `GET /console/assets/{file}`: the embedded stylesheet and script.
async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

/// An API answer as a page: what it says, or the API's error as it is.
fn api_error(e: &crate::error::ApiError) -> Markup {
    html! { div.error role="alert" { (e.status_and_code().1) ": " (e.to_string()) } }
}

/// `GET /console/endpoints/{name}`: what the API's `get` and `config-versions` show, with the
/// actions the principal may take.
/// `?window=1h|1d|7d` of the endpoint page's charts.
#[derive(Deserialize, Default)]
struct Window {
    #[serde(default)]
    window: Option<String>,
}

/// The charts of an endpoint's traffic over a window, from its usage records.
async fn metrics(app: &AppState, name: &str, window: &str) -> Markup {
    let (span_ms, buckets, label): (i64, i64, &str) = match window {
        "1d" => (86_400_000, 48, "last day"),
        "7d" => (7 * 86_400_000, 56, "last 7 days"),
        _ => (3_600_000, 60, "last hour"),
    };
    let now = now_ms();
    app.usage.flush().await;
    let points = match app.usage.db.timeline(name, now - span_ms, now, buckets).await {
        Ok(p) => p,
        Err(e) => return html! { div.error { (e.to_string()) } },
    };
    let labels: Vec<String> = points.iter().map(|p| date(p.start)).collect();
    let per_min = |count: i64| count as f64 * 60_000.0 / (span_ms / buckets) as f64;
    let series =
        |values: Vec<Option<f64>>, name: &'static str, colour: &'static str| charts::Series { name, values, colour };
    let total: i64 = points.iter().map(|p| p.requests).sum();
    html! {
        h2 { "Metrics" }
        p {
            @for (w, text) in [("1h", "1 hour"), ("1d", "1 day"), ("7d", "7 days")] {
                a href=(format!("/console/endpoints/{name}?window={w}")) aria-current=[(w == window || (window.is_empty() && w == "1h")).then_some("page")] { (text) } " "
            }
            span.muted { (total) " queries in the " (label) }
        }
        div.charts {
            (charts::line_chart("Queries per minute", "/min", &labels, &[
                series(points.iter().map(|p| Some(per_min(p.requests))).collect(), "all", "#2457c5"),
                series(points.iter().map(|p| Some(per_min(p.errors))).collect(), "failed", "#b42318"),
            ]))
            (charts::line_chart("Latency", "ms", &labels, &[
                series(points.iter().map(|p| p.p50_ms).collect(), "p50", "#067647"),
                series(points.iter().map(|p| p.p95_ms).collect(), "p95", "#b54708"),
                series(points.iter().map(|p| p.p99_ms).collect(), "p99", "#b42318"),
            ]))
            (charts::line_chart("Tokens and cost", "tokens", &labels, &[
                series(points.iter().map(|p| Some(p.tokens as f64)).collect(), "tokens", "#5b6475"),
            ]))
        }
    }
}

async fn endpoint_page(
    State(app): State<AppState>,
    Extension(sessions): SessionsExt,
    Path(name): Path<String>,
    axum::extract::Query(window): axum::extract::Query<Window>,
    headers: HeaderMap,
) -> Response {
    use crate::extract::ApiPath;
    let Some((principal, _, session)) = signed_in(&app, &sessions, &headers) else { return to_sign_in() };
    let who = Some((principal.as_ref(), &session));
    let got = crate::api::endpoints::get(State(app.clone()), Extension(principal.clone()), ApiPath(name.clone())).await;
    let e = match got {
        Ok(axum::Json(e)) => e,
        Err(err) => {
            let status = err.status_and_code().0;
            return page(status, layout(&name, who, "endpoints", api_error(&err)));
        }
    };
    let versions =
        crate::api::endpoints::config_versions(State(app.clone()), Extension(principal.clone()), ApiPath(name.clone()))
            .await
            .map(|axum::Json(v)| v.config_versions)
            .unwrap_or_default();
    let manage = e.permission_level.as_deref() == Some("CAN_MANAGE");
    let active = e.config.as_ref().map(|c| c.config_version);
    let active_config = versions
        .iter()
        .find(|v| Some(v.config_version) == active)
        .map(|v| serde_json::to_value(&v.config).unwrap_or_default());
    let csrf = &session.csrf;
    let action = |what: &str, label: &str, confirm: &str, version: Option<i64>| {
        html! {
            form.inline method="post" action=(format!("/console/endpoints/{name}/{what}")) data-confirm=(confirm) {
                input type="hidden" name="csrf" value=(csrf);
                @if let Some(v) = version { input type="hidden" name="config_version" value=(v); }
                button.quiet type="submit" { (label) }
            }
        }
    };
    let content = html! {
        p { a href="/" { "← Endpoints" } }
        h1 { (e.name) }
        p {
            @let ready = e.state.ready == modelgate_wire::Ready::Ready;
            span class=(if ready { "state-ok" } else { "state-bad" }) { (if ready { "READY" } else { "NOT_READY" }) }
            " · " (e.state.config_update.as_str()) " · " (e.task.as_deref().unwrap_or("")) " · created by " (e.creator)
            @if e.stopped { " · " strong { "stopped" } }
        }
        @if !e.tags.is_empty() {
            p { @for t in &e.tags { span.tag { (t.key) @if let Some(v) = &t.value { "=" (v) } } } }
        }
        @if let Some(d) = &e.deprecation {
            div.error { "Deprecated: sunset on " (d.sunset_date) @if let Some(r) = &d.replacement { "; use " (r) } }
        }
        @if manage {
            p.actions {
                @if e.stopped { (action("start", "Start", "Start this endpoint?", None)) }
                @else { (action("stop", "Stop", "Stop this endpoint? It will refuse queries until started.", None)) }
            }
        }
        h2 { "Served entities" }
        div.table-wrap { table {
            thead { tr { th { "Name" } th { "Provider / model" } th { "Traffic" } th { "State" } } }
            tbody {
                @for s in e.config.iter().flat_map(|c| c.served_entities.iter().flatten()) {
                    @let entity = s.spec.name.clone().unwrap_or_default();
                    @let share = e.config.as_ref().and_then(|c| c.traffic_config.as_ref()).and_then(|t| t.routes.as_ref())
                        .and_then(|r| r.iter().find(|r| r.served_entity_name.as_deref() == Some(entity.as_str())).map(|r| r.traffic_percentage));
                    tr {
                        td { (entity) }
                        td { @if let Some(m) = &s.spec.external_model { (m.provider) " / " (m.name) } }
                        td { @if let Some(p) = share { (p) "%" } }
                        td { @if let Some(st) = &s.state { (st.deployment_state_message.as_deref().unwrap_or("")) } }
                    }
                }
            }
        } }
        (metrics(&app, &e.name, window.window.as_deref().unwrap_or("")).await)
        @if let Some(g) = &e.ai_gateway {
            h2 { "AI gateway" }
            pre { (serde_json::to_string_pretty(g).unwrap_or_default()) }
        }
        h2 { "Config versions" }
        div.table-wrap { table {
            thead { tr { th { "Version" } th { "Status" } th { "By" } th { "Created" } th { "Changes from the active version" } th {} } }
            tbody {
                @for v in &versions {
                    @let changes = active_config.as_ref().map(|a| {
                        let mut out = Vec::new();
                        modelgate_core::jsondiff::diff("", a, &serde_json::to_value(&v.config).unwrap_or_default(), &mut out);
                        out
                    }).unwrap_or_default();
                    tr {
                        td { (v.config_version) }
                        td { (v.status) }
                        td { (v.creator) }
                        td { (date(v.creation_timestamp)) }
                        td { @if Some(v.config_version) == active { span.muted { "active" } } @else if changes.is_empty() { span.muted { "same as active" } } @else { ul.diff { @for c in &changes { li { code { (c) } } } } } }
                        td { @if manage && Some(v.config_version) != active && v.status != "FAILED" {
                            (action("rollback", "Roll back to this", &format!("Deploy version {} again as a new version?", v.config_version), Some(v.config_version)))
                        } }
                    }
                }
            }
        } }
        @if let Some(log) = versions.first().map(|v| v.build_logs.as_str()).filter(|l| !l.is_empty()) {
            h2 { "Build log of the latest version" }
            pre { (log) }
        }
    };
    page(StatusCode::OK, layout(&e.name, who, "endpoints", content))
}

/// A console action's form.
#[derive(Deserialize)]
struct ActionForm {
    csrf: String,
    #[serde(default)]
    config_version: Option<i64>,
}

/// `POST /console/endpoints/{name}/{action}`: `stop`, `start` or `rollback`, through the same
/// handlers (and permission checks) as the API; back to the endpoint's page, or the API's error.
async fn endpoint_action(
    State(app): State<AppState>,
    Extension(sessions): SessionsExt,
    Path((name, action)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    use crate::extract::{ApiJson, ApiPath};
    let Some((principal, _, session)) = signed_in(&app, &sessions, &headers) else { return to_sign_in() };
    let who = Some((principal.as_ref(), &session));
    if !same_origin(&headers) || !same_secret(&session.csrf, &form.csrf) {
        return refused_form(&name, who);
    }
    let (st, ext, path) = (State(app.clone()), Extension(principal.clone()), ApiPath(name.clone()));
    let done = match (action.as_str(), form.config_version) {
        ("stop", _) => crate::api::endpoints::stop(st, ext, path).await.map(|_| ()),
        ("start", _) => crate::api::endpoints::start(st, ext, path).await.map(|_| ()),
        ("rollback", Some(v)) => {
            let body = ApiJson(modelgate_wire::RollbackRequest { config_version: v });
            crate::api::endpoints::rollback(st, ext, path, body).await.map(|_| ())
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut resp = match done {
        Ok(()) => Redirect::to(&format!("/console/endpoints/{name}")).into_response(),
        Err(e) => page(e.status_and_code().0, layout(&name, who, "endpoints", api_error(&e))),
    };
    // The audit log records who did it, as for the API.
    resp.extensions_mut().insert(principal);
    resp
}

/// `GET /console/playground`: chat with an endpoint the principal may query, streamed, with the
/// same request as curl and Python to copy.
async fn playground_page(
    State(app): State<AppState>,
    Extension(sessions): SessionsExt,
    headers: HeaderMap,
) -> Response {
    let Some((principal, _, session)) = signed_in(&app, &sessions, &headers) else { return to_sign_in() };
    let snapshot = app.snapshot.load_full();
    let mut names: Vec<&String> = snapshot
        .endpoints
        .iter()
        .filter(|(_, ep)| ep.task.as_deref() == Some("llm/v1/chat"))
        .filter(|(_, ep)| {
            crate::access::level_of(&principal, ep).is_some_and(|l| l >= modelgate_core::permission::Level::CanQuery)
        })
        .map(|(n, _)| n)
        .collect();
    names.sort();
    let content = html! {
        h1 { "Playground" }
        @if names.is_empty() {
            div.empty { p { "No chat endpoint you may query. Ask an endpoint's owner for CAN_QUERY, or create one." } }
        } @else {
            form #playground data-csrf=(session.csrf) {
                p {
                    label for="endpoint" { "Endpoint " }
                    select #endpoint name="endpoint" { @for n in &names { option value=(n) { (n) } } }
                }
                p { label for="message" { "Message" } textarea #message name="message" rows="4" required { "Hello!" } }
                p { button type="submit" { "Send (streamed)" } }
            }
            h2 { "Answer" }
            pre #answer aria-live="polite" {}
            h2 { "The same request" }
            p.muted { "Replace $MODELGATE_TOKEN with a token of yours." }
            pre #code-curl {}
            pre #code-openai {}
            pre #code-sdk {}
        }
    };
    page(StatusCode::OK, layout("Playground", Some((&principal, &session)), "playground", content))
}

/// `POST /console/playground/{name}`: a query from the playground, with the session's CSRF token
/// in `x-csrf-token`; it runs through the data plane exactly as an API query of this principal.
async fn playground_query(
    State(app): State<AppState>,
    Extension(sessions): SessionsExt,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some((principal, _, session)) = signed_in(&app, &sessions, &headers) else {
        return (StatusCode::UNAUTHORIZED, "sign in again").into_response();
    };
    let token = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !same_origin(&headers) || !same_secret(&session.csrf, token) {
        return (StatusCode::FORBIDDEN, "this request came from another site").into_response();
    }
    crate::gateway::handlers::invocations(
        State(app),
        Extension(principal),
        crate::extract::ApiPath(name),
        crate::extract::RawBody(body),
    )
    .await
}

/// `GET /console/operations`: alerts firing and the audit log (admins), and the secret scopes
/// with the names of the keys the principal may read (never a value).
async fn operations_page(
    State(app): State<AppState>,
    Extension(sessions): SessionsExt,
    headers: HeaderMap,
) -> Response {
    use crate::extract::ApiQuery;
    let Some((principal, _, session)) = signed_in(&app, &sessions, &headers) else { return to_sign_in() };
    let alerts = crate::api::alerts::list_alerts(State(app.clone()), Extension(principal.clone())).await;
    let audit = crate::api::audit::list(
        State(app.clone()),
        Extension(principal.clone()),
        ApiQuery(crate::api::audit::AuditParams::newest(50)),
    )
    .await
    .map(|axum::Json(a)| serde_json::to_value(a).unwrap_or_default());
    let scopes =
        crate::api::secrets::list_scopes(State(app.clone())).await.map(|axum::Json(s)| s.scopes).unwrap_or_default();
    let mut keys = Vec::new();
    for scope in &scopes {
        let listed = crate::api::secrets::list(
            State(app.clone()),
            Extension(principal.clone()),
            ApiQuery(crate::api::secrets::SecretQuery::scope(&scope.name)),
        )
        .await;
        if let Ok(axum::Json(l)) = listed {
            keys.push((scope.name.clone(), l.secrets.into_iter().map(|k| k.key).collect::<Vec<_>>()));
        }
    }
    let content = html! {
        h1 { "Operations" }
        h2 { "Alerts firing" }
        @match &alerts {
            Err(e) => p.muted { (e.to_string()) },
            Ok(axum::Json(a)) if a.firing.is_empty() => p.muted { "Nothing is firing." },
            Ok(axum::Json(a)) => div.table-wrap { table {
                thead { tr { th { "Rule" } th { "Endpoint" } th { "Since" } th { "Message" } } }
                tbody { @for x in &a.firing { tr { td { (x.rule_name) } td { (x.endpoint.as_deref().unwrap_or("")) } td { (date(x.fired_at)) } td { (x.message) } } } }
            } },
        }
        h2 { "Audit log" }
        @match &audit {
            Err(e) => p.muted { (e.to_string()) },
            Ok(a) => div.table-wrap { table {
                thead { tr { th { "When" } th { "Who" } th { "Action" } th { "Object" } th { "Status" } } }
                tbody {
                    @for x in a.get("entries").and_then(|v| v.as_array()).into_iter().flatten() {
                        tr {
                            td { (x.get("timestamp").and_then(|v| v.as_i64()).map(date).unwrap_or_default()) }
                            td { (x.get("principal").and_then(|v| v.as_str()).unwrap_or("")) }
                            td { (x.get("action").and_then(|v| v.as_str()).unwrap_or("")) }
                            td { (x.get("object").and_then(|v| v.as_str()).or_else(|| x.get("path").and_then(|v| v.as_str())).unwrap_or("")) }
                            td { (x.get("status").and_then(|v| v.as_i64()).unwrap_or_default()) }
                        }
                    }
                }
            } },
        }
        h2 { "Secret scopes" }
        @if keys.is_empty() { p.muted { "No secret scope you may read." } }
        @for (scope, names) in &keys {
            p { strong { (scope) } ": " @if names.is_empty() { span.muted { "no keys" } } @for n in names { span.tag { (n) } } }
        }
        p.muted { "Values are never shown; read one with modelgate secrets get-secret SCOPE KEY if you hold READ." }
    };
    page(StatusCode::OK, layout("Operations", Some((&principal, &session)), "operations", content))
}

/// `?by=endpoint|tag.team|usage_context.project|requester&days=7&format=csv` of the usage page.
#[derive(Deserialize, Default)]
struct UsageView {
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    days: Option<i64>,
    #[serde(default)]
    format: Option<String>,
}

/// `GET /console/usage`: spend and use by a dimension over the last days, from the usage report
/// the API gives (the same permissions), with budgets and how much of each is used; `format=csv`
/// downloads the table.
async fn usage_page(
    State(app): State<AppState>,
    Extension(sessions): SessionsExt,
    axum::extract::Query(view): axum::extract::Query<UsageView>,
    headers: HeaderMap,
) -> Response {
    use crate::extract::ApiQuery;
    let Some((principal, _, session)) = signed_in(&app, &sessions, &headers) else { return to_sign_in() };
    let by = view.by.clone().unwrap_or_else(|| "endpoint".into());
    let days = view.days.unwrap_or(7).clamp(1, 400);
    let start = (now_ms() - days * 86_400_000).to_string();
    let params = serde_json::from_value(serde_json::json!({"group_by": by, "start": start}));
    let report = match params {
        Ok(p) => crate::api::usage::report(State(app.clone()), Extension(principal.clone()), ApiQuery(p)).await,
        Err(e) => Err(crate::error::ApiError::Internal(e.to_string())),
    };
    let rows: Vec<Vec<String>> = match &report {
        Ok(axum::Json(r)) => r
            .get("rows")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .map(|row| {
                let cell = |k: &str| {
                    row.get(k).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).unwrap_or_default()
                };
                vec![
                    cell(&by),
                    cell("requests"),
                    cell("errors"),
                    cell("input_tokens"),
                    cell("output_tokens"),
                    format!("{:.4}", row.get("cost_usd").and_then(|v| v.as_f64()).unwrap_or(0.0)),
                ]
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let headers_row = [by.as_str(), "requests", "errors", "input_tokens", "output_tokens", "cost_usd"];
    if view.format.as_deref() == Some("csv") {
        let field = |v: &str| {
            if v.contains([',', '"', '\n']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v.to_string() }
        };
        let mut csv = headers_row.join(",") + "\n";
        for r in &rows {
            csv.push_str(&r.iter().map(|c| field(c)).collect::<Vec<_>>().join(","));
            csv.push('\n');
        }
        return (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"usage.csv\""),
            ],
            csv,
        )
            .into_response();
    }
    let budgets = crate::api::budgets::list(State(app.clone()), Extension(principal.clone())).await;
    let content = html! {
        h1 { "Cost and usage" }
        form method="get" action="/console/usage" {
            label { "By " select name="by" {
                @for d in ["endpoint", "served_entity", "requester", "model", "tag.team", "tag.project", "usage_context.project"] {
                    option value=(d) selected[d == by] { (d) }
                }
            } }
            " "
            label { "over the last " input type="number" name="days" min="1" max="400" value=(days) style="width:5rem"; " days " }
            button type="submit" { "Show" }
            " "
            a href=(format!("/console/usage?by={by}&days={days}&format=csv")) { "Download CSV" }
        }
        @match &report {
            Err(e) => (api_error(e)),
            Ok(_) if rows.is_empty() => div.empty { p { "No queries in this window." } },
            Ok(_) => div.table-wrap { table {
                thead { tr { @for h in headers_row { th { (h) } } } }
                tbody { @for r in &rows { tr { @for c in r { td { (c) } } } } }
            } },
        }
        h2 { "Budgets" }
        @match &budgets {
            Err(e) => p.muted { (e.to_string()) },
            Ok(axum::Json(b)) if b.policies.is_empty() => p.muted { "No budget policy. Create one with modelgate budgets create." },
            Ok(axum::Json(b)) => div.table-wrap { table {
                thead { tr { th { "Policy" } th { "Period" } th { "Spent" } th { "Amount" } th { "Used" } th { "Action" } } }
                tbody { @for p in &b.policies { tr {
                    td { (p.input.name) }
                    td { (p.input.period) }
                    td { (p.spend.as_ref().map(|x| format!("${:.2}", x.spent_usd)).unwrap_or_default()) }
                    td { (format!("${:.2}", p.input.amount_usd)) }
                    td { (p.spend.as_ref().map(|x| format!("{:.1} %", x.percent)).unwrap_or_default()) }
                    td { (p.input.action.as_deref().unwrap_or("ALERT")) }
                } } }
            } },
        }
    };
    page(StatusCode::OK, layout("Cost and usage", Some((&principal, &session)), "usage", content))
}
