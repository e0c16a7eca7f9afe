//! Inference-table payloads, in a database of their own (SQLite or PostgreSQL).

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{Postgres, QueryBuilder, Row, Sqlite};

use crate::Result;
use crate::bulk::{bind_all, insert_statement};
use crate::dialect::Dialect;
use crate::logdb::LogPools;

/// One logged query, with the columns of a Databricks inference (payload) table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PayloadRecord {
    /// Server-assigned request id.
    pub databricks_request_id: String,
    /// Endpoint name.
    pub endpoint_name: String,
    /// `YYYY-MM-DD`, UTC.
    pub request_date: String,
    /// `client_request_id` of the request body.
    pub client_request_id: Option<String>,
    /// ms since the epoch.
    pub request_time: i64,
    /// HTTP status sent.
    pub status_code: i64,
    /// Share of queries logged when this one was.
    pub sampling_fraction: f64,
    /// Time spent answering, ms.
    pub execution_duration_ms: i64,
    /// Request JSON; `None` when over the size cap.
    pub request: Option<String>,
    /// Response JSON; `None` when over the size cap.
    pub response: Option<String>,
    /// e.g. `MAX_REQUEST_SIZE_EXCEEDED`.
    pub logging_error_codes: Vec<String>,
    /// Served entity name.
    pub served_entity_id: Option<String>,
    /// User name or service principal application id.
    pub requester: Option<String>,
    /// Answered from the response cache (our extension).
    pub cache_hit: bool,
}

/// Filters of a payload query.
#[derive(Debug, Clone, Default)]
pub struct PayloadQuery {
    /// Endpoint name.
    pub endpoint: String,
    /// Inclusive start, ms.
    pub since: i64,
    /// Exclusive end, ms.
    pub until: i64,
    /// Status range, inclusive.
    pub status: Option<(i64, i64)>,
    /// Requester.
    pub requester: Option<String>,
    /// Most rows, newest first.
    pub limit: i64,
}

/// The payload database.
#[derive(Clone)]
pub struct InferenceDb {
    tables: Arc<dyn InferenceTables>,
}

impl InferenceDb {
    /// Opens (creating and migrating) the SQLite database at `path`.
    pub async fn open(path: &Path) -> Result<Self> {
        let pools = LogPools::<Sqlite>::open(path, Sqlite::inference_migrator()).await?;
        Ok(InferenceDb { tables: Arc::new(pools) })
    }

    /// Connects to (and migrates) the PostgreSQL database at `url`.
    pub async fn connect(url: &str) -> Result<Self> {
        let pools = LogPools::<Postgres>::connect(url, Postgres::inference_migrator()).await?;
        Ok(InferenceDb { tables: Arc::new(pools) })
    }
}

impl Deref for InferenceDb {
    type Target = dyn InferenceTables;
    fn deref(&self) -> &Self::Target {
        self.tables.as_ref()
    }
}

/// What can be done with the payload table, on either engine.
#[async_trait]
pub trait InferenceTables: Send + Sync + 'static {
    /// Closes the connections.
    async fn close(&self);
    /// Writes records in one transaction; ids already present are skipped.
    async fn insert(&self, records: &[PayloadRecord]) -> Result<()>;
    /// Records matching `q`, newest first.
    async fn query(&self, q: &PayloadQuery) -> Result<Vec<PayloadRecord>>;
    /// Deletes the records of `endpoint` (or of every endpoint not in `keep`, when `endpoint` is
    /// `None`) older than `before` ms; returns how many.
    async fn delete_older(&self, endpoint: Option<&str>, keep: &[String], before: i64) -> Result<u64>;
}

/// The columns of a payload row, in the order `insert` binds them.
const PAYLOAD_COLUMNS: &str = "INSERT INTO payloads (databricks_request_id, endpoint_name, request_date, \
     client_request_id, request_time, status_code, sampling_fraction, execution_duration_ms, request, response, \
     logging_error_codes, served_entity_id, requester, cache_hit) ";

