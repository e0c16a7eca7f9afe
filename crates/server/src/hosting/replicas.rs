//! A replica set: the replicas of one hosted served entity, and the capacity they give.
//!
//! A query takes a [`Lease`] on a ready replica with a free slot (each replica takes
//! [`Sizing::per_replica`] queries at once). With none free it waits in a bounded queue while the
//! set starts another replica (up to [`Sizing::max_replicas`]); a full queue is refused at once
//! with 429, and a wait longer than the cold-start timeout with 503. A supervisor restarts a
//! replica that exits or stops answering, with backoff, and stops every replica after the idle
//! time when the entity may scale to zero; the next query then starts one (a cold start).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use modelgate_providers::Adapter;

use super::runtime::{LogSink, Replica, ReplicaSpec, Runtime};

/// How many replicas, how many queries each, and how long to wait.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sizing {
    /// Replicas kept running (0 when the entity scales to zero).
    pub min_replicas: usize,
    /// Most replicas.
    pub max_replicas: usize,
    /// Queries one replica takes at once.
    pub per_replica: usize,
    /// Queries that may wait for a slot.
    pub queue: usize,
    /// Stop every replica after this long without a query (scale to zero), if set.
    pub idle_to_zero: Option<Duration>,
    /// Stop a replica above the minimum after it has had no query for this long.
    pub scale_down_after: Duration,
    /// How long a query waits for a replica to start.
    pub cold_start_timeout: Duration,
}

/// Queries one replica takes at once.
pub const PER_REPLICA: usize = 4;
/// Most replicas of one provisioned throughput.
pub const MAX_PROVISIONED_REPLICAS: usize = 16;

impl Sizing {
    /// The sizing of a workload size (`Small`: 0 to 4 concurrent queries, `Medium`: 8 to 16,
    /// `Large`: 16 to 64, as in Databricks), with [`PER_REPLICA`] queries per replica.
    pub fn of(
        workload_size: Option<&str>,
        scale_to_zero: bool,
        idle: Duration,
        cold_start: Duration,
    ) -> Result<Sizing, String> {
        let (min, max) = match workload_size.unwrap_or("Small") {
            "Small" => (1, 1),
            "Medium" => (2, 4),
            "Large" => (4, 16),
            other => return Err(format!("workload_size '{other}' is not one of Small, Medium, Large")),
        };
        Ok(Sizing {
            min_replicas: if scale_to_zero { 0 } else { min },
            max_replicas: max,
            per_replica: PER_REPLICA,
            queue: max * PER_REPLICA,
            idle_to_zero: scale_to_zero.then_some(idle),
            scale_down_after: Duration::from_secs(300),
            cold_start_timeout: cold_start,
        })
    }

    /// The sizing of provisioned throughput, which admits queries itself: a replica per band (at
    /// most [`MAX_PROVISIONED_REPLICAS`]), the floor's kept running (none for a floor of zero
    /// bands: they stop after `idle`), and a queue as long as the throughput's.
    pub fn provisioned(min_bands: u64, max_bands: u64, idle: Duration, cold_start: Duration) -> Sizing {
        let cap = |b: u64| usize::try_from(b).unwrap_or(usize::MAX).min(MAX_PROVISIONED_REPLICAS);
        Sizing {
            min_replicas: cap(min_bands),
            max_replicas: cap(max_bands).max(1),
            per_replica: PER_REPLICA,
            queue: super::throughput::QUEUE,
            idle_to_zero: (min_bands == 0).then_some(idle),
            scale_down_after: Duration::from_secs(300),
            cold_start_timeout: cold_start,
        }
    }

    /// The same sizing, stopping unused replicas above the minimum after `after`.
    pub fn scaling_down_after(self, after: Duration) -> Sizing {
        Sizing { scale_down_after: after, ..self }
    }
}

/// Why a query got no replica.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Every slot is taken and the queue is full: come back later.
    Busy { retry_after_secs: u64 },
    /// No replica became ready in time (or the set is stopping).
    Unavailable(String),
}

struct Slot {
    replica: Arc<dyn Replica>,
    adapter: Arc<dyn Adapter>,
    in_flight: usize,
    /// When it last finished a query (or started).
    last_used: Instant,
}

#[derive(Default)]
struct State {
    ready: Vec<Slot>,
    starting: usize,
    waiting: usize,
    last_used: Option<Instant>,
    /// Consecutive failed starts, for backoff.
    failures: u32,
    /// No start before this.
    next_start: Option<Instant>,
    stopped: bool,
    /// Why the last start failed.
    last_failure: Option<String>,
}

/// Builds the adapter that talks to a replica at a base URL.
pub type AdapterFor = Arc<dyn Fn(&str) -> Result<Arc<dyn Adapter>, String> + Send + Sync>;

