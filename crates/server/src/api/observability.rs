//! HTTP routes of the metrics: `GET /metrics` (admins) and
//! `GET /api/2.0/serving-endpoints/{name}/metrics` (`CAN_VIEW` on the endpoint).

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use modelgate_core::permission::Level;

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiPath;
use crate::snapshot::Principal;
use crate::state::AppState;
use crate::telemetry::metrics::CONTENT_TYPE;

/// `GET /metrics`: every series of the server.
pub async fn server_metrics(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
) -> ApiResult<Response> {
    if !caller.is_admin {
        return Err(ApiError::PermissionDenied(
            "GET /metrics needs an admin token (e.g. of a service principal in the admins group)".into(),
        ));
    }
    app.metrics.redis_up(app.counters.shared_store().map(|s| s.up()));
    app.metrics.replica(app.cluster.is_leader(), app.cluster.snapshot_age_secs());
    let (entries, bytes) = app.cache.size();
    app.metrics.cache_size(entries, bytes);
    let text = app.metrics.render(&app.snapshot.load(), &app.breakers);
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

/// `GET /api/2.0/serving-endpoints/{name}/metrics`: the series of one endpoint.
pub async fn endpoint_metrics(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    crate::access::require(&app, &caller, &name, Level::CanView)?;
    let text = app.metrics.render_endpoint(&app.snapshot.load(), &app.breakers, &name);
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

/// `GET /api/2.0/serving-endpoints/{name}/metrics-summary` (our extension, `CAN_VIEW`): request
/// rate, error rate, latency percentiles, tokens and cost over the last 5 minutes, hour and day,
/// from the usage records.
pub async fn endpoint_summary(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    crate::access::require(&app, &caller, &name, Level::CanView)?;
    app.usage.flush().await;
    let now = modelgate_core::now_ms();
    let mut windows = Vec::new();
    for (label, secs) in [("5m", 300i64), ("1h", 3600), ("1d", 86_400)] {
        let s = app.usage.db.summary(&name, now - secs * 1000).await?;
        let rate = |n: i64| n as f64 / secs as f64;
        windows.push(serde_json::json!({
            "window": label,
            "requests": s.requests,
            "requests_per_second": rate(s.requests),
            "errors": s.errors,
            "error_rate": if s.requests > 0 { s.errors as f64 / s.requests as f64 } else { 0.0 },
            "latency_ms": {"p50": s.p50_ms, "p95": s.p95_ms, "p99": s.p99_ms},
            "input_tokens": s.input_tokens,
            "output_tokens": s.output_tokens,
            "cost_usd": s.cost_usd,
        }));
    }
    Ok(axum::Json(serde_json::json!({"endpoint": name, "windows": windows})))
}
