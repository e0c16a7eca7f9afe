//! Where a database lives, and opening each of modelgate's databases there.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{InferenceDb, PostgresStore, Result, SqliteStore, Store, UsageDb};

/// A database: a SQLite file, or a PostgreSQL database by URL.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file (created if missing).
    Sqlite(PathBuf),
    /// `postgres://user:password@host:port/database?sslmode=...`.
    Postgres(String),
}

impl Location {
    /// A PostgreSQL URL, checked for its scheme so a typo is caught before anything connects.
    pub fn postgres(url: &str) -> std::result::Result<Location, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("'{}' is not a URL: {e}", redacted(url)))?;
        match parsed.scheme() {
            "postgres" | "postgresql" => Ok(Location::Postgres(url.to_string())),
            other => Err(format!(
                "'{}': the scheme must be postgres:// (not {other}://), e.g. postgres://modelgate@db.internal:5432/modelgate",
                redacted(url)
            )),
        }
    }

    /// Opens the control-plane store here (not migrated: see [`Store::migrate`]).
    pub async fn open_store(&self) -> Result<Arc<dyn Store>> {
        Ok(match self {
            Location::Sqlite(path) => Arc::new(SqliteStore::open(path).await?),
            Location::Postgres(url) => Arc::new(PostgresStore::connect(url).await?),
        })
    }

    /// Opens (and migrates) the usage tables here.
    pub async fn open_usage(&self) -> Result<UsageDb> {
        match self {
            Location::Sqlite(path) => UsageDb::open(path).await,
            Location::Postgres(url) => UsageDb::connect(url).await,
        }
    }

    /// Opens (and migrates) the inference tables here.
    pub async fn open_inference(&self) -> Result<InferenceDb> {
        match self {
            Location::Sqlite(path) => InferenceDb::open(path).await,
            Location::Postgres(url) => InferenceDb::connect(url).await,
        }
    }
}

/// The file, or the URL without its password: safe for logs and error messages.
impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(url) => f.write_str(&redacted(url)),
        }
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Location({self})")
    }
}

/// `url` with its password (in the authority or a `password=` parameter) replaced by `***`; text
/// that does not parse is withheld whole, as it may be a password in the wrong place.
pub fn redacted(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "<a database URL that does not parse>".to_string();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| {
            let secret = k.eq_ignore_ascii_case("password");
            (k.into_owned(), if secret { "***".to_string() } else { v.into_owned() })
        })
        .collect();
    if !pairs.is_empty() {
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let l = Location::postgres("postgres://mg:s3cret@db:5432/mg?sslmode=require&password=other").unwrap();
        let shown = format!("{l} {l:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("other"), "{shown}");
        assert!(shown.contains("postgres://mg:***@db:5432/mg") && shown.contains("sslmode=require"), "{shown}");
        assert_eq!(redacted("not a url s3cret"), "<a database URL that does not parse>");
    }

    #[test]
    fn only_postgres_urls_are_taken() {
        let e = Location::postgres("mysql://u:pw@db/x").unwrap_err();
        assert!(e.contains("postgres://") && !e.contains("pw"), "{e}");
        assert!(Location::postgres("postgresql://db/x").is_ok());
    }
}
