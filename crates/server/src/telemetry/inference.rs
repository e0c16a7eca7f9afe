//! Inference tables: when an endpoint's `ai_gateway.inference_table_config.enabled`, a sample of
//! its queries is logged with request and response payloads, in the columns of a Databricks
//! payload table, to a database of their own.
//!
//! Per endpoint (our extensions of `inference_table_config`): `sampling_fraction` (default 1),
//! `max_payload_bytes` (default 1 MiB; a larger request or response is logged as null with
//! `MAX_REQUEST_SIZE_EXCEEDED` / `MAX_RESPONSE_SIZE_EXCEEDED`), `retention_days` (default 30) and
//! `mask_pii` (personal data in every string of the payloads is masked before the write).

use std::sync::Arc;

use async_trait::async_trait;
use modelgate_core::pii;
use modelgate_store::{InferenceDb, PayloadRecord, StoreError};
use modelgate_wire::InferenceTableConfig;
use serde_json::{Map, Value};

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

pub(crate) fn enabled(ep_gateway: Option<&modelgate_wire::AiGatewayConfig>) -> Option<&InferenceTableConfig> {
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
