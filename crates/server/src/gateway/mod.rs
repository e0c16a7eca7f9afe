//! The data plane: `POST /serving-endpoints/{name}/invocations` and the OpenAI-compatible routes
//! (`/serving-endpoints/chat/completions`, `/completions`, `/embeddings`, `/images/generations`,
//! the same under `/v1/`,
//! and `GET /v1/models`), and Anthropic's Messages and OpenAI's Responses APIs translated onto
//! them ([`anthropic`], [`responses`]), as one pipeline:
//!
//! 1. [`handlers`]: parse the body, find the endpoint it names;
//! 2. [`admission`]: permission, servability, body checks, budgets, rate limits, input guardrails
//!    (the judge, if one is needed, is asked through [`judge`]);
//! 3. the response cache, if the endpoint has one ([`cache_answer`]): a hit is answered here;
//! 4. [`plan`]: which served entities to try, in which order (pure);
//! 5. [`attempt`]: call them in that order on the pooled client, with retries, fail-over and
//!    breakers, and translate the answer back;
//! 6. [`relay`]: re-frame a streamed answer event by event: only `data:` lines reach the client, a
//!    finished stream ends with `data: [DONE]`, a broken or stalled one with an error event;
//! 7. [`settlement`]: price the query, settle its rate-limit reservation, add its spend, and leave
//!    its usage record, inference-table row and metrics.
//!
//! Nothing here waits on the database. Dropping the response (client gone) drops the upstream
//! request with it, and settlement records the query as disconnected.

mod admission;
pub(crate) mod anthropic;
mod assemble;
mod attempt;
mod cache_answer;
pub(crate) mod handlers;
mod judge;
mod plan;
pub(crate) mod probe;
mod query;
mod relay;
pub(crate) mod responses;
pub(crate) mod settlement;
pub(crate) mod translate;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use modelgate_providers::{Body, Task};

use crate::error::{ApiError, ErrorCode};
use crate::extract::QueryHeaders;
use crate::policy::cache::{Lookup, Outcome};
use crate::snapshot::{LiveEndpoint, Principal};
use crate::state::AppState;
use crate::telemetry::traces::{QueryTrace, Traces, operation, request_attributes};
use modelgate_store::UsageRecord;
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;
use query::QueryFacts;
use settlement::{Ledger, Settlement};

use admission::admit;
use attempt::route;

/// Response header naming the served entity that answered.
pub const SERVED_MODEL_HEADER: &str = "served-model-name";

/// One query. A deprecated endpoint's answers carry the `Deprecation` and `Sunset` headers (RFC
/// 9745, RFC 8594) and a `Link` to its replacement from the notice date; from the sunset date it
/// answers 410 naming the replacement, or forwards the query there (one hop: the replacement's
/// own notice is not followed further).
pub(super) async fn query(
    app: &AppState,
    caller: &Principal,
    name: &str,
    route_task: Option<Task>,
    body: Body,
    raw: Bytes,
    headers: QueryHeaders,
) -> Response {
    // One snapshot read per query: the endpoint found here is the one the pipeline records against.
    let ep = app.snapshot.load().endpoints.get(name).cloned();
    let Some(d) = ep.as_ref().and_then(|ep| ep.deprecation.clone()) else {
        return pipeline(app, caller, name, ep, route_task, body, raw, headers).await;
    };
    let now = modelgate_core::now_ms();
    let mut resp = if now < d.sunset_ms {
        pipeline(app, caller, name, ep, route_task, body, raw, headers).await
    } else if let (Some(to), true) = (&d.replacement, d.forward) {
        let successor = app.snapshot.load().endpoints.get(to.as_str()).cloned();
        pipeline(app, caller, to, successor, route_task, body, raw, headers).await
    } else {
        let start = Instant::now();
        let day =
            humantime::format_rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_millis(d.sunset_ms as u64));
        let instead = d
            .replacement
            .as_ref()
            .map(|r| format!("; use '{r}' (/serving-endpoints/{r}/invocations)"))
            .unwrap_or_default();
        let note = d.message.as_ref().map(|m| format!(" {m}")).unwrap_or_default();
        let day = day.to_string();
        let msg = format!("Endpoint '{name}' was retired on {}{instead}.{note}", day.get(..10).unwrap_or(&day));
        let resp = ApiError::Gone(msg).into_response();
        refused(app, caller, name, &resp, start);
        resp
    };
    if now >= d.notice_ms {
        deprecation_headers(&mut resp, &d);
    }
    resp
}

fn deprecation_headers(resp: &mut Response, d: &crate::snapshot::LiveDeprecation) {
    use axum::http::HeaderValue;
    let at = |ms: i64| std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("@{}", d.notice_ms / 1000)) {
        h.insert("deprecation", v);
    }
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(at(d.sunset_ms))) {
        h.insert("sunset", v);
    }
    if let Some(r) = &d.replacement
        && let Ok(v) =
            HeaderValue::from_str(&format!("</serving-endpoints/{r}/invocations>; rel=\"successor-version\""))
    {
        h.append(axum::http::header::LINK, v);
    }
}

