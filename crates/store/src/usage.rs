//! Usage records and the reports built from them, in a database of their own: a SQLite file
//! beside the control plane's, or PostgreSQL (the control plane's database or another).
//!
//! Records arrive in batches (one transaction each) from the server's background writer. On
//! SQLite, `synchronous = NORMAL` in WAL mode: a committed batch survives a process crash; a power
//! loss may lose the last batches, which is the trade the batching already makes.

use std::ops::Deref;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{Postgres, QueryBuilder, Row, Sqlite};

use crate::Result;
use crate::bulk::{bind_all, insert_statement};
use crate::dialect::Dialect;
use crate::logdb::LogPools;

/// How a usage record is billed (its `billing`).
pub mod billing {
    /// A query priced from its tokens.
    pub const PER_TOKEN: &str = "per_token";
    /// A query served within provisioned throughput: its tokens cost nothing more.
    pub const PROVISIONED: &str = "provisioned";
    /// A query answered from the response cache: no provider was called, nothing is owed.
    pub const CACHE: &str = "cache";
    /// Not a query: band-time of a provisioned throughput, priced by the hour.
    pub const BAND: &str = "band";
}

/// One query (or one charge of provisioned band-time), as billed and attributed.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct UsageRecord {
    /// Server-assigned id (`databricks_request_id`).
    pub request_id: String,
    /// `client_request_id` from the request body.
    pub client_request_id: Option<String>,
    /// Arrival, ms since the epoch.
    pub request_time: i64,
    /// Endpoint id.
    pub endpoint_id: String,
    /// Endpoint name.
    pub endpoint_name: String,
    /// Served entity that answered (or last tried); empty if none was reached.
    pub served_entity: String,
    /// Provider of that entity.
    pub provider: String,
    /// Provider model name.
    pub model: String,
    /// User name or service principal application id.
    pub requester: String,
    /// SCIM id of the requester.
    pub requester_id: String,
    /// HTTP status sent.
    pub status_code: i64,
    /// `error_code` sent, or the error event of a stream that failed.
    pub error_code: Option<String>,
    /// Whether the answer was streamed.
    pub streaming: bool,
    /// Input tokens (cached and cache-written included).
    pub input_tokens: i64,
    /// Output tokens (reasoning included).
    pub output_tokens: i64,
    /// Input tokens read from the provider's cache.
    pub cached_input_tokens: i64,
    /// Input tokens written to the provider's cache.
    pub cache_write_tokens: i64,
    /// Output tokens spent reasoning.
    pub reasoning_tokens: i64,
    /// Images generated (image endpoints).
    pub images: i64,
    /// The token the query was made with (its id); `None` for a console session or a refusal
    /// before authentication.
    pub token_id: Option<String>,
    /// Arrival to last byte.
    pub latency_ms: f64,
    /// Arrival to first streamed token.
    pub ttft_ms: Option<f64>,
    /// The request's `usage_context`, as a JSON object.
    pub usage_context: Option<String>,
    /// The endpoint's tags at the time, as a JSON object.
    pub tags: Option<String>,
    /// Cost in USD.
    pub cost_usd: f64,
    /// Price table version used; `None` if the model had no price.
    pub price_version: Option<String>,
    /// The provider's HTTP status of the last upstream attempt, if one answered with an error.
    pub upstream_status: Option<i64>,
    /// The error sent to the client (credentials and URLs already redacted), at most 1000 bytes.
    pub error_message: Option<String>,
    /// Upstream calls made (retries and fail-overs included).
    pub attempts: i64,
    /// The served entities called, in order, comma-separated; `None` if none was.
    pub entities_tried: Option<String>,
    /// How it is billed: one of [`billing`] (empty is read as per token).
    pub billing: String,
}

/// The smallest UUIDv7 (as text) of millisecond `ms`: its first 48 bits are the time.
fn uuid_v7_floor(ms: i64) -> String {
    let ms = ms.clamp(0, (1 << 48) - 1) as u64;
    format!("{:08x}-{:04x}-0000-0000-000000000000", ms >> 16, ms & 0xffff)
}

