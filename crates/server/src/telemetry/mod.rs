//! What queries leave behind: Prometheus metrics, recent statistics for alerts, usage records,
//! inference-table payloads, and the batch writer behind the last two.

pub(crate) mod batch;
pub(crate) mod inference;
pub(crate) mod metrics;
pub(crate) mod recent;
pub(crate) mod usage;
