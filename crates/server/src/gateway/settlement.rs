//! The life of one query after it was parsed: its rate-limit reservation, output guardrails, and
//! what it leaves behind (metrics). An [`Settlement`] is created when a query arrives and dropped
//! when its answer has been sent; dropping it settles and records everything exactly once, also
//! for a query the client abandoned.
//!
//! A query whose client went away is recorded with status 499 (`CLIENT_DISCONNECTED`). If the
//! provider had already accepted it, it is billed: the tokens the provider reported, or else the
//! estimated input (the provider did receive the prompt) and the output streamed so far; that
//! cost counts against budgets and token rate limits like any other.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use modelgate_providers::tokens;
use serde::Deserialize;
use serde_json::Value;

use super::query::QueryFacts;
use crate::error::{ApiError, ErrorCode};
use crate::policy::budgets::Budgets;
use crate::policy::guardrails::OutputGuard;
use crate::policy::ratelimit::Admission;
use crate::snapshot::{LiveEndpoint, LiveEntity, Principal};
use crate::state::AppState;
use crate::telemetry::inference::{Capture, InferenceSink};
use crate::telemetry::metrics::{Metrics, Observation};
use crate::telemetry::traces::{ChildSpan, QueryTrace};
use crate::telemetry::usage::{CLIENT_CLOSED, CLIENT_DISCONNECTED, UsageSink};
use modelgate_store::{PayloadRecord, UsageRecord, billing};
use opentelemetry::KeyValue;

/// The provider of usage records of registered model versions (hosted here), in prices and reports.
pub(crate) const HOSTED_PROVIDER: &str = "modelgate";

/// An OpenAI-shaped `usage` object, as providers (translated) report it.
#[derive(Debug, Default, serde::Deserialize)]
struct UsageReport {
    /// `input_tokens` in the usage of image answers.
    #[serde(default, alias = "input_tokens")]
    prompt_tokens: Option<u64>,
    #[serde(default, alias = "output_tokens")]
    completion_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionTokensDetails>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct PromptTokensDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    cache_write_tokens: Option<u64>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct CompletionTokensDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl From<UsageReport> for Usage {
    fn from(u: UsageReport) -> Usage {
        let input = u.prompt_tokens.unwrap_or(0);
        let output = u.completion_tokens.unwrap_or_else(|| u.total_tokens.unwrap_or(0).saturating_sub(input));
        let prompt = u.prompt_tokens_details.unwrap_or_default();
        Usage {
            input,
            output,
            cached_input: prompt.cached_tokens.unwrap_or(0),
            cache_write: prompt.cache_write_tokens.unwrap_or(0),
            reasoning: u.completion_tokens_details.and_then(|c| c.reasoning_tokens).unwrap_or(0),
        }
    }
}

/// The text of an answer's or a chunk's choices: message or delta content, or completion text.
fn choice_texts(v: &Value) -> impl Iterator<Item = &str> {
    v.get("choices").and_then(Value::as_array).into_iter().flatten().filter_map(|c| {
        let content = c.get("message").or_else(|| c.get("delta")).and_then(|m| m.get("content"));
        content.and_then(Value::as_str).or_else(|| c.get("text").and_then(Value::as_str))
    })
}

/// Token counts of an answer, as the provider reported them (or as counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input (prompt) tokens, cached ones included.
    pub input: u64,
    /// Output (completion) tokens, reasoning ones included.
    pub output: u64,
    /// Input tokens served from the provider's prompt cache.
    pub cached_input: u64,
    /// Input tokens written to the provider's prompt cache.
    pub cache_write: u64,
    /// Output tokens spent on reasoning.
    pub reasoning: u64,
}

/// Only the `usage` of an answer: deserialising into this skips everything else without
/// building it.
#[derive(serde::Deserialize)]
struct UsageOnly {
    #[serde(default)]
    usage: Option<UsageReport>,
}

impl Usage {
    /// Reads the `usage` of an OpenAI-shaped answer without parsing the rest into values.
    fn of_bytes(body: &[u8]) -> Option<Usage> {
        serde_json::from_slice::<UsageOnly>(body).ok()?.usage.map(Usage::from)
    }

