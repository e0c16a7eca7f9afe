//! Rate-limit counters and budget spend shared by every replica, in Redis (`serve --redis-url`).
//!
//! A reservation is one round trip: a script checks every counter the request touches and adds to
//! all of them or none, so replicas can never together push a counter past its limit (calls are
//! exact; tokens are reserved on an estimate and settled to the tokens used, as in-process).
//! Settling is off the request path: settlements are summed per counter and sent together, one
//! pipeline every few milliseconds whatever the traffic. Keys live in one workspace's namespace
//! and expire two minutes after their window.
//!
//! Redis that does not answer within [`RESPONSE_TIMEOUT`] is marked down: the replica counts on
//! its own until a probe (every second) finds it again. Both moves are logged and visible in
//! `/metrics` and `/readyz`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::counters::{Refusal, Want};

/// How long a command may take before Redis counts as down.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
/// How often a down Redis is probed.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long settlements gather before they are sent together.
const SETTLE_LINGER: Duration = Duration::from_millis(5);
/// Seconds a window's keys outlive it.
const KEY_TTL_SECS: u64 = 180;

/// Checks every counter against its limit, then adds to all of them, or to none. KEYS are the
/// counters; ARGV[1] is the TTL, then (amount, limit) per key. Returns 0, or the 1-based index of
/// the first full counter and what it holds.
const RESERVE: &str = r"
for i, key in ipairs(KEYS) do
  local used = tonumber(redis.call('GET', key) or '0')
  if used + tonumber(ARGV[2 * i]) > tonumber(ARGV[2 * i + 1]) then
    return {i, used}
  end
end
for i, key in ipairs(KEYS) do
  redis.call('INCRBY', key, ARGV[2 * i])
  redis.call('EXPIRE', key, ARGV[1])
end
return {0, 0}
";

/// Adds each replica's unshared spend to the shared total of a budget period and returns the
/// totals. KEYS are the periods' spend; ARGV is (seed, delta, ttl) per key, where the seed (this
/// replica's view of the spend before the delta) starts a period Redis does not know, so a Redis
/// that restarted empty picks the spend up again instead of starting from zero.
const ADD_SPEND: &str = r"
local totals = {}
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 0 then
    redis.call('SET', key, ARGV[3 * i - 2])
  end
  totals[i] = redis.call('INCRBYFLOAT', key, ARGV[3 * i - 1])
  redis.call('EXPIRE', key, ARGV[3 * i])
end
return totals
";

/// One budget period's share of a spend sync.
pub struct SpendShare {
    /// Policy id.
    pub policy: String,
    /// The period's start, ms.
    pub period_start: i64,
    /// How long the period's total is kept, seconds.
    pub ttl_secs: u64,
    /// This replica's view of the spend before `delta`.
    pub seed: f64,
    /// Spend added here since the last sync.
    pub delta: f64,
}

/// A connection manager that connects on first use and fails fast.
fn manager(client: &redis::Client) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(RESPONSE_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(PROBE_EVERY);
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}

/// Counters in Redis.
#[derive(Clone)]
pub struct SharedCounters {
    client: redis::Client,
    /// Replaced by a fresh one when a probe fails, so a manager that gave up reconnecting does
    /// not keep Redis marked down.
    conn: Arc<arc_swap::ArcSwap<ConnectionManager>>,
    script: Arc<redis::Script>,
    spend_script: Arc<redis::Script>,
    prefix: Arc<str>,
    up: Arc<AtomicBool>,
    /// Settlements not yet sent: the sum of deltas per Redis key.
    unsettled: Arc<Mutex<HashMap<String, i64>>>,
    settle_soon: Arc<tokio::sync::Notify>,
}

