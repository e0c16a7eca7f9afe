//! What the inbound protocols other than OpenAI's share: reading answers back, re-framing
//! the pipeline's chat-completion stream event by event, the headers worth keeping.

use axum::body::{Body as HttpBody, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
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
        {
            to.append(name.clone(), value.clone());
        }
    }
}

/// One protocol's translation of a chat-completion stream.
pub(super) trait Reframe: Send + 'static {
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
    let events = eventsource_stream::EventStream::new(body.into_data_stream());
    let out = async_stream::stream! {
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            let frames = match event {
                Ok(e) => state.on(&e.data),
                Err(e) => state.fail(&format!("the stream broke: {e}")),
            };
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
