//! Bounds on what clients and upstreams can make the server hold: connections, requests in
//! flight, request bodies (size and time to arrive), upstream answers. Past a bound the server
//! answers at once (503, 408, 413 or 502, always a JSON error body) instead of queueing or
//! buffering without end. The listener ([`crate::http::listener`]) applies the connection bound, the
//! header timeout, the queue-delay bound and the in-flight bound ([`Gate::admit`]) before a request
//! reaches the router.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::error::ApiError;
use crate::extract::RawBody;
use crate::settings::Limits;
use crate::telemetry::metrics::Metrics;

/// State of the request-level limit layers.
#[derive(Clone)]
pub struct Gate {
    in_flight: Arc<Semaphore>,
    queue: Arc<QueueDelay>,
    limits: Limits,
    metrics: Arc<Metrics>,
}

/// How late the server runs work that is ready, as [`Gate::watch_queue_delay`] last measured it,
/// and how many requests it admits at once because of it.
///
/// Every request waits in this queue before the server even reads it, and the in-flight bound
/// cannot see it: on a saturated core, a thousand admitted requests make each new one wait for all
/// of them, answers take seconds, and each costs more (a thousand requests' buffers and upstream
/// connections do not stay in cache). While the delay is over `max_queue_delay` new requests are
/// shed at once and the number admitted at once is lowered (by a quarter, at most once per
/// `max_queue_delay`); as the server catches up it is raised again, a little per measurement, back
/// to `max_in_flight`. Calls that wait on their upstream cost no CPU and are not held back unless
/// the core is saturated.
struct QueueDelay {
    /// The last measurement, in microseconds.
    last_us: AtomicU64,
    /// The last two measurements were both over the limit (one alone may be the machine pausing
    /// the process, not load).
    over: AtomicBool,
    /// Requests admitted at once now: `max_in_flight`, or less while the server runs late.
    admitted: AtomicUsize,
}

/// The fewest requests admitted at once however late the server runs.
const MIN_ADMITTED: usize = 16;

/// How often the queue delay is measured while at least [`MIN_ADMITTED`] requests are in flight
/// (ten times less often otherwise).
const QUEUE_PROBE_INTERVAL: Duration = Duration::from_millis(10);

impl Gate {
    /// The gate for `limits`, counting what it sheds in `metrics`.
    pub fn new(limits: Limits, metrics: Arc<Metrics>) -> Self {
        let queue = QueueDelay {
            last_us: AtomicU64::new(0),
            over: AtomicBool::new(false),
            admitted: AtomicUsize::new(limits.max_in_flight),
        };
        Gate { in_flight: Arc::new(Semaphore::new(limits.max_in_flight)), queue: Arc::new(queue), limits, metrics }
    }

