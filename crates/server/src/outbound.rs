//! What happens to an answer on its way to the client, after the provider adapter translated it:
//! output guardrails, and settling token rate-limit reservations to the tokens really used.
//!
//! An [`Outbound`] with nothing to do costs nothing: answers pass through unparsed.

use std::sync::Arc;

use axum::body::Bytes;
use modelgate_providers::tokens;
use serde_json::Value;

use crate::counters::Counters;
use crate::error::ApiError;
use crate::guardrails::OutputGuard;
use crate::ratelimit::Admission;

/// Post-processing for one request's answer. The default does nothing.
#[derive(Default)]
pub struct Outbound {
    settle: Option<(Arc<dyn Counters>, Admission)>,
    guard: Option<OutputGuard>,
    /// Streamed output text seen so far, to count tokens when the provider reports no usage.
    streamed: String,
    reported: Option<u64>,
    started: bool,
}

impl Outbound {
    /// Post-processing that settles `admission` (if it holds tokens) and applies `guard`.
    pub fn new(counters: Arc<dyn Counters>, admission: Option<Admission>, guard: Option<OutputGuard>) -> Self {
        Outbound {
            settle: admission.filter(Admission::needs_usage).map(|a| (counters, a)),
            guard,
            streamed: String::new(),
            reported: None,
            started: false,
        }
    }

    /// Whether answers can pass through untouched.
    pub fn is_noop(&self) -> bool {
        self.settle.is_none() && self.guard.is_none()
    }

    /// A complete (non-streamed) answer, in the OpenAI shape. Returns what to send.
    pub async fn whole(&mut self, body: Bytes) -> Result<Bytes, ApiError> {
        self.started = true;
        if self.is_noop() {
            return Ok(body);
        }
        let Ok(mut v) = serde_json::from_slice::<Value>(&body) else {
            return Ok(body);
        };
        self.reported = usage_of(&v);
        if self.reported.is_none() {
            self.streamed = answer_text(&v);
        }
        if let Some(guard) = &self.guard {
            guard.whole(&mut v).await?;
            return Ok(Bytes::from(v.to_string()));
        }
        Ok(body)
    }

    /// One streamed chunk (a JSON object). Returns the chunks to send in its place, or the error
    /// that ends the stream.
    pub fn chunk(&mut self, data: String) -> Result<Vec<String>, ApiError> {
        self.started = true;
        if self.is_noop() {
            return Ok(vec![data]);
        }
        let Ok(v) = serde_json::from_str::<Value>(&data) else {
            return Ok(vec![data]);
        };
        if let Some(u) = usage_of(&v) {
            self.reported = Some(u);
        }
        if self.settle.is_some() {
            for c in v["choices"].as_array().into_iter().flatten() {
                if let Some(t) = c["delta"]["content"].as_str().or(c["text"].as_str()) {
                    self.streamed.push_str(t);
                }
            }
        }
        match &mut self.guard {
            Some(guard) => guard.chunk(v).map(|out| out.into_iter().map(|c| c.to_string()).collect()),
            None => Ok(vec![data]),
        }
    }

    /// The end of a stream, before `[DONE]`: chunks still held back, or the error that ends the
    /// stream instead.
    pub async fn end(&mut self) -> Result<Vec<String>, ApiError> {
        match &mut self.guard {
            Some(guard) => guard.end().await.map(|out| out.into_iter().map(|c| c.to_string()).collect()),
            None => Ok(Vec::new()),
        }
    }
}

impl Drop for Outbound {
    /// Settles the token reservation: to the provider's usage when it reported one, else to the
    /// estimated input plus the output counted with a real tokenizer; a request that never got an
    /// answer used nothing.
    fn drop(&mut self) {
        let Some((counters, admission)) = self.settle.take() else {
            return;
        };
        let used = match (self.started, self.reported) {
            (false, _) => 0,
            (true, Some(u)) => u,
            (true, None) => admission.input() + tokens::count(&self.streamed),
        };
        admission.settle(counters.as_ref(), used);
    }
}

fn usage_of(v: &Value) -> Option<u64> {
    let u = v.get("usage")?;
    u["total_tokens"].as_u64().or_else(|| Some(u["prompt_tokens"].as_u64()? + u["completion_tokens"].as_u64()?))
}

fn answer_text(v: &Value) -> String {
    let mut out = String::new();
    for c in v["choices"].as_array().into_iter().flatten() {
        if let Some(t) = c["message"]["content"].as_str().or(c["text"].as_str()) {
            out.push_str(t);
        }
    }
    out
}
