//! Usage records: built when a query finishes, priced, and queued for the usage writer
//! ([`crate::telemetry::batch`]), which writes them in batches to the usage database.
//!
//! What a crash can lose: records queued but not yet committed, at most
//! [`QUEUE_CAPACITY`](crate::telemetry::batch::QUEUE_CAPACITY) plus one batch; under normal load the writer
//! keeps up within milliseconds. A clean shutdown writes everything.

use std::sync::Arc;

use async_trait::async_trait;
use modelgate_core::pricing::PriceTable;
use modelgate_store::{StoreError, UsageDb, UsageRecord, billing};

use crate::telemetry::batch::{BatchTarget, BatchWriter};
use crate::telemetry::metrics::Metrics;

/// Status recorded for a query whose client disconnected before the answer was complete.
pub const CLIENT_CLOSED: u16 = 499;
/// Its `error_code`.
pub const CLIENT_DISCONNECTED: &str = "CLIENT_DISCONNECTED";

#[async_trait]
impl BatchTarget<UsageRecord> for UsageDb {
    async fn write(&self, batch: &[UsageRecord]) -> Result<(), StoreError> {
        self.insert(batch).await
    }
}

/// Where finished queries go: pricing, then the usage writer.
pub struct UsageSink {
    writer: BatchWriter<UsageRecord>,
    prices: PriceTable,
    /// The server's metrics.
    pub metrics: Arc<Metrics>,
    /// The database, for reports.
    pub db: UsageDb,
}

impl UsageSink {
    /// Starts the usage writer over `db`.
    pub fn start(db: UsageDb, prices: PriceTable, metrics: Arc<Metrics>) -> Arc<UsageSink> {
        let writer = BatchWriter::start("usage", db.clone(), metrics.clone());
        Arc::new(UsageSink { writer, prices, metrics, db })
    }

    /// The price table in use.
    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    /// Sets a record's cost and price version from its tokens; returns the cost. A query served
    /// within provisioned throughput costs nothing more (its band-time is billed instead), nor
    /// does one answered from the response cache.
    pub fn price(&self, r: &mut UsageRecord) -> f64 {
        if r.billing == billing::PROVISIONED || r.billing == billing::CACHE {
            r.cost_usd = 0.0;
            r.price_version = None;
            return 0.0;
        }
        match self.prices.cost(&r.provider, &r.model, r.priced()) {
            Some(c) => {
                r.cost_usd = c;
                r.price_version = Some(self.prices.version().to_string());
            }
            None => {
                r.cost_usd = 0.0;
                r.price_version = None;
            }
        }
        r.cost_usd
    }

    /// Queues a record; never waits.
    pub fn record(&self, r: UsageRecord) {
        self.writer.push(r);
    }

    /// Waits until everything queued before this call is written.
    pub async fn flush(&self) {
        self.writer.flush().await;
    }
}