impl SharedCounters {
    /// Counters at `url` under workspace `workspace`'s namespace. Connects lazily: a Redis that is
    /// down at start-up is only marked down. Fails on a URL that cannot be used.
    pub fn connect(url: &str, workspace: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("--redis-url: {e}"))?;
        let conn = manager(&client).map_err(|e| format!("--redis-url: {e}"))?;
        Ok(SharedCounters {
            client,
            conn: Arc::new(arc_swap::ArcSwap::from_pointee(conn)),
            script: Arc::new(redis::Script::new(RESERVE)),
            spend_script: Arc::new(redis::Script::new(ADD_SPEND)),
            prefix: format!("modelgate:{workspace}").into(),
            up: Arc::new(AtomicBool::new(true)),
            unsettled: Arc::default(),
            settle_soon: Arc::default(),
        })
    }

    fn conn(&self) -> ConnectionManager {
        ConnectionManager::clone(&self.conn.load())
    }

    /// Whether Redis answered last time.
    pub fn up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn mark(&self, up: bool, why: &str) {
        if self.up.swap(up, Ordering::Relaxed) != up {
            if up {
                tracing::info!("redis answers again: rate limits are shared across replicas");
            } else {
                tracing::warn!(error = why, "redis does not answer: rate limits count per replica until it does");
            }
        }
    }

    fn key(&self, window: u64, key: &str) -> String {
        format!("{}:rl:{window}:{key}", self.prefix)
    }

    /// Reserves every want, or none; `None` if Redis did not answer (now marked down).
    pub async fn reserve(&self, window: u64, wants: &[Want]) -> Option<Result<(), Refusal>> {
        let mut call = self.script.prepare_invoke();
        call.arg(KEY_TTL_SECS);
        for w in wants {
            call.key(self.key(window, &w.key)).arg(w.amount).arg(w.limit);
        }
        let mut conn = self.conn();
        match call.invoke_async::<(usize, u64)>(&mut conn).await {
            Ok((0, _)) => Some(Ok(())),
            Ok((i, used)) => {
                let w = wants.get(i.saturating_sub(1))?;
                Some(Err(Refusal { key: w.key.clone(), limit: w.limit, used }))
            }
            Err(e) => {
                self.mark(false, &e.to_string());
                None
            }
        }
    }

    /// Adds each share's delta to its period's total; the totals in order, or `None` if Redis did
    /// not answer (now marked down).
    pub async fn add_spend(&self, shares: &[SpendShare]) -> Option<Vec<f64>> {
        if shares.is_empty() {
            return Some(Vec::new());
        }
        let mut call = self.spend_script.prepare_invoke();
        for s in shares {
            call.key(format!("{}:budget:{}:{}", self.prefix, s.policy, s.period_start))
                .arg(s.seed)
                .arg(s.delta)
                .arg(s.ttl_secs);
        }
        let mut conn = self.conn();
        match call.invoke_async::<Vec<String>>(&mut conn).await {
            Ok(totals) => Some(totals.iter().map(|t| t.parse().unwrap_or(0.0)).collect()),
            Err(e) => {
                self.mark(false, &e.to_string());
                None
            }
        }
    }

    /// Adds `delta` to a counter, in the background: summed with the other settlements of the
    /// next few milliseconds and sent with them in one pipeline.
    pub fn adjust(&self, window: u64, key: &str, delta: i64) {
        let mut unsettled = self.unsettled.lock().unwrap_or_else(|e| e.into_inner());
        let first = unsettled.is_empty();
        *unsettled.entry(self.key(window, key)).or_insert(0) += delta;
        if first {
            self.settle_soon.notify_one();
        }
    }

    /// Sends the settlements gathered so far, in one pipeline. Lost if Redis does not answer (as
    /// is the minute's counting, which then goes on per replica).
    async fn settle(&self) {
        let unsettled = std::mem::take(&mut *self.unsettled.lock().unwrap_or_else(|e| e.into_inner()));
        let mut pipe = redis::pipe();
        for (key, delta) in unsettled.iter().filter(|(_, d)| **d != 0) {
            pipe.incr(key, *delta).ignore().expire(key, KEY_TTL_SECS as i64).ignore();
        }
        if pipe.is_empty() {
            return;
        }
        let mut conn = self.conn();
        let done: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
        if let Err(e) = done {
            self.mark(false, &e.to_string());
        }
    }

    /// The value of a counter; `None` if Redis did not answer.
    pub async fn get(&self, window: u64, key: &str) -> Option<u64> {
        let mut conn = self.conn();
        let got: redis::RedisResult<Option<i64>> =
            redis::cmd("GET").arg(self.key(window, key)).query_async(&mut conn).await;
        match got {
            Ok(v) => Some(v.unwrap_or(0).max(0) as u64),
            Err(e) => {
                self.mark(false, &e.to_string());
                None
            }
        }
    }

    /// A cached answer (`policy::cache`); `None` if there is none or Redis did not answer (now
    /// marked down).
    pub async fn cache_get(&self, id: &str) -> Option<Vec<u8>> {
        let mut conn = self.conn();
        let got: redis::RedisResult<Option<Vec<u8>>> =
            redis::cmd("GET").arg(format!("{}:cache:{id}", self.prefix)).query_async(&mut conn).await;
        got.unwrap_or_else(|e| {
            self.mark(false, &e.to_string());
            None
        })
    }

    /// Stores a cached answer for `ttl_ms`; lost if Redis does not answer (now marked down).
    pub async fn cache_put(&self, id: &str, bytes: Vec<u8>, ttl_ms: u64) {
        let mut conn = self.conn();
        let done: redis::RedisResult<()> = redis::cmd("SET")
            .arg(format!("{}:cache:{id}", self.prefix))
            .arg(bytes)
            .arg("PX")
            .arg(ttl_ms.max(1))
            .query_async(&mut conn)
            .await;
        if let Err(e) = done {
            self.mark(false, &e.to_string());
        }
    }

    /// Whether Redis answers a PING now (and marks it so).
    pub async fn probe(&self) -> bool {
        let mut conn = self.conn();
        let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        match pong {
            Ok(_) => {
                self.mark(true, "");
                true
            }
            Err(e) => {
                self.mark(false, &e.to_string());
                if let Ok(fresh) = manager(&self.client) {
                    self.conn.store(Arc::new(fresh));
                }
                false
            }
        }
    }

    /// Probes every second, so a Redis that comes back is used again, and sends settlements as
    /// they gather, until `stop`.
    pub async fn watch(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(PROBE_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => { self.probe().await; }
                _ = self.settle_soon.notified() => {
                    tokio::time::sleep(SETTLE_LINGER).await;
                    self.settle().await;
                }
                _ = stop.changed() => {
                    self.settle().await;
                    return;
                }
            }
        }
    }
}
