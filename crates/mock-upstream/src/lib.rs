//! A fake of the LLM providers' HTTP APIs, speaking their real wire formats.
//!
//! Routes: OpenAI (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`), Azure OpenAI
//! (`/openai/deployments/{d}/...?api-version=`), Databricks (`/serving-endpoints/{n}/invocations`),
//! Anthropic (`/v1/messages`), Cohere v2 (`/v2/chat`, `/v2/embed`), Vertex AI Gemini, embeddings
//! and Imagen (`/v1/projects/.../publishers/google/models/{m}:{action}`) and Claude
//! (`.../publishers/anthropic/models/{m}:rawPredict`), OpenAI images (`/v1/images/generations`,
//! Azure's under its deployment), and the token endpoints of Entra ID
//! (`/{tenant}/oauth2/v2.0/token`) and Google (`/token`, which verifies the RS256 signature of
//! the service-account assertion against `testdata/test-service-account.pub.der`), and Amazon
//! Bedrock (`/model/{id}/converse`, `/converse-stream` in event-stream frames, `/invoke`), which
//! recomputes each request's SigV4 signature with [`TEST_AWS_ACCESS_KEY_ID`] /
//! [`TEST_AWS_SECRET_ACCESS_KEY`] and rejects any mismatch.
//!
//! Answers echo the last user text (`echo: <text>`) so tests can check translation end to end.
//! Markers in that text trigger failures: `__status_429__` (with `Retry-After: 7`),
//! `__status_500__`, `__status_401__` (echoing the presented key, to test redaction),
//! `__malformed__` (invalid JSON), `__cut__` (stream closed without its end), `__stall__` (stream
//! goes silent). With tools offered, every chat route (OpenAI, Azure, Anthropic, Bedrock Converse,
//! Cohere, Gemini, Claude on Vertex) calls the first tool with `{"text": <the user's text>}`
//! (whole or streamed, in pieces where the provider streams arguments), and answers
//! `echo: <result>` once the last turn carries the tool's result. Image routes (OpenAI, Azure,
//! Titan on Bedrock `invoke`, Imagen on Vertex `predict`) draw a 1x1 PNG per image asked for;
//! `__filtered__` in the prompt plays the provider's content filter. Every request is recorded; `GET /__requests` returns them, `DELETE` clears them.
//! In `fast` mode the OpenAI chat route skips all of that and returns fixed bytes (benchmarks).
//! [`CutProxy`] stands between the server and Redis or PostgreSQL in fault tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test double: it serves only tests and benchmarks, and a broken fake should fail loudly"
)]

mod proxy;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use futures::StreamExt;
use serde_json::{Value, json};

pub use proxy::CutProxy;

/// How the mock behaves.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Wait this long before answering.
    pub delay: Duration,
    /// Words per streamed answer are sent this far apart.
    pub chunk_interval: Duration,
    /// Fixed answers on the OpenAI chat route, no parsing or recording (benchmarks).
    pub fast: bool,
}

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Request path.
    pub path: String,
    /// Query string.
    pub query: Option<String>,
    /// Headers, lowercase names.
    pub headers: Vec<(String, String)>,
    /// The JSON body (or the raw text as a string).
    pub body: Value,
}

/// Shared mock state.
#[derive(Default)]
pub struct Mock {
    /// Behaviour.
    pub options: Options,
    /// Requests received, oldest first.
    pub requests: Mutex<Vec<Recorded>>,
    /// Entra and Google tokens issued so far.
    pub tokens_issued: Mutex<Vec<String>>,
    /// Streamed answers still being written; drops to zero when clients (or the gateway) hang up.
    pub open_streams: Arc<std::sync::atomic::AtomicUsize>,
    /// When not 0, every OpenAI chat request fails with this status (429 carries `Retry-After`
    /// only if [`Mock::retry_after`] is set). Switchable at run time, for failover tests.
    pub force_status: std::sync::atomic::AtomicU16,
    /// `Retry-After` seconds sent with a forced 429 (0: none).
    pub retry_after: std::sync::atomic::AtomicU64,
}

/// Counts an open stream until dropped.
struct OpenStream(Arc<std::sync::atomic::AtomicUsize>);

impl OpenStream {
    fn new(counter: &Arc<std::sync::atomic::AtomicUsize>) -> Self {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Mock {
    /// A mock with `options`.
    pub fn new(options: Options) -> Arc<Mock> {
        Arc::new(Mock { options, ..Default::default() })
    }

    /// The last request to a path ending with `suffix`.
    pub fn last(&self, suffix: &str) -> Option<Recorded> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner()).iter().rev().find(|r| r.path.ends_with(suffix)).cloned()
    }

    fn record(&self, path: &str, query: Option<String>, headers: &HeaderMap, body: &Bytes) -> Value {
        let parsed =
            serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into()));
        let headers =
            headers.iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string())).collect();
        self.requests.lock().unwrap_or_else(|e| e.into_inner()).push(Recorded {
            path: path.to_string(),
            query,
            headers,
            body: parsed.clone(),
        });
        parsed
    }
}

/// All routes.
pub fn router(mock: Arc<Mock>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai_chat))
        .route("/v1/completions", post(openai_completions))
        .route("/v1/embeddings", post(openai_embeddings))
        // An OpenTelemetry collector's OTLP/HTTP traces route, so benchmarks can export spans
        // somewhere: it takes them and keeps nothing.
        .route("/v1/traces", post(|| async { axum::http::StatusCode::OK }))
        .route("/openai/deployments/{deployment}/{*operation}", post(azure))
        .route("/serving-endpoints/{name}/invocations", post(databricks_invocations))
        .route("/v1/messages", post(anthropic_messages))
        .route("/v2/chat", post(cohere_chat))
        .route("/token", post(google_token))
        .route("/model/{model}/{action}", post(bedrock_model))
        .route(
            "/v1/projects/{project}/locations/{location}/publishers/google/models/{model_action}",
            post(vertex_model),
        )
        .route(
            "/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{model_action}",
            post(vertex_claude),
        )
        .route("/v1/images/generations", post(openai_images))
        .route("/v2/embed", post(cohere_embed))
        .route("/{tenant}/oauth2/v2.0/token", post(entra_token))
        .route("/__requests", get(list_requests).delete(clear_requests))
        .with_state(mock)
}

/// Serves the mock on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, mock: Arc<Mock>) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(mock)).await
}

