//! Provisioned throughput of a foundation model: capacity in tokens per second, held in whole
//! bands between the entity's floor and ceiling, and billed by the band-hour.
//!
//! Admission is a GCRA (virtual scheduling) on tokens: each query moves a theoretical arrival time
//! forward by its tokens at the current rate; up to one second of tokens may arrive at once.
//! Beyond that a query waits its turn (at most [`QUEUE_WAIT`], in a bounded queue) or is refused
//! with 429 and the time until it would fit. A query whose turn would have to wait takes another
//! band first, up to the ceiling; bands above the floor are given back once the traffic of a whole
//! hold period would have fitted in fewer. A query is admitted on its estimated tokens and settled
//! to what it really used, so a bad estimate moves the next queries' turns, not the capacity.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use modelgate_core::foundation::Provisioned;

use super::replicas::Refusal;

/// Longest a query waits for its turn before it is refused.
pub const QUEUE_WAIT: Duration = Duration::from_secs(2);
/// Most queries waiting for their turn.
pub const QUEUE: usize = 256;
/// Tokens that may arrive at once: this long at the current rate.
const BURST: Duration = Duration::from_secs(1);

/// Who a throughput's band-hours are billed to.
#[derive(Debug, Clone)]
pub struct Billing {
    /// The endpoint, by id.
    pub endpoint_id: String,
    /// The served entity.
    pub entity: String,
    /// The foundation model.
    pub model: String,
    /// USD per band-hour.
    pub band_usd_per_hour: f64,
}

/// Band-time of a throughput not billed yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    /// Band-seconds since the last charge.
    pub band_seconds: f64,
    /// Bands held now.
    pub bands: u64,
}

struct State {
    bands: u64,
    /// The theoretical arrival time of the next token.
    tat: Instant,
    waiting: usize,
    /// Tokens admitted since `window_start`, to decide when to give back bands.
    window_tokens: u64,
    window_start: Instant,
    /// Band-seconds accrued up to `accrued_at`, not billed yet.
    band_seconds: f64,
    accrued_at: Instant,
}

impl State {
    fn accrue(&mut self, now: Instant) {
        self.band_seconds += self.bands as f64 * now.saturating_duration_since(self.accrued_at).as_secs_f64();
        self.accrued_at = now;
    }

    fn set_bands(&mut self, bands: u64, now: Instant) {
        self.accrue(now);
        self.bands = bands;
        self.window_tokens = 0;
        self.window_start = now;
    }
}

/// The provisioned throughput of one served entity.
pub struct Throughput {
    /// Tokens per second of one band.
    band: u64,
    limits: Provisioned,
    /// How long traffic must fit in fewer bands before one is given back.
    hold: Duration,
    /// Who pays.
    pub billing: Billing,
    state: Mutex<State>,
}

/// How a throughput stands, for the endpoint's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThroughputStatus {
    /// Bands held now.
    pub bands: u64,
    /// Tokens per second they give.
    pub tokens_per_second: u64,
    /// Queries waiting for their turn.
    pub waiting: usize,
}

/// A query's admitted tokens, settled to what it used.
pub struct Reservation {
    throughput: Arc<Throughput>,
    reserved: u64,
}

impl Reservation {
    /// Replaces the estimate with the tokens the query used: more moves later queries' turns
    /// back, fewer brings them forward (never before now).
    pub fn settle(self, used: u64) {
        if used == self.reserved {
            return;
        }
        let t = &self.throughput;
        let mut s = t.lock();
        let rate = (s.bands.max(1) * t.band) as f64;
        let now = Instant::now();
        if used > self.reserved {
            s.tat += Duration::from_secs_f64((used - self.reserved) as f64 / rate);
            s.window_tokens += used - self.reserved;
        } else {
            let back = Duration::from_secs_f64((self.reserved - used) as f64 / rate);
            s.tat = s.tat.checked_sub(back).unwrap_or(now).max(now);
            s.window_tokens = s.window_tokens.saturating_sub(self.reserved - used);
        }
    }
}

