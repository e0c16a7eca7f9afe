//! Rate-limit counters: in-process for one replica, or shared by every replica in Redis.
//!
//! Windows are fixed calendar minutes (`renewal_period: minute`). A reservation names every counter
//! a request touches and succeeds for all of them or none, so concurrent requests can never push a
//! counter past its limit: in-process under one lock, in Redis in one script (one round trip).
//!
//! When Redis does not answer, each replica counts on its own ([`LocalCounters`]) until it does
//! again: the limits then hold per replica, not across them (see docs/ratelimits.md). A
//! reservation is settled where it was made.

use std::collections::HashMap;
use std::sync::Mutex;

/// One counter a request wants to use.
#[derive(Debug, Clone)]
pub struct Want {
    /// Counter key.
    pub key: String,
    /// Amount to add.
    pub amount: u64,
    /// Limit of the counter in this window.
    pub limit: u64,
}

/// Why a reservation was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The counter that is full.
    pub key: String,
    /// Its limit.
    pub limit: u64,
    /// What it holds.
    pub used: u64,
}

/// In-process counters for one replica.
#[derive(Default)]
pub struct LocalCounters {
    inner: Mutex<(u64, HashMap<String, u64>)>,
}

impl LocalCounters {
    fn with<T>(&self, window: u64, f: impl FnOnce(&mut HashMap<String, u64>) -> T) -> T {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // A new window starts from zero; older windows are never consulted again.
        if guard.0 != window {
            *guard = (window, HashMap::new());
        }
        f(&mut guard.1)
    }

    /// Adds every want in window `window` if all fit under their limits; otherwise adds nothing.
    pub fn reserve(&self, window: u64, wants: &[Want]) -> Result<(), Refusal> {
        self.with(window, |map| {
            for w in wants {
                let used = map.get(&w.key).copied().unwrap_or(0);
                if used + w.amount > w.limit {
                    return Err(Refusal { key: w.key.clone(), limit: w.limit, used });
                }
            }
            for w in wants {
                *map.entry(w.key.clone()).or_insert(0) += w.amount;
            }
            Ok(())
        })
    }

    /// Changes a counter by `delta` (settling an estimate; may be negative).
    pub fn adjust(&self, window: u64, key: &str, delta: i64) {
        self.with(window, |map| {
            let v = map.entry(key.to_string()).or_insert(0);
            *v = v.saturating_add_signed(delta);
        });
    }

    /// The value of a counter.
    pub fn get(&self, window: u64, key: &str) -> u64 {
        self.with(window, |map| map.get(key).copied().unwrap_or(0))
    }
}

/// Where a reservation was made, to settle it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// This replica's counters.
    #[default]
    Local,
    /// The counters every replica shares.
    Shared,
}

/// The server's counters: shared in Redis when configured and reachable, else this replica's.
pub struct Counters {
    local: LocalCounters,
    shared: Option<super::shared::SharedCounters>,
}

impl Counters {
    /// This replica's counters only.
    pub fn local() -> Self {
        Counters { local: LocalCounters::default(), shared: None }
    }

    /// Counters shared through `shared`, falling back to this replica's when it is down.
    pub fn shared(shared: super::shared::SharedCounters) -> Self {
        Counters { local: LocalCounters::default(), shared: Some(shared) }
    }

    /// The shared counters, if configured.
    pub fn shared_store(&self) -> Option<&super::shared::SharedCounters> {
        self.shared.as_ref()
    }

    /// Adds every want if all fit under their limits; otherwise adds nothing. Returns where.
    pub async fn reserve(&self, window: u64, wants: &[Want]) -> Result<Backend, Refusal> {
        if let Some(shared) = self.shared.as_ref().filter(|s| s.up())
            && let Some(outcome) = shared.reserve(window, wants).await
        {
            return outcome.map(|()| Backend::Shared);
        }
        self.local.reserve(window, wants).map(|()| Backend::Local)
    }

    /// Changes a counter where its reservation was made (in the background when shared).
    pub fn adjust(&self, backend: Backend, window: u64, key: &str, delta: i64) {
        match (backend, &self.shared) {
            (Backend::Shared, Some(shared)) => shared.adjust(window, key, delta),
            _ => self.local.adjust(window, key, delta),
        }
    }

    /// The value of a counter: the shared one when it answers, else this replica's.
    pub async fn get(&self, window: u64, key: &str) -> u64 {
        if let Some(shared) = self.shared.as_ref().filter(|s| s.up())
            && let Some(v) = shared.get(window, key).await
        {
            return v;
        }
        self.local.get(window, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(key: &str, amount: u64, limit: u64) -> Want {
        Want { key: key.into(), amount, limit }
    }

    #[test]
    fn all_or_nothing_and_windows_reset() {
        let c = LocalCounters::default();
        assert!(c.reserve(1, &[want("ep", 1, 2), want("user", 1, 1)]).is_ok());
        let refused = c.reserve(1, &[want("ep", 1, 2), want("user", 1, 1)]).unwrap_err();
        assert_eq!(refused, Refusal { key: "user".into(), limit: 1, used: 1 });
        assert_eq!(c.get(1, "ep"), 1, "a refused reservation adds nothing");
        c.adjust(1, "ep", -1);
        assert_eq!(c.get(1, "ep"), 0);
        assert!(c.reserve(2, &[want("user", 1, 1)]).is_ok(), "a new minute starts from zero");
    }
}