/// Plays a guardrail judge when the system prompt asks for one: the text is unsafe when it
/// contains `__unsafe__`, and on topic when it mentions one of the allowed topics.
fn judge_verdict(body: &Value, text: &str) -> Option<String> {
    let system = body["messages"].as_array()?.iter().find(|m| m["role"] == "system")?["content"].as_str()?;
    if !system.contains("guardrail judge") {
        return None;
    }
    let topics = system.lines().find_map(|l| l.strip_prefix("Allowed topics: "))?;
    let lower = text.to_lowercase();
    let on_topic = topics == "any" || topics.split("; ").any(|t| lower.contains(&t.to_lowercase()));
    Some(json!({"safe": !text.contains("__unsafe__"), "on_topic": on_topic}).to_string())
}

/// What a turn with tools does: with tools offered and no tool result in the last turn, the mock
/// calls the first tool with the user's text as `{"text": ...}`; after a tool result it echoes
/// the result.
enum ToolTurn {
    /// Call this tool.
    Call(String),
    /// Answer `echo: <result>`.
    Result(String),
    /// No tools involved.
    None,
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join(""),
        _ => String::new(),
    }
}

fn tool_turn(body: &Value, dialect: Dialect) -> ToolTurn {
    let last = body["messages"].as_array().and_then(|m| m.last()).cloned().unwrap_or(Value::Null);
    let result = match dialect {
        Dialect::Anthropic => last["content"]
            .as_array()
            .and_then(|blocks| blocks.iter().find(|b| b["type"] == "tool_result"))
            .map(|b| text_of(&b["content"])),
        Dialect::Aws => last["content"]
            .as_array()
            .and_then(|blocks| blocks.iter().find_map(|b| b.get("toolResult")))
            .map(|r| text_of(&r["content"])),
        Dialect::Google => body["contents"].as_array().and_then(|c| c.last()).and_then(|turn| {
            turn["parts"].as_array()?.iter().find_map(|p| {
                let response = p.get("functionResponse")?.get("response")?;
                Some(response["content"].as_str().map_or_else(|| response.to_string(), str::to_string))
            })
        }),
        _ => (last["role"] == "tool").then(|| text_of(&last["content"])),
    };
    if let Some(r) = result {
        return ToolTurn::Result(r);
    }
    let name = match dialect {
        Dialect::Anthropic => body["tools"][0]["name"].as_str(),
        Dialect::Aws => body["toolConfig"]["tools"][0]["toolSpec"]["name"].as_str(),
        Dialect::Google => body["tools"][0]["functionDeclarations"][0]["name"].as_str(),
        _ => body["tools"][0]["function"]["name"].as_str(),
    };
    name.map_or(ToolTurn::None, |n| ToolTurn::Call(n.to_string()))
}

fn last_user_text(body: &Value) -> String {
    if let Some(msgs) = body["messages"].as_array() {
        for m in msgs.iter().rev() {
            if m["role"] == "user" {
                return match &m["content"] {
                    Value::String(s) => s.clone(),
                    Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join(""),
                    _ => String::new(),
                };
            }
        }
    }
    match &body["prompt"] {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Dialect {
    OpenAi,
    Anthropic,
    Cohere,
    Google,
    Aws,
}

fn error(dialect: Dialect, status: StatusCode, message: &str) -> Response {
    let body = match dialect {
        Dialect::OpenAi => {
            json!({"error": {"message": message, "type": "invalid_request_error", "code": status.as_u16().to_string()}})
        }
        Dialect::Anthropic => json!({"type": "error", "error": {"type": "api_error", "message": message}}),
        Dialect::Cohere => json!({"id": "err-mock", "message": message}),
        Dialect::Google => {
            json!({"error": {"code": status.as_u16(), "message": message, "status": "FAILED_PRECONDITION"}})
        }
        Dialect::Aws => json!({"message": message}),
    };
    let mut resp = (status, axum::Json(body)).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut().insert(header::RETRY_AFTER, 7.into());
    }
    resp
}

/// A failure requested by a marker in the text, if any.
fn injected(dialect: Dialect, text: &str, headers: &HeaderMap) -> Option<Response> {
    if text.contains("__status_429__") {
        return Some(error(dialect, StatusCode::TOO_MANY_REQUESTS, "Rate limit reached for requests"));
    }
    if text.contains("__status_500__") {
        return Some(error(
            dialect,
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server had an error while processing your request",
        ));
    }
    if text.contains("__status_401__") {
        let presented = headers
            .get("x-api-key")
            .or_else(|| headers.get("api-key"))
            .or_else(|| headers.get(header::AUTHORIZATION))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .trim_start_matches("Bearer ")
            .to_string();
        return Some(error(dialect, StatusCode::UNAUTHORIZED, &format!("Incorrect API key provided: {presented}")));
    }
    if text.contains("__malformed__") {
        return Some(
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{\"id\": \"broken").into_response(),
        );
    }
    None
}

/// The number in a `__{name}_N__` marker.
fn marker(text: &str, name: &str) -> Option<u64> {
    text.split(&format!("__{name}_")).nth(1).and_then(|rest| rest.split("__").next()).and_then(|n| n.parse().ok())
}

/// `n` bytes of `x`, produced 64 KiB at a time (never held whole).
fn filler(n: u64) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    const CHUNK: u64 = 64 * 1024;
    let block = Bytes::from(vec![b'x'; CHUNK as usize]);
    futures::stream::iter((0..n.div_ceil(CHUNK)).map(move |i| Ok(block.slice(..(n - i * CHUNK).min(CHUNK) as usize))))
}

