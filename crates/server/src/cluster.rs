//! Replicas of one install on a shared PostgreSQL database: every committed change reaches every
//! replica's snapshot (a `NOTIFY` at once, a generation counter polled as the safety net), and
//! the jobs that must run once (alert evaluation and notification, deployments, retention) run
//! on the replica that holds the leader lease. On SQLite there is one replica, always the leader.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use modelgate_core::now_ms;
use modelgate_store::cluster::{ChangeFeed, Lease};
use tokio::sync::watch;

use crate::state::AppState;

/// The advisory-lock key of the leader lease ("mgleader" in ASCII, so it never collides with an
/// application's small integers).
const LEADER_KEY: i64 = 0x6d67_6c65_6164_6572;
/// How often the generation is polled, and the lease taken or checked.
const TICK: Duration = Duration::from_secs(1);

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

    fn record(&self, outcome: Result<(), String>) {
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

/// Rebuilds this replica's snapshot (and budgets) after another replica's change; `generation`
/// is what the database said before the rebuild began.
async fn catch_up(app: &AppState, generation: Option<i64>) {
    match app.reload().await {
        Ok(()) => {
            if let Some(g) = generation {
                app.cluster.seen.fetch_max(g, Ordering::AcqRel);
            }
            app.cluster.record(Ok(()));
        }
        Err(e) => app.cluster.record(Err(e.to_string())),
    }
}

/// Follows the other replicas' changes until `stop`.
pub async fn follow(app: AppState, mut stop: watch::Receiver<bool>) {
    let Some(feed) = app.cluster.feed.clone() else { return };
    let mut listener = None;
    let mut tick = tokio::time::interval(TICK);
    loop {
        if listener.is_none() {
            match feed.listen().await {
                Ok(l) => {
                    listener = Some(l);
                    // Whatever was announced while nobody listened.
                    catch_up(&app, None).await;
                }
                Err(e) => app.cluster.record(Err(e.to_string())),
            }
        }
        let heard = async {
            match listener.as_mut() {
                Some(l) => l.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.changed() => return,
            heard = heard => match heard {
                Ok(Some(first)) => {
                    // The whole burst, then one rebuild for all of it.
                    let mut newest = None;
                    let mut change = Some(first);
                    while let Some(c) = change {
                        if c.replica != app.cluster.replica {
                            newest = newest.max(Some(c.generation));
                        }
                        change = listener.as_mut().and_then(|l| l.next_buffered());
                    }
                    if newest.is_some() {
                        catch_up(&app, newest).await;
                    }
                }
                // The connection was re-established: announcements may have been missed.
                Ok(None) => catch_up(&app, None).await,
                Err(e) => {
                    listener = None;
                    app.cluster.record(Err(e.to_string()));
                }
            },
            _ = tick.tick() => match feed.generation().await {
                Ok(g) if g != app.cluster.seen.load(Ordering::Acquire) => catch_up(&app, Some(g)).await,
                Ok(_) => app.cluster.record(Ok(())),
                Err(e) => app.cluster.record(Err(e.to_string())),
            },
        }
        if app.cluster.is_leader() {
            crate::background::deployer::adopt_pending(&app).await;
        }
    }
}

/// Takes the leader lease when nobody holds it, and keeps it while its connection lives, until
/// `stop`.
pub async fn lead(app: AppState, mut stop: watch::Receiver<bool>) {
    let Some(url) = app.cluster.url.clone() else { return };
    let mut lease: Option<Lease> = None;
    loop {
        match lease.as_mut() {
            None => match Lease::try_take(&url, LEADER_KEY).await {
                Ok(Some(l)) => {
                    lease = Some(l);
                    app.cluster.leader.store(true, Ordering::Release);
                    tracing::info!(replica = %app.cluster.replica, "this replica leads: alerts, deployments and retention run here");
                    crate::background::deployer::adopt_pending(&app).await;
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "could not try the leader lease"),
            },
            Some(l) => {
                if !l.holds(TICK * 2).await {
                    app.cluster.leader.store(false, Ordering::Release);
                    lease = None;
                    tracing::warn!("lost the leader lease (the database connection failed); another replica may lead");
                }
            }
        }
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(TICK) => {}
        }
    }
    app.cluster.leader.store(false, Ordering::Release);
    if let Some(l) = lease {
        l.release().await;
    }
}