    /// Reads the `usage` of an OpenAI-shaped answer already parsed.
    pub fn of(v: &Value) -> Option<Usage> {
        let u = v.get("usage").filter(|u| u.is_object())?;
        UsageReport::deserialize(u).ok().map(Usage::from)
    }

    /// Input plus output.
    pub fn total(&self) -> u64 {
        self.input + self.output
    }
}

/// Who asked what, for the records a query leaves.
pub struct Ledger {
    metrics: Arc<Metrics>,
    sink: Arc<UsageSink>,
    inference: Arc<InferenceSink>,
    budgets: Arc<Budgets>,
    /// The caller's groups, for budgets scoped to a group (shared, not copied).
    groups: Arc<std::collections::BTreeSet<String>>,
    endpoint: Arc<LiveEndpoint>,
    usage_context: Option<serde_json::Map<String, Value>>,
    capture: Option<Capture>,
    record: UsageRecord,
    start: Instant,
    first_token: Option<Instant>,
    stream_error: Option<(u16, &'static str)>,
    /// The request as sent by the client (shared, not copied), to estimate its input tokens when
    /// the provider reports none.
    request: Bytes,
}

impl Ledger {
    /// A query of `ep` by `caller` that arrived at `start`, with its body (for
    /// `client_request_id` and `usage_context`).
    pub fn new(
        app: &AppState,
        ep: Arc<LiveEndpoint>,
        caller: &Principal,
        facts: &QueryFacts,
        body: &serde_json::Map<String, Value>,
        request: Bytes,
        start: Instant,
    ) -> Self {
        let record = UsageRecord {
            // Time-ordered ids keep the usage table's primary key appending, not scattering.
            request_id: uuid::Uuid::now_v7().to_string(),
            client_request_id: facts.client_request_id.clone(),
            request_time: modelgate_core::now_ms(),
            endpoint_id: ep.id.clone(),
            endpoint_name: ep.name.clone(),
            requester: caller.user_name.clone(),
            requester_id: caller.id.clone(),
            token_id: Some(caller.token_id.clone()).filter(|t| !t.is_empty()),
            streaming: facts.stream,
            usage_context: facts.usage_context.as_ref().map(|c| Value::Object(c.clone()).to_string()),
            tags: ep.tags.as_deref().map(str::to_string),
            ..Default::default()
        };
        Ledger {
            metrics: app.metrics.clone(),
            sink: app.usage.clone(),
            inference: app.inference.clone(),
            budgets: app.budgets.clone(),
            groups: caller.groups.clone(),
            usage_context: facts.usage_context.clone(),
            capture: Capture::start(ep.ai_gateway.as_ref(), body),
            endpoint: ep,
            record,
            start,
            first_token: None,
            stream_error: None,
            request,
        }
    }
}

/// The answer's way back and the query's accounting: output guardrails, then, once, the
/// settlement: the rate-limit reservation settled to the tokens used, the spend added to budgets,
/// the usage record, the inference-table row and the metrics. The pipeline settles explicitly
/// ([`Settlement::settle`], [`Settlement::settle_stream`]); dropping an unsettled one (the client
/// went away) settles it as disconnected. The default does nothing and records nothing (internal
/// queries such as the guardrail judge's).
#[derive(Default)]
pub struct Settlement {
    reservation: Option<(Arc<crate::policy::counters::Counters>, Admission)>,
    /// The query's turn within a provisioned throughput, settled to the tokens used.
    turn: Option<crate::hosting::throughput::Reservation>,
    guard: Option<OutputGuard>,
    ledger: Option<Ledger>,
    /// Streamed (or unreported) output text, to count tokens when the provider reports none.
    streamed: String,
    /// Why a streamed answer stopped (`stop`, `length`, `tool_calls`, ...), for the inference table.
    finish_reason: Option<String>,
    reported: Option<Usage>,
    /// The request went to a provider: if the client leaves before the answer, it is billed.
    sent: bool,
    /// The provider accepted the query (a success status): from here on it is billed.
    accepted: bool,
    /// The answer was sent to the end, or ended with an error the client was told about.
    ended: bool,
    status: u16,
    /// The answer as sent, kept only for an inference-table capture.
    response: Option<Bytes>,
    /// The query generates images: its answer's images are counted (and priced per image).
    counts_images: bool,
    images: u64,
    /// Answered from the response cache: nothing upstream, nothing owed.
    cache_hit: bool,
    /// Where a successful whole answer is stored, and the answer once known.
    fill: Option<(Fill, Option<Bytes>)>,
    /// A streamed answer being put back together, for the cache.
    assembled: Option<super::assemble::Assembled>,
    /// The query's trace, ended with its outcome.
    trace: Option<QueryTrace>,
    /// The span of a streamed answer, from its headers to its last event.
    stream_span: Option<ChildSpan>,
    /// Why the query failed (error type, message), for its trace.
    failure: Option<(String, String)>,
    settled: bool,
}

/// Where a query's answer goes in the response cache.
pub(super) struct Fill {
    cache: Arc<crate::policy::cache::ResponseCache>,
    key: crate::policy::cache::Key,
    ttl: std::time::Duration,
}

impl Settlement {
    /// Accounting for a query; `None` records nothing.
    pub fn new(ledger: Option<Ledger>) -> Self {
        Settlement {
            reservation: None,
            turn: None,
            guard: None,
            ledger,
            streamed: String::new(),
            finish_reason: None,
            reported: None,
            sent: false,
            accepted: false,
            ended: false,
            status: CLIENT_CLOSED,
            response: None,
            counts_images: false,
            images: 0,
            cache_hit: false,
            fill: None,
            assembled: None,
            trace: None,
            stream_span: None,
            failure: None,
            settled: false,
        }
    }