/// Misbehaviour of a hostile or broken upstream, requested by a marker in the text (OpenAI chat):
/// - `__huge_N__`: a 200 answer of N MiB (streamed out, never built in memory);
/// - `__huge_event_N__` (streamed requests): one SSE event of N MiB;
/// - `__huge_error_N__`: a 500 whose body is N MiB;
/// - `__echo_key_error__`: a 200 whose body is an error quoting the API key presented;
/// - `__echo_key_stream__` (streamed requests): a first chunk, then an error event quoting it;
/// - `__redirect_to_PORT__`: a 307 to the same path on 127.0.0.1:PORT.
fn hostile(text: &str, headers: &HeaderMap, stream: bool) -> Option<Response> {
    let mib = |n: u64| n * 1024 * 1024;
    let presented = || {
        headers
            .get(header::AUTHORIZATION)
            .or_else(|| headers.get("api-key"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .trim_start_matches("Bearer ")
            .to_string()
    };
    if let Some(n) = marker(text, "huge_error") {
        let body = futures::stream::once(async { Ok(Bytes::from_static(b"{\"error\": {\"message\": \"")) })
            .chain(filler(mib(n)));
        return Some((StatusCode::INTERNAL_SERVER_ERROR, Body::from_stream(body)).into_response());
    }
    if let Some(n) = marker(text, "huge_event").filter(|_| stream) {
        let body = futures::stream::once(async {
            Ok(Bytes::from_static(b"data: {\"choices\": [{\"delta\": {\"content\": \""))
        })
        .chain(filler(mib(n)));
        return Some(sse(body));
    }
    if let Some(n) = marker(text, "huge") {
        let head = r#"{"id": "chatcmpl-huge", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": ""#;
        let body = futures::stream::once(async move { Ok(Bytes::from(head)) })
            .chain(filler(mib(n)))
            .chain(futures::stream::once(async { Ok(Bytes::from_static(b"\"}, \"finish_reason\": \"stop\"}]}")) }));
        return Some(([(header::CONTENT_TYPE, "application/json")], Body::from_stream(body)).into_response());
    }
    if text.contains("__echo_key_error__") {
        let body = json!({"error": {"message": format!("Incorrect API key provided: {}", presented()), "type": "invalid_request_error"}});
        return Some(axum::Json(body).into_response());
    }
    if text.contains("__echo_key_stream__") && stream {
        let first = format!(
            "data: {}\n\n",
            json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": null}]})
        );
        let error = format!("data: {}\n\n", json!({"error": {"message": format!("key {} was revoked", presented())}}));
        return Some(sse(futures::stream::iter([Ok(Bytes::from(first)), Ok(Bytes::from(error))])));
    }
    if let Some(port) = marker(text, "redirect_to") {
        let location = format!("http://127.0.0.1:{port}/v1/chat/completions");
        return Some((StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, location)]).into_response());
    }
    None
}

async fn pause(mock: &Mock) {
    if !mock.options.delay.is_zero() {
        tokio::time::sleep(mock.options.delay).await;
    }
}

const FAST_CHAT: &str = r#"{"id":"chatcmpl-fast","object":"chat.completion","created":1700000000,"model":"mock","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the mock."},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":5,"total_tokens":14}}"#;
const FAST_STREAM: &str = concat!(
    "data: {\"id\":\"chatcmpl-fast\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"mock\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hello\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-fast\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"mock\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" from the mock.\"},\"finish_reason\":\"stop\"}]}\n\n",
    "data: [DONE]\n\n"
);

fn sse(body: impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn chat_chunk(model: &Value, delta: Value, finish: Value) -> String {
    json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    .to_string()
}

async fn openai_chat(
    State(mock): State<Arc<Mock>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if mock.options.fast {
        pause(&mock).await;
        // Clients serialise compactly, so a byte search finds streaming requests without parsing.
        if body.windows(13).any(|w| w == b"\"stream\":true") {
            return sse(futures::stream::once(async { Ok(Bytes::from_static(FAST_STREAM.as_bytes())) }));
        }
        return ([(header::CONTENT_TYPE, "application/json")], FAST_CHAT).into_response();
    }
    let body = mock.record("/v1/chat/completions", q, &headers, &body);
    chat_answer(&mock, body, &headers).await
}

async fn chat_answer(mock: &Arc<Mock>, body: Value, headers: &HeaderMap) -> Response {
    pause(mock).await;
    let forced = mock.force_status.load(std::sync::atomic::Ordering::SeqCst);
    if forced != 0 {
        let status = StatusCode::from_u16(forced).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (status, axum::Json(json!({"error": {"message": format!("forced {forced}"), "type": "mock"}})))
            .into_response();
        let after = mock.retry_after.load(std::sync::atomic::Ordering::SeqCst);
        if after > 0 {
            r.headers_mut().insert(header::RETRY_AFTER, after.into());
        }
        return r;
    }
    let text = last_user_text(&body);
    if let Some(r) = injected(Dialect::OpenAi, &text, headers) {
        return r;
    }
    if let Some(r) = hostile(&text, headers, body["stream"] == true) {
        return r;
    }
    let turn = tool_turn(&body, Dialect::OpenAi);
    let answer = match (&turn, judge_verdict(&body, &text)) {
        (ToolTurn::Result(r), _) => format!("echo: {r}"),
        (_, Some(verdict)) => verdict,
        _ => format!("echo: {text}"),
    };
    let call = match &turn {
        ToolTurn::Call(name) => Some((name.clone(), json!({"text": text}).to_string())),
        _ => None,
    };
    let model = body.get("model").cloned().unwrap_or(json!("mock-model"));
    // `__usage_N__` makes the answer report N completion tokens, `__cached_N__` N cached prompt
    // tokens out of 5 + N, `__reasoning_N__` N reasoning tokens on top of the completion.
    let cached = marker(&text, "cached");
    let reasoning = marker(&text, "reasoning");
    let prompt = 5 + cached.unwrap_or(0);
    let completion = marker(&text, "usage").unwrap_or(3) + reasoning.unwrap_or(0);
    let mut usage =
        json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion});
    if let Some(c) = cached {
        usage["prompt_tokens_details"] = json!({"cached_tokens": c});
    }
    if let Some(r) = reasoning {
        usage["completion_tokens_details"] = json!({"reasoning_tokens": r});
    }
    if body["stream"] == true {
        let include_usage = body["stream_options"]["include_usage"] == true;
        let words: Vec<String> = answer.split_inclusive(' ').map(str::to_string).collect();
        let interval = mock.options.chunk_interval;
        let (cut, stall) = (text.contains("__cut__"), text.contains("__stall__"));
        let open = OpenStream::new(&mock.open_streams);
        let stream = async_stream::stream! {
            let _open = open;
            yield Ok(Bytes::from(format!("data: {}\n\n", chat_chunk(&model, json!({"role": "assistant", "content": ""}), Value::Null))));
            // A comment line, as some OpenAI-compatible servers send; it must not reach clients.
            yield Ok(Bytes::from_static(b": keep-alive\n\n"));
            if let Some((name, args)) = &call {
                // The call in pieces, as OpenAI streams it: id and name first, then the arguments.
                let (head, tail) = args.split_at(args.len() / 2);
                let first = json!({"tool_calls": [{"index": 0, "id": "call_mock", "type": "function", "function": {"name": name, "arguments": ""}}]});
                yield Ok(Bytes::from(format!("data: {}\n\n", chat_chunk(&model, first, Value::Null))));
                for part in [head, tail] {
                    let delta = json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]});
                    yield Ok(Bytes::from(format!("data: {}\n\n", chat_chunk(&model, delta, Value::Null))));
                }
                yield Ok(Bytes::from(format!("data: {}\n\n", chat_chunk(&model, json!({}), json!("tool_calls")))));
                if include_usage {
                    let u = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
                                   "choices": [], "usage": usage});
                    yield Ok(Bytes::from(format!("data: {u}\n\n")));
                }
                yield Ok(Bytes::from_static(b"data: [DONE]\n\n"));
                return;
            }
            for (i, w) in words.iter().enumerate() {
                if !interval.is_zero() {
                    tokio::time::sleep(interval).await;
                }
                if (cut || stall) && i == 1 {
                    // Let what was sent so far reach the client first, as on a real connection.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if stall {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    yield Err(std::io::Error::other("connection reset by mock"));
                    return;
                }
                yield Ok(Bytes::from(format!("data: {}\n\n", chat_chunk(&model, json!({"content": w}), Value::Null))));
            }
            yield Ok(Bytes::from(format!("data: {}\n\n", chat_chunk(&model, json!({}), json!("stop")))));
            if include_usage {
                let u = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
                               "choices": [], "usage": usage});
                yield Ok(Bytes::from(format!("data: {u}\n\n")));
            }
            yield Ok(Bytes::from_static(b"data: [DONE]\n\n"));
        };
        return sse(stream);
    }
    let (message, finish) = match &call {
        Some((name, args)) => (
            json!({"role": "assistant", "content": null,
                   "tool_calls": [{"id": "call_mock", "type": "function", "function": {"name": name, "arguments": args}}]}),
            "tool_calls",
        ),
        None => (json!({"role": "assistant", "content": answer}), "stop"),
    };
    axum::Json(json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage
    }))
    .into_response()
}

