//! What the inbound protocols other than OpenAI's share: one handler that parses the protocol's
//! request, runs it through the chat pipeline and translates the answer, error or stream back
//! ([`serve`] over a [`Protocol`]); re-framing a stream event by event; the headers worth keeping.

use axum::body::{Body as HttpBody, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use modelgate_providers::{Body, Task};
use serde::de::DeserializeOwned;
use std::borrow::Cow;

use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;

/// Largest whole answer read back for translation (the pipeline bounds upstream answers already).
pub(super) const MAX_ANSWER: usize = 64 << 20;

/// The value at a JSON pointer (`/choices/0/delta`), or null.
pub(super) fn at<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer).unwrap_or(&Value::Null)
}

/// Headers of the pipeline's answer worth keeping (which entity answered, deprecation notices,
/// rate-limit state).
pub(super) fn keep_headers(from: &axum::http::HeaderMap, to: &mut axum::http::HeaderMap) {
    for (name, value) in from {
        let n = name.as_str();
        if n == super::SERVED_MODEL_HEADER
            || n.starts_with("x-ratelimit")
            || n == "deprecation"
            || n == "sunset"
            || n == "link"
            || n == "retry-after"
            || n == super::CACHE_HEADER
            || n == "age"
        {
            to.append(name.clone(), value.clone());
        }
    }
}

/// What a re-framer reads of one chat-completion chunk, borrowed from the event where it can be:
/// parsing every chunk into a `Value` tree was most of a translated stream's cost.
#[derive(Deserialize)]
pub(super) struct Chunk<'a> {
    /// `chatcmpl-...`
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    /// The first choice is the one streamed.
    #[serde(borrow, default)]
    pub choices: Vec<ChunkChoice<'a>>,
    /// Token counts (the last chunk, with `include_usage`).
    #[serde(default)]
    pub usage: Option<Value>,
    /// An error event of the pipeline.
    #[serde(default)]
    pub error: Option<Value>,
}

/// A choice of a [`Chunk`].
#[derive(Deserialize)]
pub(super) struct ChunkChoice<'a> {
    /// What it adds.
    #[serde(borrow, default)]
    pub delta: ChunkDelta<'a>,
    /// Why it ended.
    #[serde(borrow, default)]
    pub finish_reason: Option<Cow<'a, str>>,
}

/// The delta of a [`ChunkChoice`].
#[derive(Deserialize, Default)]
pub(super) struct ChunkDelta<'a> {
    /// Text.
    #[serde(borrow, default)]
    pub content: Option<Cow<'a, str>>,
    /// Tool-call pieces (rare: kept as values).
    #[serde(default)]
    pub tool_calls: Option<Vec<Value>>,
}

/// `text` as a JSON string literal, for frames written by hand.
pub(super) fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

/// One protocol's translation of a chat-completion stream.
pub(crate) trait Reframe: Send + 'static {
    /// The frames for one event's `data` (`[DONE]` included).
    fn on(&mut self, data: &str) -> String;
    /// The frames that end a stream that failed.
    fn fail(&mut self, message: &str) -> String;
    /// Whether the stream has ended (no frame follows).
    fn finished(&self) -> bool;
}

/// The pipeline's stream, re-framed by `state`; a stream that breaks or ends early ends with the
/// protocol's failure frames.
pub(super) fn reframe(resp: Response, mut state: impl Reframe) -> Response {
    let (parts, body) = resp.into_parts();
    // The events already arrived are translated together and written as one body frame: one
    // write instead of one per event.
    let events = eventsource_stream::EventStream::new(body.into_data_stream()).ready_chunks(64);
    let out = async_stream::stream! {
        futures::pin_mut!(events);
        while let Some(batch) = events.next().await {
            let mut frames = String::new();
            for event in batch {
                frames.push_str(&match event {
                    Ok(e) => state.on(&e.data),
                    Err(e) => state.fail(&format!("the stream broke: {e}")),
                });
                if state.finished() {
                    break;
                }
            }
            let done = state.finished();
            yield Ok::<Bytes, std::io::Error>(Bytes::from(frames));
            if done {
                return;
            }
        }
        if !state.finished() {
            yield Ok(Bytes::from(state.fail("the stream ended before its end")));
        }
    };
    let mut resp = Response::new(HttpBody::from_stream(out));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    keep_headers(&parts.headers, resp.headers_mut());
    resp
}

/// An inbound protocol translated onto the chat pipeline.
pub(crate) trait Protocol {
    /// Its request.
    type Request: DeserializeOwned;
    /// Its stream translation.
    type Stream: Reframe;
    /// What its requests are called, in errors.
    const NAME: &'static str;
    /// The endpoint a request names.
    fn model(req: &Self::Request) -> &str;
    /// Whether the answer is streamed.
    fn stream(req: &Self::Request) -> bool;
    /// The internal chat request; the error names what cannot be translated.
    fn to_chat(req: &Self::Request) -> Result<Body, String>;
    /// The protocol's answer for a whole chat completion, serialised from its typed shape.
    fn answer(chat: &Value, model: &str) -> Response;
    /// A fresh stream translation.
    fn reframer(model: &str) -> Self::Stream;
    /// The protocol's error body for a status.
    fn error(status: StatusCode, message: String) -> Response;
}

/// The route of a translated protocol: `POST` its request, get its answer.
pub(crate) async fn handle<P: Protocol>(
    axum::extract::State(app): axum::extract::State<crate::state::AppState>,
    axum::Extension(caller): axum::Extension<std::sync::Arc<crate::snapshot::Principal>>,
    headers: crate::extract::QueryHeaders,
    crate::extract::RawBody(raw): crate::extract::RawBody,
) -> Response {
    serve::<P>(&app, &caller, raw, headers).await
}

/// Parses `raw` as `P`'s request, runs it through the pipeline as a chat query and answers in
/// `P`'s shapes.
pub(super) async fn serve<P: Protocol>(
    app: &crate::state::AppState,
    caller: &crate::snapshot::Principal,
    raw: Bytes,
    headers: crate::extract::QueryHeaders,
) -> Response {
    let req: P::Request = match serde_json::from_slice(&raw) {
        Ok(r) => r,
        Err(e) => {
            return P::error(StatusCode::BAD_REQUEST, format!("The request body is not a {} request: {e}", P::NAME));
        }
    };
    let chat = match P::to_chat(&req) {
        Ok(c) => c,
        Err(message) => return P::error(StatusCode::BAD_REQUEST, message),
    };
    let model = P::model(&req).to_string();
    let resp = super::query(app, caller, &model, Some(Task::Chat), chat, raw, headers).await;
    let (parts, body) = if resp.status().is_success() && P::stream(&req) {
        return reframe(resp, P::reframer(&model));
    } else {
        resp.into_parts()
    };
    let mut out = if parts.status.is_success() {
        let answer =
            axum::body::to_bytes(body, MAX_ANSWER).await.ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        match answer {
            Some(chat) => P::answer(&chat, &model),
            None => P::error(StatusCode::BAD_GATEWAY, "The answer is not a chat completion.".into()),
        }
    } else {
        // The pipeline's `{error_code, message}`, in the protocol's shape with the same status.
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
        let parsed: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let message = at(&parsed, "/message")
            .as_str()
            .map_or_else(|| String::from_utf8_lossy(&bytes).into_owned(), str::to_string);
        P::error(parts.status, message)
    };
    keep_headers(&parts.headers, out.headers_mut());
    out
}
