//! Moving an install from its SQLite files to PostgreSQL (`modelgate migrate-store`): every row of
//! every table, in an order that satisfies the foreign keys, each table in one transaction, then
//! row counts compared.

use std::path::Path;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{PgPool, Postgres, QueryBuilder, Row, SqlitePool};

use crate::{Result, StoreError};

/// A table and its columns with their kinds: `t` text, `i` integer, `b` boolean, `r` real,
/// `x` bytes. Parents before children.
const CONTROL: &[(&str, &str)] = &[
    ("meta", "key:t value:t"),
    ("principals", "id:t kind:t name:t display_name:t active:b created_at:i"),
    ("group_members", "group_id:t member_id:t"),
    ("tokens", "token_id:t token_hash:t principal_id:t comment:t created_by:t created_at:i expires_at:i limits:t"),
    ("principal_passwords", "principal_id:t hash:t updated_at:i"),
    (
        "endpoints",
        "id:t name:t creator:t created_at:i updated_at:i task:t description:t budget_policy_id:t route_optimized:b \
         tags:t ai_gateway:t rate_limits:t email_notifications:t telemetry_config:t config_update:t stopped:b \
         latest_version:i active_version:i pending_version:i pending_since:i deprecation:t",
    ),
    ("endpoint_permissions", "endpoint_id:t principal_id:t level:t"),
    ("endpoint_configs", "endpoint_id:t version:i config:t creator:t created_at:i status:t build_log:t"),
    ("endpoint_settings_history", "change_id:i endpoint_id:t field:t before:t after:t changed_by:t changed_at:i"),
    ("secret_scopes", "name:t creator:t created_at:i"),
    ("scope_acls", "scope:t principal_id:t permission:t"),
    ("secrets", "scope:t key:t value:x updated_by:t updated_at:i"),
    ("documents", "kind:t id:t name:t body:t updated_at:i"),
    (
        "audit_log",
        "seq:i at:i principal:t principal_id:t token_id:t address:t method:t path:t object:t summary:t status:i \
         error_code:t",
    ),
    ("registered_models", "id:t name:t description:t creator:t created_at:i updated_at:i latest_version:i"),
    (
        "model_versions",
        "model_id:t version:i source:t runtime:t task:t command:t env:t content_hash:t description:t creator:t \
         created_at:i",
    ),
    ("model_permissions", "model_id:t principal_id:t level:t"),
];

const USAGE: &[(&str, &str)] = &[(
    "usage",
    "request_id:t client_request_id:t request_time:i endpoint_id:t endpoint_name:t served_entity:t provider:t model:t \
     requester:t requester_id:t status_code:i error_code:t streaming:b input_tokens:i output_tokens:i \
     cached_input_tokens:i cache_write_tokens:i reasoning_tokens:i latency_ms:r ttft_ms:r usage_context:t tags:t \
     cost_usd:r price_version:t upstream_status:i error_message:t attempts:i entities_tried:t billing:t images:i token_id:t",
)];

const INFERENCE: &[(&str, &str)] = &[(
    "payloads",
    "databricks_request_id:t endpoint_name:t request_date:t client_request_id:t request_time:i status_code:i \
     sampling_fraction:r execution_duration_ms:i request:t response:t logging_error_codes:t served_entity_id:t \
     requester:t cache_hit:b",
)];

/// Identity columns whose sequence must continue after the copied ids.
const IDENTITIES: &[(&str, &str)] = &[("audit_log", "seq"), ("endpoint_settings_history", "change_id")];

/// Rows per INSERT (PostgreSQL takes at most 65,535 parameters per statement).
const ROWS_PER_INSERT: usize = 500;

/// What was copied: rows per table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// `(table, rows)`, in copy order.
    pub tables: Vec<(String, u64)>,
}

/// The SQLite files of an install and where they go.
pub struct Transfer<'a> {
    /// The control plane's file (`modelgate.db`).
    pub control: &'a Path,
    /// The usage records' file (`usage.db`); skipped when missing.
    pub usage: &'a Path,
    /// The inference payloads' file (`inference.db`); skipped when missing.
    pub inference: &'a Path,
    /// The control plane's PostgreSQL database, migrated and empty.
    pub to: &'a str,
    /// The usage and inference tables' PostgreSQL database, migrated and empty.
    pub to_logs: &'a str,
}

