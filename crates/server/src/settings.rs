//! How a server runs: the settings of `modelgate serve` that are plain values (time limits,
//! retries, resource limits). Every one is a flag; see docs/server.md.

use std::time::Duration;

/// The server's resource limits; every one is a `modelgate serve` flag (see docs/server.md).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open client connections; more are answered 503 and closed.
    pub max_connections: usize,
    /// Requests being handled or streaming their answer; more are answered 503.
    pub max_in_flight: usize,
    /// Longest the server may run late on work that is ready (measured twice in a row) before it
    /// answers new requests 503 at once; zero never sheds for it.
    pub max_queue_delay: Duration,
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
    /// Most bytes of answers the response cache holds in memory.
    pub response_cache_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            max_in_flight: 1024,
            max_queue_delay: Duration::from_millis(100),
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            max_request_body: 4 * 1024 * 1024,
            max_upstream_body: 32 * 1024 * 1024,
            max_stream_event: 1024 * 1024,
            max_upstream_error_body: 64 * 1024,
            drain_timeout: Duration::from_secs(30),
            response_cache_size: 256 * 1024 * 1024,
        }
    }
}

/// Retries of a failed upstream call (429, 5xx, timeout, connection error) on the same entity,
/// used when the endpoint has nowhere to fail over to.
#[derive(Debug, Clone, Copy)]
pub struct RetrySettings {
    /// Extra attempts after the first.
    pub retries: u32,
    /// First back-off; doubles each attempt, with full jitter.
    pub backoff: Duration,
    /// Longest `Retry-After` honoured; a longer one is passed to the client instead.
    pub retry_after_cap: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self { retries: 2, backoff: Duration::from_millis(200), retry_after_cap: Duration::from_secs(5) }
    }
}

/// Time limits for upstream calls.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamTimeouts {
    /// Establishing the TCP/TLS connection.
    pub connect: Duration,
    /// From sending the request to the response headers.
    pub first_byte: Duration,
    /// Longest silence between two stream events.
    pub idle: Duration,
    /// Whole request, body included (streams too).
    pub total: Duration,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(120),
            idle: Duration::from_secs(60),
            total: Duration::from_secs(600),
        }
    }
}

/// Hosted models: how long replicas may idle, wait to start, and use (see docs/hosting.md).
#[derive(Debug, Clone)]
pub struct HostingSettings {
    /// How long an entity with `scale_to_zero_enabled` keeps its replicas without a query.
    pub idle_to_zero: Duration,
    /// How long a replica above an entity's minimum may go unused before it is stopped.
    pub scale_down_after: Duration,
    /// How long a query or a deployment waits for a replica to start answering.
    pub cold_start_timeout: Duration,
    /// Address space of each replica, bytes.
    pub replica_memory: u64,
    /// Open files of each replica.
    pub replica_open_files: u64,
    /// Where the foundation models' files are (`None`: `DATA_DIR/foundation-models`).
    pub foundation_models_dir: Option<std::path::PathBuf>,
    /// How often provisioned band-time is billed as a usage record.
    pub billing_interval: Duration,
}

impl Default for HostingSettings {
    fn default() -> Self {
        HostingSettings {
            idle_to_zero: Duration::from_secs(30 * 60),
            scale_down_after: Duration::from_secs(5 * 60),
            cold_start_timeout: Duration::from_secs(120),
            replica_memory: 8 << 30,
            replica_open_files: 4096,
            foundation_models_dir: None,
            billing_interval: Duration::from_secs(60),
        }
    }
}