/// Which requests a request-log search returns; every set field must match.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    /// Inclusive start, ms.
    pub start: i64,
    /// Exclusive end, ms.
    pub end: i64,
    /// Only this endpoint (by name).
    pub endpoint: Option<String>,
    /// Only these endpoints (`None`: all); with `or_requester_id`, also that caller's requests.
    pub endpoints: Option<Vec<String>>,
    /// Requests of this caller pass `endpoints` too.
    pub or_requester_id: Option<String>,
    /// Only this requester (user name or application id).
    pub requester: Option<String>,
    /// Only statuses in `[from, to]` (a class: 400..=499).
    pub status: Option<(i64, i64)>,
    /// Only this error code.
    pub error_code: Option<String>,
    /// Only requests that failed (status ≥ 400 or a stream that ended with an error).
    pub failed_only: bool,
    /// Requests older than this id only (paging: the last id of the previous page).
    pub before_id: Option<String>,
    /// At most this many, newest first.
    pub limit: i64,
}

/// What a report groups by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dimension {
    /// Endpoint name.
    Endpoint,
    /// Served entity name.
    ServedEntity,
    /// Requester.
    Requester,
    /// Provider.
    Provider,
    /// Provider model.
    Model,
    /// The token the query was made with (its id).
    Token,
    /// An endpoint tag.
    Tag(String),
    /// A key of the request's `usage_context`.
    UsageContext(String),
}

impl FromStr for Dimension {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let key = |k: &str| -> std::result::Result<String, String> {
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || "_-.:/".contains(c)) {
                return Err(format!("'{k}' is not a valid key: use letters, digits and _ - . : /"));
            }
            Ok(k.to_string())
        };
        Ok(match s {
            "endpoint" => Dimension::Endpoint,
            "served_entity" => Dimension::ServedEntity,
            "requester" => Dimension::Requester,
            "provider" => Dimension::Provider,
            "model" => Dimension::Model,
            "token" => Dimension::Token,
            _ if s.starts_with("tag.") => Dimension::Tag(key(&s[4..])?),
            _ if s.starts_with("usage_context.") => Dimension::UsageContext(key(&s[14..])?),
            other => {
                return Err(format!(
                    "'{other}' is not a dimension: use endpoint, served_entity, requester, provider, model, token, tag.<key> or usage_context.<key>"
                ));
            }
        })
    }
}

impl std::fmt::Display for Dimension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dimension::Endpoint => f.write_str("endpoint"),
            Dimension::ServedEntity => f.write_str("served_entity"),
            Dimension::Requester => f.write_str("requester"),
            Dimension::Provider => f.write_str("provider"),
            Dimension::Model => f.write_str("model"),
            Dimension::Token => f.write_str("token"),
            Dimension::Tag(k) => write!(f, "tag.{k}"),
            Dimension::UsageContext(k) => write!(f, "usage_context.{k}"),
        }
    }
}

/// Time buckets of a report, in UTC. Weeks start on Monday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// `2026-11-22T14:00:00Z`
    Hour,
    /// `2026-11-22`
    Day,
    /// The Monday: `2026-11-16`
    Week,
    /// `2026-11`
    Month,
}

impl FromStr for Bucket {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "hour" => Ok(Bucket::Hour),
            "day" => Ok(Bucket::Day),
            "week" => Ok(Bucket::Week),
            "month" => Ok(Bucket::Month),
            other => Err(format!("'{other}' is not a bucket: use hour, day, week or month")),
        }
    }
}

/// A report request.
#[derive(Debug, Clone, Default)]
pub struct ReportQuery {
    /// Grouping, in column order.
    pub group_by: Vec<Dimension>,
    /// Time bucket, if any.
    pub bucket: Option<Bucket>,
    /// Inclusive start, ms.
    pub start: i64,
    /// Exclusive end, ms.
    pub end: i64,
    /// Only these endpoints (`None`: all).
    pub endpoints: Option<Vec<String>>,
    /// Only this caller's queries (SCIM id), on any endpoint.
    pub requester_id: Option<String>,
}