    /// The query generates images: count them in its answer.
    pub fn count_images(&mut self) {
        self.counts_images = true;
    }

    /// Holds a rate-limit reservation, settled to the tokens really used.
    pub fn reserve(&mut self, counters: Arc<crate::policy::counters::Counters>, admission: Option<Admission>) {
        self.reservation = admission.filter(Admission::needs_usage).map(|a| (counters, a));
    }

    /// Holds a turn within a provisioned throughput; its usage is billed by the band, not per token.
    pub fn throughput(&mut self, turn: crate::hosting::throughput::Reservation) {
        self.turn = Some(turn);
    }

    /// Applies output guardrails.
    pub fn guard(&mut self, guard: Option<OutputGuard>) {
        self.guard = guard;
    }

    /// Traces the query: its span ends with the settlement.
    pub fn trace(&mut self, trace: QueryTrace) {
        self.trace = Some(trace);
    }

    /// The query's trace, if it is traced.
    pub fn query_trace(&self) -> Option<&QueryTrace> {
        self.trace.as_ref()
    }

    /// The span of the streamed answer now starting.
    pub fn stream_span(&mut self, span: ChildSpan) {
        self.stream_span = Some(span);
    }

    /// Stores the answer in the response cache if it is a whole success.
    pub fn fill(
        &mut self,
        cache: Arc<crate::policy::cache::ResponseCache>,
        key: crate::policy::cache::Key,
        ttl: std::time::Duration,
    ) {
        self.fill = Some((Fill { cache, key, ttl }, None));
        if self.ledger.as_ref().is_some_and(|l| l.record.streaming) {
            self.assembled = Some(Default::default());
        }
    }

    /// The query is answered from the response cache with `answer`, which `entity` gave (if it
    /// is still served): recorded as its answer, billed nothing, counted against no tokens.
    pub fn hit(&mut self, entity: Option<&LiveEntity>, answer: Bytes) {
        self.cache_hit = true;
        self.accepted = true;
        self.reported = Some(Usage::default());
        if let Some(l) = &mut self.ledger {
            if let Some(e) = entity {
                let provider = e.adapter.as_ref().map(|a| a.provider()).unwrap_or_default();
                attribute(&mut l.record, e, provider);
            }
            l.record.billing = billing::CACHE.to_string();
            l.first_token = Some(Instant::now());
            if l.capture.is_some() {
                self.response = Some(answer);
            }
        }
    }

