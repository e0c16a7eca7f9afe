//! Rate-limit counters behind an interface: in-process now, a shared store (Redis) for several
//! replicas later.
//!
//! Windows are fixed calendar minutes (`renewal_period: minute`). A reservation names every counter
//! a request touches and succeeds for all of them or none, so concurrent requests can never push a
//! counter past its limit.

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

/// Counter storage.
pub trait Counters: Send + Sync {
    /// Adds every want in window `window` if all fit under their limits; otherwise adds nothing.
    fn reserve(&self, window: u64, wants: &[Want]) -> Result<(), Refusal>;
    /// Changes a counter by `delta` (settling an estimate; may be negative).
    fn adjust(&self, window: u64, key: &str, delta: i64);
    /// The value of a counter.
    fn get(&self, window: u64, key: &str) -> u64;
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
}

impl Counters for LocalCounters {
    fn reserve(&self, window: u64, wants: &[Want]) -> Result<(), Refusal> {
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

    fn adjust(&self, window: u64, key: &str, delta: i64) {
        self.with(window, |map| {
            let v = map.entry(key.to_string()).or_insert(0);
            *v = v.saturating_add_signed(delta);
        });
    }

    fn get(&self, window: u64, key: &str) -> u64 {
        self.with(window, |map| map.get(key).copied().unwrap_or(0))
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
