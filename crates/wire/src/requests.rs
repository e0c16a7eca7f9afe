//! The request log (our extension): `GET /api/2.0/requests` and `GET /api/2.0/requests/{id}`.

use serde::{Deserialize, Serialize};

/// One data-plane request as the request log shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RequestLogEntry {
    /// The server's id of the request (`databricks_request_id`, also in inference tables).
    pub request_id: String,
    /// The client's `client_request_id`, if it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    /// Arrival, RFC 3339 UTC.
    pub time: String,
    /// Arrival, ms since the epoch.
    pub request_time: i64,
    /// The endpoint named by the request (as written, for one that does not exist).
    pub endpoint: String,
    /// The served entity that answered or was tried last; empty if none was reached.
    pub served_entity: String,
    /// Its provider.
    pub provider: String,
    /// Its model.
    pub model: String,
    /// Who asked: user name or service principal application id.
    pub requester: String,
    /// HTTP status sent to the client (499: the client went away first).
    pub status_code: i64,
    /// `error_code` sent, or the error event that ended a stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The error message sent (credentials and URLs redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The provider's HTTP status of the last failed attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<i64>,
    /// Upstream calls made, retries and fail-overs included.
    pub attempts: i64,
    /// The served entities called, in order.
    pub entities_tried: Vec<String>,
    /// Whether the answer was streamed.
    pub streaming: bool,
    /// Arrival to last byte.
    pub latency_ms: f64,
    /// Arrival to the first streamed token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    /// Input tokens, cached ones included.
    pub input_tokens: i64,
    /// Output tokens, reasoning ones included.
    pub output_tokens: i64,
    /// Images generated (image endpoints); absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub images: i64,
    /// Cost in USD.
    pub cost_usd: f64,
    /// `per_token`, or `provisioned`: served within provisioned throughput, whose band-time is
    /// billed instead of the tokens.
    #[serde(default)]
    pub billing: String,
}

/// Answer of `GET /api/2.0/requests`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListRequestsResponse {
    /// Newest first.
    pub requests: Vec<RequestLogEntry>,
    /// Pass as `page_token` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}
