//! The attempts of a query: each planned entity in turn, with retries, breakers and fail-over,
//! on the pooled client; the answer translated back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use modelgate_providers::{Adapter, Body, ProviderError, ResponseOptions, Task};
use serde_json::Value;

use super::query::QueryFacts;
use super::settlement::Settlement;
use crate::error::{ApiError, Origin};
use crate::hosting::replicas::{Lease, Refusal};
use crate::snapshot::{LiveEndpoint, LiveEntity, Upstream};
use crate::state::AppState;

use super::SERVED_MODEL_HEADER;
use super::plan::{Plan, Share, plan};
use super::relay::{stream_response, upstream_events};
use crate::telemetry::traces::{ChildSpan, QueryTrace};
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;

/// Whether a failure counts against the entity's breaker and may be retried or failed over: rate
/// limits, server errors, timeouts, connection failures and unreadable answers.
pub(super) fn transient(e: &ProviderError) -> bool {
    match e {
        ProviderError::Upstream { status, .. } => *status == 429 || *status >= 500,
        ProviderError::Connect(_) | ProviderError::Timeout(_) | ProviderError::BadResponse(_) => true,
        ProviderError::Unsupported(_) | ProviderError::TooLarge(_) => false,
    }
}

pub(super) fn retry_after(e: &ProviderError) -> Option<Duration> {
    match e {
        ProviderError::Upstream { retry_after: Some(s), .. } => Some(Duration::from_secs(*s)),
        _ => None,
    }
}

pub(super) fn with_entity(mut resp: Response, entity: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(entity) {
        resp.headers_mut().insert(SERVED_MODEL_HEADER, v);
    }
    resp
}

