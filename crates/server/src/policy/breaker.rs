//! Circuit breakers, one per served entity.
//!
//! Closed: traffic flows; failed requests (429, 5xx, timeouts, connection errors) are counted in
//! a sliding window, one per request however often it was retried. `failures` of them within
//! `window` open the breaker. Open: the entity gets no traffic until the cool-down ends (the
//! longer of `cooldown` and the upstream's `Retry-After`). Half-open: one probe request is let
//! through; success closes the breaker, failure opens it again. A probe that never reports (its
//! client went away) frees the slot after `probe_timeout`.
//!
//! A breaker only moves traffic: the gateway ignores it when its entity is the only one a request
//! could go to (see `gateway::attempt`). State lives in memory, per replica, and is forgotten
//! when the entity's config changes or the entity goes away ([`Breakers::sync`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Breaker tuning (server-wide).
#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    /// Failed requests within `window` that open the breaker.
    pub failures: usize,
    /// The sliding window.
    pub window: Duration,
    /// How long an open breaker refuses traffic (at least).
    pub cooldown: Duration,
    /// How long a half-open probe may stay unanswered before another request may probe.
    pub probe_timeout: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failures: 3,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone)]
enum State {
    Closed { failures: VecDeque<Instant> },
    Open { until: Instant },
    HalfOpen { probe_since: Option<Instant> },
}

/// What a breaker reports about itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Serving.
    Closed,
    /// Refusing traffic for this long.
    Open(Duration),
    /// Cool-down over: the next request probes the upstream.
    HalfOpen,
    /// A probe is in flight; other requests are refused until it reports.
    Probing,
}

impl Status {
    /// Whether the breaker turns requests away now (what metrics and alerts report as open).
    pub fn refusing(&self) -> bool {
        matches!(self, Status::Open(_) | Status::Probing)
    }
}

type Key = (String, String);

#[derive(Default)]
struct Inner {
    states: HashMap<Key, State>,
    /// The config each entity's state was built against: a change forgets the state.
    fingerprints: HashMap<Key, u64>,
}

/// Every breaker of the server, keyed by (endpoint id, served entity).
#[derive(Default)]
pub struct Breakers {
    settings: BreakerSettings,
    inner: Mutex<Inner>,
}

impl Breakers {
    /// Breakers with these settings.
    pub fn new(settings: BreakerSettings) -> Self {
        Self { settings, inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with<T>(&self, key: (&str, &str), f: impl FnOnce(&mut State) -> T) -> T {
        let mut inner = self.lock();
        let state = inner
            .states
            .entry((key.0.to_string(), key.1.to_string()))
            .or_insert(State::Closed { failures: VecDeque::new() });
        f(state)
    }

    /// Whether the entity may get this request; taking the half-open probe slot if so.
    pub fn allow(&self, endpoint: &str, entity: &str, now: Instant) -> bool {
        let probe_timeout = self.settings.probe_timeout;
        self.with((endpoint, entity), |s| match s {
            State::Closed { .. } => true,
            State::Open { until } if now >= *until => {
                *s = State::HalfOpen { probe_since: Some(now) };
                true
            }
            State::Open { .. } => false,
            State::HalfOpen { probe_since } => match probe_since {
                Some(since) if now.duration_since(*since) < probe_timeout => false,
                _ => {
                    *probe_since = Some(now);
                    true
                }
            },
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

    /// Records a failed request (call it once per request, not per retry); `retry_after` may
    /// lengthen the cool-down. Returns true if this opened the breaker.
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
            if let State::HalfOpen { probe_since } = s {
                *probe_since = None;
            }
        });
    }

    /// The breaker's status, for state messages and metrics.
    pub fn status(&self, endpoint: &str, entity: &str, now: Instant) -> Status {
        let inner = self.lock();
        match inner.states.get(&(endpoint.to_string(), entity.to_string())) {
            None | Some(State::Closed { .. }) => Status::Closed,
            Some(State::Open { until }) if *until > now => Status::Open(*until - now),
            Some(State::Open { .. }) | Some(State::HalfOpen { probe_since: None }) => Status::HalfOpen,
            Some(State::HalfOpen { probe_since: Some(since) }) => {
                if now.duration_since(*since) < self.settings.probe_timeout {
                    Status::Probing
                } else {
                    Status::HalfOpen
                }
            }
        }
    }

    /// Keeps the state of the entities in `live` ((endpoint id, entity name) and a fingerprint of
    /// its config) and forgets the rest: a deleted entity, or one whose config changed, starts
    /// closed.
    pub fn sync(&self, live: impl IntoIterator<Item = (Key, u64)>) {
        let live: HashMap<Key, u64> = live.into_iter().collect();
        let mut inner = self.lock();
        let Inner { states, fingerprints } = &mut *inner;
        states.retain(|k, _| live.get(k).is_some_and(|fp| fingerprints.get(k).is_none_or(|old| old == fp)));
        *fingerprints = live;
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
            probe_timeout: Duration::from_secs(60),
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

    #[test]
    fn a_cooled_breaker_without_traffic_is_not_reported_as_refusing() {
        let b = breakers();
        let t0 = Instant::now();
        for i in 0..3 {
            b.failure("e", "a", None, t0 + Duration::from_millis(i));
        }
        assert!(b.status("e", "a", t0 + Duration::from_secs(1)).refusing());
        let idle = t0 + Duration::from_secs(600);
        assert_eq!(b.status("e", "a", idle), Status::HalfOpen);
        assert!(!b.status("e", "a", idle).refusing(), "nothing is refused once the cool-down is over");
        assert!(b.allow("e", "a", idle));
        assert_eq!(b.status("e", "a", idle), Status::Probing);
    }

    #[test]
    fn an_abandoned_probe_frees_the_slot_after_the_probe_timeout() {
        let b = breakers();
        let t0 = Instant::now();
        for i in 0..3 {
            b.failure("e", "a", None, t0 + Duration::from_millis(i));
        }
        let probe = t0 + Duration::from_secs(6);
        assert!(b.allow("e", "a", probe));
        // The probe's client went away: no success, failure or release.
        assert!(!b.allow("e", "a", probe + Duration::from_secs(59)));
        assert!(b.allow("e", "a", probe + Duration::from_secs(61)), "a new probe after the timeout");
    }

    #[test]
    fn sync_forgets_removed_and_changed_entities() {
        let b = breakers();
        let t0 = Instant::now();
        for entity in ["a", "b", "c"] {
            for i in 0..3 {
                b.failure("e", entity, None, t0 + Duration::from_millis(i));
            }
        }
        let key = |n: &str| ("e".to_string(), n.to_string());
        b.sync([(key("a"), 1), (key("b"), 1), (key("c"), 1)]);
        let later = t0 + Duration::from_secs(1);
        assert!(b.status("e", "a", later).refusing(), "the first sync only records fingerprints");
        b.sync([(key("a"), 1), (key("b"), 2)]);
        assert!(b.status("e", "a", later).refusing(), "unchanged entity keeps its state");
        assert_eq!(b.status("e", "b", later), Status::Closed, "changed config starts closed");
        assert_eq!(b.status("e", "c", later), Status::Closed, "removed entity is forgotten");
    }
}
