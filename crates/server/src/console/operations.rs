//! Operations: alerts firing and their history, the endpoints that break the workspace policy,
//! the audit log with filters (admins), and the secret scopes with the names of the keys the
//! principal may read (never a value).

use axum::extract::{Query, State};
use axum::response::Response;
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::{Viewer, api_error, console_page, date};
use crate::api;
use crate::extract::ApiQuery;
use crate::state::AppState;

/// `?principal=&object=&action=&limit=` of the audit log.
#[derive(Deserialize, Serialize, Default)]
pub struct AuditFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    object: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limit: Option<i64>,
}

impl AuditFilter {
    /// Without the empty fields a form sends.
    fn cleaned(self) -> Self {
        let keep = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        AuditFilter {
            principal: keep(self.principal),
            object: keep(self.object),
            action: keep(self.action).map(|a| a.to_ascii_uppercase()),
            limit: Some(self.limit.unwrap_or(50).clamp(1, 1000)),
        }
    }
}

/// `GET /console/operations`.
pub async fn page(State(app): State<AppState>, viewer: Viewer, Query(filter): Query<AuditFilter>) -> Response {
    let filter = filter.cleaned();
    let alerts = api::alerts::list_alerts(State(app.clone()), viewer.caller()).await;
    let params = serde_json::to_value(&filter).and_then(serde_json::from_value);
    let audit = match params {
        Ok(p) => api::audit::list(State(app.clone()), viewer.caller(), ApiQuery(p))
            .await
            .map(|axum::Json(a)| serde_json::to_value(a).unwrap_or_default()),
        Err(e) => Err(crate::error::ApiError::Internal(e.to_string())),
    };
    let violations = api::standards::check(State(app.clone()), viewer.caller()).await;
    let scopes = api::secrets::list_scopes(State(app.clone())).await.map(|axum::Json(s)| s.scopes).unwrap_or_default();
    let mut keys = Vec::new();
    for scope in &scopes {
        let query = ApiQuery(api::secrets::SecretQuery::scope(&scope.name));
        if let Ok(axum::Json(l)) = api::secrets::list(State(app.clone()), viewer.caller(), query).await {
            keys.push((scope.name.clone(), l.secrets.into_iter().map(|k| k.key).collect::<Vec<_>>()));
        }
    }
    let content = html! {
        h1 { "Operations" }
        @match &alerts {
            Err(e) => { h2 { "Alerts" } (api_error(e)) },
            Ok(axum::Json(a)) => {
                h2 { "Alerts firing" }
                @if a.firing.is_empty() { p.muted { "Nothing is firing." } } @else { (alert_table(&a.firing)) }
                h2 { "Resolved lately" }
                @if a.resolved.is_empty() { p.muted { "Nothing resolved lately. Alert rules are made with " code { "modelgate alerts create-rule" } "." } } @else { (alert_table(&a.resolved)) }
            },
        }
        h2 { "Workspace standards" }
        @match &violations {
            Err(e) => (api_error(e)),
            Ok(axum::Json(v)) => (standards_table(v)),
        }
        h2 { "Audit log" }
        form.filters method="get" action="/console/operations" {
            input type="text" name="principal" placeholder="who" aria-label="Principal" value=[filter.principal.as_deref()];
            input type="text" name="object" placeholder="object (endpoint, scope…)" aria-label="Object" value=[filter.object.as_deref()];
            select name="action" aria-label="Action" {
                option value="" { "any action" }
                @for m in ["POST", "PUT", "PATCH", "DELETE", "GET"] { option selected[filter.action.as_deref() == Some(m)] { (m) } }
            }
            input type="number" name="limit" min="1" max="1000" aria-label="Most entries" value=[filter.limit];
            button type="submit" { "Filter" }
        }
        @match &audit {
            Err(e) => (api_error(e)),
            Ok(a) => (audit_table(a)),
        }
        h2 { "Secret scopes" }
        @if keys.is_empty() { p.muted { "No secret scope you may read. Create one with " code { "modelgate secrets create-scope NAME" } "." } }
        @for (scope, names) in &keys {
            p { strong { (scope) } ": " @if names.is_empty() { span.muted { "no keys" } } @for n in names { span.tag { (n) } } }
        }
        p.muted { "Values are never shown; read one with modelgate secrets get-secret SCOPE KEY if you hold READ." }
    };
    console_page(&viewer, "Operations", "operations", content)
}

fn standards_table(v: &serde_json::Value) -> Markup {
    let rows = v.get("violations").and_then(|v| v.as_array()).map(Vec::as_slice).unwrap_or_default();
    let text = |x: &serde_json::Value, k: &str| x.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    html! {
        @if rows.is_empty() {
            p.muted { "Every endpoint you may see meets the workspace policy (" code { "modelgate policy get" } ", docs/standards.md)." }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Endpoint" } th { "Rule" } th { "What is wrong" } } }
                tbody { @for x in rows { tr {
                    td { a href=(format!("/console/endpoints/{}", text(x, "endpoint"))) { (text(x, "endpoint")) } }
                    td { (text(x, "rule")) }
                    td { (text(x, "message")) }
                } } }
            } }
        }
    }
}

fn alert_table(alerts: &[modelgate_wire::Alert]) -> Markup {
    html! {
        div.table-wrap { table {
            thead { tr { th { "Rule" } th { "Endpoint" } th { "Fired" } th { "Resolved" } th { "Message" } } }
            tbody { @for x in alerts { tr {
                td { (x.rule_name) }
                td { (x.endpoint.as_deref().unwrap_or("")) }
                td { (date(x.fired_at)) }
                td { (x.resolved_at.map(date).unwrap_or_default()) }
                td { (x.message) }
            } } }
        } }
    }
}

fn audit_table(a: &serde_json::Value) -> Markup {
    let entries = a.get("entries").and_then(|v| v.as_array()).map(Vec::as_slice).unwrap_or_default();
    let text = |x: &serde_json::Value, k: &str| x.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    html! {
        @if entries.is_empty() { p.muted { "No audit entry matches." } } @else {
            div.table-wrap { table {
                thead { tr { th { "When" } th { "Who" } th { "Action" } th { "Object" } th { "Status" } } }
                tbody { @for x in entries { tr {
                    td { (x.get("timestamp").and_then(|v| v.as_i64()).map(date).unwrap_or_default()) }
                    td { (text(x, "principal")) }
                    td { (text(x, "action")) }
                    td { (x.get("object").and_then(|v| v.as_str()).map_or_else(|| text(x, "path"), str::to_string)) }
                    td { (x.get("status").and_then(|v| v.as_i64()).unwrap_or_default()) }
                } } }
            } }
        }
    }
}