    /// The served entity now trying to answer: one more upstream attempt.
    pub fn entity(&mut self, entity: &LiveEntity, provider: &str) {
        if let Some(l) = &mut self.ledger {
            let r = &mut l.record;
            r.attempts += 1;
            match &mut r.entities_tried {
                Some(tried) if tried.rsplit(',').next() == Some(entity.name.as_str()) => {}
                Some(tried) => {
                    tried.push(',');
                    tried.push_str(&entity.name);
                }
                None => r.entities_tried = Some(entity.name.clone()),
            }
            attribute(r, entity, provider);
        }
    }

    /// The last attempt's provider answered with this error status.
    pub fn upstream_status(&mut self, status: u16) {
        if let Some(l) = &mut self.ledger {
            l.record.upstream_status = Some(i64::from(status));
        }
    }

    /// The request is being sent to a provider.
    pub fn sent(&mut self) {
        self.sent = true;
    }

    /// The provider accepted the query (answered with a success status).
    pub fn accepted(&mut self) {
        self.accepted = true;
    }

    /// A stream's headers go out with status 200; it counts as finished only when it ends.
    pub fn streaming(&mut self) {
        self.status = 200;
    }

    /// Settles a query answered whole (or refused) with `status` and, if it failed, its error.
    pub fn settle(mut self, status: u16, error: Option<&ErrorCode>) {
        self.status = status;
        self.ended = true;
        if self.trace.is_some()
            && let Some(e) = error
        {
            self.failure = Some((e.code.to_string(), e.message.to_string()));
        }
        if let (Some(l), Some(e)) = (&mut self.ledger, error) {
            l.record.error_code = Some(e.code.to_string());
            l.record.error_message = Some(clip(&e.message));
        }
        self.record();
    }

    /// Settles a stream that has sent its last event (`[DONE]` or an error event).
    pub fn settle_stream(mut self) {
        self.record();
    }

    /// A stream ended with an error event: `status` is the class it counts as.
    pub fn stream_failed(&mut self, status: u16, error_code: &'static str, message: &str) {
        self.ended = true;
        if let Some(span) = self.stream_span.as_mut() {
            span.fail(error_code.to_string(), message.to_string());
        }
        if self.trace.is_some() {
            self.failure = Some((error_code.to_string(), message.to_string()));
        }
        if let Some(l) = &mut self.ledger {
            l.stream_error = Some((status, error_code));
            l.record.error_message = Some(clip(message));
        }
    }

    fn is_noop(&self) -> bool {
        self.reservation.is_none() && self.guard.is_none() && self.ledger.is_none() && self.fill.is_none()
    }

    /// A complete (non-streamed) answer, in the OpenAI shape. Returns what to send.
    pub async fn whole(&mut self, body: Bytes) -> Result<Bytes, ApiError> {
        self.accepted = true;
        if self.counts_images {
            self.images = image_count(&body);
        }
        if self.is_noop() {
            return Ok(body);
        }
        let out = match &self.guard {
            Some(guard) => {
                let Ok(mut v) = serde_json::from_slice::<Value>(&body) else {
                    return Ok(body);
                };
                self.reported = Usage::of(&v);
                if self.reported.is_none() {
                    self.streamed = answer_text(&v);
                }
                guard.whole(&mut v).await?;
                Bytes::from(v.to_string())
            }
            None => {
                self.reported = Usage::of_bytes(&body);
                if self.reported.is_none()
                    && let Ok(v) = serde_json::from_slice::<Value>(&body)
                {
                    self.streamed = answer_text(&v);
                }
                body
            }
        };
        let content = self.trace.as_ref().is_some_and(QueryTrace::content);
        if content || self.ledger.as_ref().is_some_and(|l| l.capture.is_some()) {
            self.response = Some(out.clone());
        }
        if let Some((_, answer)) = &mut self.fill {
            *answer = Some(out.clone());
        }
        Ok(out)
    }