/// One row of a report.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRow {
    /// The bucket's label, when bucketed.
    pub bucket: Option<String>,
    /// One value per dimension (`None` when a record has no such tag or key).
    pub dimensions: Vec<Option<String>>,
    /// Queries.
    pub requests: i64,
    /// Queries answered with status ≥ 400 or a failed stream.
    pub errors: i64,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// USD.
    pub cost_usd: f64,
}

/// The token counts and model of a record, for re-pricing.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PricingRow {
    /// Record id.
    pub request_id: String,
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Input tokens.
    pub input_tokens: i64,
    /// Cached input tokens.
    pub cached_input_tokens: i64,
    /// Cache-written input tokens.
    pub cache_write_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Images generated.
    pub images: i64,
}

impl UsageRecord {
    /// What the record is priced by.
    pub fn priced(&self) -> modelgate_core::pricing::Tokens {
        tokens(self.input_tokens, self.cached_input_tokens, self.cache_write_tokens, self.output_tokens, self.images)
    }
}

impl PricingRow {
    /// What the record is priced by.
    pub fn priced(&self) -> modelgate_core::pricing::Tokens {
        tokens(self.input_tokens, self.cached_input_tokens, self.cache_write_tokens, self.output_tokens, self.images)
    }
}

fn tokens(input: i64, cached: i64, written: i64, output: i64, images: i64) -> modelgate_core::pricing::Tokens {
    let n = |v: i64| v.max(0) as u64;
    modelgate_core::pricing::Tokens {
        input: n(input),
        cached_input: n(cached),
        cache_write: n(written),
        output: n(output),
        images: n(images),
    }
}

/// Traffic of one endpoint over a window, from its usage records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowSummary {
    /// Queries.
    pub requests: i64,
    /// Queries with status ≥ 400 or a failed stream.
    pub errors: i64,
    /// Latency percentiles in ms (`None` without queries).
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// USD.
    pub cost_usd: f64,
}

/// What an endpoint's usage records say about its use, for the inventory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    /// Queries since the window's start.
    pub requests: i64,
    /// Their cost in USD.
    pub cost_usd: f64,
    /// Cost since the month's start, USD.
    pub month_cost_usd: f64,
    /// The last query ever recorded (within the usage retention), ms.
    pub last_request: Option<i64>,
}

/// One time bucket of an endpoint's traffic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimelinePoint {
    /// The bucket's start, ms.
    pub start: i64,
    /// Queries.
    pub requests: i64,
    /// Failed queries.
    pub errors: i64,
    /// Queries refused by a rate limit (429), counted among the failed.
    pub rate_limited: i64,
    /// Latency percentiles, ms (`None` without queries).
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Median time to first token of the streamed queries (`None` without any).
    pub ttft_p50_ms: Option<f64>,
    /// 95th percentile of the time to first token.
    pub ttft_p95_ms: Option<f64>,
    /// Input plus output tokens.
    pub tokens: i64,
    /// USD.
    pub cost_usd: f64,
}

/// What a timeline reads of a usage record.
#[derive(sqlx::FromRow)]
struct TimelineRow {
    request_time: i64,
    latency_ms: f64,
    ttft_ms: Option<f64>,
    status_code: i64,
    failed: bool,
    tokens: i64,
    cost_usd: f64,
    band: bool,
}

/// Most records a timeline reads; beyond, the oldest of the window are left out.
const TIMELINE_MAX_ROWS: i64 = 200_000;

/// Puts timeline rows (newest first) into `buckets` equal buckets from `since` to `until`.
fn timeline_of(rows: Vec<TimelineRow>, since: i64, until: i64, buckets: i64) -> Vec<TimelinePoint> {
    let buckets = buckets.max(1);
    let width = ((until - since) / buckets).max(1);
    let mut latencies: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); buckets as usize];
    let mut points: Vec<TimelinePoint> =
        (0..buckets).map(|i| TimelinePoint { start: since + i * width, ..Default::default() }).collect();
    for r in rows {
        let i = ((r.request_time - since) / width).clamp(0, buckets - 1) as usize;
        if let (Some(p), Some((l, t))) = (points.get_mut(i), latencies.get_mut(i)) {
            p.cost_usd += r.cost_usd;
            if r.band {
                continue;
            }
            p.requests += 1;
            p.errors += i64::from(r.failed);
            p.rate_limited += i64::from(r.status_code == 429);
            p.tokens += r.tokens;
            l.push(r.latency_ms);
            t.extend(r.ttft_ms);
        }
    }
    for (p, (l, t)) in points.iter_mut().zip(latencies.iter_mut()) {
        (p.p50_ms, p.p95_ms, p.p99_ms) = (nearest_rank(l, 0.50), nearest_rank(l, 0.95), nearest_rank(l, 0.99));
        (p.ttft_p50_ms, p.ttft_p95_ms) = (nearest_rank(t, 0.50), nearest_rank(t, 0.95));
    }
    points
}

