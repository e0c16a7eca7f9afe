//! The playground: chat with an endpoint the principal may query, streamed, with the same
//! request as curl and Python to copy.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;

use super::session::{same_origin, same_secret};
use super::{Viewer, console_page};
use crate::state::AppState;

/// `GET /console/playground`: chat with an endpoint the principal may query, streamed, with the
/// same request as curl and Python to copy.
pub async fn page(State(app): State<AppState>, viewer: Viewer) -> Response {
    let snapshot = app.snapshot.load_full();
    let mut names: Vec<&String> = snapshot
        .endpoints
        .iter()
        .filter(|(_, ep)| ep.task.as_deref() == Some("llm/v1/chat"))
        .filter(|(_, ep)| {
            crate::access::level_of(&viewer.principal, ep)
                .is_some_and(|l| l >= modelgate_core::permission::Level::CanQuery)
        })
        .map(|(n, _)| n)
        .collect();
    names.sort();
    let content = html! {
        h1 { "Playground" }
        @if names.is_empty() {
            div.empty { p { "No chat endpoint you may query. Ask an endpoint's owner for CAN_QUERY, or create one." } }
        } @else {
            form #playground data-csrf=(viewer.session.csrf) {
                p {
                    label for="endpoint" { "Endpoint " }
                    select #endpoint name="endpoint" { @for n in &names { option value=(n) { (n) } } }
                }
                p { label.block for="message" { "Message" } textarea #message name="message" rows="4" required { "Hello!" } }
                p { button type="submit" { "Send (streamed)" } }
            }
            h2 { "Answer" }
            pre #answer aria-live="polite" {}
            h2 { "The same request" }
            p.muted { "Replace $MODELGATE_TOKEN with a token of yours." }
            @for (id, title) in [("code-curl", "curl"), ("code-openai", "Python (openai)"), ("code-sdk", "Python (databricks-sdk)")] {
                h3 { (title) " " button.quiet.copy type="button" data-copy=(id) { "Copy" } }
                pre id=(id) {}
            }
        }
    };
    console_page(&viewer, "Playground", "playground", content)
}

/// `POST /console/playground/{name}`: a query from the playground, with the session's CSRF token
/// in `x-csrf-token`; it runs through the data plane exactly as an API query of this principal.
pub async fn query(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let token = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !same_origin(&headers) || !same_secret(&viewer.session.csrf, token) {
        return (StatusCode::FORBIDDEN, "This request came from another site, or the page is stale; reload it.")
            .into_response();
    }
    crate::gateway::handlers::invocations(
        State(app),
        viewer.caller(),
        crate::extract::ApiPath(name),
        crate::extract::QueryHeaders::of(&headers),
        crate::extract::RawBody(body),
    )
    .await
}
