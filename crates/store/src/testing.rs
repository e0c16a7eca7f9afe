//! Fresh PostgreSQL databases for tests (feature `testing`).
//!
//! The server is `MODELGATE_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//! each [`TestDatabase`] is a new database there, dropped when the value is.

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;

/// The server tests create their databases on.
pub fn server_url() -> String {
    std::env::var("MODELGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Whether tests should run the server on PostgreSQL (`MODELGATE_TEST_STORE=postgres`).
pub fn postgres_requested() -> bool {
    std::env::var("MODELGATE_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// An empty database that lives as long as this value.
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    name: String,
}

impl TestDatabase {
    /// Creates a new empty database.
    ///
    /// # Panics
    /// When the test server cannot be reached: a test that needs PostgreSQL fails rather than
    /// passing without it.
    #[allow(clippy::expect_used, reason = "test support: a failure here fails the test")]
    pub async fn create() -> TestDatabase {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let name = format!("mgtest_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let admin = PgConnectOptions::from_str(&server_url()).expect("MODELGATE_TEST_POSTGRES_URL parses");
        let mut conn = admin.connect().await.expect("the test PostgreSQL server answers");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        let url = admin.database(&name).to_url_lossy().to_string();
        TestDatabase { url, name }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop may run inside a runtime that is shutting down: a thread of its own does the work.
        let name = std::mem::take(&mut self.name);
        let worker = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                let Ok(admin) = PgConnectOptions::from_str(&server_url()) else { return };
                if let Ok(mut conn) = admin.connect().await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
                }
            });
        });
        let _ = worker.join();
    }
}