/// The replicas of one hosted entity.
pub struct ReplicaSet {
    runtime: Arc<dyn Runtime>,
    spec: ReplicaSpec,
    sizing: Sizing,
    adapter_for: AdapterFor,
    log: LogSink,
    state: Mutex<State>,
    changed: tokio::sync::Notify,
    /// Cold starts, ms, for the metrics.
    cold_starts: Mutex<Vec<f64>>,
    /// The provisioned throughput of a foundation model served with one.
    pub throughput: Option<Arc<super::throughput::Throughput>>,
}

/// A query's hold on a replica slot, released when dropped (the answer's last byte sent).
pub struct Lease {
    set: Arc<ReplicaSet>,
    replica: Arc<dyn Replica>,
    adapter: Arc<dyn Adapter>,
}

impl Lease {
    /// The adapter that talks to the leased replica.
    pub fn adapter(&self) -> &Arc<dyn Adapter> {
        &self.adapter
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut s = self.set.lock();
        if let Some(slot) = s.ready.iter_mut().find(|slot| Arc::ptr_eq(&slot.replica, &self.replica)) {
            slot.in_flight = slot.in_flight.saturating_sub(1);
            slot.last_used = Instant::now();
        }
        s.last_used = Some(Instant::now());
        drop(s);
        self.set.changed.notify_waiters();
    }
}

/// How a replica set stands, for the endpoint's state and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// Replicas serving.
    pub ready: usize,
    /// Replicas starting.
    pub starting: usize,
    /// Queries in flight.
    pub in_flight: usize,
    /// Queries waiting for a slot.
    pub waiting: usize,
    /// Why the last start failed, if it did.
    pub last_failure: Option<String>,
}

