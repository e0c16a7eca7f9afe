//! Identity (workspace admins): users, groups, service principals and tokens, as the SCIM and
//! token-management APIs list them. Anyone else gets the API's refusal. Token values are never
//! stored, so never shown: a token is its id, owner, comment and expiry.

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};

use super::{Viewer, console_page, date, error_page};
use crate::access::require_admin;
use crate::api;
use crate::extract::ApiQuery;
use crate::state::AppState;

/// `GET /console/identity`.
pub async fn page(State(app): State<AppState>, viewer: Viewer) -> Response {
    if let Err(e) = require_admin(&viewer.principal, "see users, groups, service principals and tokens") {
        return error_page(&viewer, "Identity", "identity", &e);
    }
    let users = api::scim::list_users(State(app.clone()), ApiQuery(Default::default())).await;
    let groups = api::scim::list_groups(State(app.clone()), ApiQuery(Default::default())).await;
    let sps = api::scim::list_service_principals(State(app.clone()), ApiQuery(Default::default())).await;
    let tokens = api::tokens::manage_list(State(app.clone()), viewer.caller(), ApiQuery(Default::default())).await;
    let (users, groups, sps, tokens) = match (users, groups, sps, tokens) {
        (Ok(u), Ok(g), Ok(s), Ok(t)) => (u.0.resources, g.0.resources, s.0.resources, t.0.token_infos),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => {
            return error_page(&viewer, "Identity", "identity", &e);
        }
    };
    let names = |refs: &Option<Vec<modelgate_wire::scim::ScimRef>>| -> Markup {
        html! { @for r in refs.iter().flatten() { span.tag { (r.display.as_deref().unwrap_or(&r.value)) } } }
    };
    let active = |a: Option<bool>| if a.unwrap_or(true) { "active" } else { "deactivated" };
    let content = html! {
        h1 { "Identity" }
        p.muted { "Create and change these with " code { "modelgate users" } ", " code { "modelgate groups" } ", " code { "modelgate service-principals" } " and " code { "modelgate tokens" } " (docs/identity.md)." }
        h2 { "Users (" (users.len()) ")" }
        div.table-wrap { table {
            thead { tr { th { "User name" } th { "Display name" } th { "Status" } th { "Groups" } } }
            tbody { @for u in &users { tr {
                td { (u.user_name.as_deref().unwrap_or("")) }
                td { (u.display_name.as_deref().unwrap_or("")) }
                td { (active(u.active)) }
                td { (names(&u.groups)) }
            } } }
        } }
        h2 { "Groups (" (groups.len()) ")" }
        div.table-wrap { table {
            thead { tr { th { "Name" } th { "Members" } th { "Member of" } } }
            tbody { @for g in &groups { tr {
                td { (g.display_name.as_deref().unwrap_or("")) }
                td { (names(&g.members)) }
                td { (names(&g.groups)) }
            } } }
        } }
        h2 { "Service principals (" (sps.len()) ")" }
        @if sps.is_empty() { p.muted { "None yet: a service principal is the identity of a job or an application; create one with " code { "modelgate service-principals create" } "." } }
        @else { div.table-wrap { table {
            thead { tr { th { "Application id" } th { "Display name" } th { "Status" } th { "Groups" } } }
            tbody { @for s in &sps { tr {
                td { (s.application_id.as_deref().unwrap_or("")) }
                td { (s.display_name.as_deref().unwrap_or("")) }
                td { (active(s.active)) }
                td { (names(&s.groups)) }
            } } }
        } } }
        h2 { "Tokens (" (tokens.len()) ")" }
        div.table-wrap { table {
            thead { tr { th { "Token id" } th { "Owner" } th { "Comment" } th { "Created" } th { "Expires" } th { "Limits" } } }
            tbody { @for t in &tokens { tr {
                td { code { (t.token_id) } }
                td { (t.owner.as_deref().or(t.created_by_username.as_deref()).unwrap_or("")) }
                td { (t.comment) }
                td { (date(t.creation_time)) }
                td { @if t.expiry_time > 0 { (date(t.expiry_time)) } @else { "never" } }
                td { (limits(t)) }
            } } }
        } }
    };
    console_page(&viewer, "Identity", "identity", content)
}

/// A token's own limits in a few words: `endpoints: chat · 60 calls/min · $20.00/month BLOCK ($3.10 spent)`.
fn limits(t: &modelgate_wire::TokenInfo) -> String {
    let Some(l) = &t.limits else { return String::new() };
    let mut parts = Vec::new();
    if let Some(eps) = &l.allowed_endpoints {
        parts.push(format!("endpoints: {}", eps.join(", ")));
    }
    for r in l.rate_limits.iter().flatten() {
        parts.extend(r.calls.map(|n| format!("{n} calls/min")));
        parts.extend(r.tokens.map(|n| format!("{n} tokens/min")));
    }
    if let Some(b) = &l.budget {
        let spent = t.budget_spent_usd.map(|s| format!(" (${s:.2} spent)")).unwrap_or_default();
        parts.push(format!("${:.2}/{} {}{spent}", b.amount_usd, b.period, b.action.as_deref().unwrap_or("ALERT")));
    }
    parts.join(" · ")
}