/// The pipeline: admission, the response cache, the attempts, settlement. `ep` is the endpoint
/// `name` found in the snapshot, if any.
#[allow(clippy::too_many_arguments)]
async fn pipeline(
    app: &AppState,
    caller: &Principal,
    name: &str,
    ep: Option<Arc<LiveEndpoint>>,
    route_task: Option<Task>,
    body: Body,
    raw: Bytes,
    headers: QueryHeaders,
) -> Response {
    let start = Instant::now();
    let facts = QueryFacts::read(&body);
    let trace = app.traces.as_ref().map(|t| {
        let task = route_task.or_else(|| ep.as_ref().and_then(|e| e.task.as_deref()).and_then(Task::from_task));
        query_trace(t, name, task, &body, &headers)
    });
    // Only endpoints that exist leave full records: unknown names must not grow the metrics.
    let ledger = ep.map(|ep| {
        let known = facts.as_ref().cloned().unwrap_or_default();
        Ledger::new(app, ep, caller, &known, &body, raw, start)
    });
    let known = ledger.is_some();
    let mut settlement = Some(Settlement::new(ledger));
    let admission = trace.as_ref().map(|t| t.child("admission".into(), SpanKind::Internal, Vec::new()));
    if let (Some(s), Some(t)) = (settlement.as_mut(), trace) {
        s.trace(t);
    }
    let admitted = match facts {
        Ok(facts) => admit(app, caller, name, route_task, &facts, body, &mut settlement).await.map(|a| (a, facts)),
        Err(e) => Err(e),
    };
    if let Some(mut span) = admission {
        if let Err(e) = &admitted {
            let (_, code) = e.status_and_code();
            span.fail(code.to_string(), e.to_string());
        }
        span.end();
    }
    let resp = match admitted {
        Ok(((ep, task, body), facts)) => {
            if task == Task::Images
                && let Some(s) = settlement.as_mut()
            {
                s.count_images();
            }
            match ep.cache.as_deref() {
                None => route(app, &ep, task, &facts, body, &mut settlement).await,
                Some(live) => {
                    let lookup = Lookup::plan(live, task, &caller.id, &body, headers.cache);
                    cached_route(app, &ep, task, &facts, body, lookup, &mut settlement).await
                }
            }
        }
        Err(e) => {
            if matches!(e, ApiError::RateLimited { .. }) {
                app.metrics.rate_limited(name);
            }
            e.into_response()
        }
    };
    // An answer sent whole is settled here; a stream took its settlement along and settles when
    // it ends.
    if let Some(s) = settlement.take() {
        s.settle(resp.status().as_u16(), resp.extensions().get::<ErrorCode>());
    }
    if !known {
        refused(app, caller, name, &resp, start);
    }
    resp
}

/// The trace of a query of endpoint `name` (the span named after the GenAI operation and the
/// endpoint, `chat my-endpoint`), child of the client's trace context.
fn query_trace(traces: &Traces, name: &str, task: Option<Task>, body: &Body, headers: &QueryHeaders) -> QueryTrace {
    let op = operation(task);
    let mut attributes = vec![
        KeyValue::new("gen_ai.operation.name", op),
        KeyValue::new("gen_ai.request.model", name.to_string()),
        KeyValue::new("modelgate.endpoint", name.to_string()),
    ];
    attributes.extend(request_attributes(body));
    let trace = &headers.trace;
    traces.query(format!("{op} {name}"), trace.traceparent.as_ref(), trace.tracestate.as_ref(), attributes)
}

/// Response header saying how a query met the response cache: `hit`, `miss` or `bypass`.
pub const CACHE_HEADER: &str = "x-modelgate-cache";

/// A query of an endpoint with a response cache: answered from it, or routed and its answer
/// stored (by the settlement, once the whole answer is known to be a success).
async fn cached_route(
    app: &AppState,
    ep: &LiveEndpoint,
    task: Task,
    facts: &QueryFacts,
    body: Body,
    lookup: Option<Lookup>,
    settlement: &mut Option<Settlement>,
) -> Response {
    let now = modelgate_core::now_ms();
    let hit = match lookup.filter(|l| l.read) {
        Some(l) => app.cache.get(&l.key, now).await,
        None => None,
    };
    let (mut resp, outcome) = match (hit, lookup) {
        (Some(entry), _) => (cache_answer::answer(ep, task, facts, &entry, now, settlement), Outcome::Hit),
        (None, l) => {
            if let (Some(l), Some(s)) = (l.filter(|l| l.write), settlement.as_mut()) {
                s.fill(app.cache.clone(), l.key, l.ttl);
            }
            let outcome = if l.is_some_and(|l| l.read) { Outcome::Miss } else { Outcome::Bypass };
            (route(app, ep, task, facts, body, settlement).await, outcome)
        }
    };
    app.metrics.cache(&ep.name, outcome.as_str());
    if let Some(t) = settlement.as_ref().and_then(Settlement::query_trace) {
        t.set(vec![KeyValue::new("modelgate.cache", outcome.as_str())]);
    }
    resp.headers_mut().insert(CACHE_HEADER, axum::http::HeaderValue::from_static(outcome.as_str()));
    resp
}

/// Most characters of an endpoint name a refusal record keeps (the name may be anything).
const MAX_RECORDED_NAME: usize = 200;

/// Leaves a request-log record for a query refused before it reached an endpoint (a body that
/// does not parse, an endpoint that does not exist): no metrics, no cost, so that a caller can
/// still find out why it failed.
pub(super) fn refused(app: &AppState, caller: &Principal, name: &str, resp: &Response, start: Instant) {
    let error = resp.extensions().get::<ErrorCode>();
    app.usage.record(UsageRecord {
        request_id: uuid::Uuid::now_v7().to_string(),
        request_time: modelgate_core::now_ms() - start.elapsed().as_millis() as i64,
        endpoint_name: name.chars().take(MAX_RECORDED_NAME).collect(),
        requester: caller.user_name.clone(),
        requester_id: caller.id.clone(),
        token_id: Some(caller.token_id.clone()).filter(|t| !t.is_empty()),
        status_code: i64::from(resp.status().as_u16()),
        error_code: error.map(|e| e.code.to_string()),
        error_message: error.map(|e| e.message.chars().take(1000).collect()),
        latency_ms: start.elapsed().as_secs_f64() * 1e3,
        ..Default::default()
    });
}