impl ReplicaSet {
    /// A set with no replica yet; [`ReplicaSet::supervise`] keeps it at its minimum.
    pub fn new(
        runtime: Arc<dyn Runtime>,
        spec: ReplicaSpec,
        sizing: Sizing,
        adapter_for: AdapterFor,
        log: LogSink,
        throughput: Option<Arc<super::throughput::Throughput>>,
    ) -> Arc<Self> {
        Arc::new(ReplicaSet {
            throughput,
            runtime,
            spec,
            sizing,
            adapter_for,
            log,
            state: Mutex::new(State::default()),
            changed: tokio::sync::Notify::new(),
            cold_starts: Mutex::new(Vec::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How it stands now.
    pub fn status(&self) -> Status {
        let s = self.lock();
        Status {
            ready: s.ready.len(),
            starting: s.starting,
            in_flight: s.ready.iter().map(|r| r.in_flight).sum(),
            waiting: s.waiting,
            last_failure: s.last_failure.clone(),
        }
    }

    /// Cold starts since the last call, ms (the metrics drain them).
    pub fn take_cold_starts(&self) -> Vec<f64> {
        std::mem::take(&mut *self.cold_starts.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Starts one replica in the background, if the set may grow and no backoff holds it back.
    fn grow(self: &Arc<Self>, s: &mut State) {
        let now = Instant::now();
        if s.stopped || s.ready.len() + s.starting >= self.sizing.max_replicas || s.next_start.is_some_and(|t| t > now)
        {
            return;
        }
        s.starting += 1;
        let set = self.clone();
        tokio::spawn(async move { set.start_one().await });
    }

    async fn start_one(self: Arc<Self>) {
        let began = Instant::now();
        let result = self.start_and_wait().await;
        // What to do once the lock is released: stop a replica nobody wants any more.
        let unwanted = {
            let mut s = self.lock();
            // A replica nobody wants counts as starting until it is stopped, so that `stop`
            // waits for it.
            if !(result.is_ok() && s.stopped) {
                s.starting = s.starting.saturating_sub(1);
            }
            match result {
                Ok((replica, adapter)) if !s.stopped => {
                    s.failures = 0;
                    s.next_start = None;
                    s.last_failure = None;
                    let cold = s.ready.is_empty();
                    s.ready.push(Slot { replica, adapter, in_flight: 0, last_used: Instant::now() });
                    let ms = began.elapsed().as_secs_f64() * 1000.0;
                    (self.log)(&format!("replica ready after {ms:.0} ms"));
                    if cold {
                        self.cold_starts.lock().unwrap_or_else(|e| e.into_inner()).push(ms);
                    }
                    None
                }
                Ok((replica, _)) => Some(replica),
                Err(why) => {
                    s.failures += 1;
                    let backoff = Duration::from_millis(500u64.saturating_mul(1 << s.failures.min(4)));
                    s.next_start = Some(Instant::now() + backoff);
                    s.last_failure = Some(why.clone());
                    (self.log)(&format!("replica failed to start: {why}; next try in {} ms", backoff.as_millis()));
                    None
                }
            }
        };
        if let Some(replica) = unwanted {
            replica.stop(Duration::from_secs(5)).await;
            let mut s = self.lock();
            s.starting = s.starting.saturating_sub(1);
        }
        self.changed.notify_waiters();
    }

    /// Starts a replica and waits until it answers, within the cold-start timeout.
    async fn start_and_wait(&self) -> Result<(Arc<dyn Replica>, Arc<dyn Adapter>), String> {
        let replica = self.runtime.start(&self.spec, self.log.clone()).await?;
        let adapter = match (self.adapter_for)(replica.base_url()) {
            Ok(a) => a,
            Err(e) => {
                replica.stop(Duration::from_secs(1)).await;
                return Err(e);
            }
        };
        let deadline = Instant::now() + self.sizing.cold_start_timeout;
        loop {
            if let Some(how) = replica.exited() {
                return Err(format!("it {how} before answering"));
            }
            if self.lock().stopped {
                replica.stop(Duration::from_secs(5)).await;
                return Err("the entity's replicas are stopping".into());
            }
            if replica.healthy(Duration::from_secs(1)).await {
                return Ok((replica, adapter));
            }
            if Instant::now() >= deadline {
                replica.stop(Duration::from_secs(5)).await;
                return Err(format!(
                    "it did not answer on {} within {} s",
                    replica.base_url(),
                    self.sizing.cold_start_timeout.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A slot on a ready replica, waiting (in the bounded queue) until `deadline` for one.
    pub async fn lease(self: &Arc<Self>, deadline: Instant) -> Result<Lease, Refusal> {
        let deadline = deadline.min(Instant::now() + self.sizing.cold_start_timeout);
        let mut queued = false;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                if s.stopped {
                    if queued {
                        s.waiting = s.waiting.saturating_sub(1);
                    }
                    return Err(Refusal::Unavailable("the entity's replicas are stopping".into()));
                }
                let per = self.sizing.per_replica;
                // The least busy replica; among equals the one used last, so that spare replicas
                // stay unused and can be stopped.
                let pick = s
                    .ready
                    .iter_mut()
                    .filter(|r| r.in_flight < per)
                    .min_by_key(|r| (r.in_flight, std::cmp::Reverse(r.last_used)));
                if let Some(slot) = pick {
                    slot.in_flight += 1;
                    let lease =
                        Lease { set: self.clone(), replica: slot.replica.clone(), adapter: slot.adapter.clone() };
                    if queued {
                        s.waiting = s.waiting.saturating_sub(1);
                    }
                    s.last_used = Some(Instant::now());
                    return Ok(lease);
                }
                // Nothing serves and the last start failed: say so at once (another start is
                // tried in the background) rather than hold the query for the whole timeout.
                if s.ready.is_empty()
                    && let Some(why) = s.last_failure.clone()
                {
                    self.grow(&mut s);
                    if queued {
                        s.waiting = s.waiting.saturating_sub(1);
                    }
                    return Err(Refusal::Unavailable(format!(
                        "no replica is serving: the last one failed to start ({why})"
                    )));
                }
                if !queued {
                    if s.waiting >= self.sizing.queue {
                        return Err(Refusal::Busy { retry_after_secs: 1 });
                    }
                    s.waiting += 1;
                    queued = true;
                }
                self.grow(&mut s);
            }
            if tokio::time::timeout_at(deadline.into(), notified).await.is_err() {
                let mut s = self.lock();
                s.waiting = s.waiting.saturating_sub(1);
                let why = match (&s.last_failure, s.ready.is_empty()) {
                    (Some(f), true) => format!("no replica is serving: the last one failed to start ({f})"),
                    (None, true) => format!(
                        "no replica became ready within {} s (cold start)",
                        self.sizing.cold_start_timeout.as_secs()
                    ),
                    (_, false) => return Err(Refusal::Busy { retry_after_secs: 1 }),
                };
                return Err(Refusal::Unavailable(why));
            }
        }
    }

    /// Keeps the set healthy until it is stopped: restarts replicas that exit or stop answering,
    /// keeps the minimum running, and scales to zero when idle (if allowed).
    pub async fn supervise(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut probes = 0u32;
        loop {
            tick.tick().await;
            probes = probes.wrapping_add(1);
            let replicas: Vec<Arc<dyn Replica>> = {
                let s = self.lock();
                if s.stopped {
                    return;
                }
                s.ready.iter().map(|r| r.replica.clone()).collect()
            };
            // Exits are checked every tick; health every 5 s (a probe costs a request).
            let mut dead = Vec::new();
            for r in &replicas {
                if let Some(how) = r.exited() {
                    dead.push((r.clone(), format!("replica {how}")));
                } else if probes.is_multiple_of(10) && !r.healthy(Duration::from_secs(2)).await {
                    dead.push((r.clone(), "replica stopped answering its health check".to_string()));
                }
            }
            let idle = {
                let s = self.lock();
                let busy = s.ready.iter().any(|r| r.in_flight > 0) || s.waiting > 0 || s.starting > 0;
                match (self.sizing.idle_to_zero, s.last_used) {
                    (Some(limit), Some(t)) => !busy && !s.ready.is_empty() && t.elapsed() >= limit,
                    _ => false,
                }
            };
            let mut stopping = Vec::new();
            {
                let mut s = self.lock();
                for (r, why) in &dead {
                    s.ready.retain(|slot| !Arc::ptr_eq(&slot.replica, r));
                    (self.log)(&format!("{why}; starting another"));
                    s.failures += 1;
                    let backoff = Duration::from_millis(250u64.saturating_mul(1 << s.failures.min(5)));
                    s.next_start = Some(Instant::now() + backoff);
                    stopping.push(r.clone());
                }
                if idle {
                    (self.log)("no query for the idle time: scaled to zero");
                    stopping.extend(s.ready.drain(..).map(|slot| slot.replica));
                    s.last_used = None;
                } else if s.ready.len() > self.sizing.min_replicas.max(1) && s.waiting == 0 {
                    // Above the minimum, a replica nobody has used for a while goes (one per tick).
                    let after = self.sizing.scale_down_after;
                    if let Some(i) = s.ready.iter().position(|r| r.in_flight == 0 && r.last_used.elapsed() >= after) {
                        let slot = s.ready.remove(i);
                        (self.log)(&format!(
                            "a replica unused for {} s stopped: {} serving",
                            after.as_secs(),
                            s.ready.len()
                        ));
                        stopping.push(slot.replica);
                    }
                }
                let running = s.ready.len() + s.starting;
                for _ in running..self.sizing.min_replicas {
                    self.grow(&mut s);
                }
            }
            for r in stopping {
                r.stop(Duration::from_secs(5)).await;
            }
            if !dead.is_empty() {
                self.changed.notify_waiters();
            }
        }
    }

    /// Starts the minimum number of replicas (at least one; none if they already run) and waits
    /// until one serves or the cold-start timeout passes; returns why not.
    pub async fn warm_up(self: &Arc<Self>) -> Result<(), String> {
        {
            let mut s = self.lock();
            let running = s.ready.len() + s.starting;
            for _ in running..self.sizing.min_replicas.max(1) {
                self.grow(&mut s);
            }
        }
        let deadline = Instant::now() + self.sizing.cold_start_timeout + Duration::from_secs(1);
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let s = self.lock();
                if !s.ready.is_empty() {
                    return Ok(());
                }
                if s.starting == 0 {
                    return Err(s.last_failure.clone().unwrap_or_else(|| "no replica started".into()));
                }
            }
            if tokio::time::timeout_at(deadline.into(), notified).await.is_err() {
                return Err("no replica answered within the cold-start timeout".into());
            }
        }
    }

    /// Stops every replica, after the queries in flight finish (at most `drain`).
    pub async fn stop(&self, drain: Duration) {
        let deadline = Instant::now() + drain;
        self.lock().stopped = true;
        self.changed.notify_waiters();
        while Instant::now() < deadline && self.lock().ready.iter().any(|r| r.in_flight > 0) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let replicas: Vec<Arc<dyn Replica>> = self.lock().ready.drain(..).map(|r| r.replica).collect();
        for r in replicas {
            r.stop(Duration::from_secs(5)).await;
        }
        // Replicas still starting see `stopped` within a health check and stop themselves; the
        // server must not exit before they have, or their processes outlive it.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let notified = self.changed.notified();
            if self.lock().starting == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline.into(), notified).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_sizes_give_databricks_concurrency() {
        let s = |size, zero| Sizing::of(size, zero, Duration::from_secs(1800), Duration::from_secs(60)).unwrap();
        let concurrency = |z: Sizing| (z.min_replicas * z.per_replica, z.max_replicas * z.per_replica);
        assert_eq!(concurrency(s(Some("Small"), false)), (4, 4));
        assert_eq!(concurrency(s(Some("Small"), true)), (0, 4));
        assert_eq!(concurrency(s(Some("Medium"), false)), (8, 16));
        assert_eq!(concurrency(s(Some("Large"), false)), (16, 64));
        assert_eq!(s(None, true).idle_to_zero, Some(Duration::from_secs(1800)));
        assert!(Sizing::of(Some("Huge"), false, Duration::ZERO, Duration::ZERO).unwrap_err().contains("Huge"));
    }
}
