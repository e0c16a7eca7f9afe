//! Usage records: built when a query finishes, priced, and written by one background task in
//! batches. The request path only enqueues (a bounded channel); a full queue drops the record
//! and counts it in `usage_writer_dropped_total` rather than slowing queries down.
//!
//! What a crash can lose: records enqueued but not yet committed, at most [`QUEUE_CAPACITY`]
//! plus one batch of [`BATCH`]. Under normal load the writer keeps up within milliseconds, so
//! that is the last few milliseconds of traffic. A clean shutdown writes everything.

use std::sync::Arc;

use modelgate_core::pricing::{PriceTable, Tokens};
use modelgate_store::{UsageDb, UsageRecord};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;

/// Records the queue holds before dropping.
pub const QUEUE_CAPACITY: usize = 65_536;
/// Records per transaction at most.
pub const BATCH: usize = 1024;

enum Msg {
    Record(Box<UsageRecord>),
    Flush(oneshot::Sender<()>),
}

/// Where finished queries go: pricing, then the writer's queue.
pub struct UsageSink {
    tx: mpsc::Sender<Msg>,
    prices: PriceTable,
    /// The server's metrics (the writer reports its queue there).
    pub metrics: Arc<Metrics>,
    /// The database, for reports.
    pub db: UsageDb,
}

impl UsageSink {
    /// Starts the writer task over `db`.
    pub fn start(db: UsageDb, prices: PriceTable, metrics: Arc<Metrics>) -> Arc<UsageSink> {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(write_loop(db.clone(), rx, metrics.clone()));
        Arc::new(UsageSink { tx, prices, metrics, db })
    }

    /// The price table in use.
    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    /// Sets a record's cost and price version from its tokens; returns the cost.
    pub fn price(&self, r: &mut UsageRecord) -> f64 {
        let tokens = Tokens {
            input: r.input_tokens.max(0) as u64,
            cached_input: r.cached_input_tokens.max(0) as u64,
            cache_write: r.cache_write_tokens.max(0) as u64,
            output: r.output_tokens.max(0) as u64,
        };
        match self.prices.cost(&r.provider, &r.model, tokens) {
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
        if self.tx.try_send(Msg::Record(Box::new(r))).is_err() {
            self.metrics.usage_dropped.inc();
        }
    }

    /// Waits until everything queued before this call is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_loop(db: UsageDb, mut rx: mpsc::Receiver<Msg>, metrics: Arc<Metrics>) {
    let mut msgs = Vec::with_capacity(BATCH);
    let mut batch: Vec<UsageRecord> = Vec::with_capacity(BATCH);
    // Takes whatever is queued (waiting only when nothing is), so batches grow with the load and
    // add no latency when it is light.
    while rx.recv_many(&mut msgs, BATCH).await > 0 {
        let mut flushed = Vec::new();
        for m in msgs.drain(..) {
            match m {
                Msg::Record(r) => batch.push(*r),
                Msg::Flush(done) => flushed.push(done),
            }
        }
        if !batch.is_empty() {
            // A failed batch is retried a few times, then dropped and counted: the writer must
            // not stall the queue forever on a broken disk.
            let mut attempt = 0;
            loop {
                match db.insert(&batch).await {
                    Ok(()) => break,
                    Err(e) if attempt < 3 => {
                        attempt += 1;
                        tracing::warn!(error = %e, records = batch.len(), "usage batch not written; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, records = batch.len(), "usage batch dropped");
                        metrics.usage_dropped.inc_by(batch.len() as u64);
                        break;
                    }
                }
            }
            batch.clear();
        }
        metrics.usage_queue_depth.set(rx.len() as i64);
        for done in flushed {
            let _ = done.send(());
        }
    }
}
