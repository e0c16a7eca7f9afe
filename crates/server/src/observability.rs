//! HTTP routes of the metrics: `GET /metrics` (admins) and
//! `GET /api/2.0/serving-endpoints/{name}/metrics` (`CAN_VIEW` on the endpoint).

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use modelgate_core::permission::Level;

use crate::error::{ApiError, ApiResult};
use crate::metrics::CONTENT_TYPE;
use crate::snapshot::Principal;
use crate::state::AppState;

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
    let text = app.metrics.render(&app.snapshot.load(), &app.breakers);
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

/// `GET /api/2.0/serving-endpoints/{name}/metrics`: the series of one endpoint.
pub async fn endpoint_metrics(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    crate::permissions::require(&app, &caller, &name, Level::CanView)?;
    let text = app.metrics.render_endpoint(&app.snapshot.load(), &app.breakers, &name);
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}
