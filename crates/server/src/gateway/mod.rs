//! The data plane: `POST /serving-endpoints/{name}/invocations` and the OpenAI-compatible routes
//! (`/serving-endpoints/chat/completions`, `/completions`, `/embeddings`, the same under `/v1/`,
//! and `GET /v1/models`).
//!
//! Per request: look the endpoint up in the snapshot (no database), check it can serve, pick a
//! served entity by traffic percentage, let its adapter build the upstream request, send it on
//! the pooled client, and translate the answer back. Streams are re-framed event by event: only
//! `data:` lines reach the client, a finished stream ends with `data: [DONE]`, and a stream that
//! breaks or stalls ends with a `data: {"error": ...}` event instead, never a clean `[DONE]`.
//! Dropping the response (client gone) drops the upstream request with it.

pub(crate) mod settlement;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::body::{Body as HttpBody, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use modelgate_core::permission::Level;
use modelgate_providers::framing::{Framing, RawEvent, aws_event_stream};
use modelgate_providers::{Adapter, Body, ProviderError, ResponseOptions, StreamItem, Task};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ApiPath, RawBody, parse_json};
use crate::gateway::settlement::{Ledger, Outbound};
use crate::policy::guardrails::{self, Judge, OutputGuard};
use crate::policy::ratelimit;
use crate::snapshot::{LiveEndpoint, LiveEntity, Principal};
use crate::state::AppState;

/// Response header naming the served entity that answered.
pub const SERVED_MODEL_HEADER: &str = "served-model-name";

type Caller = Extension<Arc<Principal>>;

/// `POST /serving-endpoints/{name}/invocations`: the task is the endpoint's.
pub async fn invocations(
    State(app): State<AppState>,
    Extension(caller): Caller,
    ApiPath(name): ApiPath<String>,
    RawBody(body): RawBody,
) -> Response {
    match parse_body(&body) {
        Ok(b) => query(&app, &caller, &name, None, b, body).await,
        Err(e) => e.into_response(),
    }
}

/// `POST .../chat/completions`
pub async fn chat(State(app): State<AppState>, Extension(caller): Caller, RawBody(body): RawBody) -> Response {
    openai_route(&app, &caller, Task::Chat, body).await
}

/// `POST .../completions`
pub async fn completions(State(app): State<AppState>, Extension(caller): Caller, RawBody(body): RawBody) -> Response {
    openai_route(&app, &caller, Task::Completions, body).await
}

/// `POST .../embeddings`
pub async fn embeddings(State(app): State<AppState>, Extension(caller): Caller, RawBody(body): RawBody) -> Response {
    openai_route(&app, &caller, Task::Embeddings, body).await
}

/// `GET /v1/models` (and `/serving-endpoints/models`): the endpoints, as OpenAI models.
pub async fn models(State(app): State<AppState>, Extension(caller): Caller) -> Response {
    let snap = app.snapshot.load();
    let mut names: Vec<&String> = snap
        .endpoints
        .iter()
        .filter(|(_, ep)| crate::access::level_of(&caller, ep).is_some_and(|l| l >= Level::CanQuery))
        .map(|(n, _)| n)
        .collect();
    names.sort();
    let data: Vec<Value> = names
        .into_iter()
        .map(|n| {
            let e = &snap.endpoints[n];
            json!({"id": n, "object": "model", "created": 0, "owned_by": "modelgate", "task": e.task})
        })
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

fn parse_body(body: &[u8]) -> ApiResult<Body> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest("the request body is empty; send a JSON object".into()));
    }
    parse_json::<Body>(body)
}

async fn openai_route(app: &AppState, caller: &Principal, task: Task, body: Bytes) -> Response {
    let parsed = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let Some(name) = parsed.get("model").and_then(Value::as_str).map(str::to_string) else {
        return ApiError::invalid("model", "is required: the name of the serving endpoint to query").into_response();
    };
    query(app, caller, &name, Some(task), parsed, body).await
}