    /// One streamed chunk (a JSON object). Returns the chunks to send in its place, or the error
    /// that ends the stream.
    pub fn chunk(&mut self, data: String) -> Result<Vec<String>, ApiError> {
        self.accepted = true;
        if self.is_noop() {
            return Ok(vec![data]);
        }
        let Ok(v) = serde_json::from_str::<Value>(&data) else {
            return Ok(vec![data]);
        };
        if let Some(u) = Usage::of(&v) {
            self.reported = Some(u);
        }
        if let Some(reason) = v
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find_map(|c| c.get("finish_reason").and_then(Value::as_str))
        {
            self.finish_reason = Some(reason.to_string());
        }
        for t in choice_texts(&v) {
            if let Some(l) = &mut self.ledger
                && l.first_token.is_none()
                && !t.is_empty()
            {
                l.first_token = Some(Instant::now());
            }
            self.streamed.push_str(t);
        }
        let assembled = &mut self.assembled;
        match &mut self.guard {
            Some(guard) => guard.chunk(v).map(|out| {
                out.into_iter()
                    .map(|c| {
                        if let Some(a) = assembled.as_mut() {
                            a.add(&c);
                        }
                        c.to_string()
                    })
                    .collect()
            }),
            None => {
                if let Some(a) = assembled.as_mut() {
                    a.add(&v);
                }
                Ok(vec![data])
            }
        }
    }

    /// A usage chunk the client did not ask for: it counts, and is not sent.
    pub fn usage_chunk(&mut self, data: &str) {
        if let Some(u) = Usage::of_bytes(data.as_bytes()) {
            self.reported = Some(u);
        }
    }

    /// The end of a stream, before `[DONE]`: chunks still held back, or the error that ends the
    /// stream instead.
    pub async fn end(&mut self) -> Result<Vec<String>, ApiError> {
        self.ended = true;
        match &mut self.guard {
            Some(guard) => {
                let out = guard.end().await?;
                if let Some(a) = self.assembled.as_mut() {
                    out.iter().for_each(|c| a.add(c));
                }
                Ok(out.into_iter().map(|c| c.to_string()).collect())
            }
            None => Ok(Vec::new()),
        }
    }

    /// The tokens this query used: the provider's report, else the estimated input plus the
    /// output counted with a real tokenizer. Nothing for a query no provider accepted, unless the
    /// client left while a provider had it (the provider got the prompt).
    fn usage(&self) -> Usage {
        let billable = self.accepted || (self.sent && !self.ended);
        match (billable, self.reported) {
            (false, _) => Usage::default(),
            (true, Some(u)) => u,
            (true, None) => {
                Usage { input: self.estimated_input(), output: tokens::count(&self.streamed), ..Default::default() }
            }
        }
    }