async fn openai_completions(
    State(mock): State<Arc<Mock>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = mock.record("/v1/completions", q, &headers, &body);
    pause(&mock).await;
    let text = last_user_text(&body);
    if let Some(r) = injected(Dialect::OpenAi, &text, &headers) {
        return r;
    }
    let model = body.get("model").cloned().unwrap_or(json!("mock-model"));
    let answer = format!("echo: {text}");
    if body["stream"] == true {
        let stream = async_stream::stream! {
            for w in answer.split_inclusive(' ').map(str::to_string).collect::<Vec<_>>() {
                let c = json!({"id": "cmpl-mock", "object": "text_completion", "created": 1_700_000_000, "model": model,
                               "choices": [{"index": 0, "text": w, "finish_reason": null, "logprobs": null}]});
                yield Ok::<Bytes, std::io::Error>(Bytes::from(format!("data: {c}\n\n")));
            }
            yield Ok(Bytes::from_static(b"data: [DONE]\n\n"));
        };
        return sse(stream);
    }
    axum::Json(json!({
        "id": "cmpl-mock", "object": "text_completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "text": answer, "finish_reason": "stop", "logprobs": null}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    }))
    .into_response()
}

fn embedding_answer(body: &Value) -> Response {
    let inputs: Vec<String> = match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect(),
        _ => Vec::new(),
    };
    let base64 = body["encoding_format"] == "base64";
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let v = [s.len() as f32, 0.5, -0.25];
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let tokens = inputs.iter().map(|s| s.split_whitespace().count()).sum::<usize>();
    axum::Json(
        json!({"object": "list", "model": body.get("model").cloned().unwrap_or(json!("mock-embed")), "data": data,
                      "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
    )
    .into_response()
}

async fn openai_embeddings(
    State(mock): State<Arc<Mock>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = mock.record("/v1/embeddings", q, &headers, &body);
    pause(&mock).await;
    embedding_answer(&body)
}

fn entra_ok(mock: &Mock, headers: &HeaderMap) -> bool {
    match headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")) {
        Some(t) if t.starts_with("entra-") => {
            mock.tokens_issued.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|i| i == t)
        }
        _ => true,
    }
}

/// Azure OpenAI: the OpenAI operations under a deployment, which names the model.
async fn azure(
    State(mock): State<Arc<Mock>>,
    Path((d, operation)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = mock.record(&format!("/openai/deployments/{d}/{operation}"), q, &headers, &body);
    if !entra_ok(&mock, &headers) {
        return error(Dialect::OpenAi, StatusCode::UNAUTHORIZED, "token was not issued by this tenant");
    }
    match operation.as_str() {
        "chat/completions" => chat_answer(&mock, body, &headers).await,
        "embeddings" => embedding_answer(&body),
        "images/generations" => openai_image_answer(&body, &d, &headers),
        _ => error(Dialect::OpenAi, StatusCode::NOT_FOUND, "Resource not found"),
    }
}

async fn databricks_invocations(
    State(mock): State<Arc<Mock>>,
    Path(n): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = mock.record(&format!("/serving-endpoints/{n}/invocations"), q, &headers, &body);
    chat_answer(&mock, body, &headers).await
}

async fn entra_token(
    State(mock): State<Arc<Mock>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    mock.record(&format!("/{tenant}/oauth2/v2.0/token"), None, &headers, &body);
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let get = |k: &str| form.iter().find(|(a, _)| a == k).map(|(_, b)| b.as_str()).unwrap_or_default();
    if get("grant_type") != "client_credentials" || get("scope") != "https://cognitiveservices.azure.com/.default" {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_request", "error_description": "bad grant or scope"})),
        )
            .into_response();
    }
    if get("client_secret") != "entra-secret" {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}))).into_response();
    }
    let mut issued = mock.tokens_issued.lock().unwrap_or_else(|e| e.into_inner());
    let token = format!("entra-{}-{}", get("client_id"), issued.len());
    issued.push(token.clone());
    axum::Json(json!({"token_type": "Bearer", "expires_in": 3599, "access_token": token})).into_response()
}

async fn anthropic_messages(State(mock): State<Arc<Mock>>, headers: HeaderMap, body: Bytes) -> Response {
    let body = mock.record("/v1/messages", None, &headers, &body);
    pause(&mock).await;
    if headers.get("anthropic-version").is_none() {
        return error(Dialect::Anthropic, StatusCode::BAD_REQUEST, "anthropic-version header is required");
    }
    anthropic_answer(body, &headers)
}