/// Checks that `endpoint` can answer `route_task` and returns its task.
fn servable(ep: &LiveEndpoint, route_task: Option<Task>) -> ApiResult<Task> {
    let name = &ep.name;
    if ep.stopped {
        return Err(ApiError::BadRequest(format!(
            "Endpoint '{name}' is stopped; start it with POST /api/2.0/serving-endpoints/{name}/config:start."
        )));
    }
    if ep.config_version.is_none() {
        return Err(ApiError::BadRequest(format!(
            "Endpoint '{name}' is not ready: no config version has deployed yet (see its build logs)."
        )));
    }
    if let Some(why) = &ep.unservable {
        return Err(ApiError::Unavailable(format!(
            "Endpoint '{name}' is not ready: {why}. It refuses queries rather than serve without that policy; \
             write the field again to fix it."
        )));
    }
    let Some(task) = ep.task.as_deref().and_then(Task::from_task) else {
        return Err(ApiError::BadRequest(format!("Endpoint '{name}' serves no external model that can be queried.")));
    };
    if let Some(asked) = route_task
        && asked != task
    {
        return Err(ApiError::InvalidParameter(format!(
            "Endpoint '{name}' serves {}, not {}; use POST /serving-endpoints/{}.",
            task.as_task(),
            asked.as_task(),
            task.openai_path()
        )));
    }
    Ok(task)
}

/// Checks the fields the task needs, before anything is sent upstream.
fn check_body(task: Task, body: &Body) -> ApiResult<()> {
    for custom in ["dataframe_records", "dataframe_split", "instances", "inputs"] {
        if body.contains_key(custom) {
            return Err(ApiError::invalid(
                custom,
                "is an input of custom models; this endpoint serves an external model",
            ));
        }
    }
    match task {
        Task::Chat => match body.get("messages") {
            Some(Value::Array(m)) if !m.is_empty() => Ok(()),
            Some(Value::Array(_)) => Err(ApiError::invalid("messages", "must not be empty")),
            Some(_) => Err(ApiError::invalid("messages", "must be a list of {role, content} objects")),
            None => Err(ApiError::invalid("messages", "is required for a chat endpoint")),
        },
        Task::Completions => match body.get("prompt") {
            Some(Value::String(_)) | Some(Value::Array(_)) => Ok(()),
            Some(_) => Err(ApiError::invalid("prompt", "must be a string or a list of strings")),
            None => Err(ApiError::invalid("prompt", "is required for a completions endpoint")),
        },
        Task::Embeddings => {
            if body.get("stream").and_then(Value::as_bool) == Some(true) {
                return Err(ApiError::invalid("stream", "embeddings cannot be streamed"));
            }
            match body.get("input") {
                Some(Value::String(_)) | Some(Value::Array(_)) => Ok(()),
                Some(_) => Err(ApiError::invalid("input", "must be a string or a list of strings")),
                None => Err(ApiError::invalid("input", "is required for an embeddings endpoint")),
            }
        }
    }
}

/// A position drawn at random in proportion to `weights` (negative counts as 0); the first when
/// every weight is 0.
fn weighted_pick(weights: &[i64]) -> usize {
    let total: i64 = weights.iter().map(|w| (*w).max(0)).sum();
    if total <= 0 {
        return 0;
    }
    let mut ticket = fastrand::i64(0..total);
    weights
        .iter()
        .position(|w| {
            ticket -= (*w).max(0);
            ticket < 0
        })
        .unwrap_or(0)
}

/// Orders `indices` by weighted random draws without replacement (weight 0 goes last).
fn weighted_order(entities: &[LiveEntity], mut indices: Vec<usize>) -> Vec<usize> {
    let mut out = Vec::with_capacity(indices.len());
    while !indices.is_empty() {
        let weights: Vec<i64> = indices.iter().map(|i| entities.get(*i).map_or(0, |e| e.weight)).collect();
        out.push(indices.remove(weighted_pick(&weights)));
    }
    out
}