    /// The input tokens of the request: the rate limiter's count if it made one, else counted now
    /// from the request (only queries without a usage report get here).
    fn estimated_input(&self) -> u64 {
        if let Some(n) = self.reservation.as_ref().map(|(_, a)| a.input()).filter(|n| *n > 0) {
            return n;
        }
        let Some(l) = &self.ledger else { return 0 };
        serde_json::from_slice::<serde_json::Map<String, Value>>(&l.request)
            .map(|body| crate::policy::ratelimit::estimate(&body).0)
            .unwrap_or(0)
    }
}

impl Drop for Settlement {
    /// The safety net: a query whose future was dropped (the client went away) is settled as
    /// disconnected.
    fn drop(&mut self) {
        self.record();
    }
}

impl Settlement {
    /// Settles the reservation and leaves the records, once.
    fn record(&mut self) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let usage = self.usage();
        if let Some((counters, admission)) = self.reservation.take() {
            admission.settle(counters.as_ref(), usage.total());
        }
        if let Some(turn) = self.turn.take() {
            turn.settle(usage.total());
        }
        if let Some(l) = self.ledger.take() {
            let now = Instant::now();
            let ms = |t: Instant| t.duration_since(l.start).as_secs_f64() * 1e3;
            let mut r = l.record;
            if !self.ended {
                self.status = CLIENT_CLOSED;
                r.error_code = Some(CLIENT_DISCONNECTED.to_string());
                r.error_message = Some("The client closed the connection before the answer was complete.".into());
            }
            r.status_code = i64::from(self.status);
            if let Some((_, code)) = l.stream_error {
                r.error_code = Some(code.to_string());
            }
            r.input_tokens = usage.input as i64;
            r.output_tokens = usage.output as i64;
            r.cached_input_tokens = usage.cached_input as i64;
            r.cache_write_tokens = usage.cache_write as i64;
            r.reasoning_tokens = usage.reasoning as i64;
            r.images = self.images as i64;
            r.latency_ms = ms(now);
            r.ttft_ms = l.first_token.map(ms);
            let cost = l.sink.price(&mut r);
            // A stream is stored as the whole answer it carried, once it has ended well.
            let streamed = self.assembled.take().filter(|_| self.ended).and_then(|a| a.answer());
            if let Some((fill, Some(answer))) = self.fill.take().map(|(f, whole)| (f, whole.or(streamed)))
                && r.status_code == 200
                && r.error_code.is_none()
            {
                let now = modelgate_core::now_ms();
                let entry = crate::policy::cache::Entry {
                    body: answer,
                    entity: r.served_entity.clone(),
                    stored_ms: now,
                    expires_ms: now + fill.ttl.as_millis() as i64,
                };
                fill.cache.put(fill.key, entry, now);
            }
            let caller = crate::policy::Caller {
                id: &r.requester_id,
                name: &r.requester,
                groups: &l.groups,
                token_id: r.token_id.as_deref().unwrap_or_default(),
            };
            l.budgets.add(l.endpoint.target(), Some(caller), l.usage_context.as_ref(), cost);
            if let Some(capture) = l.capture {
                let response = match (&self.response, r.streaming && self.accepted) {
                    (Some(b), _) => Some(String::from_utf8_lossy(b).into_owned()),
                    (None, true) => Some(streamed_answer(
                        &self.streamed,
                        self.finish_reason.as_deref(),
                        &usage,
                        r.error_code.as_deref(),
                    )),
                    (None, false) => r.error_code.as_ref().map(|c| serde_json::json!({"error_code": c}).to_string()),
                };
                let payload = PayloadRecord {
                    databricks_request_id: r.request_id.clone(),
                    endpoint_name: r.endpoint_name.clone(),
                    request_date: humantime::format_rfc3339(
                        std::time::UNIX_EPOCH + std::time::Duration::from_millis(r.request_time as u64),
                    )
                    .to_string()[..10]
                        .to_string(),
                    client_request_id: r.client_request_id.clone(),
                    request_time: r.request_time,
                    status_code: r.status_code,
                    execution_duration_ms: r.latency_ms.round() as i64,
                    served_entity_id: Some(r.served_entity.clone()).filter(|s| !s.is_empty()),
                    requester: Some(r.requester.clone()),
                    cache_hit: self.cache_hit,
                    ..Default::default()
                };
                l.inference.record(capture.finish(payload, response));
            }
            if let Some(t) = self.trace.as_ref().filter(|t| t.recording()) {
                t.set(trace_attributes(&r, &usage, cost, self.cache_hit));
                if let Some(reason) = &self.finish_reason {
                    let reasons = opentelemetry::Array::String(vec![reason.clone().into()]);
                    t.set(vec![KeyValue::new("gen_ai.response.finish_reasons", opentelemetry::Value::Array(reasons))]);
                }
                if t.content() {
                    let answer = match &self.response {
                        Some(b) => String::from_utf8_lossy(b).into_owned(),
                        None => self.streamed.clone(),
                    };
                    t.set(vec![
                        KeyValue::new("gen_ai.input.messages", String::from_utf8_lossy(&l.request).into_owned()),
                        KeyValue::new("gen_ai.output.messages", answer),
                    ]);
                }
                if !self.ended {
                    self.failure = Some((CLIENT_DISCONNECTED.to_string(), "the client went away".to_string()));
                }
            }
            l.metrics.observe(&Observation {
                labels: Some((&r.endpoint_name, &r.served_entity)),
                status: self.status,
                stream_error: l.stream_error.map(|(s, _)| s),
                latency_ms: r.latency_ms,
                ttft_ms: r.ttft_ms,
                input_tokens: usage.input,
                output_tokens: usage.output,
                cost_usd: cost,
            });
            l.sink.record(r);
        }
        if let Some(mut span) = self.stream_span.take() {
            if !self.ended {
                span.fail(CLIENT_DISCONNECTED.to_string(), "the client went away".to_string());
            }
            span.end();
        }
        if let Some(t) = self.trace.take() {
            t.set(vec![KeyValue::new("http.response.status_code", i64::from(self.status))]);
            t.end(self.failure.take());
        }
    }
}

