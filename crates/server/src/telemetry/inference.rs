//! Inference tables: when an endpoint's `ai_gateway.inference_table_config.enabled`, a sample of
//! its queries is logged with request and response payloads, in the columns of a Databricks
//! payload table, to a database of their own.
//!
//! Per endpoint (our extensions of `inference_table_config`): `sampling_fraction` (default 1),
//! `max_payload_bytes` (default 1 MiB; a larger request or response is logged as null with
//! `MAX_REQUEST_SIZE_EXCEEDED` / `MAX_RESPONSE_SIZE_EXCEEDED`), `retention_days` (default 30) and
//! `mask_pii` (personal data in every string of the payloads is masked before the write).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use modelgate_core::pii;
use modelgate_store::{InferenceDb, PayloadRecord, StoreError};
use modelgate_wire::InferenceTableConfig;
use serde_json::{Map, Value};

use crate::state::AppState;
use crate::telemetry::batch::{BatchTarget, BatchWriter};
use crate::telemetry::metrics::Metrics;

/// Default size cap of a logged request or response.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// Default retention.
pub const DEFAULT_RETENTION_DAYS: i64 = 30;

#[async_trait]
impl BatchTarget<PayloadRecord> for InferenceDb {
    async fn write(&self, batch: &[PayloadRecord]) -> Result<(), StoreError> {
        self.insert(batch).await
    }
}

/// The inference writer and database.
pub struct InferenceSink {
    writer: BatchWriter<PayloadRecord>,
    /// The database, for queries and retention.
    pub db: InferenceDb,
}

impl InferenceSink {
    /// Starts the writer over `db`.
    pub fn start(db: InferenceDb, metrics: Arc<Metrics>) -> Arc<InferenceSink> {
        Arc::new(InferenceSink { writer: BatchWriter::start("inference", db.clone(), metrics), db })
    }

    /// Queues a record; never waits.
    pub fn record(&self, r: PayloadRecord) {
        self.writer.push(r);
    }

    /// Waits until everything queued before this call is written.
    pub async fn flush(&self) {
        self.writer.flush().await;
    }
}

/// A query chosen for logging: the settings that apply and the request as logged.
pub struct Capture {
    fraction: f64,
    max_bytes: usize,
    mask: bool,
    request: Option<String>,
    errors: Vec<String>,
}

fn enabled(ep_gateway: Option<&modelgate_wire::AiGatewayConfig>) -> Option<&InferenceTableConfig> {
    ep_gateway.and_then(|g| g.inference_table_config.as_ref()).filter(|c| c.enabled == Some(true))
}

fn mask_strings(v: &mut Value) {
    match v {
        Value::String(s) => {
            let masked = pii::mask(s);
            if masked != *s {
                *s = masked;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(mask_strings),
        Value::Object(o) => o.values_mut().for_each(mask_strings),
        _ => {}
    }
}

impl Capture {
    /// A capture for this query if the endpoint logs payloads and the sample picks it.
    pub fn start(gateway: Option<&modelgate_wire::AiGatewayConfig>, body: &Map<String, Value>) -> Option<Capture> {
        let c = enabled(gateway)?;
        let fraction = c.sampling_fraction.unwrap_or(1.0);
        if fraction < 1.0 && fastrand::f64() >= fraction {
            return None;
        }
        let mut capture = Capture {
            fraction,
            max_bytes: c.max_payload_bytes.map_or(DEFAULT_MAX_PAYLOAD_BYTES, |b| b.max(1) as usize),
            mask: c.mask_pii == Some(true),
            request: None,
            errors: Vec::new(),
        };
        let mut request = Value::Object(body.clone());
        if capture.mask {
            mask_strings(&mut request);
        }
        let text = request.to_string();
        if text.len() > capture.max_bytes {
            capture.errors.push("MAX_REQUEST_SIZE_EXCEEDED".into());
        } else {
            capture.request = Some(text);
        }
        Some(capture)
    }

    /// The record, given the response as sent (JSON text).
    pub fn finish(mut self, mut r: PayloadRecord, response: Option<String>) -> PayloadRecord {
        let response = response.map(|text| {
            if !self.mask {
                return text;
            }
            match serde_json::from_str::<Value>(&text) {
                Ok(mut v) => {
                    mask_strings(&mut v);
                    v.to_string()
                }
                Err(_) => pii::mask(&text),
            }
        });
        r.response = match response {
            Some(t) if t.len() > self.max_bytes => {
                self.errors.push("MAX_RESPONSE_SIZE_EXCEEDED".into());
                None
            }
            other => other,
        };
        r.request = self.request;
        r.sampling_fraction = self.fraction;
        r.logging_error_codes = self.errors;
        r
    }
}

/// Deletes payloads past their endpoint's retention, now and then every hour. Payloads of
/// endpoints that no longer log (or no longer exist) are kept for the default retention.
pub async fn retention_loop(app: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let now = modelgate_core::now_ms();
        let day = 24 * 3600 * 1000;
        let mut logging = Vec::new();
        let snapshot = app.snapshot.load_full();
        for ep in snapshot.endpoints.values() {
            let Some(c) = enabled(ep.ai_gateway.as_ref()) else { continue };
            logging.push(ep.name.clone());
            let days = c.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS);
            if let Err(e) = app.inference.db.delete_older(Some(&ep.name), &[], now - days * day).await {
                tracing::warn!(endpoint = %ep.name, error = %e, "inference retention failed");
            }
        }
        if let Err(e) = app.inference.db.delete_older(None, &logging, now - DEFAULT_RETENTION_DAYS * day).await {
            tracing::warn!(error = %e, "inference retention failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.changed() => return,
        }
    }
}

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