/// The order in which the served entities are tried for one request, and whether a failure moves
/// on to the next one. Backend pools (any `priority` set) go tier by tier, weighted within a tier,
/// and always fail over. Otherwise the traffic split picks the first entity and, with
/// `fallback_config.enabled`, the others follow in `served_entities` order.
fn plan(ep: &LiveEndpoint) -> (Vec<usize>, bool) {
    let n = ep.entities.len();
    if n == 0 {
        return (Vec::new(), false);
    }
    if ep.entities.iter().any(|e| e.priority.is_some()) {
        let mut tiers: std::collections::BTreeMap<i64, Vec<usize>> = std::collections::BTreeMap::new();
        for (i, e) in ep.entities.iter().enumerate() {
            tiers.entry(e.priority.unwrap_or(i64::MAX)).or_default().push(i);
        }
        let order = tiers.into_values().flat_map(|tier| weighted_order(&ep.entities, tier)).collect();
        return (order, true);
    }
    let shares: Vec<i64> = ep.entities.iter().map(|e| e.traffic_percentage).collect();
    let first = weighted_pick(&shares);
    let fallback = ep.ai_gateway.as_ref().and_then(|g| g.fallback_config.as_ref()).is_some_and(|f| f.enabled);
    if fallback { ((0..n).map(|k| (first + k) % n).collect(), true) } else { (vec![first], false) }
}

/// Whether a failure counts against the entity's breaker and may be retried or failed over: rate
/// limits, server errors, timeouts, connection failures and unreadable answers.
fn transient(e: &ProviderError) -> bool {
    match e {
        ProviderError::Upstream { status, .. } => *status == 429 || *status >= 500,
        ProviderError::Connect(_) | ProviderError::Timeout(_) | ProviderError::BadResponse(_) => true,
        ProviderError::Unsupported(_) | ProviderError::TooLarge(_) => false,
    }
}

fn retry_after(e: &ProviderError) -> Option<Duration> {
    match e {
        ProviderError::Upstream { retry_after: Some(s), .. } => Some(Duration::from_secs(*s)),
        _ => None,
    }
}

fn with_entity(mut resp: Response, entity: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(entity) {
        resp.headers_mut().insert(SERVED_MODEL_HEADER, v);
    }
    resp
}

async fn query(
    app: &AppState,
    caller: &Principal,
    name: &str,
    route_task: Option<Task>,
    body: Body,
    raw: Bytes,
) -> Response {
    // Only endpoints that exist leave records: unknown names must not grow the metrics.
    let ledger = app
        .snapshot
        .load()
        .endpoints
        .get(name)
        .map(|ep| Ledger::new(app, ep.clone(), caller, &body, raw, Instant::now()));
    let mut outbound = Some(Outbound::new(ledger));
    let resp = match admit(app, caller, name, route_task, body, &mut outbound).await {
        Ok((ep, task, body)) => route(app, &ep, task, body, &mut outbound).await,
        Err(e) => {
            if matches!(e, ApiError::RateLimited { .. }) {
                app.metrics.rate_limited(name);
            }
            e.into_response()
        }
    };
    // Set for answers sent whole; a stream took the outbound along and records when it ends.
    if let Some(o) = outbound.as_mut() {
        o.finish(resp.status().as_u16(), resp.extensions().get::<ErrorCode>().map(|c| c.0));
    }
    resp
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Everything between a parsed request and its upstream call: permission, servability, body
/// checks, rate limits, input guardrails. Returns the (possibly masked) body; the reservation and
/// output guardrails go into `outbound`.
async fn admit(
    app: &AppState,
    caller: &Principal,
    name: &str,
    route_task: Option<Task>,
    mut body: Body,
    outbound: &mut Option<Outbound>,
) -> ApiResult<(Arc<LiveEndpoint>, Task, Body)> {
    let ep = crate::access::require(app, caller, name, Level::CanQuery)?;
    let task = servable(&ep, route_task)?;
    check_body(task, &body)?;
    if ep.entities.is_empty() {
        return Err(ApiError::BadRequest(format!("Endpoint '{name}' has no served entity.")));
    }
    app.budgets.check(&ep, &body)?;
    let admission = ratelimit::admit(app.counters.as_ref(), &ep, caller, &body, unix_secs())?;
    let judge = Judge::of(app);
    let policy = ep.guardrails.clone();
    let guard =
        policy.as_ref().and_then(|p| p.output.clone()).map(|side| OutputGuard::new(side, judge.clone(), &ep.name));
    if let Some(o) = outbound.as_mut() {
        // Held before the input checks, so a refused request releases its token reservation.
        o.reserve(app.counters.clone(), admission);
        o.guard(guard);
    }
    if let Some(side) = policy.as_ref().and_then(|p| p.input.as_ref()) {
        guardrails::check_input(judge.as_ref(), side, &ep.name, &mut body).await?;
    }
    Ok((ep, task, body))
}

/// Queries a chat endpoint from inside the server (the guardrail judge): no caller, no limits,
/// no guardrails. Returns the answer, or why there is none.
pub(crate) async fn ask(app: &AppState, name: &str, body: Body) -> Result<Value, String> {
    let snapshot = app.snapshot.load();
    let ep = snapshot.endpoints.get(name).cloned().ok_or_else(|| format!("there is no endpoint '{name}'"))?;
    servable(&ep, Some(Task::Chat)).map_err(|e| e.to_string())?;
    // Boxed: the judge runs inside the answer path of `route` itself.
    let resp = Box::pin(route(app, &ep, Task::Chat, body, &mut None)).await;
    let ok = resp.status().is_success();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| "the answer is not JSON".to_string())?;
    if ok { Ok(v) } else { Err(v["message"].as_str().unwrap_or("it failed").to_string()) }
}

