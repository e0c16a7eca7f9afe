//! Bounds on what clients and upstreams can make the server hold: connections, requests in
//! flight, request bodies (size and time to arrive), upstream answers. Past a bound the server
//! answers at once (503, 408, 413 or 502, always a JSON error body) instead of queueing or
//! buffering without end. The connection bound and the header timeout live in [`crate::listener`].

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::extract::RawBody;
use crate::metrics::Metrics;

/// The server's resource limits; every one is a `modelgate serve` flag (see docs/server.md).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open client connections; more are answered 503 and closed.
    pub max_connections: usize,
    /// Requests being handled or streaming their answer; more are answered 503.
    pub max_in_flight: usize,
    /// Time for a client to send a request's headers (and, between requests, the longest idle
    /// keep-alive).
    pub header_read_timeout: Duration,
    /// Time for a client to send a whole request body.
    pub body_read_timeout: Duration,
    /// Largest request body, in bytes.
    pub max_request_body: usize,
    /// Largest non-streamed upstream answer, in bytes; beyond it the query fails with a 502.
    pub max_upstream_body: usize,
    /// Largest single event of a streamed upstream answer, in bytes.
    pub max_stream_event: usize,
    /// Largest upstream error body read for its message; the rest is discarded.
    pub max_upstream_error_body: usize,
    /// On shutdown, how long open requests may finish before their connections are closed.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            max_in_flight: 1024,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            max_request_body: 4 * 1024 * 1024,
            max_upstream_body: 32 * 1024 * 1024,
            max_stream_event: 1024 * 1024,
            max_upstream_error_body: 64 * 1024,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// State of the request-level limit layers.
#[derive(Clone)]
pub struct Gate {
    in_flight: Arc<Semaphore>,
    limits: Limits,
    metrics: Arc<Metrics>,
}

impl Gate {
    /// The gate for `limits`, counting what it sheds in `metrics`.
    pub fn new(limits: Limits, metrics: Arc<Metrics>) -> Self {
        Gate { in_flight: Arc::new(Semaphore::new(limits.max_in_flight)), limits, metrics }
    }
}

/// A 503 answer for load that is shed; clients retry after a second.
pub fn overloaded(what: &str) -> Response {
    let mut resp =
        ApiError::Unavailable(format!("The server is at its limit of {what}; retry shortly.")).into_response();
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// Admits a request if fewer than `max_in_flight` are in flight, else answers 503 at once. The
/// slot is held until the answer's last byte is sent, so streams count. Liveness (`/healthz`)
/// is always answered: a server that sheds load is alive.
pub async fn admit(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let Ok(permit) = gate.in_flight.clone().try_acquire_owned() else {
        gate.metrics.shed("in_flight");
        return overloaded(&format!("{} requests in flight", gate.limits.max_in_flight));
    };
    next.run(req).await.map(|body| Body::new(HeldBody { inner: body, _permit: permit }))
}

/// A response body that keeps its in-flight slot until it is finished or dropped.
struct HeldBody {
    inner: Body,
    _permit: OwnedSemaphorePermit,
}

impl http_body::Body for HeldBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn too_large(limit: usize) -> Response {
    let mut resp = ApiError::PayloadTooLarge(format!("The request body is larger than the limit of {limit} bytes."))
        .into_response();
    resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Reads the whole request body, within `max_request_body` bytes and `body_read_timeout`, and
/// hands it on as [`RawBody`]. Runs after authentication, so an anonymous client never gets the
/// server to read (or wait for) a body.
pub async fn read_body(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    let limit = gate.limits.max_request_body;
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        gate.metrics.shed("body_too_large");
        return too_large(limit);
    }
    let (mut parts, body) = req.into_parts();
    let read = tokio::time::timeout(gate.limits.body_read_timeout, axum::body::to_bytes(body, limit)).await;
    let bytes = match read {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            let over = std::error::Error::source(&e)
                .is_some_and(|s| s.downcast_ref::<http_body_util::LengthLimitError>().is_some());
            if over {
                gate.metrics.shed("body_too_large");
                return too_large(limit);
            }
            return ApiError::BadRequest(format!("could not read the request body: {e}")).into_response();
        }
        Err(_) => {
            gate.metrics.shed("body_timeout");
            let secs = gate.limits.body_read_timeout.as_secs_f64();
            let mut resp =
                ApiError::RequestTimeout(format!("The request body did not arrive within {secs} s.")).into_response();
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            return resp;
        }
    };
    parts.extensions.insert(RawBody(bytes));
    next.run(Request::from_parts(parts, Body::empty())).await
}
