//! The connection pools of a log database (usage records, inference payloads): on SQLite a file of
//! its own beside the configuration database, so heavy logging never waits on config reads or
//! writes; on PostgreSQL a pool of its own.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Database, Pool, Postgres, Sqlite};

use crate::Result;

/// Where batches are written and where reports read.
pub(crate) struct LogPools<DB: Database> {
    pub writer: Pool<DB>,
    pub reader: Pool<DB>,
}

impl<DB: Database> LogPools<DB> {
    /// Closes both pools.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

impl LogPools<Sqlite> {
    /// Opens the database at `path`, creating it and applying `migrations`: one writer connection
    /// (SQLite takes one writer at a time anyway) and two readers, in WAL mode so reports read
    /// while batches are written.
    pub async fn open(path: &Path, migrations: Migrator) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        migrations.run(&writer).await?;
        let reader = SqlitePoolOptions::new().max_connections(2).connect_with(options.read_only(true)).await?;
        Ok(LogPools { writer, reader })
    }
}

impl LogPools<Postgres> {
    /// Connects to the database at `url` and applies `migrations`; batches and reports share a
    /// small pool (the server writes one batch at a time).
    pub async fn connect(url: &str, migrations: Migrator) -> Result<Self> {
        let pool = crate::dialect::postgres_pool(PgConnectOptions::from_str(url)?, 4).await?;
        migrations.run(&pool).await?;
        Ok(LogPools { writer: pool.clone(), reader: pool })
    }
}
