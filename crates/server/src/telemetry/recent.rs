//! Recent request statistics per endpoint, for the alert rules on error rate and p95 latency.
//!
//! Each endpoint has cumulative counters and a fine-grained latency histogram, updated with a few
//! atomic adds per query. The alert evaluator keeps timed snapshots of them ([`History`]) and reads
//! a window as the difference between the live totals and the snapshot taken a window ago, the way
//! Prometheus computes `increase()`. Evaluating a rule thus costs the same at ten or ten thousand
//! queries per second; scanning and sorting the window's usage records would compete with the very
//! traffic it watches.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Histogram buckets: bucket `i` holds latencies up to `FIRST_BOUND_MS × RATIO^i`. A ratio of
/// 2^(1/4) keeps an interpolated percentile within a few percent; 84 buckets reach from half a
/// millisecond to about 20 minutes, and the last one takes everything longer.
const BUCKETS: usize = 84;
const FIRST_BOUND_MS: f64 = 0.5;
const RATIO: f64 = 1.189_207_115_002_721; // 2^(1/4)

fn upper_bound(i: usize) -> f64 {
    FIRST_BOUND_MS * RATIO.powi(i as i32)
}

fn bucket_of(latency_ms: f64) -> usize {
    if latency_ms <= FIRST_BOUND_MS {
        return 0;
    }
    let i = ((latency_ms / FIRST_BOUND_MS).ln() / RATIO.ln()).ceil() as usize;
    i.min(BUCKETS - 1)
}