/// Tries served entities in plan order (or one entity with retries) until one answers. Nothing is
/// retried once an answer has started: a stream that fails later ends with an error event.
///
/// Breakers move traffic, they never drop it when there is nowhere to move it: an entity that is
/// the only one the query could go to is called whatever its breaker says (as a load balancer's
/// panic threshold does), and its result still closes or opens the breaker. A query whose every
/// entity is refused by its breaker is answered at once, with the time until the first one
/// probes again. The retries of one query count as one failure.
pub(super) async fn route(
    app: &AppState,
    ep: &LiveEndpoint,
    task: Task,
    facts: &QueryFacts,
    body: Body,
    settlement: &mut Option<Settlement>,
) -> Response {
    let trace = settlement.as_ref().and_then(Settlement::query_trace).cloned();
    let shares: Vec<Share> = ep.entities.iter().map(Share::of).collect();
    let fallback = ep.ai_gateway.as_ref().and_then(|g| g.fallback_config.as_ref()).is_some_and(|f| f.enabled);
    let Plan { order, failover, detour } = plan(&shares, fallback, &mut fastrand::Rng::new());
    let policy = app.retries;
    let Some(&first) = order.first() else {
        return ApiError::BadRequest(format!("Endpoint '{}' has no served entity.", ep.name)).into_response();
    };
    let servable = |i: &usize| ep.entities.get(*i).is_some_and(|e| e.adapter.is_ok() || e.hosted.is_some());
    let reachable = if failover {
        order.iter().filter(|i| servable(i)).count()
    } else {
        1 + detour.iter().filter(|i| servable(i)).count()
    };
    let alone = reachable <= 1;
    let attempts: Vec<usize> = if failover {
        order
    } else {
        // The split's pick, or the next entity of the split whose breaker takes the query.
        let chosen = if alone || !servable(&first) {
            Some(first)
        } else {
            std::iter::once(first)
                .chain(detour.into_iter().filter(|i| servable(i)))
                .find(|i| ep.entities.get(*i).is_some_and(|e| app.breakers.allow(&ep.id, &e.name, Instant::now())))
        };
        match chosen {
            Some(i) => vec![i; 1 + policy.retries as usize],
            None => return every_breaker_open(app, ep),
        }
    };
    let deadline = Instant::now() + app.timeouts.total;
    // The last transient failure: what the client gets if nothing answers, from which entity, and
    // the upstream's Retry-After.
    let mut last: Option<(ApiError, &String, Option<Duration>)> = None;
    let mut refused_by_breaker = false;
    // Entities whose failure this query has already counted against their breaker.
    let mut counted: Vec<usize> = Vec::new();
    for (n, idx) in attempts.into_iter().enumerate() {
        let Some(entity) = ep.entities.get(idx) else { continue };
        // A hosted entity: its turn and a slot on one of its replicas, waiting if it must.
        let lease = match hosted_slot(entity, &body, deadline, settlement).await {
            Ok(lease) => lease,
            Err(refusal) => {
                let error = refused(ep, entity, refusal);
                if failover {
                    last = Some((error, &entity.name, None));
                    continue;
                }
                return with_entity(error.into_response(), &entity.name);
            }
        };
        let adapter = match (&lease, &entity.adapter) {
            (Some(lease), _) => lease.adapter(),
            (None, Ok(a)) => a,
            (None, Err(why)) if !failover => {
                let msg = format!("Served entity '{}' of endpoint '{}' cannot serve: {why}.", entity.name, ep.name);
                return with_entity(ApiError::BadRequest(msg).into_response(), &entity.name);
            }
            (None, Err(_)) => continue,
        };
        if n > 0 && !failover {
            // Same entity again: wait as the upstream asked (up to the cap), else back off.
            let wait = match last.as_ref().and_then(|(_, _, r)| *r) {
                Some(r) if r > policy.retry_after_cap => break,
                Some(r) => r,
                None => {
                    let ceiling = policy.backoff.saturating_mul(1 << (n - 1).min(10) as u32);
                    Duration::from_millis(fastrand::u64(0..=ceiling.as_millis() as u64))
                }
            };
            if Instant::now() + wait >= deadline {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        if failover && !alone && !app.breakers.allow(&ep.id, &entity.name, Instant::now()) {
            refused_by_breaker = true;
            continue;
        }
        if let Some(o) = settlement.as_mut() {
            o.entity(entity, adapter.provider());
        }
        let mut span = trace.as_ref().map(|t| attempt_span(t, task, entity, adapter.provider()));
        let traceparent = span.as_ref().and_then(ChildSpan::traceparent);
        let attempt =
            Attempt { adapter: adapter.as_ref(), entity, task, facts, deadline, trace: trace.as_ref(), traceparent };
        let result = call(app, &attempt, body.clone(), settlement).await;
        if let Some(s) = span.as_mut() {
            if let Some(u) = entity.upstream.get() {
                s.set(KeyValue::new("server.address", u.host.clone()));
            }
            match &result {
                Ok(resp) => s.set(KeyValue::new("http.response.status_code", i64::from(resp.status().as_u16()))),
                Err(e) => s.fail(crate::telemetry::metrics::upstream_reason(e), e.to_string()),
            }
        }
        drop(span);
        if let (Err(ProviderError::Upstream { status, .. }), Some(o)) = (&result, settlement.as_mut()) {
            o.upstream_status(*status);
        }
        let host = entity.upstream.get().map(|u| u.host.as_str());
        let origin = Origin { entity: &entity.name, provider: adapter.provider(), host };
        match result {
            Ok(resp) => {
                app.breakers.success(&ep.id, &entity.name);
                // The replica's slot is held until the answer's last byte is sent.
                return with_entity(crate::http::limits::hold(resp, lease), &entity.name);
            }
            Err(e) if transient(&e) => {
                app.metrics.upstream_error(&ep.name, &entity.name, adapter.provider(), &e);
                if !counted.contains(&idx) {
                    counted.push(idx);
                    if app.breakers.failure(&ep.id, &entity.name, retry_after(&e), Instant::now()) {
                        tracing::warn!(endpoint = %ep.name, entity = %entity.name, "circuit breaker opened");
                        app.events.push(&ep.id, &entity.name, "circuit breaker opened after repeated failures");
                    }
                }
                let wait = retry_after(&e);
                last = Some((ApiError::from_provider(&origin, e), &entity.name, wait));
            }
            Err(e) => {
                app.metrics.upstream_error(&ep.name, &entity.name, adapter.provider(), &e);
                app.breakers.release(&ep.id, &entity.name);
                return with_entity(ApiError::from_provider(&origin, e).into_response(), &entity.name);
            }
        }
    }
    match last {
        Some((error, entity, _)) => with_entity(error.into_response(), entity),
        None if refused_by_breaker => every_breaker_open(app, ep),
        None => ApiError::BadRequest(format!("No served entity of endpoint '{}' can serve.", ep.name)).into_response(),
    }
}

/// The span of one upstream attempt: `chat gpt-4o`, a client span with the provider and model.
fn attempt_span(trace: &QueryTrace, task: Task, entity: &LiveEntity, provider: &str) -> ChildSpan {
    let model = match (&entity.external_model, &entity.registered) {
        (Some(m), _) => m.name.clone(),
        (None, Some((model, version))) => format!("{model}/{version}"),
        (None, None) => entity.name.clone(),
    };
    let op = crate::telemetry::traces::operation(Some(task));
    let attributes = vec![
        KeyValue::new("gen_ai.operation.name", op),
        KeyValue::new("gen_ai.system", provider.to_string()),
        KeyValue::new("gen_ai.provider.name", provider.to_string()),
        KeyValue::new("gen_ai.request.model", model.clone()),
        KeyValue::new("modelgate.served_entity", entity.name.clone()),
    ];
    trace.child(format!("{op} {model}"), SpanKind::Client, attributes)
}

/// Why a hosted entity took no query.
enum HostedRefusal {
    /// Beyond its provisioned throughput (tokens/s held).
    Throughput(u64, Refusal),
    /// No replica slot.
    Replicas(Refusal),
}

/// A hosted entity's admission: its turn within its provisioned throughput, if it has one (kept
/// in the settlement, to settle to the tokens used), then a slot on one of its replicas, waiting
/// for one to start if it must. `None` for an entity that is not hosted.
async fn hosted_slot(
    entity: &LiveEntity,
    body: &Body,
    deadline: Instant,
    settlement: &mut Option<Settlement>,
) -> Result<Option<Lease>, HostedRefusal> {
    let Some(set) = &entity.hosted else { return Ok(None) };
    if let Some(t) = &set.throughput {
        let (input, output) = crate::policy::ratelimit::estimate(body);
        let turn = t
            .acquire(input + output, deadline)
            .await
            .map_err(|r| HostedRefusal::Throughput(t.status().tokens_per_second, r))?;
        if let Some(o) = settlement.as_mut() {
            o.throughput(turn);
        }
    }
    set.lease(deadline).await.map(Some).map_err(HostedRefusal::Replicas)
}

/// Why a hosted entity took no query, as the API says it: 429 with `Retry-After` when it is at
/// capacity (its replicas' or its provisioned throughput's), 503 when no replica is serving (or
/// none started in time).
fn refused(ep: &LiveEndpoint, entity: &LiveEntity, refusal: HostedRefusal) -> ApiError {
    let busy = |retry_after_secs: u64, why: String| ApiError::Upstream {
        status: StatusCode::TOO_MANY_REQUESTS,
        code: "REQUEST_LIMIT_EXCEEDED",
        message: format!("Served entity '{}' of endpoint '{}' {why}", entity.name, ep.name),
        retry_after: Some(retry_after_secs),
    };
    match refusal {
        HostedRefusal::Throughput(tokens_per_second, Refusal::Busy { retry_after_secs }) => busy(
            retry_after_secs,
            format!(
                "is at its provisioned throughput ({tokens_per_second} tokens/s) and its queue is full; retry in \
                 {retry_after_secs} s or raise max_provisioned_throughput."
            ),
        ),
        HostedRefusal::Replicas(Refusal::Busy { retry_after_secs }) => busy(
            retry_after_secs,
            "is at capacity (every replica busy and its queue full); retry later or choose a larger workload_size."
                .to_string(),
        ),
        HostedRefusal::Throughput(_, Refusal::Unavailable(why))
        | HostedRefusal::Replicas(Refusal::Unavailable(why)) => ApiError::Upstream {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "TEMPORARILY_UNAVAILABLE",
            message: format!("Served entity '{}' of endpoint '{}' cannot serve now: {why}.", entity.name, ep.name),
            retry_after: Some(1),
        },
    }
}

/// The answer when every entity a query could go to is refused by its breaker: at once, with the
/// time until the first one lets a probe through.
fn every_breaker_open(app: &AppState, ep: &LiveEndpoint) -> Response {
    let now = Instant::now();
    let wait = ep
        .entities
        .iter()
        .filter_map(|e| match app.breakers.status(&ep.id, &e.name, now) {
            crate::policy::breaker::Status::Open(d) => Some(d),
            _ => None,
        })
        .min()
        .unwrap_or(Duration::from_secs(1));
    ApiError::Upstream {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "TEMPORARILY_UNAVAILABLE",
        message: format!(
            "Every served entity of endpoint '{}' is unavailable: circuit breakers are open after repeated failures.",
            ep.name
        ),
        retry_after: Some(wait.as_secs().max(1)),
    }
    .into_response()
}

/// A transport failure as a short reason: what went wrong, not the whole error chain (the host is
/// named by the message around it; the URL never is, it may carry credentials).
pub(super) fn classify(e: reqwest::Error, secrets: &[String]) -> ProviderError {
    let text = modelgate_providers::redact(&modelgate_providers::entra::without_url(&e), secrets);
    if e.is_builder() {
        return ProviderError::Connect(format!(
            "the request could not be built ({text}): a credential probably contains a newline or another character \
             HTTP headers cannot carry; put the secret again without it"
        ));
    }
    if e.is_timeout() {
        return ProviderError::Timeout(text);
    }
    let mut io_kind = None;
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
        cause = c.source();
    }
    let lower = text.to_ascii_lowercase();
    let reason = match io_kind {
        Some(std::io::ErrorKind::ConnectionRefused) => "connection refused".to_string(),
        Some(std::io::ErrorKind::ConnectionReset) => "connection reset by the upstream".to_string(),
        _ if lower.contains("dns error") || lower.contains("failed to lookup") => {
            format!("the host name could not be resolved ({text})")
        }
        _ if lower.contains("certificate") || lower.contains("tls") => format!("the TLS handshake failed ({text})"),
        _ => text,
    };
    ProviderError::Connect(reason)
}

/// What one attempt against one entity needs besides the body.
pub(super) struct Attempt<'a> {
    /// The entity's adapter.
    pub adapter: &'a dyn Adapter,
    /// The entity (its name and upstream, for messages).
    pub entity: &'a LiveEntity,
    /// The query's task.
    pub task: Task,
    /// The query's own fields.
    pub facts: &'a QueryFacts,
    /// When the whole query must be done.
    pub deadline: Instant,
    /// The query's trace, if it is traced.
    pub trace: Option<&'a QueryTrace>,
    /// The attempt span's `traceparent`, forwarded upstream.
    pub traceparent: Option<HeaderValue>,
}

