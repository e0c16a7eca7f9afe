//! Usage reports (our extension): `GET /api/2.0/usage` and `POST /api/2.0/usage/recompute`.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use modelgate_core::permission::Level;
use modelgate_core::pricing::Tokens;
use modelgate_store::{Bucket, Dimension, ReportQuery};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::access::require_admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::snapshot::Principal;
use crate::state::AppState;

/// Default report window: the last 7 days.
const DEFAULT_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;

/// Query of `GET /api/2.0/usage`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// Comma-separated dimensions.
    group_by: Option<String>,
    /// `hour`, `day`, `week` or `month`.
    bucket: Option<String>,
    /// Inclusive start: ms since the epoch or RFC 3339.
    start: Option<String>,
    /// Exclusive end: ms since the epoch or RFC 3339.
    end: Option<String>,
}

/// A time given as ms since the epoch or as an RFC 3339 timestamp.
pub fn parse_time(field: &str, s: &str) -> ApiResult<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    humantime::parse_rfc3339_weak(s)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .ok_or_else(|| ApiError::invalid(field, format!("'{s}' is neither ms since the epoch nor an RFC 3339 time")))
}

/// `GET /api/2.0/usage`: requests, errors, tokens and cost grouped by dimensions and time.
/// Admins see every endpoint; others see the endpoints they may manage.
pub async fn report(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    ApiQuery(p): ApiQuery<ReportParams>,
) -> ApiResult<Json<Value>> {
    let group_by: Vec<Dimension> = p
        .group_by
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<Dimension>().map_err(|e| ApiError::invalid("group_by", e)))
        .collect::<ApiResult<_>>()?;
    let bucket =
        p.bucket.as_deref().map(|b| b.parse::<Bucket>().map_err(|e| ApiError::invalid("bucket", e))).transpose()?;
    let end =
        p.end.as_deref().map(|s| parse_time("end", s)).transpose()?.unwrap_or_else(|| modelgate_core::now_ms() + 1);
    let start = p.start.as_deref().map(|s| parse_time("start", s)).transpose()?.unwrap_or(end - DEFAULT_WINDOW_MS);
    if start >= end {
        return Err(ApiError::invalid("start", "must be before end"));
    }
    let endpoints = (!caller.is_admin).then(|| {
        let snap = app.snapshot.load();
        snap.endpoints
            .values()
            .filter(|ep| crate::access::level_of(&caller, ep).is_some_and(|l| l >= Level::CanManage))
            .map(|ep| ep.name.clone())
            .collect::<Vec<_>>()
    });
    // Reports read their own writes: what the writer still holds is written first.
    app.usage.flush().await;
    let query = ReportQuery { group_by: group_by.clone(), bucket, start, end, endpoints };
    let rows = app.usage.db.report(&query).await?;
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let mut o = Map::new();
            if bucket.is_some() {
                o.insert("bucket".into(), json!(r.bucket));
            }
            for (d, v) in group_by.iter().zip(r.dimensions) {
                o.insert(d.to_string(), json!(v));
            }
            o.insert("requests".into(), json!(r.requests));
            o.insert("errors".into(), json!(r.errors));
            o.insert("input_tokens".into(), json!(r.input_tokens));
            o.insert("output_tokens".into(), json!(r.output_tokens));
            o.insert("cost_usd".into(), json!(r.cost_usd));
            Value::Object(o)
        })
        .collect();
    Ok(Json(json!({
        "start": start, "end": end, "bucket": p.bucket,
        "group_by": group_by.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "price_version": app.usage.prices().version(),
        "rows": rows,
    })))
}

/// Body of `POST /api/2.0/usage/recompute`.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecomputeRequest {
    /// Re-price records from this time on: ms since the epoch or RFC 3339.
    since: String,
}

/// `POST /api/2.0/usage/recompute` (admins): prices past records again with the server's
/// current price table, e.g. after correcting a price file.
pub async fn recompute(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    ApiJson(req): ApiJson<RecomputeRequest>,
) -> ApiResult<Json<Value>> {
    require_admin(&caller, "recompute usage costs")?;
    let since = parse_time("since", &req.since)?;
    app.usage.flush().await;
    let prices = app.usage.prices();
    let (mut after, mut records, mut priced, mut total) = (String::new(), 0u64, 0u64, 0.0f64);
    loop {
        let rows = app.usage.db.pricing_rows(since, &after, 5000).await?;
        let Some(last) = rows.last() else { break };
        after = last.request_id.clone();
        let costs: Vec<(String, f64, Option<String>)> = rows
            .iter()
            .map(|r| {
                let tokens = Tokens {
                    input: r.input_tokens.max(0) as u64,
                    cached_input: r.cached_input_tokens.max(0) as u64,
                    cache_write: r.cache_write_tokens.max(0) as u64,
                    output: r.output_tokens.max(0) as u64,
                };
                match prices.cost(&r.provider, &r.model, tokens) {
                    Some(c) => {
                        priced += 1;
                        total += c;
                        (r.request_id.clone(), c, Some(prices.version().to_string()))
                    }
                    None => (r.request_id.clone(), 0.0, None),
                }
            })
            .collect();
        records += costs.len() as u64;
        app.usage.db.set_costs(&costs).await?;
    }
    Ok(Json(json!({"records": records, "priced": priced, "cost_usd": total, "price_version": prices.version()})))
}