struct Cumulative {
    requests: AtomicU64,
    errors: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

impl Default for Cumulative {
    fn default() -> Self {
        Cumulative {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// Live cumulative statistics of every endpoint that has answered a query.
#[derive(Default)]
pub struct Recent {
    endpoints: RwLock<HashMap<String, Arc<Cumulative>>>,
}

/// Cumulative counts of one endpoint at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    /// Queries answered.
    pub requests: u64,
    /// Of which failed (4xx, 5xx or a stream that ended with an error event).
    pub errors: u64,
    buckets: Vec<u64>,
}

impl Default for Totals {
    fn default() -> Self {
        Totals { requests: 0, errors: 0, buckets: vec![0; BUCKETS] }
    }
}

impl Totals {
    /// The counts between `earlier` and `self`.
    fn since(&self, earlier: &Totals) -> Totals {
        Totals {
            requests: self.requests.saturating_sub(earlier.requests),
            errors: self.errors.saturating_sub(earlier.errors),
            buckets: self.buckets.iter().zip(&earlier.buckets).map(|(a, b)| a.saturating_sub(*b)).collect(),
        }
    }

    /// The latency at quantile `q` (0 to 1), interpolated within its bucket; `None` without queries.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let n: u64 = self.buckets.iter().sum();
        if n == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * n as f64).max(1.0);
        let mut below = 0u64;
        for (i, &c) in self.buckets.iter().enumerate() {
            if c > 0 && (below + c) as f64 >= rank {
                let lower = if i == 0 { 0.0 } else { upper_bound(i - 1) };
                let upper = upper_bound(i);
                return Some(lower + (upper - lower) * (rank - below as f64) / c as f64);
            }
            below += c;
        }
        Some(upper_bound(BUCKETS - 1))
    }
}

impl Recent {
    /// Counts one answered query of `endpoint`.
    pub fn observe(&self, endpoint: &str, error: bool, latency_ms: f64) {
        let known = self.endpoints.read().unwrap_or_else(|e| e.into_inner()).get(endpoint).cloned();
        let c = match known {
            Some(c) => c,
            None => {
                let mut all = self.endpoints.write().unwrap_or_else(|e| e.into_inner());
                all.entry(endpoint.to_string()).or_default().clone()
            }
        };
        c.requests.fetch_add(1, Ordering::Relaxed);
        if error {
            c.errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(b) = c.buckets.get(bucket_of(latency_ms)) {
            b.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The live totals of every endpoint.
    pub fn totals(&self) -> HashMap<String, Totals> {
        let all = self.endpoints.read().unwrap_or_else(|e| e.into_inner());
        all.iter()
            .map(|(name, c)| {
                let t = Totals {
                    requests: c.requests.load(Ordering::Relaxed),
                    errors: c.errors.load(Ordering::Relaxed),
                    buckets: c.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
                };
                (name.clone(), t)
            })
            .collect()
    }

    /// Forgets endpoints for which `keep` is false (deleted ones).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.endpoints.write().unwrap_or_else(|e| e.into_inner()).retain(|name, _| keep(name));
    }
}

/// Snapshots kept at most; their spacing grows with the longest window asked for.
const MAX_SNAPSHOTS: usize = 60;

/// Timed snapshots of [`Recent::totals`], enough to read any window up to the longest asked for.
pub struct History {
    /// Oldest first; the first one is all zeros at the moment the history began.
    snapshots: VecDeque<(i64, HashMap<String, Totals>)>,
}

impl History {
    /// A history that begins at `start_ms`, before any query.
    pub fn new(start_ms: i64) -> Self {
        History { snapshots: VecDeque::from([(start_ms, HashMap::new())]) }
    }

    /// Keeps `totals` as of `now_ms`, and drops what windows up to `longest_ms` no longer need.
    pub fn record(&mut self, now_ms: i64, totals: HashMap<String, Totals>, longest_ms: i64) {
        let spacing = longest_ms / MAX_SNAPSHOTS as i64;
        let last = self.snapshots.back().map_or(i64::MIN, |s| s.0);
        if now_ms - last >= spacing.max(1) {
            self.snapshots.push_back((now_ms, totals));
        }
        // Keep the newest snapshot at or before the start of the longest window, and all after it.
        while self.snapshots.get(1).is_some_and(|s| s.0 <= now_ms - longest_ms) {
            self.snapshots.pop_front();
        }
    }

    /// Whether the history reaches back to `since_ms`, so a window starting then is complete.
    pub fn covers(&self, since_ms: i64) -> bool {
        self.snapshots.front().is_some_and(|s| s.0 <= since_ms)
    }

    /// What `endpoint` did between `since_ms` (rounded back to the snapshot before it) and `now`.
    pub fn window(&self, endpoint: &str, now: &Totals, since_ms: i64) -> Totals {
        let base = self
            .snapshots
            .iter()
            .rev()
            .find(|s| s.0 <= since_ms)
            .or(self.snapshots.front())
            .and_then(|s| s.1.get(endpoint));
        match base {
            Some(b) => now.since(b),
            None => now.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_a_bucket_of_the_truth() {
        let r = Recent::default();
        for i in 1..=1000 {
            r.observe("e", false, i as f64);
        }
        let t = &r.totals()["e"];
        for (q, truth) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0)] {
            let got = t.quantile_ms(q).unwrap();
            assert!((got - truth).abs() / truth < 0.1, "q{q}: {got} vs {truth}");
        }
        assert_eq!(Totals::default().quantile_ms(0.95), None);
    }

    #[test]
    fn a_window_counts_only_what_happened_in_it() {
        let r = Recent::default();
        let mut h = History::new(0);
        for _ in 0..10 {
            r.observe("e", true, 3000.0);
        }
        h.record(1_000, r.totals(), 5_000);
        for _ in 0..30 {
            r.observe("e", false, 10.0);
        }
        let now = &r.totals()["e"];
        assert!(h.covers(0) && h.covers(1_500) && !h.covers(-1));
        // Since the start: everything.
        let all = h.window("e", now, 0);
        assert_eq!((all.requests, all.errors), (40, 10));
        // Since the snapshot at 1 s: only the fast, successful queries.
        let recent = h.window("e", now, 1_500);
        assert_eq!((recent.requests, recent.errors), (30, 0));
        assert!(recent.quantile_ms(0.95).unwrap() < 12.0);
        // An endpoint the snapshot did not know yet counts from zero.
        r.observe("new", false, 1.0);
        assert_eq!(h.window("new", &r.totals()["new"], 1_500).requests, 1);
    }

    #[test]
    fn history_stays_bounded_and_keeps_the_window_start() {
        let mut h = History::new(0);
        let r = Recent::default();
        for t in (1..=10_000).map(|s| s * 1_000) {
            r.observe("e", false, 1.0);
            h.record(t, r.totals(), 300_000);
        }
        assert!(h.snapshots.len() <= MAX_SNAPSHOTS + 2, "{}", h.snapshots.len());
        assert!(h.snapshots[0].0 <= 10_000_000 - 300_000);
        let w = h.window("e", &r.totals()["e"], 10_000_000 - 300_000);
        assert!((300..=310).contains(&w.requests), "{}", w.requests);
    }
}
