//! What replicas sharing a PostgreSQL database use to coordinate: a feed of configuration
//! changes (a generation counter plus `NOTIFY`) and leases for jobs that must run on one replica
//! at a time (session advisory locks).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::Result;

/// The `NOTIFY` channel of configuration changes.
const CHANNEL: &str = "modelgate_changes";

/// Announces and hears configuration changes.
#[derive(Clone)]
pub struct ChangeFeed {
    pool: PgPool,
    url: String,
}

/// A change another replica (or this one) announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Who made it.
    pub replica: String,
    /// The configuration generation it produced.
    pub generation: i64,
}

impl ChangeFeed {
    /// Connects to the database at `url` (already migrated by the control-plane store).
    pub async fn connect(url: &str) -> Result<ChangeFeed> {
        let pool = crate::dialect::postgres_pool(PgConnectOptions::from_str(url)?, 2).await?;
        Ok(ChangeFeed { pool, url: url.to_string() })
    }

    /// Counts a committed change and tells every listening replica; returns the new generation.
    pub async fn announce(&self, replica: &str) -> Result<i64> {
        let generation: String = sqlx::query_scalar(
            "INSERT INTO meta (key, value) VALUES ('config_generation', '1') ON CONFLICT (key) \
             DO UPDATE SET value = CAST(CAST(meta.value AS BIGINT) + 1 AS TEXT) RETURNING value",
        )
        .fetch_one(&self.pool)
        .await?;
        let generation = generation.parse().unwrap_or(0);
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(format!("{replica} {generation}"))
            .execute(&self.pool)
            .await?;
        Ok(generation)
    }

    /// The current configuration generation (0 before the first change).
    pub async fn generation(&self) -> Result<i64> {
        let value: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'config_generation'")
            .fetch_optional(&self.pool)
            .await?;
        Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// Starts hearing announcements.
    pub async fn listen(&self) -> Result<ChangeListener> {
        let mut listener = PgListener::connect(&self.url).await?;
        listener.listen(CHANNEL).await?;
        Ok(ChangeListener { listener })
    }
}

/// A connection that hears announcements.
pub struct ChangeListener {
    listener: PgListener,
}

impl ChangeListener {
    /// The next announcement; `Ok(None)` when the connection was lost and re-established, so
    /// announcements may have been missed (reload everything).
    pub async fn next(&mut self) -> Result<Option<Change>> {
        let Some(n) = self.listener.try_recv().await? else { return Ok(None) };
        Ok(Some(change_of(&n)))
    }

    /// An announcement already received, without waiting: a burst of changes is taken whole and
    /// rebuilt for once.
    pub fn next_buffered(&mut self) -> Option<Change> {
        self.listener.next_buffered().map(|n| change_of(&n))
    }
}

fn change_of(n: &sqlx::postgres::PgNotification) -> Change {
    let (replica, generation) = n.payload().split_once(' ').unwrap_or((n.payload(), "0"));
    Change { replica: replica.to_string(), generation: generation.parse().unwrap_or(0) }
}

/// A job that runs on one replica at a time: held while its connection lives, so a replica that
/// dies (its connection closes) lets another take it at once.
pub struct Lease {
    conn: PgConnection,
}

impl Lease {
    /// Takes the lease `key` if no other session holds it.
    pub async fn try_take(url: &str, key: i64) -> Result<Option<Lease>> {
        let options = PgConnectOptions::from_str(url)?;
        let mut conn = tokio::time::timeout(Duration::from_secs(5), options.connect())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(key).fetch_one(&mut conn).await?;
        if taken {
            Ok(Some(Lease { conn }))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// Whether the lease is still held: a session lock lasts as long as its connection, so this is
    /// whether the connection answers within `timeout`.
    pub async fn holds(&mut self, timeout: Duration) -> bool {
        let ping = sqlx::query("SELECT 1").execute(&mut self.conn);
        matches!(tokio::time::timeout(timeout, ping).await, Ok(Ok(_)))
    }

    /// Gives the lease back.
    pub async fn release(self) {
        let _ = self.conn.close().await;
    }
}
