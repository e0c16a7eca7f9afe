//! A background writer that takes records from the request path without waiting and writes them
//! in batches: usage records and inference-table payloads both go through one.
//!
//! The queue is bounded; a full queue drops the record and counts it rather than slowing
//! queries down. The writer takes whatever is queued, after lingering a few milliseconds past the
//! first record so batches grow with the load. [`BatchWriter::flush`] returns once everything
//! queued before it is written (or tried, while the database is away), which clean shutdown and
//! read-your-writes reports use.
//!
//! While the database does not take a batch (down, unreachable), the writer holds the records, up
//! to [`HOLD_CAPACITY`], and tries again with a growing pause; they are written, oldest first,
//! once it answers. Only records beyond the bound, or still held when the server stops, are lost,
//! and they are counted in `writer_dropped_total`.

use std::collections::VecDeque;
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
/// thousands of one-record transactions into a few dozen larger ones a second (a transaction's
/// fixed cost, its commands to the database thread and its commit, was a tenth of the writer's
/// CPU at 5 ms).
const LINGER: Duration = Duration::from_millis(20);
/// Records held while the database does not take them; more are dropped and counted.
pub const HOLD_CAPACITY: usize = 200_000;
/// First and longest pause between attempts while the database does not take a batch.
const RETRY: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(5));

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
    /// Starts a writer named `name` (the `writer` label of its metrics) over `target`, on a thread
    /// of its own with its own scheduler. On the request runtime, each of a batch's round trips
    /// to the database waited its turn behind every runnable request task: under overload, with
    /// thousands of them, the writer fell behind and its queue overflowed, dropping records.
    pub fn start(name: &'static str, target: impl BatchTarget<T>, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let writer = write_loop(name, target, rx, metrics.clone());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        let thread = match runtime {
            Ok(rt) => std::thread::Builder::new()
                .name(format!("{name}-writer"))
                .spawn(move || rt.block_on(writer))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = thread {
            tracing::error!(writer = name, error = %e, "could not start the writer's thread; no records are written");
        }
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
    // Taken from the queue, not yet written.
    let mut held: VecDeque<T> = VecDeque::new();
    let mut pause = RETRY.0;
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        let received = match retry_at {
            None => rx.recv_many(&mut msgs, BATCH).await,
            // Still taking records while the database is away; writing again at `retry_at`.
            Some(at) => tokio::time::timeout_at(at, rx.recv_many(&mut msgs, BATCH)).await.unwrap_or(usize::MAX),
        };
        if received == 0 {
            break;
        }
        let flushing = msgs.iter().any(|m| matches!(m, Msg::Flush(_)));
        if retry_at.is_none() && !flushing && msgs.len() < BATCH {
            tokio::time::sleep(LINGER).await;
            while msgs.len() < BATCH {
                match rx.try_recv() {
                    Ok(m) => msgs.push(m),
                    Err(_) => break,
                }
            }
        }
        let mut flushed = Vec::new();
        let mut over = 0;
        for m in msgs.drain(..) {
            match m {
                Msg::Item(r) if held.len() < HOLD_CAPACITY => held.push_back(r),
                Msg::Item(_) => over += 1,
                Msg::Flush(done) => flushed.push(done),
            }
        }
        if over > 0 {
            metrics.writer_dropped(name, over);
        }
        let due = retry_at.is_none_or(|at| tokio::time::Instant::now() >= at) || flushing;
        while due && !held.is_empty() {
            let n = held.len().min(BATCH);
            let (batch, _) = held.make_contiguous().split_at(n);
            match target.write(batch).await {
                Ok(()) => {
                    held.drain(..n);
                    if retry_at.take().is_some() {
                        tracing::info!(writer = name, "the database takes records again; writing those held");
                    }
                    pause = RETRY.0;
                }
                Err(e) => {
                    if retry_at.is_none() {
                        tracing::error!(writer = name, error = %e, held = held.len(), "batch not written; holding records until the database takes them");
                    }
                    retry_at = Some(tokio::time::Instant::now() + pause);
                    pause = (pause * 2).min(RETRY.1);
                    break;
                }
            }
        }
        metrics.writer_queue_depth(name, rx.len() + held.len());
        for done in flushed {
            let _ = done.send(());
        }
    }
    // The server stops: one last attempt for what is held.
    if !held.is_empty() && target.write(held.make_contiguous()).await.is_err() {
        tracing::error!(
            writer = name,
            records = held.len(),
            "the database did not take the held records; they are lost"
        );
        metrics.writer_dropped(name, held.len() as u64);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// A database that can be taken away.
    #[derive(Clone, Default)]
    struct Flaky {
        down: Arc<AtomicBool>,
        written: Arc<Mutex<Vec<u32>>>,
    }

    #[async_trait]
    impl BatchTarget<u32> for Flaky {
        async fn write(&self, batch: &[u32]) -> Result<(), StoreError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("connection refused".into()));
            }
            self.written.lock().unwrap().extend_from_slice(batch);
            Ok(())
        }
    }

    #[tokio::test]
    async fn records_are_held_while_the_database_is_away_and_written_in_order_when_it_returns() {
        let db = Flaky::default();
        let writer = BatchWriter::start("usage", db.clone(), Arc::new(Metrics::new()));
        writer.push(1);
        writer.flush().await;
        db.down.store(true, Ordering::SeqCst);
        for i in 2..=2000 {
            writer.push(i);
        }
        writer.flush().await;
        assert_eq!(*db.written.lock().unwrap(), [1], "nothing more is written while it is away");
        db.down.store(false, Ordering::SeqCst);
        // The next attempt comes after the pause (at most RETRY.1).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while db.written.lock().unwrap().len() < 2000 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(*db.written.lock().unwrap(), (1..=2000).collect::<Vec<u32>>(), "all of them, oldest first");
    }
}
