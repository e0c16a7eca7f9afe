//! Replicas of one install on a shared PostgreSQL database: every committed change reaches every
//! replica's snapshot (a `NOTIFY` at once, a generation counter polled as the safety net), and
//! the jobs that must run once (alert evaluation and notification, deployments, retention) run
//! on the replica that holds the leader lease. On SQLite there is one replica, always the leader.
//! The loops that follow the changes and hold the lease are in `background::cluster`.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use modelgate_core::now_ms;
use modelgate_store::cluster::ChangeFeed;

/// This replica's place among the others.
pub struct Cluster {
    /// Names this process in change announcements.
    pub replica: String,
    feed: Option<ChangeFeed>,
    url: Option<String>,
    leader: Arc<AtomicBool>,
    /// The configuration generation the snapshot reflects.
    seen: AtomicI64,
    /// When the snapshot was last known to be current, ms.
    checked_at: AtomicI64,
    /// Why the database did not answer the last time it was asked, if it did not.
    database_error: Mutex<Option<String>>,
}

impl Cluster {
    /// One replica on its own database: always the leader, nothing to announce.
    pub fn single() -> Cluster {
        Cluster {
            replica: modelgate_core::token::random_hex(8),
            feed: None,
            url: None,
            leader: Arc::new(AtomicBool::new(true)),
            seen: AtomicI64::new(0),
            checked_at: AtomicI64::new(now_ms()),
            database_error: Mutex::new(None),
        }
    }

    /// A replica of an install on the PostgreSQL database at `url`.
    pub async fn shared(url: &str) -> Result<Cluster, modelgate_store::StoreError> {
        let feed = ChangeFeed::connect(url).await?;
        let seen = feed.generation().await?;
        Ok(Cluster {
            replica: modelgate_core::token::random_hex(8),
            feed: Some(feed),
            url: Some(url.to_string()),
            leader: Arc::new(AtomicBool::new(false)),
            seen: AtomicI64::new(seen),
            checked_at: AtomicI64::new(now_ms()),
            database_error: Mutex::new(None),
        })
    }

    /// The flag [`Cluster::is_leader`] reads, for the deploy queue.
    pub fn leader_flag(&self) -> Arc<AtomicBool> {
        self.leader.clone()
    }

    /// Whether other replicas share the database.
    pub fn is_shared(&self) -> bool {
        self.feed.is_some()
    }

    /// Whether this replica runs the once-per-install jobs now.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    /// Tells the other replicas that a change was committed (its snapshot here is rebuilt).
    /// A failure is logged: the others still see the change at their next poll.
    pub async fn announce(&self) {
        let Some(feed) = &self.feed else { return };
        match feed.announce(&self.replica).await {
            Ok(generation) => {
                self.seen.fetch_max(generation, Ordering::AcqRel);
            }
            Err(e) => tracing::warn!(error = %e, "could not announce a configuration change to the other replicas"),
        }
    }

    /// Seconds since the snapshot was last known to be current (0 on a single replica, whose
    /// snapshot is rebuilt with every change).
    pub fn snapshot_age_secs(&self) -> f64 {
        if !self.is_shared() {
            return 0.0;
        }
        (now_ms() - self.checked_at.load(Ordering::Acquire)).max(0) as f64 / 1000.0
    }

    /// The change feed and the database URL, on a shared database.
    pub fn feed(&self) -> Option<(&ChangeFeed, &str)> {
        self.feed.as_ref().zip(self.url.as_deref())
    }

    /// The configuration generation the snapshot reflects.
    pub fn seen(&self) -> i64 {
        self.seen.load(Ordering::Acquire)
    }

    /// The snapshot now reflects generation `g` (or a later one).
    pub fn saw(&self, g: i64) {
        self.seen.fetch_max(g, Ordering::AcqRel);
    }

    /// Whether this replica leads from now on.
    pub fn set_leader(&self, leads: bool) {
        self.leader.store(leads, Ordering::Release);
    }

    /// Whether the database answered (the snapshot is then current), or why not.
    pub fn record(&self, outcome: Result<(), String>) {
        let mut error = self.database_error.lock().unwrap_or_else(|e| e.into_inner());
        match outcome {
            Ok(()) => {
                if error.take().is_some() {
                    tracing::info!("the database answers again");
                }
                self.checked_at.store(now_ms(), Ordering::Release);
            }
            Err(e) => {
                if error.is_none() {
                    tracing::error!(error = %e, "the database does not answer: serving from the last snapshot");
                }
                *error = Some(e);
            }
        }
    }
}
