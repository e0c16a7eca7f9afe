//! A background writer that takes records from the request path without waiting and writes them
//! in batches: usage records and inference-table payloads both go through one.
//!
//! The queue is bounded; a full queue drops the record and counts it rather than slowing
//! queries down. The writer takes whatever is queued, after lingering a few milliseconds past the
//! first record so batches grow with the load. [`BatchWriter::flush`] returns once everything
//! queued before it is written, which clean shutdown and read-your-writes reports use.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use modelgate_store::StoreError;
use tokio::sync::{mpsc, oneshot};

use crate::telemetry::metrics::Metrics;

/// Records a queue holds before dropping.
pub const QUEUE_CAPACITY: usize = 65_536;
/// Records per write at most.
pub const BATCH: usize = 1024;
/// How long the writer waits for more records after the first of a batch: under load it turns
/// thousands of one-record transactions into a few hundred larger ones.
const LINGER: Duration = Duration::from_millis(5);

/// Where a writer's batches go.
#[async_trait]
pub trait BatchTarget<T>: Send + Sync + 'static {
    /// Writes one batch, all or nothing.
    async fn write(&self, batch: &[T]) -> Result<(), StoreError>;
}

enum Msg<T> {
    Item(T),
    Flush(oneshot::Sender<()>),
}

/// The request path's handle on a writer.
pub struct BatchWriter<T> {
    name: &'static str,
    tx: mpsc::Sender<Msg<T>>,
    metrics: Arc<Metrics>,
}

impl<T: Send + 'static> BatchWriter<T> {
    /// Starts a writer named `name` (the `writer` label of its metrics) over `target`.
    pub fn start(name: &'static str, target: impl BatchTarget<T>, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(write_loop(name, target, rx, metrics.clone()));
        BatchWriter { name, tx, metrics }
    }

    /// Queues a record; never waits.
    pub fn push(&self, item: T) {
        if self.tx.try_send(Msg::Item(item)).is_err() {
            self.metrics.writer_dropped(self.name, 1);
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

async fn write_loop<T>(
    name: &'static str,
    target: impl BatchTarget<T>,
    mut rx: mpsc::Receiver<Msg<T>>,
    metrics: Arc<Metrics>,
) {
    let mut msgs = Vec::with_capacity(BATCH);
    let mut batch: Vec<T> = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut msgs, BATCH).await > 0 {
        let flushing = msgs.iter().any(|m| matches!(m, Msg::Flush(_)));
        if !flushing && msgs.len() < BATCH {
            tokio::time::sleep(LINGER).await;
            while msgs.len() < BATCH {
                match rx.try_recv() {
                    Ok(m) => msgs.push(m),
                    Err(_) => break,
                }
            }
        }
        let mut flushed = Vec::new();
        for m in msgs.drain(..) {
            match m {
                Msg::Item(r) => batch.push(r),
                Msg::Flush(done) => flushed.push(done),
            }
        }
        if !batch.is_empty() {
            // Retried a few times, then dropped and counted: a broken disk must not stall the
            // queue forever.
            let mut attempt = 0;
            loop {
                match target.write(&batch).await {
                    Ok(()) => break,
                    Err(e) if attempt < 3 => {
                        attempt += 1;
                        tracing::warn!(writer = name, error = %e, records = batch.len(), "batch not written; retrying");
                        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                    }
                    Err(e) => {
                        tracing::error!(writer = name, error = %e, records = batch.len(), "batch dropped");
                        metrics.writer_dropped(name, batch.len() as u64);
                        break;
                    }
                }
            }
            batch.clear();
        }
        metrics.writer_queue_depth(name, rx.len());
        for done in flushed {
            let _ = done.send(());
        }
    }
}
