//! Relaying a streamed answer: the provider's events, translated and checked chunk by chunk.

use std::time::Duration;

use axum::body::{Body as HttpBody, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use modelgate_providers::StreamItem;
use modelgate_providers::framing::{Framing, RawEvent, aws_event_stream};
use serde_json::json;

use super::settlement::Settlement;
use crate::error::ApiError;

/// Why a stream ends with an error event instead of `[DONE]`.
pub(super) enum StreamFailure {
    /// The provider failed, broke off or went silent; the status is the class it counts as.
    Upstream(u16, String),
    /// A guardrail (or its judge) refused the answer.
    Refused(ApiError),
}

impl StreamFailure {
    /// Records the failure on `settlement` and returns the event that ends the stream.
    fn end(self, settlement: &mut Settlement) -> Bytes {
        let (status, code, kind, message) = match self {
            StreamFailure::Upstream(status, message) => (status, "STREAM_FAILED", "upstream_error", message),
            StreamFailure::Refused(e) => {
                let (status, code) = e.status_and_code();
                (status.as_u16(), code, "guardrail", e.to_string())
            }
        };
        settlement.stream_failed(status, code, &message);
        let payload = json!({"error": {"message": message, "type": kind, "code": code}});
        Bytes::from(format!("data: {payload}\n\n"))
    }
}

pub(super) type EventStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<RawEvent, String>> + Send>>;

/// The upstream body as events, whatever the provider's framing; no event may be larger than
/// `max_event` bytes.
pub(super) fn upstream_events(upstream: reqwest::Response, framing: Framing, max_event: usize) -> EventStream {
    match framing {
        Framing::Sse => Box::pin(
            modelgate_providers::body::bounded_events(upstream.bytes_stream(), max_event)
                .eventsource()
                .map(|r| r.map(|e| RawEvent { event: e.event, data: e.data }).map_err(|e| e.to_string())),
        ),
        Framing::AwsEventStream => Box::pin(aws_event_stream(upstream.bytes_stream(), max_event)),
    }
}

pub(super) fn stream_response(
    mut translator: Box<dyn modelgate_providers::StreamTranslator>,
    mut events: EventStream,
    idle: Duration,
    secrets: Vec<String>,
    who: std::sync::Arc<str>,
    mut settlement: Settlement,
) -> Response {
    let body = async_stream::stream! {
        loop {
            let next = tokio::time::timeout(idle, events.next()).await;
            let (items, at_end) = match next {
                Err(_) => {
                    let why = format!("{who} sent nothing for {}; the answer is incomplete", humantime::format_duration(idle));
                    yield Ok::<Bytes, std::io::Error>(StreamFailure::Upstream(504, why).end(&mut settlement));
                    break;
                }
                Ok(None) => (translator.on_end(), true),
                Ok(Some(Err(e))) => {
                    let reason = modelgate_providers::redact(&e.to_string(), &secrets);
                    let why = format!("{who}: the stream broke: {reason}; the answer is incomplete");
                    yield Ok(StreamFailure::Upstream(502, why).end(&mut settlement));
                    break;
                }
                Ok(Some(Ok(ev))) => (translator.on_event(&ev.event, &ev.data), false),
            };
            let mut finished = false;
            for item in items {
                match item {
                    StreamItem::Data(d) => match settlement.chunk(d) {
                        Ok(out) => for c in out {
                            yield Ok(Bytes::from(format!("data: {c}\n\n")));
                        },
                        Err(e) => {
                            yield Ok(StreamFailure::Refused(e).end(&mut settlement));
                            finished = true;
                            break;
                        }
                    },
                    StreamItem::Done => {
                        match settlement.end().await {
                            Ok(out) => {
                                for c in out {
                                    yield Ok(Bytes::from(format!("data: {c}\n\n")));
                                }
                                yield Ok(Bytes::from_static(b"data: [DONE]\n\n"));
                            }
                            Err(e) => yield Ok(StreamFailure::Refused(e).end(&mut settlement)),
                        }
                        finished = true;
                        break;
                    }
                    StreamItem::Usage(d) => settlement.usage_chunk(&d),
                    StreamItem::Error(m) => {
                        let why = format!("{who} reported an error: {}", modelgate_providers::redact(&m, &secrets));
                        yield Ok(StreamFailure::Upstream(502, why).end(&mut settlement));
                        finished = true;
                        break;
                    }
                }
            }
            if finished {
                break;
            }
            if at_end {
                let why = format!("{who} closed the stream before it finished; the answer is incomplete");
                yield Ok(StreamFailure::Upstream(502, why).end(&mut settlement));
                break;
            }
        }
        // The last event is out: settle now rather than when the body is dropped.
        settlement.settle_stream();
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(HttpBody::from_stream(body))
        .unwrap_or_else(|_| ApiError::Internal("could not build the stream response".into()).into_response())
}