    /// Measures the queue delay until `stop` turns true: a probe asks to wake every 10 ms (100 ms
    /// while fewer than [`MIN_ADMITTED`] requests are in flight), then waits its turn behind
    /// everything ready, and notes how much later than asked it ran. Run once per server, on the
    /// runtime that serves requests.
    pub async fn watch_queue_delay(self, mut stop: watch::Receiver<bool>) {
        let mut over_before = false;
        // Lowering takes effect only as admitted requests finish: lower again only once the
        // previous lowering has had `max_queue_delay` to show, or the bound would collapse to the
        // floor while the queue drains.
        let mut lowered_at: Option<tokio::time::Instant> = None;
        loop {
            // Few requests in flight cannot make a long queue; there the probe wakes the server
            // ten times less often (each wake-up of an idle thread shows in light-load latency).
            let interval =
                if self.in_flight() < MIN_ADMITTED { QUEUE_PROBE_INTERVAL * 10 } else { QUEUE_PROBE_INTERVAL };
            let due = tokio::time::Instant::now() + interval;
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = stop.changed() => return,
            }
            // Woken by its timer, the probe would run next (tokio runs what the driver woke last
            // first); going to the back of the queue once makes it wait as a request does.
            BackOfTheQueue(false).await;
            let late = due.elapsed();
            self.metrics.queue_delay(late);
            let limit = self.limits.max_queue_delay;
            let over = !limit.is_zero() && late > limit;
            self.queue.last_us.store(late.as_micros() as u64, Ordering::Relaxed);
            self.queue.over.store(over && over_before, Ordering::Relaxed);
            if over && over_before {
                if lowered_at.is_none_or(|at| at.elapsed() >= limit) {
                    self.lower_admitted();
                    lowered_at = Some(tokio::time::Instant::now());
                }
            } else if late <= limit / 2 {
                self.raise_admitted();
            }
            over_before = over;
        }
    }

    /// A quarter fewer than are in flight (or were admitted, if fewer), not below [`MIN_ADMITTED`].
    fn lower_admitted(&self) {
        let now = self.queue.admitted.load(Ordering::Relaxed);
        let lowered = (self.in_flight().min(now) * 3 / 4).max(MIN_ADMITTED.min(self.limits.max_in_flight));
        self.queue.admitted.store(lowered, Ordering::Relaxed);
    }

    /// A 256th of `max_in_flight` more (at least one), up to it: from the floor back to the full
    /// bound in about 2.5 s of measurements on time, slowly enough not to overshoot straight back
    /// into the delay.
    fn raise_admitted(&self) {
        let max = self.limits.max_in_flight;
        let now = self.queue.admitted.load(Ordering::Relaxed);
        if now < max {
            self.queue.admitted.store((now + (max / 256).max(1)).min(max), Ordering::Relaxed);
        }
    }

    /// Requests holding an in-flight slot now.
    fn in_flight(&self) -> usize {
        self.limits.max_in_flight - self.in_flight.available_permits()
    }

    /// Requests admitted at once now.
    pub fn admitted_at_once(&self) -> usize {
        self.queue.admitted.load(Ordering::Relaxed)
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

/// Completes the second time it is polled, having asked to be polled again the first time: tokio
/// puts a task that wakes itself while running at the back of its worker's queue.
struct BackOfTheQueue(bool);

impl std::future::Future for BackOfTheQueue {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Gate {
    /// A slot for one more request, held until its answer's last byte is sent (so streams
    /// count), or the 503 to answer at once when the server runs later than `max_queue_delay` or
    /// `max_in_flight` requests are in flight. Liveness (`/healthz`) needs no slot: a server that
    /// sheds load is alive.
    pub fn admit(&self, path: &str) -> Result<Option<OwnedSemaphorePermit>, Shed> {
        if path == "/healthz" {
            return Ok(None);
        }
        if self.queue.over.load(Ordering::Relaxed) {
            self.metrics.shed("queue_delay");
            return Err(Shed::QueueDelay {
                late: Duration::from_micros(self.queue.last_us.load(Ordering::Relaxed)),
                limit: self.limits.max_queue_delay,
            });
        }
        let max = self.limits.max_in_flight;
        let admitted = self.admitted_at_once();
        if admitted < max && self.in_flight() >= admitted {
            self.metrics.shed("queue_delay");
            return Err(Shed::Lowered { admitted, max });
        }
        match self.in_flight.clone().try_acquire_owned() {
            Ok(permit) => Ok(Some(permit)),
            Err(_) => {
                self.metrics.shed("in_flight");
                Err(Shed::InFlight(max))
            }
        }
    }
}

/// Why a request is shed before it reaches the router.
#[derive(Debug)]
pub enum Shed {
    /// Every in-flight slot is taken (of the number given).
    InFlight(usize),
    /// As many requests are in flight as are admitted at once while the server catches up.
    Lowered {
        /// Admitted at once now.
        admitted: usize,
        /// `max_in_flight`.
        max: usize,
    },
    /// The server runs ready work `late`, over its `limit`.
    QueueDelay {
        /// How late the last measurement found it.
        late: Duration,
        /// `max_queue_delay`.
        limit: Duration,
    },
}

impl Shed {
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
        let what = match self {
            Shed::InFlight(n) => format!("{n} requests in flight"),
            Shed::Lowered { admitted, max } => {
                format!("{admitted} requests in flight (lowered from {max} while it catches up with its queue)")
            }
            Shed::QueueDelay { late, limit } => format!(
                "{} ms of queue delay (requests wait {} ms before it reads them)",
                limit.as_millis(),
                late.as_millis()
            ),
        };
        overloaded(&what, !read)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::watch;

    use super::{Gate, Shed};
    use crate::settings::Limits;
    use crate::telemetry::metrics::Metrics;

    /// Keeps the (current-thread) runtime from running anything else for `d`, as a burst of
    /// work on a saturated core would.
    async fn hold_the_runtime(d: Duration) {
        tokio::spawn(async move { std::thread::sleep(d) }).await.ok();
        // Let the probe, now late, run and record it.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    /// The value of the sample `series` in the exposition.
    fn sample(metrics: &Metrics, series: &str) -> Option<f64> {
        metrics.text().lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[tokio::test(flavor = "current_thread")]
    async fn sheds_while_ready_work_runs_late_and_admits_again_when_it_catches_up() {
        let limit = Duration::from_millis(200);
        let metrics = Arc::new(Metrics::new());
        let gate = Gate::new(Limits { max_queue_delay: limit, ..Limits::default() }, metrics.clone());
        let (stop, stopped) = watch::channel(false);
        let probe = tokio::spawn(gate.clone().watch_queue_delay(stopped));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(gate.admit("/serving-endpoints/x/invocations").is_ok());

        // One late measurement alone (the machine pausing the process) sheds nothing.
        hold_the_runtime(Duration::from_millis(350)).await;
        assert!(gate.admit("/serving-endpoints/x/invocations").is_ok());

        // Late again and again: new requests are shed, naming the delay; liveness still answers.
        let mut shed = None;
        for _ in 0..5 {
            hold_the_runtime(Duration::from_millis(350)).await;
            if let Err(e) = gate.admit("/serving-endpoints/x/invocations") {
                shed = Some(e);
                break;
            }
        }
        match shed {
            Some(Shed::QueueDelay { late, limit: l }) => {
                assert!(late > limit, "{late:?}");
                assert_eq!(l, limit);
            }
            other => panic!("expected a queue-delay shed, got {other:?}"),
        }
        assert!(gate.admit("/healthz").is_ok());
        assert_eq!(sample(&metrics, "shed_total{reason=\"queue_delay\"}"), Some(1.0));
        assert!(sample(&metrics, "queue_delay_seconds").is_some_and(|s| s > 0.2), "{}", metrics.text());

        // Once the probe runs on time again (every 100 ms, with nothing in flight), requests are
        // admitted.
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(gate.admit("/serving-endpoints/x/invocations").is_ok());
        stop.send(true).ok();
        probe.await.ok();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn running_late_lowers_the_requests_admitted_at_once_and_catching_up_raises_it_back() {
        let limit = Duration::from_millis(200);
        let limits = Limits { max_in_flight: 100, max_queue_delay: limit, ..Limits::default() };
        let gate = Gate::new(limits, Arc::new(Metrics::new()));
        let (stop, stopped) = watch::channel(false);
        let probe = tokio::spawn(gate.clone().watch_queue_delay(stopped));
        let path = "/serving-endpoints/x/invocations";
        let mut held: Vec<_> = (0..40).map(|_| gate.admit(path).expect("admitted")).collect();
        assert_eq!(gate.admitted_at_once(), 100);

        while gate.admitted_at_once() == 100 {
            hold_the_runtime(Duration::from_millis(350)).await;
        }
        // Lowered below the 40 in flight, and not below the floor however long it lasts (each
        // late measurement here comes after the last lowering has had its time to show).
        assert!(gate.admitted_at_once() <= 30, "{}", gate.admitted_at_once());
        for _ in 0..6 {
            hold_the_runtime(Duration::from_millis(350)).await;
        }
        assert_eq!(gate.admitted_at_once(), 16);

        // On time again: no request is shed for the delay itself, but only as many are admitted
        // as the lowered bound allows until it has grown back.
        tokio::time::sleep(Duration::from_millis(15)).await;
        held.truncate(10);
        let refused = loop {
            match gate.admit(path) {
                Ok(permit) => held.push(permit),
                Err(e) => break e,
            }
        };
        assert!(matches!(refused, Shed::Lowered { max: 100, .. }), "{refused:?}");
        assert!(held.len() < 40, "{} admitted", held.len());
        for _ in 0..100 {
            if gate.admitted_at_once() == 100 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(gate.admitted_at_once(), 100, "raised back to max_in_flight");
        while held.len() < 100 {
            held.push(gate.admit(path).expect("admitted up to max_in_flight again"));
        }
        assert!(matches!(gate.admit(path), Err(Shed::InFlight(100))));
        stop.send(true).ok();
        probe.await.ok();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_zero_limit_never_sheds_for_queue_delay() {
        let gate = Gate::new(Limits { max_queue_delay: Duration::ZERO, ..Limits::default() }, Arc::new(Metrics::new()));
        let (stop, stopped) = watch::channel(false);
        let probe = tokio::spawn(gate.clone().watch_queue_delay(stopped));
        for _ in 0..3 {
            hold_the_runtime(Duration::from_millis(100)).await;
            assert!(gate.admit("/serving-endpoints/x/invocations").is_ok());
        }
        stop.send(true).ok();
        probe.await.ok();
    }
}