/// The outcome of a query in the GenAI conventions (and ours, `modelgate.*`).
fn trace_attributes(r: &UsageRecord, usage: &Usage, cost: f64, cache_hit: bool) -> Vec<KeyValue> {
    let mut out = vec![
        KeyValue::new("gen_ai.usage.input_tokens", usage.input as i64),
        KeyValue::new("gen_ai.usage.output_tokens", usage.output as i64),
        KeyValue::new("modelgate.request_id", r.request_id.clone()),
        KeyValue::new("modelgate.attempts", r.attempts),
        KeyValue::new("modelgate.cost_usd", cost),
    ];
    if !r.provider.is_empty() {
        out.push(KeyValue::new("gen_ai.system", r.provider.clone()));
        out.push(KeyValue::new("gen_ai.provider.name", r.provider.clone()));
    }
    if !r.model.is_empty() {
        out.push(KeyValue::new("gen_ai.response.model", r.model.clone()));
    }
    if !r.served_entity.is_empty() {
        out.push(KeyValue::new("modelgate.served_entity", r.served_entity.clone()));
    }
    if let Some(ms) = r.ttft_ms {
        out.push(KeyValue::new("modelgate.time_to_first_token_ms", ms));
    }
    if cache_hit {
        out.push(KeyValue::new("gen_ai.usage.cache_hit", true));
    }
    out
}

/// Attributes a record to the served entity `entity` (its provider and model, how it bills).
fn attribute(r: &mut UsageRecord, entity: &LiveEntity, provider: &str) {
    if r.served_entity == entity.name {
        return;
    }
    r.served_entity.clone_from(&entity.name);
    // Empty is per token (the common case, without an allocation).
    let provisioned = entity.hosted.as_ref().is_some_and(|s| s.throughput.is_some());
    r.billing = if provisioned { billing::PROVISIONED.to_string() } else { String::new() };
    // A registered version is served by modelgate itself: it is priced (and reported) as provider
    // `modelgate` and the model's name, whatever wire format its replica speaks.
    match (&entity.registered, &entity.external_model) {
        (Some((model, _)), None) => {
            r.provider = HOSTED_PROVIDER.to_string();
            r.model.clone_from(model);
        }
        _ => {
            r.provider = provider.to_string();
            r.model = entity.external_model.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        }
    }
}

/// Most bytes of an error message a record keeps.
const MAX_RECORDED_MESSAGE: usize = 1000;

/// `message` cut to [`MAX_RECORDED_MESSAGE`] bytes at a character boundary.
fn clip(message: &str) -> String {
    if message.len() <= MAX_RECORDED_MESSAGE {
        return message.to_string();
    }
    let mut end = MAX_RECORDED_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", message.get(..end).unwrap_or_default())
}

/// A streamed answer as one chat completion, for the inference table.
fn streamed_answer(text: &str, finish_reason: Option<&str>, usage: &Usage, error: Option<&str>) -> String {
    let mut v = serde_json::json!({
        "object": "chat.completion", "streamed": true,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": usage.input, "completion_tokens": usage.output, "total_tokens": usage.total()},
    });
    if let (Some(code), Some(o)) = (error, v.as_object_mut()) {
        o.insert("error_code".into(), Value::from(code));
    }
    v.to_string()
}

/// How many images an images answer holds, without building them.
fn image_count(body: &[u8]) -> u64 {
    #[derive(Deserialize)]
    struct Images {
        #[serde(default)]
        data: Vec<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Images>(body).map(|i| i.data.len() as u64).unwrap_or(0)
}

fn answer_text(v: &Value) -> String {
    choice_texts(v).collect()
}