impl Throughput {
    /// A throughput of `limits` bands of `band` tokens/s, holding the floor from now.
    pub fn new(band: u64, limits: Provisioned, hold: Duration, billing: Billing) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Throughput {
            band: band.max(1),
            limits,
            hold,
            billing,
            state: Mutex::new(State {
                bands: limits.min_bands,
                tat: now,
                waiting: 0,
                window_tokens: 0,
                window_start: now,
                band_seconds: 0.0,
                accrued_at: now,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How it stands now.
    pub fn status(&self) -> ThroughputStatus {
        let mut s = self.lock();
        self.rebalance(&mut s, Instant::now());
        ThroughputStatus { bands: s.bands, tokens_per_second: s.bands * self.band, waiting: s.waiting }
    }

    /// Gives back bands the last hold period's traffic did not need, down to the floor.
    fn rebalance(&self, s: &mut State, now: Instant) {
        let elapsed = now.saturating_duration_since(s.window_start);
        if elapsed < self.hold {
            return;
        }
        let demand = s.window_tokens as f64 / elapsed.as_secs_f64().max(1e-3);
        let needed = ((demand / self.band as f64).ceil() as u64).clamp(self.limits.min_bands, self.limits.max_bands);
        if needed < s.bands {
            s.set_bands(needed, now);
        } else {
            s.window_tokens = 0;
            s.window_start = now;
        }
    }

    /// Admits a query of `tokens` (estimated): at once, after waiting its turn (at most
    /// [`QUEUE_WAIT`] and not past `deadline`), or refused with the seconds until it would fit.
    pub async fn acquire(self: &Arc<Self>, tokens: u64, deadline: std::time::Instant) -> Result<Reservation, Refusal> {
        let deadline = Instant::from_std(deadline);
        self.admit(tokens, deadline).await
    }

    async fn admit(self: &Arc<Self>, tokens: u64, deadline: Instant) -> Result<Reservation, Refusal> {
        let wait = {
            let mut s = self.lock();
            let now = Instant::now();
            self.rebalance(&mut s, now);
            if s.bands == 0 {
                s.set_bands(1, now);
            }
            let wait = loop {
                let start = s.tat.max(now);
                let step = Duration::from_secs_f64(tokens as f64 / (s.bands * self.band) as f64);
                // An idle throughput takes a query of any size; a busy one takes what fits in the burst.
                let due = (start + step).checked_sub(BURST).unwrap_or(now);
                if s.tat <= now || due <= now {
                    s.tat = start + step;
                    break Duration::ZERO;
                }
                if s.bands < self.limits.max_bands {
                    let more = s.bands + 1;
                    s.set_bands(more, now);
                    continue;
                }
                let wait = due - now;
                if wait > QUEUE_WAIT || s.waiting >= QUEUE || now + wait > deadline {
                    let beyond = wait.saturating_sub(QUEUE_WAIT).as_secs_f64().ceil() as u64;
                    return Err(Refusal::Busy { retry_after_secs: beyond.max(1) });
                }
                s.tat = start + step;
                s.waiting += 1;
                break wait;
            };
            s.window_tokens += tokens;
            wait
        };
        if !wait.is_zero() {
            // The turn is taken: a query that gives up while waiting still used it.
            let _left = Waiting(self);
            tokio::time::sleep(wait).await;
        }
        Ok(Reservation { throughput: self.clone(), reserved: tokens })
    }

    /// The band-time not billed yet, since the last charge; `None` if no band was held.
    pub fn charge(&self) -> Option<Charge> {
        let mut s = self.lock();
        let now = Instant::now();
        self.rebalance(&mut s, now);
        s.accrue(now);
        let band_seconds = std::mem::take(&mut s.band_seconds);
        (band_seconds > 0.0).then_some(Charge { band_seconds, bands: s.bands })
    }
}

/// Counts a query out of the queue when its wait ends or it gives up.
struct Waiting<'a>(&'a Throughput);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.waiting = s.waiting.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throughput(min_bands: u64, max_bands: u64, hold: Duration) -> Arc<Throughput> {
        let billing = Billing {
            endpoint_id: "e".into(),
            entity: "m".into(),
            model: "system.ai.x".into(),
            band_usd_per_hour: 1.0,
        };
        Throughput::new(100, Provisioned { min_bands, max_bands }, hold, billing)
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[tokio::test(start_paused = true)]
    async fn beyond_the_burst_queries_wait_their_turn_then_are_refused() {
        let t = throughput(1, 1, Duration::from_secs(300)); // 100 tokens/s
        let started = tokio::time::Instant::now();
        // One second of tokens goes at once.
        for _ in 0..4 {
            t.admit(25, far()).await.unwrap();
        }
        assert_eq!(started.elapsed(), Duration::ZERO);
        // The next 50 tokens wait half a second.
        t.admit(50, far()).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(500));
        // Now a second of tokens is queued ahead: 250 more would wait 2.5 s, more than the
        // queue's 2 s, and are refused with the time beyond it, rounded up.
        assert_eq!(t.admit(250, far()).await.err(), Some(Refusal::Busy { retry_after_secs: 1 }));
        // ... and a deadline sooner than the turn refuses too.
        assert!(t.admit(100, Instant::now() + Duration::from_millis(100)).await.is_err());
        assert_eq!(t.status(), ThroughputStatus { bands: 1, tokens_per_second: 100, waiting: 0 });
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_throughput_takes_a_query_of_any_size() {
        let t = throughput(1, 1, Duration::from_secs(300));
        t.admit(1000, far()).await.unwrap(); // ten seconds of tokens
        let r = t.admit(10, far()).await;
        assert_eq!(r.err(), Some(Refusal::Busy { retry_after_secs: 8 }), "9.1 s away, 7.1 beyond the queue");
    }

    #[tokio::test(start_paused = true)]
    async fn bands_grow_to_the_ceiling_and_shrink_to_the_floor() {
        let t = throughput(0, 3, Duration::from_secs(10));
        assert_eq!(t.status().bands, 0, "no band held while idle");
        t.admit(100, far()).await.unwrap();
        assert_eq!(t.status().bands, 1, "the first query takes one");
        // 200 more at once do not fit in one band's burst, nor in two: a third is taken.
        t.admit(200, far()).await.unwrap();
        assert_eq!(t.status().bands, 3);
        // A hold period whose traffic one band carries gives two back; a quiet one the last.
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(t.status().bands, 1);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(t.status().bands, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn band_time_is_charged_once() {
        let t = throughput(2, 2, Duration::from_secs(300));
        tokio::time::advance(Duration::from_secs(30)).await;
        let c = t.charge().unwrap();
        assert!((c.band_seconds - 60.0).abs() < 1e-6 && c.bands == 2, "{c:?}");
        assert!(t.charge().is_none_or(|c| c.band_seconds < 1e-6), "nothing charged twice");
    }

    #[tokio::test(start_paused = true)]
    async fn a_settled_reservation_moves_the_next_turns() {
        let t = throughput(1, 1, Duration::from_secs(300));
        let r = t.admit(100, far()).await.unwrap();
        r.settle(300); // it used three seconds' worth, not one
        let refused = t.admit(100, far()).await.err();
        assert_eq!(refused, Some(Refusal::Busy { retry_after_secs: 1 }), "a 3 s wait, 1 s beyond the queue");
        let t = throughput(1, 1, Duration::from_secs(300));
        t.admit(100, far()).await.unwrap().settle(0);
        let started = tokio::time::Instant::now();
        t.admit(100, far()).await.unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO, "an overestimate is given back");
    }
}