/// Tries served entities in plan order (or one entity with retries) until one answers. Nothing is
/// retried once an answer has started: a stream that fails later ends with an error event.
async fn route(app: &AppState, ep: &LiveEndpoint, task: Task, body: Body, outbound: &mut Option<Outbound>) -> Response {
    let (order, failover) = plan(ep);
    let policy = app.retries;
    let Some(&first) = order.first() else {
        return ApiError::BadRequest(format!("Endpoint '{}' has no served entity.", ep.name)).into_response();
    };
    let attempts: Vec<usize> = if failover { order } else { vec![first; 1 + policy.retries as usize] };
    let deadline = Instant::now() + app.timeouts.total;
    let mut last: Option<(usize, &'static str, ProviderError)> = None;
    let mut refused_by_breaker = false;
    for (n, idx) in attempts.into_iter().enumerate() {
        let Some(entity) = ep.entities.get(idx) else { continue };
        let adapter = match &entity.adapter {
            Ok(a) => a,
            Err(why) if !failover => {
                let msg = format!("Served entity '{}' of endpoint '{}' cannot serve: {why}.", entity.name, ep.name);
                return with_entity(ApiError::BadRequest(msg).into_response(), &entity.name);
            }
            Err(_) => continue,
        };
        if n > 0 && !failover {
            // Same entity again: wait as the upstream asked (up to the cap), else back off.
            let wait = match last.as_ref().and_then(|(_, _, e)| retry_after(e)) {
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
        if !app.breakers.allow(&ep.id, &entity.name, Instant::now()) {
            refused_by_breaker = true;
            continue;
        }
        if let Some(o) = outbound.as_mut() {
            o.entity(entity, adapter.provider());
        }
        match call(app, adapter.as_ref(), task, body.clone(), deadline, outbound).await {
            Ok(resp) => {
                app.breakers.success(&ep.id, &entity.name);
                return with_entity(resp, &entity.name);
            }
            Err(e) if transient(&e) => {
                app.metrics.upstream_error(&ep.name, &entity.name, adapter.provider(), &e);
                if app.breakers.failure(&ep.id, &entity.name, retry_after(&e), Instant::now()) {
                    tracing::warn!(endpoint = %ep.name, entity = %entity.name, "circuit breaker opened");
                    app.events.push(&ep.id, &entity.name, "circuit breaker opened after repeated failures");
                }
                last = Some((idx, adapter.provider(), e));
            }
            Err(e) => {
                app.metrics.upstream_error(&ep.name, &entity.name, adapter.provider(), &e);
                app.breakers.release(&ep.id, &entity.name);
                return with_entity(ApiError::from_provider(adapter.provider(), e).into_response(), &entity.name);
            }
        }
    }
    match last {
        Some((idx, provider, e)) => {
            with_entity(ApiError::from_provider(provider, e).into_response(), &ep.entities[idx].name)
        }
        None if refused_by_breaker => {
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
        None => ApiError::BadRequest(format!("No served entity of endpoint '{}' can serve.", ep.name)).into_response(),
    }
}

fn classify(e: reqwest::Error, secrets: &[String]) -> ProviderError {
    let text = modelgate_providers::redact(&modelgate_providers::entra::without_url(&e), secrets);
    if e.is_builder() {
        return ProviderError::Connect(format!(
            "the request could not be built ({text}): a credential probably contains a newline or another character \
             HTTP headers cannot carry; put the secret again without it"
        ));
    }
    if e.is_timeout() { ProviderError::Timeout(text) } else { ProviderError::Connect(text) }
}

/// One attempt against one entity. Errors are returned raw so the router can judge them.
async fn call(
    app: &AppState,
    adapter: &dyn Adapter,
    task: Task,
    body: Body,
    deadline: Instant,
    outbound: &mut Option<Outbound>,
) -> Result<Response, ProviderError> {
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let include_usage =
        body.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool) == Some(true);
    let options =
        ResponseOptions { embeddings_base64: body.get("encoding_format").and_then(Value::as_str) == Some("base64") };
    let request = adapter.request(&app.http, task, body, stream).await?;
    if let Some(o) = outbound.as_mut() {
        o.sent();
    }
    let t = app.timeouts;
    let left = deadline.saturating_duration_since(Instant::now());
    let sent = tokio::time::timeout(t.first_byte.min(left), request.timeout(left).send()).await;
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
        let mut out = outbound.take().unwrap_or_default();
        out.accepted();
        out.streaming();
        return Ok(stream_response(adapter.stream(task, include_usage), events, t.idle, adapter.secrets(), out));
    }
    let read = modelgate_providers::body::read_capped(upstream, limits.max_upstream_body).await;
    // The provider did the work (and bills it) even if the answer then proves too large; an error
    // dressed as a 200 is no work.
    if !matches!(&read, Ok(bytes) if error_in_success(bytes).is_some())
        && let Some(o) = outbound.as_mut()
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
    let out = match outbound.as_mut() {
        Some(o) => match o.whole(out).await {
            Ok(b) => b,
            Err(e) => return Ok(e.into_response()),
        },
        None => out,
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

/// Whether a successful answer's body is really an error object (some proxies answer errors with
/// 200): a top-level `error`, or `type`/`object` `error`, and no `choices`, `data` or `content`.
/// Cheap for real answers: only a body whose start mentions `"error"` is parsed.
fn error_in_success(body: &[u8]) -> Option<&'static str> {
    static ERROR_KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"error\""));
    ERROR_KEY.find(&body[..body.len().min(256)])?;
    let v: Value = serde_json::from_slice(body).ok()?;
    let o = v.as_object()?;
    if ["choices", "data", "content", "message", "output", "candidates"].iter().any(|k| o.contains_key(*k)) {
        return None;
    }
    if o.contains_key("error") {
        Some("it has an error member")
    } else if o.get("type").or_else(|| o.get("object")).and_then(Value::as_str) == Some("error") {
        Some("its type is error")
    } else {
        None
    }
}

/// Why a stream ends with an error event instead of `[DONE]`.
enum StreamFailure {
    /// The provider failed, broke off or went silent; the status is the class it counts as.
    Upstream(u16, String),
    /// A guardrail (or its judge) refused the answer.
    Refused(ApiError),
}

impl StreamFailure {
    /// Records the failure on `outbound` and returns the event that ends the stream.
    fn end(self, outbound: &mut Outbound) -> Bytes {
        let (status, code, kind, message) = match self {
            StreamFailure::Upstream(status, message) => (status, "STREAM_FAILED", "upstream_error", message),
            StreamFailure::Refused(e) => {
                let (status, code) = e.status_and_code();
                (status.as_u16(), code, "guardrail", e.to_string())
            }
        };
        outbound.stream_failed(status, code);
        let payload = json!({"error": {"message": message, "type": kind, "code": code}});
        Bytes::from(format!("data: {payload}\n\n"))
    }
}

type EventStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<RawEvent, String>> + Send>>;

/// The upstream body as events, whatever the provider's framing; no event may be larger than
/// `max_event` bytes.
fn upstream_events(upstream: reqwest::Response, framing: Framing, max_event: usize) -> EventStream {
    match framing {
        Framing::Sse => Box::pin(
            modelgate_providers::body::bounded_events(upstream.bytes_stream(), max_event)
                .eventsource()
                .map(|r| r.map(|e| RawEvent { event: e.event, data: e.data }).map_err(|e| e.to_string())),
        ),
        Framing::AwsEventStream => Box::pin(aws_event_stream(upstream.bytes_stream(), max_event)),
    }
}

fn stream_response(
    mut translator: Box<dyn modelgate_providers::StreamTranslator>,
    mut events: EventStream,
    idle: Duration,
    secrets: Vec<String>,
    mut outbound: Outbound,
) -> Response {
    let body = async_stream::stream! {
        loop {
            let next = tokio::time::timeout(idle, events.next()).await;
            let (items, at_end) = match next {
                Err(_) => {
                    let why = format!("the provider sent nothing for {}; the answer is incomplete", humantime::format_duration(idle));
                    yield Ok::<Bytes, std::io::Error>(StreamFailure::Upstream(504, why).end(&mut outbound));
                    break;
                }
                Ok(None) => (translator.on_end(), true),
                Ok(Some(Err(e))) => {
                    let reason = modelgate_providers::redact(&e.to_string(), &secrets);
                    let why = format!("the provider stream broke: {reason}; the answer is incomplete");
                    yield Ok(StreamFailure::Upstream(502, why).end(&mut outbound));
                    break;
                }
                Ok(Some(Ok(ev))) => (translator.on_event(&ev.event, &ev.data), false),
            };
            let mut finished = false;
            for item in items {
                match item {
                    StreamItem::Data(d) => match outbound.chunk(d) {
                        Ok(out) => for c in out {
                            yield Ok(Bytes::from(format!("data: {c}\n\n")));
                        },
                        Err(e) => {
                            yield Ok(StreamFailure::Refused(e).end(&mut outbound));
                            finished = true;
                            break;
                        }
                    },
                    StreamItem::Done => {
                        match outbound.end().await {
                            Ok(out) => {
                                for c in out {
                                    yield Ok(Bytes::from(format!("data: {c}\n\n")));
                                }
                                yield Ok(Bytes::from_static(b"data: [DONE]\n\n"));
                            }
                            Err(e) => yield Ok(StreamFailure::Refused(e).end(&mut outbound)),
                        }
                        finished = true;
                        break;
                    }
                    StreamItem::Usage(d) => outbound.usage_chunk(&d),
                    StreamItem::Error(m) => {
                        let why = modelgate_providers::redact(&m, &secrets);
                        yield Ok(StreamFailure::Upstream(502, why).end(&mut outbound));
                        finished = true;
                        break;
                    }
                }
            }
            if finished {
                break;
            }
            if at_end {
                let why = "the provider closed the stream before it finished; the answer is incomplete".to_string();
                yield Ok(StreamFailure::Upstream(502, why).end(&mut outbound));
                break;
            }
        }
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(HttpBody::from_stream(body))
        .unwrap_or_else(|_| ApiError::Internal("could not build the stream response".into()).into_response())
}