/// The `q` quantile of `values` by nearest rank, as the window summaries compute them (sorts them).
fn nearest_rank(values: &mut [f64], q: f64) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(((q * values.len() as f64).ceil() as usize).saturating_sub(1)).copied()
}

/// Which records a budget counts: any of these.
#[derive(Debug, Clone, Default)]
pub struct SpendFilter {
    /// Endpoints by name.
    pub endpoints: Vec<String>,
    /// Records whose endpoint tags hold this key and value.
    pub tag: Option<(String, String)>,
    /// Records whose `usage_context` holds this key and value.
    pub usage_context: Option<(String, String)>,
    /// Records of these requesters (user names or application ids).
    pub requesters: Vec<String>,
    /// Records of queries made with this token.
    pub token_id: Option<String>,
}

/// The usage database: a handle shared by the writer, the reports and the request log.
#[derive(Clone)]
pub struct UsageDb {
    tables: Arc<dyn UsageTables>,
}

impl UsageDb {
    /// Opens (creating and migrating) the SQLite database at `path`.
    pub async fn open(path: &Path) -> Result<Self> {
        let pools = LogPools::<Sqlite>::open(path, Sqlite::usage_migrator()).await?;
        Ok(UsageDb { tables: Arc::new(pools) })
    }

    /// Connects to (and migrates) the PostgreSQL database at `url`.
    pub async fn connect(url: &str) -> Result<Self> {
        let pools = LogPools::<Postgres>::connect(url, Postgres::usage_migrator()).await?;
        Ok(UsageDb { tables: Arc::new(pools) })
    }
}

impl Deref for UsageDb {
    type Target = dyn UsageTables;
    fn deref(&self) -> &Self::Target {
        self.tables.as_ref()
    }
}

/// What can be done with the usage tables, on either engine.
#[async_trait]
pub trait UsageTables: Send + Sync + 'static {
    /// Closes the connections.
    async fn close(&self);
    /// Writes records in one transaction; a record whose id exists already is skipped.
    async fn insert(&self, records: &[UsageRecord]) -> Result<()>;
    /// Every record between `start` (inclusive) and `end` (exclusive), oldest first.
    async fn records(&self, start: i64, end: i64, endpoint: Option<&str>) -> Result<Vec<UsageRecord>>;
    /// The request log: records matching `f`, newest first.
    async fn requests(&self, f: &RequestFilter) -> Result<Vec<UsageRecord>>;
    /// One record by its request id, or by the client's `client_request_id` (the newest).
    async fn request(&self, id: &str) -> Result<Option<UsageRecord>>;
    /// Deletes records older than `before` ms (by their time-ordered ids, to the millisecond);
    /// returns how many.
    async fn delete_before(&self, before: i64) -> Result<u64>;
    /// Aggregates records by time bucket and dimensions.
    async fn report(&self, q: &ReportQuery) -> Result<Vec<ReportRow>>;
    /// Records since `start` with what pricing needs, oldest first, `limit` at a time after
    /// `after` (a request id, for paging).
    async fn pricing_rows(&self, start: i64, after: &str, limit: i64) -> Result<Vec<PricingRow>>;
    /// Sets cost and price version of records, in one transaction.
    async fn set_costs(&self, costs: &[(String, f64, Option<String>)]) -> Result<()>;
    /// Requests, errors, latency percentiles, tokens and cost of `endpoint` since `since` ms.
    async fn summary(&self, endpoint: &str, since: i64) -> Result<WindowSummary>;
    /// The use of `endpoint`: queries and cost since `since`, cost since `month_start`, last query.
    /// Each is a range of the (endpoint, time) index.
    async fn activity(&self, endpoint: &str, since: i64, month_start: i64) -> Result<Activity>;
    /// `endpoint`'s traffic (only `entity`'s, if given) from `since` to `until` in `buckets`
    /// equal buckets (oldest first), from its usage records.
    async fn timeline(
        &self,
        endpoint: &str,
        entity: Option<&str>,
        since: i64,
        until: i64,
        buckets: i64,
    ) -> Result<Vec<TimelinePoint>>;
    /// Total cost of the records matching `f` since `since` ms.
    async fn spend(&self, f: &SpendFilter, since: i64) -> Result<f64>;
}