/// A Messages answer (Anthropic's API and Claude on Vertex AI share it).
fn anthropic_answer(body: Value, headers: &HeaderMap) -> Response {
    if body.get("max_tokens").is_none() {
        return error(Dialect::Anthropic, StatusCode::BAD_REQUEST, "max_tokens: Field required");
    }
    let text = last_user_text(&body);
    if let Some(r) = injected(Dialect::Anthropic, &text, headers) {
        return r;
    }
    let model = body.get("model").cloned().unwrap_or(json!("claude-mock"));
    let turn = tool_turn(&body, Dialect::Anthropic);
    let answer = match &turn {
        ToolTurn::Result(r) => format!("echo: {r}"),
        _ => format!("echo: {text}"),
    };
    if let ToolTurn::Call(name) = &turn {
        let input = json!({"text": text});
        if body["stream"] == true {
            let args = input.to_string();
            let name = name.clone();
            let stream = async_stream::stream! {
                let ev = |name: &str, data: Value| Ok::<Bytes, std::io::Error>(Bytes::from(format!("event: {name}\ndata: {data}\n\n")));
                yield ev("message_start", json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant",
                    "model": model, "content": [], "stop_reason": null, "usage": {"input_tokens": 5, "output_tokens": 1}}}));
                yield ev("content_block_start", json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "tool_use", "id": "toolu_mock", "name": name, "input": {}}}));
                let (head, tail) = args.split_at(args.len() / 2);
                for part in [head, tail] {
                    yield ev("content_block_delta", json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "input_json_delta", "partial_json": part}}));
                }
                yield ev("content_block_stop", json!({"type": "content_block_stop", "index": 0}));
                yield ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 3}}));
                yield ev("message_stop", json!({"type": "message_stop"}));
            };
            return sse(stream);
        }
        return axum::Json(json!({
            "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "tool_use", "id": "toolu_mock", "name": name, "input": input}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 5, "output_tokens": 3}
        }))
        .into_response();
    }
    if body["stream"] == true {
        let (cut, stall) = (text.contains("__cut__"), text.contains("__stall__"));
        let stream = async_stream::stream! {
            let ev = |name: &str, data: Value| Ok::<Bytes, std::io::Error>(Bytes::from(format!("event: {name}\ndata: {data}\n\n")));
            yield ev("message_start", json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant",
                "model": model, "content": [], "stop_reason": null, "usage": {"input_tokens": 5, "output_tokens": 1}}}));
            yield ev("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}));
            yield ev("ping", json!({"type": "ping"}));
            for (i, w) in answer.split_inclusive(' ').enumerate() {
                if (cut || stall) && i == 1 {
                    // Let what was sent so far reach the client first, as on a real connection.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if stall {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    yield Err(std::io::Error::other("connection reset by mock"));
                    return;
                }
                yield ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}));
            }
            yield ev("content_block_stop", json!({"type": "content_block_stop", "index": 0}));
            yield ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 3}}));
            yield ev("message_stop", json!({"type": "message_stop"}));
        };
        return sse(stream);
    }
    axum::Json(json!({
        "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": answer}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 5, "output_tokens": 3}
    }))
    .into_response()
}

async fn cohere_chat(State(mock): State<Arc<Mock>>, headers: HeaderMap, body: Bytes) -> Response {
    let body = mock.record("/v2/chat", None, &headers, &body);
    pause(&mock).await;
    let text = last_user_text(&body);
    if let Some(r) = injected(Dialect::Cohere, &text, &headers) {
        return r;
    }
    let usage = json!({"billed_units": {"input_tokens": 5, "output_tokens": 3}, "tokens": {"input_tokens": 60, "output_tokens": 3}});
    let turn = tool_turn(&body, Dialect::Cohere);
    let answer = match &turn {
        ToolTurn::Result(r) => format!("echo: {r}"),
        _ => format!("echo: {text}"),
    };
    if let ToolTurn::Call(name) = turn {
        let args = json!({"text": text}).to_string();
        let plan = format!("I will call {name}.");
        if body["stream"] == true {
            let stream = async_stream::stream! {
                let ev = |name: &str, data: Value| Ok::<Bytes, std::io::Error>(Bytes::from(format!("event: {name}\ndata: {data}\n\n")));
                yield ev("message-start", json!({"type": "message-start", "id": "cohere-mock", "delta": {"message": {"role": "assistant"}}}));
                yield ev("tool-plan-delta", json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": plan}}}));
                yield ev("tool-call-start", json!({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls":
                    {"id": "call_mock", "type": "function", "function": {"name": name, "arguments": ""}}}}}));
                let (head, tail) = args.split_at(args.len() / 2);
                for part in [head, tail] {
                    yield ev("tool-call-delta", json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": part}}}}}));
                }
                yield ev("tool-call-end", json!({"type": "tool-call-end", "index": 0}));
                yield ev("message-end", json!({"type": "message-end", "delta": {"finish_reason": "TOOL_CALL", "usage": usage}}));
            };
            return sse(stream);
        }
        return axum::Json(json!({
            "id": "cohere-mock", "finish_reason": "TOOL_CALL",
            "message": {"role": "assistant", "tool_plan": plan,
                        "tool_calls": [{"id": "call_mock", "type": "function", "function": {"name": name, "arguments": args}}]},
            "usage": usage
        }))
        .into_response();
    }
    if body["stream"] == true {
        let cut = text.contains("__cut__");
        let stream = async_stream::stream! {
            let ev = |name: &str, data: Value| Ok::<Bytes, std::io::Error>(Bytes::from(format!("event: {name}\ndata: {data}\n\n")));
            yield ev("message-start", json!({"type": "message-start", "id": "cohere-mock", "delta": {"message": {"role": "assistant", "content": []}}}));
            yield ev("content-start", json!({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}}));
            for (i, w) in answer.split_inclusive(' ').enumerate() {
                if cut && i == 1 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    yield Err(std::io::Error::other("connection reset by mock"));
                    return;
                }
                yield ev("content-delta", json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": w}}}}));
            }
            yield ev("content-end", json!({"type": "content-end", "index": 0}));
            yield ev("message-end", json!({"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": usage}}));
        };
        return sse(stream);
    }
    axum::Json(json!({
        "id": "cohere-mock", "finish_reason": "COMPLETE",
        "message": {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        "usage": usage
    }))
    .into_response()
}

async fn cohere_embed(State(mock): State<Arc<Mock>>, headers: HeaderMap, body: Bytes) -> Response {
    let body = mock.record("/v2/embed", None, &headers, &body);
    if body["input_type"].as_str().is_none()
        || !body["embedding_types"].as_array().is_some_and(|t| t.contains(&json!("float")))
    {
        return error(Dialect::Cohere, StatusCode::BAD_REQUEST, "input_type and embedding_types are required");
    }
    let texts: Vec<String> =
        body["texts"].as_array().into_iter().flatten().map(|t| t.as_str().unwrap_or_default().to_string()).collect();
    let vectors: Vec<Value> = texts.iter().map(|t| json!([t.len() as f32, 0.5, -0.25])).collect();
    axum::Json(json!({"id": "embed-mock", "embeddings": {"float": vectors}, "texts": texts,
                      "meta": {"billed_units": {"input_tokens": texts.len() * 2}}}))
    .into_response()
}

