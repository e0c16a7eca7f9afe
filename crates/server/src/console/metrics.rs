//! An endpoint's charts over 1 hour, 1 day or 7 days, for the whole endpoint or one served
//! entity, from its usage records; the page refreshes them in place while it is open.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use modelgate_core::now_ms;
use serde::Deserialize;

use super::charts::{Series, figure, line_chart};
use super::{Viewer, api_error, date};
use crate::extract::ApiPath;
use crate::state::AppState;

/// `(span ms, buckets, words)` of a window.
fn window_of(window: &str) -> (i64, i64, &'static str) {
    match window {
        "1d" => (86_400_000, 48, "last day"),
        "7d" => (7 * 86_400_000, 56, "last 7 days"),
        _ => (3_600_000, 60, "last hour"),
    }
}

/// The charts of `endpoint` (or of its served entity `entity`) over `window`.
pub async fn section(
    app: &AppState,
    endpoint: &str,
    entities: &[String],
    entity: Option<&str>,
    window: &str,
) -> Markup {
    let (span_ms, buckets, words) = window_of(window);
    let entity = entity.filter(|e| !e.is_empty());
    let now = now_ms();
    app.usage.flush().await;
    let points = match app.usage.db.timeline(endpoint, entity, now - span_ms, now, buckets).await {
        Ok(p) => p,
        Err(e) => return html! { div.error role="alert" { (e.to_string()) } },
    };
    let labels: Vec<String> = points.iter().map(|p| date(p.start)).collect();
    let per_min = |count: i64| Some(count as f64 * 60_000.0 / (span_ms / buckets) as f64);
    let line = |name, colour, values: Vec<Option<f64>>| Series { name, values, colour };
    let total: i64 = points.iter().map(|p| p.requests).sum();
    let cost: f64 = points.iter().map(|p| p.cost_usd).sum();
    let link = |w: &str, e: Option<&str>| {
        let e =
            e.map(|e| format!("&entity={}", url::form_urlencoded::byte_serialize(e.as_bytes()).collect::<String>()));
        format!("/console/endpoints/{endpoint}?window={w}{}#metrics", e.unwrap_or_default())
    };
    html! {
        h2 { "Metrics" }
        nav.choices aria-label="Window" {
            @for (w, text) in [("1h", "1 hour"), ("1d", "1 day"), ("7d", "7 days")] {
                a href=(link(w, entity)) aria-current=[(window_of(w).2 == words).then_some("page")] { (text) }
            }
            @if entities.len() > 1 {
                span.muted { "·" }
                a href=(link(window, None)) aria-current=[entity.is_none().then_some("page")] { "all entities" }
                @for e in entities { a href=(link(window, Some(e))) aria-current=[(entity == Some(e.as_str())).then_some("page")] { (e) } }
            }
        }
        p.muted {
            (total) " queries, $" (figure(cost)) " in the " (words)
            @if let Some(e) = entity { " on " (e) }
            " · refreshed " (date(now)) " UTC"
        }
        div.charts {
            (line_chart("Queries per minute", "/min", &labels, &[
                line("all", "#2457c5", points.iter().map(|p| per_min(p.requests)).collect()),
                line("failed", "#b42318", points.iter().map(|p| per_min(p.errors)).collect()),
                line("rate-limited", "#b54708", points.iter().map(|p| per_min(p.rate_limited)).collect()),
            ]))
            (line_chart("Latency", "ms", &labels, &[
                line("p50", "#067647", points.iter().map(|p| p.p50_ms).collect()),
                line("p95", "#b54708", points.iter().map(|p| p.p95_ms).collect()),
                line("p99", "#b42318", points.iter().map(|p| p.p99_ms).collect()),
            ]))
            (line_chart("Time to first token (streamed)", "ms", &labels, &[
                line("p50", "#067647", points.iter().map(|p| p.ttft_p50_ms).collect()),
                line("p95", "#b54708", points.iter().map(|p| p.ttft_p95_ms).collect()),
            ]))
            (line_chart("Tokens", "tokens", &labels, &[
                line("tokens", "#5b6475", points.iter().map(|p| Some(p.tokens as f64)).collect()),
            ]))
            (line_chart("Cost", "USD", &labels, &[
                line("cost", "#7a2ec2", points.iter().map(|p| Some(p.cost_usd)).collect()),
            ]))
        }
    }
}

/// The names of an endpoint's served entities, in its config's order.
pub fn entity_names(e: &modelgate_wire::ServingEndpointDetailed) -> Vec<String> {
    e.config.iter().flat_map(|c| c.served_entities.iter().flatten()).filter_map(|s| s.spec.name.clone()).collect()
}

/// `?window=&entity=` of the charts.
#[derive(Deserialize, Default)]
pub struct ChartsView {
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    entity: Option<String>,
}

/// `GET /console/endpoints/{name}/metrics`: the charts alone, which the endpoint page fetches
/// every few seconds to refresh them (the same `CAN_VIEW` check as the page).
pub async fn fragment(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(view): Query<ChartsView>,
) -> Response {
    let got = crate::api::endpoints::get(State(app.clone()), viewer.caller(), ApiPath(name.clone())).await;
    let (status, body) = match got {
        Ok(axum::Json(e)) => {
            let entities = entity_names(&e);
            let window = view.window.as_deref().unwrap_or("1h");
            (StatusCode::OK, section(&app, &e.name, &entities, view.entity.as_deref(), window).await)
        }
        Err(e) => (e.status_and_code().0, api_error(&e)),
    };
    let mut resp = (status, body.into_string()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