/// Implements [`InferenceTables`] on `LogPools<$db>`.
macro_rules! inference_tables_on {
    ($db:ty) => {
        #[async_trait]
        impl InferenceTables for LogPools<$db> {
            async fn close(&self) {
                LogPools::close(self).await;
            }

            async fn insert(&self, records: &[PayloadRecord]) -> Result<()> {
                let mut tx = self.writer.begin().await?;
                // Several rows per statement (each is a round trip); 14 columns × 70
                // rows stays under the smallest bound-parameter limit SQLite builds use (999).
                for chunk in records.chunks(70) {
                    let mut args = <$db as sqlx::Database>::Arguments::default();
                    for r in chunk {
                        let codes = serde_json::to_string(&r.logging_error_codes).unwrap_or_else(|_| "[]".into());
                        bind_all!(args; &r.databricks_request_id, &r.endpoint_name, &r.request_date,
                            &r.client_request_id, r.request_time, r.status_code, r.sampling_fraction,
                            r.execution_duration_ms, &r.request, &r.response, codes, &r.served_entity_id,
                            &r.requester, r.cache_hit);
                    }
                    sqlx::query_with(insert_statement::<$db>(PAYLOAD_COLUMNS, 14, chunk.len()), args).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn query(&self, q: &PayloadQuery) -> Result<Vec<PayloadRecord>> {
                let mut sql: QueryBuilder<$db> = QueryBuilder::new("SELECT * FROM payloads WHERE endpoint_name = ");
                sql.push_bind(&q.endpoint).push(" AND request_time >= ").push_bind(q.since);
                sql.push(" AND request_time < ").push_bind(q.until);
                if let Some((lo, hi)) = q.status {
                    sql.push(" AND status_code BETWEEN ").push_bind(lo).push(" AND ").push_bind(hi);
                }
                if let Some(r) = &q.requester {
                    sql.push(" AND requester = ").push_bind(r);
                }
                sql.push(" ORDER BY request_time DESC, databricks_request_id LIMIT ").push_bind(q.limit);
                let rows = sql.build().fetch_all(&self.reader).await?;
                Ok(rows
                    .into_iter()
                    .map(|r| PayloadRecord {
                        databricks_request_id: r.get("databricks_request_id"),
                        endpoint_name: r.get("endpoint_name"),
                        request_date: r.get("request_date"),
                        client_request_id: r.get("client_request_id"),
                        request_time: r.get("request_time"),
                        status_code: r.get("status_code"),
                        sampling_fraction: r.get("sampling_fraction"),
                        execution_duration_ms: r.get("execution_duration_ms"),
                        request: r.get("request"),
                        response: r.get("response"),
                        logging_error_codes: serde_json::from_str(&r.get::<String, _>("logging_error_codes"))
                            .unwrap_or_default(),
                        served_entity_id: r.get("served_entity_id"),
                        requester: r.get("requester"),
                        cache_hit: r.get("cache_hit"),
                    })
                    .collect())
            }

            async fn delete_older(&self, endpoint: Option<&str>, keep: &[String], before: i64) -> Result<u64> {
                let mut sql: QueryBuilder<$db> = QueryBuilder::new("DELETE FROM payloads WHERE request_time < ");
                sql.push_bind(before);
                match endpoint {
                    Some(e) => {
                        sql.push(" AND endpoint_name = ").push_bind(e);
                    }
                    None if !keep.is_empty() => {
                        sql.push(" AND endpoint_name NOT IN (");
                        let mut list = sql.separated(", ");
                        for k in keep {
                            list.push_bind(k);
                        }
                        sql.push(")");
                    }
                    None => {}
                }
                Ok(sql.build().execute(&self.writer).await?.rows_affected())
            }
        }
    };
}

inference_tables_on!(Sqlite);
inference_tables_on!(Postgres);