impl Transfer<'_> {
    /// Copies everything; `progress` hears each table as it is done. Refuses a target that holds
    /// any endpoint, principal or usage record already.
    pub async fn run(&self, mut progress: impl FnMut(&str, u64)) -> Result<Copied> {
        let to = PgPool::connect_with(PgConnectOptions::from_str(self.to)?).await?;
        let to_logs = PgPool::connect_with(PgConnectOptions::from_str(self.to_logs)?).await?;
        for (pool, table) in [(&to, "principals"), (&to, "endpoints"), (&to_logs, "usage"), (&to_logs, "payloads")] {
            let sql = format!("SELECT COUNT(*) FROM {table}");
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(pool).await?;
            if n > 0 {
                return Err(StoreError::InvalidState(format!(
                    "the target database already holds {n} rows in '{table}'; migrate into an empty database"
                )));
            }
        }
        let mut copied = Vec::new();
        let plan = [(self.control, CONTROL, &to), (self.usage, USAGE, &to_logs), (self.inference, INFERENCE, &to_logs)];
        for (file, tables, target) in plan {
            if file != self.control && !file.exists() {
                continue;
            }
            let options = SqliteConnectOptions::new().filename(file).read_only(true);
            let from = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
            for (table, columns) in tables {
                let n = copy_table(&from, target, table, columns).await?;
                progress(table, n);
                copied.push((table.to_string(), n));
            }
            from.close().await;
        }
        for (table, column) in IDENTITIES {
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&to).await?;
        }
        to.close().await;
        to_logs.close().await;
        Ok(Copied { tables: copied })
    }
}

/// One value read from SQLite, typed as the PostgreSQL column wants it.
enum Cell {
    Int(Option<i64>),
    Bool(Option<bool>),
    Real(Option<f64>),
    Bytes(Option<Vec<u8>>),
    Text(Option<String>),
}

/// Copies one table in one transaction and checks the target's row count; how many rows.
async fn copy_table(from: &SqlitePool, to: &PgPool, table: &str, columns: &str) -> Result<u64> {
    let cols: Vec<(&str, &str)> = columns.split_whitespace().filter_map(|c| c.split_once(':')).collect();
    let names = cols.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {names} FROM {table}"))).fetch_all(from).await?;
    let mut cells = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut decoded = Vec::with_capacity(cols.len());
        for (i, (name, kind)) in cols.iter().enumerate() {
            let cell = match *kind {
                "i" => row.try_get(i).map(Cell::Int),
                "b" => row.try_get(i).map(Cell::Bool),
                "r" => row.try_get(i).map(Cell::Real),
                "x" => row.try_get(i).map(Cell::Bytes),
                _ => row.try_get(i).map(Cell::Text),
            };
            decoded.push(cell.map_err(|e| StoreError::Invalid(format!("table '{table}', column '{name}': {e}")))?);
        }
        cells.push(decoded);
    }
    let mut tx = to.begin().await?;
    for chunk in cells.chunks(ROWS_PER_INSERT) {
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!("INSERT INTO {table} ({names}) "));
        q.push_values(chunk, |mut b, row| {
            for cell in row {
                match cell {
                    Cell::Int(v) => b.push_bind(*v),
                    Cell::Bool(v) => b.push_bind(*v),
                    Cell::Real(v) => b.push_bind(*v),
                    Cell::Bytes(v) => b.push_bind(v.clone()),
                    Cell::Text(v) => b.push_bind(v.clone()),
                };
            }
        });
        q.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    let sql = format!("SELECT COUNT(*) FROM {table}");
    let there: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(to).await?;
    if there as usize != rows.len() {
        return Err(StoreError::InvalidState(format!(
            "table '{table}': {} rows read, {there} in the target afterwards",
            rows.len()
        )));
    }
    Ok(rows.len() as u64)
}
