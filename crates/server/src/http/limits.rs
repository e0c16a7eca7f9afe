//! Bounds on what clients and upstreams can make the server hold: connections, requests in
//! flight, request bodies (size and time to arrive), upstream answers. Past a bound the server
//! answers at once (503, 408, 413 or 502, always a JSON error body) instead of queueing or
//! buffering without end. The listener ([`crate::http::listener`]) applies the connection bound, the
//! header timeout and the in-flight bound ([`Gate::admit`]) before a request reaches the router.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::extract::RawBody;
use crate::settings::Limits;
use crate::telemetry::metrics::Metrics;

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

    /// The limits it applies.
    pub fn limits(&self) -> Limits {
        self.limits
    }
}

/// A 503 answer for load that is shed; clients retry after a second. `close`: the request's body
/// was not read, so the connection closes after the answer (the client must not reuse one that
/// is about to be dropped for its unread body).
fn overloaded(what: &str, close: bool) -> Response {
    let mut resp =
        ApiError::Unavailable(format!("The server is at its limit of {what}; retry shortly.")).into_response();
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    if close {
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Most bytes of a shed request's body read so that its connection can stay open.
const SHED_DRAIN_BYTES: u64 = 64 * 1024;
/// How long a shed request's body may take to arrive for that.
const SHED_DRAIN_TIME: std::time::Duration = std::time::Duration::from_millis(50);

impl Gate {
    /// A slot for one more request, held until its answer's last byte is sent (so streams
    /// count), or the 503 to answer at once when `max_in_flight` requests are in flight.
    /// Liveness (`/healthz`) needs no slot: a server that sheds load is alive.
    pub fn admit(&self, path: &str) -> Result<Option<OwnedSemaphorePermit>, InFlightFull> {
        if path == "/healthz" {
            return Ok(None);
        }
        match self.in_flight.clone().try_acquire_owned() {
            Ok(permit) => Ok(Some(permit)),
            Err(_) => {
                self.metrics.shed("in_flight");
                Err(InFlightFull(self.limits.max_in_flight))
            }
        }
    }
}

/// Every in-flight slot is taken (of the number given).
#[derive(Debug)]
pub struct InFlightFull(pub usize);

impl InFlightFull {
    /// The 503 for `req`. A small body that arrives at once is read first, so the connection stays
    /// open for the client's retry: an overloaded server that closes the connection of every
    /// request it sheds makes each of them cost a new connection, the work it can least afford,
    /// and its clients run out of ports. A larger or slower body is left unread and the
    /// connection closed, as before.
    pub async fn answer<B: http_body::Body>(self, req: axum::http::Request<B>) -> Response {
        let body = req.into_body();
        let small = body.size_hint().upper().is_some_and(|n| n <= SHED_DRAIN_BYTES);
        let read = small
            && matches!(tokio::time::timeout(SHED_DRAIN_TIME, http_body_util::BodyExt::collect(body)).await, Ok(Ok(_)));
        overloaded(&format!("{} requests in flight", self.0), !read)
    }
}

/// `resp` with `guard` (an in-flight slot, a hosted replica's slot) released only when its body
/// is finished or dropped.
pub fn hold<G: Send + Unpin + 'static>(resp: Response, guard: Option<G>) -> Response {
    match guard {
        Some(guard) => resp.map(|body| Body::new(HeldBody { inner: body, _guard: guard })),
        None => resp,
    }
}

/// A response body that keeps a guard until it is finished or dropped.
struct HeldBody<G> {
    inner: Body,
    _guard: G,
}

impl<G: Send + Unpin + 'static> http_body::Body for HeldBody<G> {
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
/// server to read (or wait for) a body. The body of a write (any method but GET and HEAD) is also
/// attached to the response, for the audit log.
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
    let write = parts.method != Method::GET && parts.method != Method::HEAD;
    parts.extensions.insert(RawBody(bytes.clone()));
    let mut resp = next.run(Request::from_parts(parts, Body::empty())).await;
    if write {
        resp.extensions_mut().insert(RawBody(bytes));
    }
    resp
}