/// Public half of the throwaway test service-account key (see `testdata/README.md`).
pub const TEST_SERVICE_ACCOUNT_PUBLIC_KEY: &[u8] = include_bytes!("../testdata/test-service-account.pub.der");
/// The throwaway test service-account private key, PKCS#8 PEM.
pub const TEST_SERVICE_ACCOUNT_PRIVATE_KEY: &str = include_str!("../testdata/test-service-account.pem");

fn verify_assertion(jwt: &str) -> Result<Value, String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = jwt.split('.');
    let (h, c, s) = match (parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(c), Some(s)) => (h, c, s),
        _ => return Err("assertion is not a JWT".into()),
    };
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| "signature is not base64url")?;
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        TEST_SERVICE_ACCOUNT_PUBLIC_KEY,
    );
    key.verify(format!("{h}.{c}").as_bytes(), &sig).map_err(|_| "invalid JWT signature")?;
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).map_err(|_| "bad header")?).map_err(|_| "bad header")?;
    if header["alg"] != "RS256" {
        return Err("alg must be RS256".into());
    }
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).map_err(|_| "bad claims")?).map_err(|_| "bad claims")?;
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    if claims["scope"] != "https://www.googleapis.com/auth/cloud-platform"
        || !claims["aud"].as_str().is_some_and(|a| a.ends_with("/token"))
    {
        return Err("wrong scope or audience".into());
    }
    if claims["exp"].as_i64().unwrap_or(0) <= now || claims["iat"].as_i64().unwrap_or(i64::MAX) > now + 60 {
        return Err("assertion is expired or from the future".into());
    }
    Ok(claims)
}

async fn google_token(State(mock): State<Arc<Mock>>, headers: HeaderMap, body: Bytes) -> Response {
    mock.record("/token", None, &headers, &body);
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let get = |k: &str| form.iter().find(|(a, _)| a == k).map(|(_, b)| b.as_str()).unwrap_or_default();
    if get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "unsupported_grant_type"}))).into_response();
    }
    match verify_assertion(get("assertion")) {
        Err(why) => (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant", "error_description": why})))
            .into_response(),
        Ok(claims) => {
            let mut issued = mock.tokens_issued.lock().unwrap_or_else(|e| e.into_inner());
            let token = format!("google-{}-{}", claims["iss"].as_str().unwrap_or_default(), issued.len());
            issued.push(token.clone());
            axum::Json(json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})).into_response()
        }
    }
}

fn gemini_text(body: &Value) -> String {
    body["contents"]
        .as_array()
        .and_then(|c| c.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| m["parts"].as_array().into_iter().flatten().filter_map(|p| p["text"].as_str()).collect())
        .unwrap_or_default()
}

async fn vertex_model(
    State(mock): State<Arc<Mock>>,
    Path((project, location, model_action)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/v1/projects/{project}/locations/{location}/publishers/google/models/{model_action}");
    let body = mock.record(&path, q, &headers, &body);
    if let Some(refused) = google_unauthenticated(&mock, &headers) {
        return refused;
    }
    let (model, action) = model_action.split_once(':').unwrap_or((&model_action, ""));
    if action == "predict" && body["instances"][0].get("prompt").is_some() {
        return imagen_answer(&body, &headers);
    }
    if action == "predict" {
        let preds: Vec<Value> = body["instances"].as_array().into_iter().flatten().map(|i| {
            let t = i["content"].as_str().unwrap_or_default();
            json!({"embeddings": {"values": [t.len() as f32, 0.5, -0.25], "statistics": {"token_count": 2, "truncated": false}}})
        }).collect();
        return axum::Json(json!({"predictions": preds})).into_response();
    }
    let text = gemini_text(&body);
    if let Some(r) = injected(Dialect::Google, &text, &headers) {
        return r;
    }
    let usage = json!({"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8});
    let turn = tool_turn(&body, Dialect::Google);
    let answer = match &turn {
        ToolTurn::Result(r) => format!("echo: {r}"),
        _ => format!("echo: {text}"),
    };
    if let ToolTurn::Call(name) = turn {
        // Gemini sends a call whole, in one chunk, and ends with STOP (not a tool-call reason).
        let call = json!({"role": "model", "parts": [{"functionCall": {"name": name, "args": {"text": text}}}]});
        if action == "streamGenerateContent" {
            let model = model.to_string();
            let stream = async_stream::stream! {
                let first = json!({"candidates": [{"content": call}], "modelVersion": model});
                yield Ok::<Bytes, std::io::Error>(Bytes::from(format!("data: {first}\r\n\r\n")));
                let last = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP"}],
                                  "usageMetadata": usage, "modelVersion": model});
                yield Ok(Bytes::from(format!("data: {last}\r\n\r\n")));
            };
            return sse(stream);
        }
        return axum::Json(json!({"candidates": [{"content": call, "finishReason": "STOP"}], "usageMetadata": usage, "modelVersion": model}))
            .into_response();
    }
    if action == "streamGenerateContent" {
        let words: Vec<String> = answer.split_inclusive(' ').map(str::to_string).collect();
        let model = model.to_string();
        let cut = text.contains("__cut__");
        let stream = async_stream::stream! {
            let n = words.len();
            for (i, w) in words.into_iter().enumerate() {
                if cut && i == 1 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    yield Err(std::io::Error::other("connection reset by mock"));
                    return;
                }
                let mut c = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": w}]}}], "modelVersion": model});
                if i + 1 == n {
                    c["candidates"][0]["finishReason"] = json!("STOP");
                    c["usageMetadata"] = usage.clone();
                }
                yield Ok::<Bytes, std::io::Error>(Bytes::from(format!("data: {c}\r\n\r\n")));
            }
        };
        return sse(stream);
    }
    axum::Json(json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": answer}]}, "finishReason": "STOP"}],
        "usageMetadata": usage, "modelVersion": model
    }))
    .into_response()
}

/// A 401 unless the request carries a token the Google token route issued.
fn google_unauthenticated(mock: &Mock, headers: &HeaderMap) -> Option<Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if mock.tokens_issued.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|t| t == bearer) {
        return None;
    }
    Some(
        (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}})))
            .into_response(),
    )
}

