//! `GET /api/2.0/serving-endpoints/{name}/inference-table`: an endpoint's logged payloads, with
//! filters, as JSON or JSON Lines.

use std::sync::Arc;

use modelgate_store::PayloadRecord;
use serde_json::Value;

use crate::state::AppState;

/// Query of `GET /api/2.0/serving-endpoints/{name}/inference-table`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableParams {
    /// Inclusive start: ms since the epoch or RFC 3339; default: an hour ago.
    since: Option<String>,
    /// Exclusive end; default: now.
    until: Option<String>,
    /// `2xx`, `4xx`, `5xx` or one status code.
    status: Option<String>,
    /// Only this requester.
    requester: Option<String>,
    /// Most records, newest first (default 100, at most 100000).
    limit: Option<i64>,
    /// `json` (default) or `jsonl` (one record per line, for export).
    format: Option<String>,
}

fn status_range(s: &str) -> crate::error::ApiResult<(i64, i64)> {
    let class = s.strip_suffix("xx").and_then(|d| d.parse::<i64>().ok()).filter(|d| (1..=5).contains(d));
    if let Some(d) = class {
        return Ok((d * 100, d * 100 + 99));
    }
    match s.parse::<i64>() {
        Ok(code) if (100..=599).contains(&code) => Ok((code, code)),
        _ => {
            Err(crate::error::ApiError::invalid("status", format!("'{s}' is not a status code or a class such as 5xx")))
        }
    }
}

fn record_json(r: PayloadRecord) -> Value {
    serde_json::json!({
        "databricks_request_id": r.databricks_request_id,
        "request_date": r.request_date,
        "client_request_id": r.client_request_id,
        "request_time": r.request_time,
        "status_code": r.status_code,
        "sampling_fraction": r.sampling_fraction,
        "execution_duration_ms": r.execution_duration_ms,
        "request": r.request,
        "response": r.response,
        "logging_error_codes": r.logging_error_codes,
        "served_entity_id": r.served_entity_id,
        "requester": r.requester,
        "cache_hit": r.cache_hit,
    })
}

/// `GET /api/2.0/serving-endpoints/{name}/inference-table` (`CAN_MANAGE`; our extension): the
/// logged payloads of an endpoint, newest first.
pub async fn table(
    axum::extract::State(app): axum::extract::State<AppState>,
    axum::Extension(caller): axum::Extension<Arc<crate::snapshot::Principal>>,
    crate::extract::ApiPath(name): crate::extract::ApiPath<String>,
    crate::extract::ApiQuery(p): crate::extract::ApiQuery<TableParams>,
) -> crate::error::ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    crate::access::require(&app, &caller, &name, modelgate_core::permission::Level::CanManage)?;
    let now = modelgate_core::now_ms();
    let until = p.until.as_deref().map(|s| crate::api::usage::parse_time("until", s)).transpose()?.unwrap_or(now + 1);
    let since =
        p.since.as_deref().map(|s| crate::api::usage::parse_time("since", s)).transpose()?.unwrap_or(now - 3_600_000);
    let query = modelgate_store::PayloadQuery {
        endpoint: name,
        since,
        until,
        status: p.status.as_deref().map(status_range).transpose()?,
        requester: p.requester,
        limit: p.limit.unwrap_or(100).clamp(1, 100_000),
    };
    app.inference.flush().await;
    let records = app.inference.db.query(&query).await?;
    match p.format.as_deref().unwrap_or("json") {
        "json" => {
            let list: Vec<Value> = records.into_iter().map(record_json).collect();
            Ok(axum::Json(serde_json::json!({"records": list})).into_response())
        }
        "jsonl" => {
            let mut out = String::new();
            for r in records {
                out.push_str(&record_json(r).to_string());
                out.push('\n');
            }
            Ok(([(axum::http::header::CONTENT_TYPE, "application/x-ndjson")], out).into_response())
        }
        other => Err(crate::error::ApiError::invalid("format", format!("'{other}' is not json or jsonl"))),
    }
}