/// One attempt against one entity. Errors are returned raw so the router can judge them. The
/// entity learns its upstream host from its first built request.
pub(super) async fn call(
    app: &AppState,
    attempt: &Attempt<'_>,
    body: Body,
    settlement: &mut Option<Settlement>,
) -> Result<Response, ProviderError> {
    let Attempt { adapter, task, facts, deadline, .. } = *attempt;
    let stream = facts.stream;
    let include_usage = facts.include_usage();
    let options = ResponseOptions { embeddings_base64: facts.embeddings_base64() };
    let t = app.timeouts;
    let left = deadline.saturating_duration_since(Instant::now());
    let (client, request) = adapter.request(&app.http, task, body, stream).await?.timeout(left).build_split();
    let mut request = request.map_err(|e| classify(e, &adapter.secrets()))?;
    if let Some(tp) = &attempt.traceparent {
        request.headers_mut().insert("traceparent", tp.clone());
    }
    let target = attempt.entity.upstream.get_or_init(|| {
        let url = request.url();
        let host = format!("{}:{}", url.host_str().unwrap_or("?"), url.port_or_known_default().unwrap_or(0));
        let origin = Origin { entity: &attempt.entity.name, provider: adapter.provider(), host: Some(&host) };
        Upstream { label: Arc::from(origin.to_string()), host }
    });
    if let Some(o) = settlement.as_mut() {
        o.sent();
    }
    let sent = tokio::time::timeout(t.first_byte.min(left), client.execute(request)).await;
    let upstream = match sent {
        Err(_) => {
            return Err(ProviderError::Timeout(format!(
                "no response within {}",
                humantime::format_duration(t.first_byte)
            )));
        }
        Ok(Err(e)) => return Err(classify(e, &adapter.secrets())),
        Ok(Ok(r)) => r,
    };
    let status = upstream.status();
    let limits = app.limits;
    if !status.is_success() {
        let retry_after = upstream
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|s| s.ceil() as u64);
        let bytes = modelgate_providers::body::read_prefix(upstream, limits.max_upstream_error_body).await;
        let message = modelgate_providers::redact(&adapter.error_message(&bytes), &adapter.secrets());
        return Err(ProviderError::Upstream { status: status.as_u16(), message, retry_after });
    }
    if stream {
        let events = upstream_events(upstream, adapter.framing(), limits.max_stream_event);
        let mut out = settlement.take().unwrap_or_default();
        out.accepted();
        out.streaming();
        if let Some(t) = attempt.trace {
            out.stream_span(t.child("stream".into(), SpanKind::Internal, Vec::new()));
        }
        let who = target.label.clone();
        let translator = adapter.stream(task, include_usage);
        return Ok(stream_response(translator, events, t.idle, adapter.secrets(), who, out));
    }
    let read = modelgate_providers::body::read_capped(upstream, limits.max_upstream_body).await;
    // The provider did the work (and bills it) even if the answer then proves too large; an error
    // dressed as a 200 is no work.
    if !matches!(&read, Ok(bytes) if error_in_success(bytes).is_some())
        && let Some(o) = settlement.as_mut()
    {
        o.accepted();
    }
    let bytes = read?;
    if let Some(reason) = error_in_success(&bytes) {
        let message = modelgate_providers::redact(&adapter.error_message(&bytes), &adapter.secrets());
        return Err(ProviderError::BadResponse(format!(
            "the answer has status 200 but is an error ({reason}): {message}"
        )));
    }
    let out = adapter.response(task, bytes, options)?;
    let out = match settlement.as_mut() {
        Some(o) => match o.whole(out).await {
            Ok(b) => b,
            Err(e) => return Ok(e.into_response()),
        },
        None => out,
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

/// Whether a successful answer's body is really an error object (some proxies answer errors with
/// 200): a top-level `error` that is not null (Titan's images carry `"error": null`), or
/// `type`/`object` `error`, and no `choices`, `data` or `content`.
/// Cheap for real answers: only a body whose start mentions `"error"` is parsed.
pub(super) fn error_in_success(body: &[u8]) -> Option<&'static str> {
    static ERROR_KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"error\""));
    ERROR_KEY.find(body.get(..256).unwrap_or(body))?;
    let v: Value = serde_json::from_slice(body).ok()?;
    let o = v.as_object()?;
    if ["choices", "data", "content", "message", "output", "candidates"].iter().any(|k| o.contains_key(*k)) {
        return None;
    }
    if o.get("error").is_some_and(|e| !e.is_null()) {
        Some("it has an error member")
    } else if o.get("type").or_else(|| o.get("object")).and_then(Value::as_str) == Some("error") {
        Some("its type is error")
    } else {
        None
    }
}