/// Claude on Vertex AI: Anthropic's Messages body at `:rawPredict` / `:streamRawPredict`, the
/// model named by the URL and `anthropic_version` in the body.
async fn vertex_claude(
    State(mock): State<Arc<Mock>>,
    Path((project, location, model_action)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{model_action}");
    let mut body = mock.record(&path, None, &headers, &body);
    if let Some(refused) = google_unauthenticated(&mock, &headers) {
        return refused;
    }
    let (model, action) = model_action.split_once(':').unwrap_or((&model_action, ""));
    if body["anthropic_version"] != "vertex-2023-10-16" || body.get("model").is_some() {
        return error(
            Dialect::Anthropic,
            StatusCode::BAD_REQUEST,
            "anthropic_version must be vertex-2023-10-16 and model is named by the URL",
        );
    }
    if (action == "streamRawPredict") != (body["stream"] == true) {
        return error(Dialect::Anthropic, StatusCode::BAD_REQUEST, "streamRawPredict streams; rawPredict does not");
    }
    body["model"] = json!(model);
    anthropic_answer(body, &headers)
}

/// A 1x1 PNG: the image every image route draws.
pub const MOCK_PNG_BASE64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

/// An image request the mock refuses: an empty prompt, a failure marker, or `__filtered__` (the
/// provider's content filter).
fn image_refusal(dialect: Dialect, prompt: &str, headers: &HeaderMap) -> Option<Response> {
    if prompt.trim().is_empty() {
        return Some(error(dialect, StatusCode::BAD_REQUEST, "prompt must not be empty"));
    }
    if prompt.contains("__filtered__") && dialect != Dialect::Google {
        return Some(error(dialect, StatusCode::BAD_REQUEST, "This request has been blocked by our content filters."));
    }
    injected(dialect, prompt, headers)
}

/// OpenAI's images answer: URLs or base64 as asked (GPT image models always base64, with usage).
fn openai_image_answer(body: &Value, model: &str, headers: &HeaderMap) -> Response {
    let prompt = body["prompt"].as_str().unwrap_or_default();
    if let Some(r) = image_refusal(Dialect::OpenAi, prompt, headers) {
        return r;
    }
    let n = body["n"].as_u64().unwrap_or(1);
    let gpt_image = model.starts_with("gpt-image");
    let urls = body["response_format"] == "url" && !gpt_image;
    let data: Vec<Value> = (0..n)
        .map(|i| {
            let mut d = if urls {
                json!({"url": format!("https://images.mock.invalid/{i}.png")})
            } else {
                json!({"b64_json": MOCK_PNG_BASE64})
            };
            if model == "dall-e-3" {
                d["revised_prompt"] = json!(format!("revised: {prompt}"));
            }
            d
        })
        .collect();
    let mut answer = json!({"created": 1_700_000_000, "data": data});
    if gpt_image {
        let input = prompt.split_whitespace().count() as u64;
        let output = 272 * n;
        answer["usage"] = json!({"input_tokens": input, "output_tokens": output, "total_tokens": input + output,
                                 "input_tokens_details": {"text_tokens": input, "image_tokens": 0}});
    }
    axum::Json(answer).into_response()
}

async fn openai_images(
    State(mock): State<Arc<Mock>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = mock.record("/v1/images/generations", q, &headers, &body);
    let model = body["model"].as_str().unwrap_or("dall-e-2").to_string();
    openai_image_answer(&body, &model, &headers)
}

/// Titan Image Generator on Bedrock (`taskType: TEXT_IMAGE`).
fn titan_answer(body: &Value, headers: &HeaderMap) -> Response {
    let prompt = body["textToImageParams"]["text"].as_str().unwrap_or_default();
    if let Some(r) = image_refusal(Dialect::Aws, prompt, headers) {
        return r;
    }
    let config = &body["imageGenerationConfig"];
    let (w, h) = (config["width"].as_u64().unwrap_or(1024), config["height"].as_u64().unwrap_or(1024));
    if w % 64 != 0 || h % 64 != 0 {
        return error(Dialect::Aws, StatusCode::BAD_REQUEST, "width and height must be multiples of 64");
    }
    let n = config["numberOfImages"].as_u64().unwrap_or(1);
    axum::Json(json!({"images": vec![MOCK_PNG_BASE64; n as usize], "error": null})).into_response()
}

/// Imagen on Vertex AI (`:predict` with a prompt). `__filtered__` has the safety filter remove
/// every image, as Imagen does: the answer then holds only the reasons.
fn imagen_answer(body: &Value, headers: &HeaderMap) -> Response {
    let prompt = body["instances"][0]["prompt"].as_str().unwrap_or_default();
    if let Some(r) = image_refusal(Dialect::Google, prompt, headers) {
        return r;
    }
    let params = &body["parameters"];
    if let Some(ratio) = params["aspectRatio"].as_str()
        && !["1:1", "3:4", "4:3", "9:16", "16:9"].contains(&ratio)
    {
        return error(Dialect::Google, StatusCode::BAD_REQUEST, &format!("unsupported aspect ratio {ratio}"));
    }
    let n = params["sampleCount"].as_u64().unwrap_or(1) as usize;
    let one = if prompt.contains("__filtered__") {
        json!({"raiFilteredReason": "The image was filtered by the responsible AI policy."})
    } else {
        let mime = params["outputOptions"]["mimeType"].as_str().unwrap_or("image/png");
        json!({"bytesBase64Encoded": MOCK_PNG_BASE64, "mimeType": mime})
    };
    axum::Json(json!({"predictions": vec![one; n]})).into_response()
}

/// Access key the Bedrock routes accept.
pub const TEST_AWS_ACCESS_KEY_ID: &str = "AKIAMODELGATETEST";
/// Secret key the Bedrock routes verify signatures with.
pub const TEST_AWS_SECRET_ACCESS_KEY: &str = "modelgate/test/secret/key/0123456789";

/// Parses `YYYYMMDDTHHMMSSZ`.
fn amz_date(s: &str) -> Option<std::time::SystemTime> {
    let n = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, m, d, hh, mm, ss) = (n(0, 4)?, n(4, 6)?, n(6, 8)?, n(9, 11)?, n(11, 13)?, n(13, 15)?);
    // Days from the civil date (proleptic Gregorian), after H. Hinnant.
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + hh * 3600 + mm * 60 + ss;
    Some(std::time::UNIX_EPOCH + Duration::from_secs(secs as u64))
}

