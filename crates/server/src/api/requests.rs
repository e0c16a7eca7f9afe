//! The request log (our extension): `GET /api/2.0/requests` and `GET /api/2.0/requests/{id}`.
//! Every data-plane request leaves a record (the usage records double as the log): refused and
//! failed ones with the error sent, the upstream status, the entities tried and the attempts
//! made. Admins see every request; others the requests to endpoints they may manage, and their own.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use modelgate_core::permission::Level;
use modelgate_store::{RequestFilter, UsageRecord};
use modelgate_wire::{ListRequestsResponse, RequestLogEntry};
use serde::Deserialize;

use super::usage::parse_time;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::snapshot::Principal;
use crate::state::AppState;

/// Default window of a search: the last 24 hours.
const DEFAULT_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// Default and largest page.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 1000;

/// Query of `GET /api/2.0/requests`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only this endpoint.
    endpoint: Option<String>,
    /// `2xx`, `4xx`, `5xx`, an exact status such as `429`, or `error` (any failure).
    status: Option<String>,
    /// Only this requester (user name or application id).
    requester: Option<String>,
    /// Only this error code.
    error_code: Option<String>,
    /// Inclusive start: ms since the epoch or RFC 3339 (default: 24 hours before `end`).
    start: Option<String>,
    /// Exclusive end (default: now).
    end: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    limit: Option<i64>,
    /// `next_page_token` of the previous page.
    page_token: Option<String>,
}

/// `status` as a range of statuses, or "any failure".
fn status_filter(s: &str) -> ApiResult<(Option<(i64, i64)>, bool)> {
    let class = |c: i64| Ok((Some((c * 100, c * 100 + 99)), false));
    match s.to_ascii_lowercase().as_str() {
        "error" | "failed" => Ok((None, true)),
        "2xx" => class(2),
        "3xx" => class(3),
        "4xx" => class(4),
        "5xx" => class(5),
        exact => match exact.parse::<i64>() {
            Ok(code) if (100..=599).contains(&code) => Ok((Some((code, code)), false)),
            _ => Err(ApiError::invalid(
                "status",
                format!("'{s}' is not a status: use 2xx, 4xx, 5xx, error or a status code such as 429"),
            )),
        },
    }
}

/// What `caller` may see: `None` for everything, else the endpoints it manages (its own
/// requests are always visible).
fn visible_endpoints(app: &AppState, caller: &Principal) -> Option<Vec<String>> {
    (!caller.is_admin).then(|| {
        app.snapshot
            .load()
            .endpoints
            .values()
            .filter(|ep| crate::access::level_of(caller, ep).is_some_and(|l| l >= Level::CanManage))
            .map(|ep| ep.name.clone())
            .collect()
    })
}

fn entry(r: UsageRecord) -> RequestLogEntry {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(r.request_time.max(0) as u64);
    RequestLogEntry {
        request_id: r.request_id,
        client_request_id: r.client_request_id,
        time: humantime::format_rfc3339_millis(time).to_string(),
        request_time: r.request_time,
        endpoint: r.endpoint_name,
        served_entity: r.served_entity,
        provider: r.provider,
        model: r.model,
        requester: r.requester,
        status_code: r.status_code,
        error_code: r.error_code,
        error_message: r.error_message,
        upstream_status: r.upstream_status,
        attempts: r.attempts,
        entities_tried: r
            .entities_tried
            .map(|t| t.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
            .unwrap_or_default(),
        streaming: r.streaming,
        latency_ms: r.latency_ms,
        ttft_ms: r.ttft_ms,
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        images: r.images,
        cost_usd: r.cost_usd,
        billing: r.billing,
    }
}

/// `GET /api/2.0/requests`: the request log, newest first, filtered.
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> ApiResult<Json<ListRequestsResponse>> {
    let end =
        p.end.as_deref().map(|s| parse_time("end", s)).transpose()?.unwrap_or_else(|| modelgate_core::now_ms() + 1);
    let start = p.start.as_deref().map(|s| parse_time("start", s)).transpose()?.unwrap_or(end - DEFAULT_WINDOW_MS);
    if start >= end {
        return Err(ApiError::invalid("start", "must be before end"));
    }
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid("limit", format!("must be between 1 and {MAX_LIMIT}")));
    }
    let (status, failed_only) = p.status.as_deref().map(status_filter).transpose()?.unwrap_or((None, false));
    let endpoints = visible_endpoints(&app, &caller);
    let filter = RequestFilter {
        start,
        end,
        endpoint: p.endpoint,
        or_requester_id: endpoints.is_some().then(|| caller.id.clone()),
        endpoints,
        requester: p.requester,
        status,
        error_code: p.error_code,
        failed_only,
        before_id: p.page_token,
        limit: limit + 1,
    };
    // The log reads its own writes: what the writer still holds is written first.
    app.usage.flush().await;
    let mut records = app.usage.db.requests(&filter).await?;
    let next_page_token = if records.len() as i64 > limit {
        records.truncate(limit as usize);
        records.last().map(|r| r.request_id.clone())
    } else {
        None
    };
    Ok(Json(ListRequestsResponse { requests: records.into_iter().map(entry).collect(), next_page_token }))
}

/// `GET /api/2.0/requests/{id}`: one request, by its request id or the client's
/// `client_request_id`.
pub async fn get(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<RequestLogEntry>> {
    app.usage.flush().await;
    let not_found = || ApiError::NotFound(format!("No request '{id}' in the request log (or not one you may see)."));
    let record = app.usage.db.request(&id).await?.ok_or_else(not_found)?;
    let visible = match visible_endpoints(&app, &caller) {
        None => true,
        Some(eps) => record.requester_id == caller.id || eps.contains(&record.endpoint_name),
    };
    if !visible {
        return Err(not_found());
    }
    Ok(Json(entry(record)))
}
