//! The connection pools of a log database (usage records, inference payloads): a file of its own
//! beside the configuration database, so heavy logging never waits on config reads or writes.

use std::path::Path;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::Result;

/// One writer connection (SQLite takes one writer at a time anyway) and two readers, in WAL mode
/// so reports read while batches are written.
#[derive(Clone)]
pub(crate) struct LogPools {
    pub writer: SqlitePool,
    pub reader: SqlitePool,
}

impl LogPools {
    /// Opens the database at `path`, creating it and applying `migrations`.
    pub async fn open(path: &Path, migrations: &Migrator) -> Result<Self> {
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

    /// Closes both pools.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}