/// Recomputes the SigV4 signature of a request as received; `Err` says what does not match.
fn verify_sigv4(headers: &HeaderMap, uri: &axum::http::Uri, body: &[u8]) -> Result<(), String> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or("no Authorization header")?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or("not AWS4-HMAC-SHA256")?;
    let field = |k: &str| rest.split(", ").find_map(|p| p.strip_prefix(k)).map(str::to_string);
    let credential = field("Credential=").ok_or("no Credential")?;
    let signed = field("SignedHeaders=").ok_or("no SignedHeaders")?;
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[0] != TEST_AWS_ACCESS_KEY_ID || scope[3] != "bedrock" {
        return Err(format!("unknown access key or service in {credential}"));
    }
    let time = headers.get("x-amz-date").and_then(|v| v.to_str().ok()).and_then(amz_date).ok_or("bad X-Amz-Date")?;
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).ok_or("no Host")?;
    let url = format!("http://{host}{}", uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let others: Vec<(String, String)> = signed
        .split(';')
        .filter(|h| *h != "host" && *h != "x-amz-date")
        .map(|h| (h.to_string(), headers.get(h).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()))
        .collect();
    let identity =
        aws_credential_types::Credentials::new(TEST_AWS_ACCESS_KEY_ID, TEST_AWS_SECRET_ACCESS_KEY, None, None, "mock")
            .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(scope[2])
        .name("bedrock")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = SignableRequest::new(
        "POST",
        &url,
        others.iter().map(|(a, b)| (a.as_str(), b.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
    let expected =
        instructions.headers().find(|(k, _)| k.eq_ignore_ascii_case("authorization")).map(|(_, v)| v.to_string());
    if expected.as_deref() != Some(auth) {
        return Err("The request signature we calculated does not match the signature you provided.".into());
    }
    Ok(())
}

fn event_frame(kind: &'static str, payload: Value) -> Bytes {
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let message = Message::new(payload.to_string().into_bytes())
        .add_header(Header::new(":event-type", HeaderValue::String(kind.into())))
        .add_header(Header::new(":content-type", HeaderValue::String("application/json".into())))
        .add_header(Header::new(":message-type", HeaderValue::String("event".into())));
    let mut out = Vec::new();
    let _ = aws_smithy_eventstream::frame::write_message_to(&message, &mut out);
    Bytes::from(out)
}

async fn bedrock_model(
    State(mock): State<Arc<Mock>>,
    Path((model, action)): Path<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let body = mock.record(&format!("/model/{model}/{action}"), uri.query().map(str::to_string), &headers, &raw);
    if let Err(why) = verify_sigv4(&headers, &uri, &raw) {
        return (StatusCode::FORBIDDEN, axum::Json(json!({"message": why}))).into_response();
    }
    if action == "invoke" && body["taskType"] == "TEXT_IMAGE" {
        return titan_answer(&body, &headers);
    }
    if action == "invoke" {
        if let Some(t) = body["inputText"].as_str() {
            return axum::Json(json!({"embedding": [t.len() as f32, 0.5, -0.25], "inputTextTokenCount": 2}))
                .into_response();
        }
        let vectors: Vec<Value> = body["texts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| json!([t.as_str().unwrap_or_default().len() as f32, 0.5, -0.25]))
            .collect();
        return axum::Json(
            json!({"id": "emb", "embeddings": vectors, "texts": body["texts"], "response_type": "embeddings_floats"}),
        )
        .into_response();
    }
    let text: String = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| m["content"].as_array().into_iter().flatten().filter_map(|c| c["text"].as_str()).collect())
        .unwrap_or_default();
    if let Some(r) = injected(Dialect::Aws, &text, &headers) {
        return r;
    }
    let usage = json!({"inputTokens": 5, "outputTokens": 3, "totalTokens": 8});
    let turn = tool_turn(&body, Dialect::Aws);
    let answer = match &turn {
        ToolTurn::Result(r) => format!("echo: {r}"),
        _ => format!("echo: {text}"),
    };
    if let ToolTurn::Call(name) = &turn {
        let input = json!({"text": text});
        if action == "converse-stream" {
            let (name, args) = (name.clone(), input.to_string());
            let stream = async_stream::stream! {
                yield Ok::<Bytes, std::io::Error>(event_frame("messageStart", json!({"role": "assistant"})));
                yield Ok(event_frame("contentBlockStart", json!({"contentBlockIndex": 0,
                    "start": {"toolUse": {"toolUseId": "tooluse_mock", "name": name}}})));
                let (head, tail) = args.split_at(args.len() / 2);
                for part in [head, tail] {
                    yield Ok(event_frame("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": part}}})));
                }
                yield Ok(event_frame("contentBlockStop", json!({"contentBlockIndex": 0})));
                yield Ok(event_frame("messageStop", json!({"stopReason": "tool_use"})));
                yield Ok(event_frame("metadata", json!({"usage": usage, "metrics": {"latencyMs": 1}})));
            };
            return Response::builder()
                .header(header::CONTENT_TYPE, "application/vnd.amazon.eventstream")
                .body(Body::from_stream(stream))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
        return axum::Json(json!({
            "output": {"message": {"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_mock", "name": name, "input": input}}]}},
            "stopReason": "tool_use", "usage": usage, "metrics": {"latencyMs": 1}
        }))
        .into_response();
    }
    if action == "converse-stream" {
        let words: Vec<String> = answer.split_inclusive(' ').map(str::to_string).collect();
        let throttle = text.contains("__throttle_mid_stream__");
        let cut = text.contains("__cut__");
        let stream = async_stream::stream! {
            yield Ok::<Bytes, std::io::Error>(event_frame("messageStart", json!({"role": "assistant"})));
            for (i, w) in words.into_iter().enumerate() {
                if cut && i == 1 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    yield Err(std::io::Error::other("connection reset by mock"));
                    return;
                }
                if throttle && i == 1 {
                    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
                    let m = Message::new(json!({"message": "Rate exceeded"}).to_string().into_bytes())
                        .add_header(Header::new(":message-type", HeaderValue::String("exception".into())))
                        .add_header(Header::new(":exception-type", HeaderValue::String("throttlingException".into())));
                    let mut out = Vec::new();
                    let _ = aws_smithy_eventstream::frame::write_message_to(&m, &mut out);
                    yield Ok(Bytes::from(out));
                    return;
                }
                yield Ok(event_frame("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": w}})));
            }
            yield Ok(event_frame("contentBlockStop", json!({"contentBlockIndex": 0})));
            yield Ok(event_frame("messageStop", json!({"stopReason": "end_turn"})));
            yield Ok(event_frame("metadata", json!({"usage": usage, "metrics": {"latencyMs": 1}})));
        };
        return Response::builder()
            .header(header::CONTENT_TYPE, "application/vnd.amazon.eventstream")
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    axum::Json(json!({
        "output": {"message": {"role": "assistant", "content": [{"text": answer}]}},
        "stopReason": "end_turn", "usage": usage, "metrics": {"latencyMs": 1}
    }))
    .into_response()
}

async fn list_requests(State(mock): State<Arc<Mock>>) -> Response {
    let list: Vec<Value> = mock
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|r| json!({"path": r.path, "query": r.query, "headers": r.headers.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(), "body": r.body}))
        .collect();
    axum::Json(json!({"requests": list})).into_response()
}

async fn clear_requests(State(mock): State<Arc<Mock>>) -> Response {
    mock.requests.lock().unwrap_or_else(|e| e.into_inner()).clear();
    StatusCode::NO_CONTENT.into_response()
}
