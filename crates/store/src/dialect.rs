//! What differs between the two database engines. Everything else is one SQL text for both.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Sqlite};

use crate::Result;

/// The statements and expressions one engine spells its own way.
pub(crate) trait Dialect: sqlx::Database {
    /// A row when the table named `$1` exists (an unmigrated database has none).
    const TABLE_EXISTS: &'static str;
    /// The endpoint named `$1`, locked until the transaction ends where the engine locks rows.
    const ENDPOINT_FOR_UPDATE: &'static str;
    /// The pending version of the endpoint with id `$1`, locked likewise.
    const PENDING_VERSION_FOR_UPDATE: &'static str;
    /// A row when the secret scope `$1` exists, locked likewise (so the per-scope count holds).
    const SCOPE_FOR_UPDATE: &'static str;
    /// Whether a statement of many parameters numbers them (`$1`, `$2`, ...) rather than writing
    /// `?` for each. SQLite takes both, but sqlx looks up the name of every numbered one, and
    /// SQLite finds a name by walking the statement's list: quadratic in a multi-row `INSERT`.
    const NUMBERED_PARAMETERS: bool;

    /// The control-plane migrations.
    fn control_migrator() -> Migrator;
    /// The usage-record migrations.
    fn usage_migrator() -> Migrator;
    /// The inference-table migrations.
    fn inference_migrator() -> Migrator;

    /// `request_time` (ms since the epoch) as the label of its UTC `bucket`.
    fn bucket_label(bucket: crate::Bucket) -> &'static str;
    /// The value of a top-level key of the JSON object in `column`, as SQL, with the JSON path or
    /// key bound next; keys are restricted to characters that need no quoting.
    fn json_field(column: &str) -> String;
    /// The bound parameter for [`Dialect::json_field`] of key `key`.
    fn json_key(key: &str) -> String;
}

impl Dialect for Sqlite {
    const TABLE_EXISTS: &'static str = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1";
    // SQLite takes the database's write lock with the transaction's first write, and the store's
    // single writer connection serialises these transactions anyway.
    const ENDPOINT_FOR_UPDATE: &'static str = "SELECT * FROM endpoints WHERE name = $1";
    const PENDING_VERSION_FOR_UPDATE: &'static str = "SELECT pending_version FROM endpoints WHERE id = $1";
    const SCOPE_FOR_UPDATE: &'static str = "SELECT 1 FROM secret_scopes WHERE name = $1";
    const NUMBERED_PARAMETERS: bool = false;

    fn control_migrator() -> Migrator {
        sqlx::migrate!("./migrations/sqlite")
    }

    fn usage_migrator() -> Migrator {
        sqlx::migrate!("./migrations/usage")
    }

    fn inference_migrator() -> Migrator {
        sqlx::migrate!("./migrations/inference")
    }

    fn bucket_label(bucket: crate::Bucket) -> &'static str {
        use crate::Bucket::*;
        match bucket {
            Hour => "strftime('%Y-%m-%dT%H:00:00Z', request_time / 1000, 'unixepoch')",
            Day => "date(request_time / 1000, 'unixepoch')",
            Week => "date(request_time / 1000, 'unixepoch', 'weekday 0', '-6 days')",
            Month => "strftime('%Y-%m', request_time / 1000, 'unixepoch')",
        }
    }

    fn json_field(column: &str) -> String {
        format!("json_extract({column}, ")
    }

    fn json_key(key: &str) -> String {
        format!("$.\"{key}\"")
    }
}

impl Dialect for Postgres {
    const TABLE_EXISTS: &'static str =
        "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1";
    const ENDPOINT_FOR_UPDATE: &'static str = "SELECT * FROM endpoints WHERE name = $1 FOR UPDATE";
    const PENDING_VERSION_FOR_UPDATE: &'static str = "SELECT pending_version FROM endpoints WHERE id = $1 FOR UPDATE";
    const SCOPE_FOR_UPDATE: &'static str = "SELECT 1 FROM secret_scopes WHERE name = $1 FOR UPDATE";
    const NUMBERED_PARAMETERS: bool = true;

    fn control_migrator() -> Migrator {
        sqlx::migrate!("./migrations/postgres/control")
    }

    // The usage and inference tables may live in the control plane's database: each set keeps
    // its applied versions in a table of its own.
    fn usage_migrator() -> Migrator {
        let mut m = sqlx::migrate!("./migrations/postgres/usage");
        m.dangerous_set_table_name("_modelgate_usage_migrations");
        m
    }

    fn inference_migrator() -> Migrator {
        let mut m = sqlx::migrate!("./migrations/postgres/inference");
        m.dangerous_set_table_name("_modelgate_inference_migrations");
        m
    }

    fn bucket_label(bucket: crate::Bucket) -> &'static str {
        use crate::Bucket::*;
        match bucket {
            Hour => "to_char(to_timestamp(request_time / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:00:00\"Z\"')",
            Day => "to_char(to_timestamp(request_time / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            Week => "to_char(date_trunc('week', to_timestamp(request_time / 1000) AT TIME ZONE 'UTC'), 'YYYY-MM-DD')",
            Month => "to_char(to_timestamp(request_time / 1000) AT TIME ZONE 'UTC', 'YYYY-MM')",
        }
    }

    fn json_field(column: &str) -> String {
        format!("(CAST({column} AS jsonb) ->> ")
    }

    fn json_key(key: &str) -> String {
        key.to_string()
    }
}

/// A PostgreSQL pool of at most `max` connections that gives up on an unreachable server within
/// seconds (callers on the request path never wait on it; the rest report the error).
pub(crate) async fn postgres_pool(options: PgConnectOptions, max: u32) -> Result<PgPool> {
    Ok(PgPoolOptions::new().max_connections(max).acquire_timeout(Duration::from_secs(5)).connect_with(options).await?)
}
