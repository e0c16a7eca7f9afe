//! Usage reports (our extension): `GET /api/2.0/usage` and `POST /api/2.0/usage/recompute`.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use modelgate_core::permission::Level;
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
    /// Only the caller's own queries, on every endpoint (anyone may ask for their own).
    mine: Option<bool>,
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
/// Admins see every endpoint; others see the endpoints they may manage, and with `mine=true`
/// anyone sees their own queries on every endpoint.
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
    let mine = p.mine.unwrap_or(false);
    let endpoints = (!caller.is_admin && !mine).then(|| {
        let snap = app.snapshot.load();
        snap.endpoints
            .values()
            .filter(|ep| crate::access::level_of(&caller, ep).is_some_and(|l| l >= Level::CanManage))
            .map(|ep| ep.name.clone())
            .collect::<Vec<_>>()
    });
    // Reports read their own writes: what the writer still holds is written first.
    app.usage.flush().await;
    let requester_id = mine.then(|| caller.id.clone());
    let query = ReportQuery { group_by: group_by.clone(), bucket, start, end, endpoints, requester_id };
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
        "start": start, "end": end, "bucket": p.bucket, "mine": mine,
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
            .map(|r| match prices.cost(&r.provider, &r.model, r.priced()) {
                Some(c) => {
                    priced += 1;
                    total += c;
                    (r.request_id.clone(), c, Some(prices.version().to_string()))
                }
                None => (r.request_id.clone(), 0.0, None),
            })
            .collect();
        records += costs.len() as u64;
        app.usage.db.set_costs(&costs).await?;
    }
    Ok(Json(json!({"records": records, "priced": priced, "cost_usd": total, "price_version": prices.version()})))
}

/// Query of `GET /api/2.0/usage/break-even`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakEvenParams {
    /// The endpoint.
    endpoint: String,
    /// Days of traffic to look at (default 30).
    days: Option<i64>,
}

/// `GET /api/2.0/usage/break-even?endpoint=NAME&days=30` (our extension; `CAN_MANAGE`): what a
/// foundation-model endpoint's traffic cost per token against what provisioned throughput for its
/// busiest hour would have cost, and the volume above which provisioning wins.
pub async fn break_even(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    ApiQuery(p): ApiQuery<BreakEvenParams>,
) -> ApiResult<Json<Value>> {
    let ep = crate::access::require(&app, &caller, &p.endpoint, Level::CanManage)?;
    let days = p.days.unwrap_or(30);
    if !(1..=400).contains(&days) {
        return Err(ApiError::invalid("days", format!("must be 1 to 400, got {days}")));
    }
    let model = ep
        .entities
        .iter()
        .filter_map(|e| e.registered.as_ref())
        .find_map(|(name, _)| app.hosting.settings.catalog.find(name))
        .ok_or_else(|| {
            ApiError::invalid(
                "endpoint",
                format!(
                    "endpoint '{}' serves no foundation model; provisioned throughput is for foundation models",
                    ep.name
                ),
            )
        })?;
    let end = modelgate_core::now_ms() + 1;
    let start = end - days * 86_400_000;
    app.usage.flush().await;
    let query = ReportQuery {
        group_by: Vec::new(),
        bucket: Some(Bucket::Hour),
        start,
        end,
        endpoints: Some(vec![ep.name.clone()]),
        requester_id: None,
    };
    let hours = app.usage.db.report(&query).await?;
    let per_hour = |r: &modelgate_store::ReportRow| (r.input_tokens + r.output_tokens).max(0) as u64;
    let tokens: u64 = hours.iter().map(per_hour).sum();
    let peak = hours.iter().map(per_hour).max().unwrap_or(0);
    // What the tokens cost (or would have, if the endpoint is provisioned) at the per-token price.
    let (input, output) =
        hours.iter().fold((0, 0), |(i, o), r| (i + r.input_tokens.max(0), o + r.output_tokens.max(0)));
    let price = app.usage.prices().lookup("modelgate", &model.name);
    let (in_price, out_price) = price.map(|p| (p.input, p.output)).unwrap_or_default();
    let pay_per_token = (input as f64 * in_price + output as f64 * out_price) / 1e6;
    let b = modelgate_core::foundation::break_even(model, tokens, pay_per_token, peak, days as f64 * 24.0);
    Ok(Json(json!({
        "endpoint": ep.name, "model": model.name, "days": days, "tokens": tokens,
        "usd_per_million_tokens": in_price, "usd_per_million_output_tokens": out_price,
        "pay_per_token_usd": b.pay_per_token_usd,
        "peak_tokens_per_hour": peak, "band_tokens_per_second": model.band_tokens_per_second,
        "band_usd_per_hour": model.band_usd_per_hour, "bands": b.bands, "provisioned_usd": b.provisioned_usd,
        "break_even_tokens_per_hour": b.break_even_tokens_per_hour, "cheaper": b.cheaper,
    })))
}
