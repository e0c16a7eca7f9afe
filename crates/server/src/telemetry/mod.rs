//! What queries leave behind: Prometheus metrics, recent statistics for alerts, usage records,
//! inference-table payloads, the batch writer behind the last two, and OpenTelemetry traces.

pub(crate) mod batch;
pub(crate) mod inference;
pub(crate) mod metrics;
pub(crate) mod recent;
pub mod traces;
pub(crate) mod usage;
