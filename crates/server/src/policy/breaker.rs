//! Circuit breakers, one per served entity.
//!
//! Closed: traffic flows; failures (429, 5xx, timeouts, connection errors) are counted in a
//! sliding window. `failures` of them within `window` open the breaker. Open: the entity gets no
//! traffic until the cool-down ends (the longer of `cooldown` and the upstream's `Retry-After`).
//! Half-open: one probe request is let through; success closes the breaker, failure opens it again.
//! State lives in memory, per replica.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Breaker tuning (server-wide).
#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    /// Failures within `window` that open the breaker.
    pub failures: usize,
    /// The sliding window.
    pub window: Duration,
    /// How long an open breaker refuses traffic (at least).
    pub cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self { failures: 3, window: Duration::from_secs(10), cooldown: Duration::from_secs(10) }
    }
}

#[derive(Debug, Clone)]
enum State {
    Closed { failures: VecDeque<Instant> },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// What a breaker reports about itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Serving.
    Closed,
    /// Refusing traffic for this long.
    Open(Duration),
    /// Letting one probe through.
    HalfOpen,
}

/// Every breaker of the server, keyed by (endpoint id, served entity).
#[derive(Default)]
pub struct Breakers {
    settings: BreakerSettings,
    states: Mutex<HashMap<(String, String), State>>,
}

impl Breakers {
    /// Breakers with these settings.
    pub fn new(settings: BreakerSettings) -> Self {
        Self { settings, states: Mutex::new(HashMap::new()) }
    }

    fn with<T>(&self, key: (&str, &str), f: impl FnOnce(&mut State) -> T) -> T {
        let mut map = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let state =
            map.entry((key.0.to_string(), key.1.to_string())).or_insert(State::Closed { failures: VecDeque::new() });
        f(state)
    }

    /// Whether the entity may get this request; taking the half-open probe slot if so.
    pub fn allow(&self, endpoint: &str, entity: &str, now: Instant) -> bool {
        self.with((endpoint, entity), |s| match s {
            State::Closed { .. } => true,
            State::Open { until } if now >= *until => {
                *s = State::HalfOpen { probing: true };
                true
            }
            State::Open { .. } => false,
            State::HalfOpen { probing } if !*probing => {
                *probing = true;
                true
            }
            State::HalfOpen { .. } => false,
        })
    }

    /// Records a success.
    pub fn success(&self, endpoint: &str, entity: &str) {
        self.with((endpoint, entity), |s| {
            if !matches!(s, State::Closed { .. }) {
                *s = State::Closed { failures: VecDeque::new() };
            }
        });
    }

    /// Records a failure; `retry_after` may lengthen the cool-down. Returns true if this opened
    /// the breaker.
    pub fn failure(&self, endpoint: &str, entity: &str, retry_after: Option<Duration>, now: Instant) -> bool {
        let cfg = self.settings;
        let cooldown = retry_after.map_or(cfg.cooldown, |r| r.max(cfg.cooldown));
        self.with((endpoint, entity), |s| match s {
            State::Closed { failures } => {
                failures.push_back(now);
                while failures.front().is_some_and(|t| now.duration_since(*t) > cfg.window) {
                    failures.pop_front();
                }
                if failures.len() >= cfg.failures {
                    *s = State::Open { until: now + cooldown };
                    true
                } else {
                    false
                }
            }
            State::HalfOpen { .. } => {
                *s = State::Open { until: now + cooldown };
                true
            }
            State::Open { until } => {
                *until = (*until).max(now + cooldown);
                false
            }
        })
    }

    /// Gives the half-open probe slot back without a verdict (the request ended some other way).
    pub fn release(&self, endpoint: &str, entity: &str) {
        self.with((endpoint, entity), |s| {
            if let State::HalfOpen { probing } = s {
                *probing = false;
            }
        });
    }

    /// The breaker's status, for state messages and metrics.
    pub fn status(&self, endpoint: &str, entity: &str, now: Instant) -> Status {
        let map = self.states.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&(endpoint.to_string(), entity.to_string())) {
            None | Some(State::Closed { .. }) => Status::Closed,
            Some(State::Open { until }) if *until > now => Status::Open(*until - now),
            Some(_) => Status::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breakers() -> Breakers {
        Breakers::new(BreakerSettings {
            failures: 3,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(5),
        })
    }

    #[test]
    fn opens_after_n_failures_in_the_window_and_probes_after_cooldown() {
        let b = breakers();
        let t0 = Instant::now();
        assert!(!b.failure("e", "a", None, t0));
        assert!(!b.failure("e", "a", None, t0 + Duration::from_secs(1)));
        assert!(b.allow("e", "a", t0 + Duration::from_secs(1)));
        assert!(b.failure("e", "a", None, t0 + Duration::from_secs(2)), "third failure opens it");
        assert!(!b.allow("e", "a", t0 + Duration::from_secs(3)));
        assert!(matches!(b.status("e", "a", t0 + Duration::from_secs(3)), Status::Open(_)));
        assert!(b.allow("e", "b", t0 + Duration::from_secs(3)), "other entities are unaffected");

        let later = t0 + Duration::from_secs(8);
        assert!(b.allow("e", "a", later), "half-open lets one probe through");
        assert!(!b.allow("e", "a", later), "only one");
        b.success("e", "a");
        assert_eq!(b.status("e", "a", later), Status::Closed);
        assert!(b.allow("e", "a", later));
    }

    #[test]
    fn failures_outside_the_window_do_not_count_and_a_failed_probe_reopens() {
        let b = breakers();
        let t0 = Instant::now();
        b.failure("e", "a", None, t0);
        b.failure("e", "a", None, t0 + Duration::from_secs(1));
        assert!(!b.failure("e", "a", None, t0 + Duration::from_secs(20)), "the first two fell out of the window");
        b.failure("e", "a", None, t0 + Duration::from_secs(21));
        assert!(b.failure("e", "a", None, t0 + Duration::from_secs(22)));
        let probe = t0 + Duration::from_secs(28);
        assert!(b.allow("e", "a", probe));
        assert!(b.failure("e", "a", None, probe), "a failed probe opens it again");
        assert!(!b.allow("e", "a", probe + Duration::from_secs(1)));
    }

    #[test]
    fn retry_after_lengthens_the_cooldown() {
        let b = breakers();
        let t0 = Instant::now();
        for i in 0..3 {
            b.failure("e", "a", Some(Duration::from_secs(30)), t0 + Duration::from_millis(i));
        }
        assert!(!b.allow("e", "a", t0 + Duration::from_secs(10)), "5 s cool-down stretched to Retry-After");
        assert!(b.allow("e", "a", t0 + Duration::from_secs(31)));
    }
}