/// The columns of a usage record, in the order `insert` binds them.
const USAGE_COLUMNS: &str = "INSERT INTO usage (request_id, client_request_id, request_time, endpoint_id, endpoint_name, \
     served_entity, provider, model, requester, requester_id, status_code, error_code, streaming, input_tokens, \
     output_tokens, cached_input_tokens, cache_write_tokens, reasoning_tokens, latency_ms, ttft_ms, usage_context, \
     tags, cost_usd, price_version, upstream_status, error_message, attempts, entities_tried, billing, images, token_id) ";

/// How many columns [`USAGE_COLUMNS`] names.
const USAGE_COLUMN_COUNT: usize = 31;

/// Sums that both engines give as BIGINT / DOUBLE PRECISION (PostgreSQL's plain `SUM` of a
/// BIGINT is NUMERIC, and SQLite has no `TOTAL` elsewhere).
const SUM_TOKENS_COST: &str = "CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT), \
     CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION)";

/// Implements [`UsageTables`] on `LogPools<$db>`.
macro_rules! usage_tables_on {
    ($db:ty) => {
        #[async_trait]
        impl UsageTables for LogPools<$db> {
            async fn close(&self) {
                LogPools::close(self).await;
            }

            async fn insert(&self, records: &[UsageRecord]) -> Result<()> {
                let mut tx = self.writer.begin().await?;
                // Several rows per statement: every statement is a round trip. 31 columns × 32
                // rows stays under the smallest bound-parameter limit SQLite builds use (999),
                // and at most 32 statement shapes exist, so all stay prepared in the cache.
                for chunk in records.chunks(32) {
                    let mut args = <$db as sqlx::Database>::Arguments::default();
                    for r in chunk {
                        let billing = if r.billing.is_empty() { billing::PER_TOKEN } else { r.billing.as_str() };
                        bind_all!(args; &r.request_id, &r.client_request_id, r.request_time, &r.endpoint_id,
                            &r.endpoint_name, &r.served_entity, &r.provider, &r.model, &r.requester, &r.requester_id,
                            r.status_code, &r.error_code, r.streaming, r.input_tokens, r.output_tokens,
                            r.cached_input_tokens, r.cache_write_tokens, r.reasoning_tokens, r.latency_ms, r.ttft_ms,
                            &r.usage_context, &r.tags, r.cost_usd, &r.price_version, r.upstream_status,
                            &r.error_message, r.attempts, &r.entities_tried, billing, r.images, &r.token_id);
                    }
                    let sql = insert_statement::<$db>(USAGE_COLUMNS, USAGE_COLUMN_COUNT, chunk.len());
                    sqlx::query_with(sql, args).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn records(&self, start: i64, end: i64, endpoint: Option<&str>) -> Result<Vec<UsageRecord>> {
                Ok(sqlx::query_as(
                    "SELECT * FROM usage WHERE request_time >= $1 AND request_time < $2 \
                     AND ($3 IS NULL OR endpoint_name = $3) ORDER BY request_time, request_id",
                )
                .bind(start)
                .bind(end)
                .bind(endpoint)
                .fetch_all(&self.reader)
                .await?)
            }

            async fn requests(&self, f: &RequestFilter) -> Result<Vec<UsageRecord>> {
                // The time range as a range of the (time-ordered) primary key, so no index on time
                // is needed: an id is drawn within a few ms of request_time, so a second of slack
                // either side, then the exact bounds on request_time.
                let mut sql: QueryBuilder<$db> = QueryBuilder::new("SELECT * FROM usage WHERE request_id >= ");
                sql.push_bind(uuid_v7_floor(f.start.saturating_sub(1000)))
                    .push(" AND request_id < ")
                    .push_bind(uuid_v7_floor(f.end.saturating_add(1000)))
                    .push(" AND request_time >= ")
                    .push_bind(f.start)
                    .push(" AND request_time < ")
                    .push_bind(f.end)
                    .push(" AND billing != 'band'");
                if let Some(e) = &f.endpoint {
                    sql.push(" AND endpoint_name = ").push_bind(e.clone());
                }
                if let Some(eps) = &f.endpoints {
                    sql.push(" AND (");
                    if eps.is_empty() {
                        sql.push("1 = 0");
                    } else {
                        sql.push("endpoint_name IN (");
                        let mut list = sql.separated(", ");
                        for e in eps {
                            list.push_bind(e.clone());
                        }
                        sql.push(")");
                    }
                    if let Some(id) = &f.or_requester_id {
                        sql.push(" OR requester_id = ").push_bind(id.clone());
                    }
                    sql.push(")");
                }
                if let Some(r) = &f.requester {
                    sql.push(" AND requester = ").push_bind(r.clone());
                }
                if let Some((from, to)) = f.status {
                    sql.push(" AND status_code BETWEEN ").push_bind(from).push(" AND ").push_bind(to);
                }
                if let Some(c) = &f.error_code {
                    sql.push(" AND error_code = ").push_bind(c.clone());
                }
                if f.failed_only {
                    sql.push(" AND (status_code >= 400 OR error_code IS NOT NULL)");
                }
                if let Some(id) = &f.before_id {
                    sql.push(" AND request_id < ").push_bind(id.clone());
                }
                sql.push(" ORDER BY request_id DESC LIMIT ").push_bind(f.limit);
                Ok(sql.build_query_as::<UsageRecord>().fetch_all(&self.reader).await?)
            }

            async fn request(&self, id: &str) -> Result<Option<UsageRecord>> {
                Ok(sqlx::query_as(
                    "SELECT * FROM usage WHERE request_id = $1 OR client_request_id = $1 \
                     ORDER BY (request_id = $1) DESC, request_id DESC LIMIT 1",
                )
                .bind(id)
                .fetch_optional(&self.reader)
                .await?)
            }

            async fn delete_before(&self, before: i64) -> Result<u64> {
                let done = sqlx::query("DELETE FROM usage WHERE request_id < $1")
                    .bind(uuid_v7_floor(before))
                    .execute(&self.writer)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn report(&self, q: &ReportQuery) -> Result<Vec<ReportRow>> {
                let mut sql: QueryBuilder<$db> = QueryBuilder::new("SELECT ");
                match q.bucket {
                    Some(b) => sql.push(<$db as Dialect>::bucket_label(b)),
                    None => sql.push("CAST(NULL AS TEXT)"),
                };
                sql.push(" AS bucket");
                for (i, d) in q.group_by.iter().enumerate() {
                    sql.push(", ");
                    match d {
                        Dimension::Endpoint => sql.push("endpoint_name"),
                        Dimension::ServedEntity => sql.push("served_entity"),
                        Dimension::Requester => sql.push("requester"),
                        Dimension::Provider => sql.push("provider"),
                        Dimension::Model => sql.push("model"),
                        Dimension::Token => sql.push("token_id"),
                        // Keys are restricted to characters that need no quoting inside the path.
                        Dimension::Tag(k) => sql
                            .push(<$db as Dialect>::json_field("tags"))
                            .push_bind(<$db as Dialect>::json_key(k))
                            .push(")"),
                        Dimension::UsageContext(k) => sql
                            .push(<$db as Dialect>::json_field("usage_context"))
                            .push_bind(<$db as Dialect>::json_key(k))
                            .push(")"),
                    };
                    sql.push(format!(" AS d{i}"));
                }
                sql.push(
                    ", COUNT(*) FILTER (WHERE billing != 'band'), \
                     COUNT(*) FILTER (WHERE status_code >= 400 OR error_code IS NOT NULL), ",
                )
                .push(SUM_TOKENS_COST)
                .push(" FROM usage WHERE request_time >= ")
                .push_bind(q.start)
                .push(" AND request_time < ")
                .push_bind(q.end);
                if let Some(eps) = &q.endpoints {
                    if eps.is_empty() {
                        return Ok(Vec::new());
                    }
                    sql.push(" AND endpoint_name IN (");
                    let mut list = sql.separated(", ");
                    for e in eps {
                        list.push_bind(e.clone());
                    }
                    sql.push(")");
                }
                if let Some(id) = &q.requester_id {
                    sql.push(" AND requester_id = ").push_bind(id.clone());
                }
                let groups: Vec<String> = std::iter::once("bucket".to_string())
                    .chain((0..q.group_by.len()).map(|i| format!("d{i}")))
                    .collect();
                let order: Vec<String> = groups.iter().map(|g| format!("{g} NULLS FIRST")).collect();
                sql.push(format!(" GROUP BY {} ORDER BY {}", groups.join(", "), order.join(", ")));
                let rows = sql.build().fetch_all(&self.reader).await?;
                let n = q.group_by.len();
                Ok(rows
                    .into_iter()
                    .map(|r| {
                        // SQLite's json_extract gives numbers as numbers.
                        let dim = |i: usize| -> Option<String> {
                            r.try_get::<Option<String>, _>(i + 1)
                                .ok()
                                .flatten()
                                .or_else(|| r.try_get::<Option<i64>, _>(i + 1).ok().flatten().map(|v| v.to_string()))
                        };
                        ReportRow {
                            bucket: r.get(0),
                            dimensions: (0..n).map(dim).collect(),
                            requests: r.get(n + 1),
                            errors: r.get(n + 2),
                            input_tokens: r.get(n + 3),
                            output_tokens: r.get(n + 4),
                            cost_usd: r.get(n + 5),
                        }
                    })
                    .collect())
            }

            async fn pricing_rows(&self, start: i64, after: &str, limit: i64) -> Result<Vec<PricingRow>> {
                Ok(sqlx::query_as(
                    "SELECT request_id, provider, model, input_tokens, cached_input_tokens, cache_write_tokens, \
                     output_tokens, images FROM usage WHERE request_time >= $1 AND request_id > $2 AND billing = 'per_token' \
                     ORDER BY request_id LIMIT $3",
                )
                .bind(start)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.reader)
                .await?)
            }

            async fn set_costs(&self, costs: &[(String, f64, Option<String>)]) -> Result<()> {
                let mut tx = self.writer.begin().await?;
                for (id, cost, version) in costs {
                    sqlx::query("UPDATE usage SET cost_usd = $1, price_version = $2 WHERE request_id = $3")
                        .bind(cost)
                        .bind(version)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn summary(&self, endpoint: &str, since: i64) -> Result<WindowSummary> {
                let row = sqlx::query(
                    "SELECT COUNT(*) FILTER (WHERE billing != 'band'), \
                     COUNT(*) FILTER (WHERE status_code >= 400 OR error_code IS NOT NULL), \
                     CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) \
                     FROM usage WHERE endpoint_name = $1 AND request_time >= $2",
                )
                .bind(endpoint)
                .bind(since)
                .fetch_one(&self.reader)
                .await?;
                let requests: i64 = row.get(0);
                let mut s = WindowSummary {
                    requests,
                    errors: row.get(1),
                    input_tokens: row.get(2),
                    output_tokens: row.get(3),
                    cost_usd: row.get(4),
                    ..Default::default()
                };
                if requests > 0 {
                    // Nearest-rank percentiles: the value at rank ceil(p × n).
                    let at = |p: f64| ((p * requests as f64).ceil() as i64 - 1).clamp(0, requests - 1);
                    let ranks = [at(0.50), at(0.95), at(0.99)];
                    // One sort for all three ranks.
                    let rows: Vec<(i64, f64)> = sqlx::query_as(
                        "SELECT r, latency_ms FROM (SELECT latency_ms, ROW_NUMBER() OVER (ORDER BY latency_ms) - 1 AS r \
                         FROM usage WHERE endpoint_name = $1 AND request_time >= $2 AND billing != 'band') AS ranked \
                         WHERE r IN ($3, $4, $5)",
                    )
                    .bind(endpoint)
                    .bind(since)
                    .bind(ranks[0])
                    .bind(ranks[1])
                    .bind(ranks[2])
                    .fetch_all(&self.reader)
                    .await?;
                    let value = |rank: i64| rows.iter().find(|(r, _)| *r == rank).map(|(_, v)| *v);
                    [s.p50_ms, s.p95_ms, s.p99_ms] = ranks.map(value);
                }
                Ok(s)
            }

            async fn activity(&self, endpoint: &str, since: i64, month_start: i64) -> Result<Activity> {
                let window: (i64, f64) = sqlx::query_as(
                    "SELECT COUNT(*) FILTER (WHERE billing != 'band'), \
                     CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) \
                     FROM usage WHERE endpoint_name = $1 AND request_time >= $2",
                )
                .bind(endpoint)
                .bind(since)
                .fetch_one(&self.reader)
                .await?;
                let month: (f64,) = sqlx::query_as(
                    "SELECT CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) FROM usage \
                     WHERE endpoint_name = $1 AND request_time >= $2",
                )
                .bind(endpoint)
                .bind(month_start)
                .fetch_one(&self.reader)
                .await?;
                let last: (Option<i64>,) =
                    sqlx::query_as("SELECT MAX(request_time) FROM usage WHERE endpoint_name = $1 AND billing != 'band'")
                        .bind(endpoint)
                        .fetch_one(&self.reader)
                        .await?;
                Ok(Activity { requests: window.0, cost_usd: window.1, month_cost_usd: month.0, last_request: last.0 })
            }

            async fn timeline(
                &self,
                endpoint: &str,
                entity: Option<&str>,
                since: i64,
                until: i64,
                buckets: i64,
            ) -> Result<Vec<TimelinePoint>> {
                let rows: Vec<TimelineRow> = sqlx::query_as(
                    "SELECT request_time, latency_ms, ttft_ms, status_code, \
                     (status_code >= 400 OR error_code IS NOT NULL) AS failed, \
                     input_tokens + output_tokens AS tokens, cost_usd, billing = 'band' AS band FROM usage \
                     WHERE endpoint_name = $1 AND ($2 IS NULL OR served_entity = $2) AND request_time >= $3 \
                     AND request_time < $4 ORDER BY request_time DESC LIMIT $5",
                )
                .bind(endpoint)
                .bind(entity)
                .bind(since)
                .bind(until)
                .bind(TIMELINE_MAX_ROWS)
                .fetch_all(&self.reader)
                .await?;
                Ok(timeline_of(rows, since, until, buckets))
            }

            async fn spend(&self, f: &SpendFilter, since: i64) -> Result<f64> {
                let mut sql: QueryBuilder<$db> = QueryBuilder::new(
                    "SELECT CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) FROM usage WHERE request_time >= ",
                );
                sql.push_bind(since).push(" AND (1 = 0");
                if !f.endpoints.is_empty() {
                    sql.push(" OR endpoint_name IN (");
                    let mut list = sql.separated(", ");
                    for e in &f.endpoints {
                        list.push_bind(e.clone());
                    }
                    sql.push(")");
                }
                if !f.requesters.is_empty() {
                    sql.push(" OR requester IN (");
                    let mut list = sql.separated(", ");
                    for r in &f.requesters {
                        list.push_bind(r.clone());
                    }
                    sql.push(")");
                }
                if let Some(t) = &f.token_id {
                    sql.push(" OR token_id = ").push_bind(t.clone());
                }
                for (column, kv) in [("tags", &f.tag), ("usage_context", &f.usage_context)] {
                    if let Some((k, v)) = kv {
                        sql.push(" OR ")
                            .push(<$db as Dialect>::json_field(column))
                            .push_bind(<$db as Dialect>::json_key(&k.replace('"', "")))
                            .push(") = ")
                            .push_bind(v.clone());
                    }
                }
                sql.push(")");
                Ok(sql.build().fetch_one(&self.reader).await?.get(0))
            }
        }
    };
}

usage_tables_on!(Sqlite);
usage_tables_on!(Postgres);
