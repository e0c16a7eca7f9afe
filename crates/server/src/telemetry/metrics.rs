//! Prometheus metrics: `GET /metrics` (the whole server) and
//! `GET /api/2.0/serving-endpoints/{name}/metrics` (the series of one endpoint).
//!
//! The request metrics use the Databricks names (`request_count_total`, `request_4xx_count_total`,
//! `request_5xx_count_total`, `request_latency_ms`), labelled by `endpoint_name` and
//! `served_entity`, so dashboards built for Databricks serving endpoints read them unchanged. Our
//! own metrics carry the same labels where they concern an endpoint.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::policy::breaker::Breakers;
use crate::snapshot::Snapshot;
use crate::telemetry::recent::Recent;

/// Content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets in milliseconds: sub-millisecond gateway answers up to minute-long streams.
const LATENCY_BUCKETS_MS: [f64; 16] =
    [1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0, 60000.0, 120000.0];

/// `endpoint_name`, `served_entity`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EntityLabels {
    /// Endpoint name.
    pub endpoint_name: String,
    /// Served entity name; empty when the request never reached one.
    pub served_entity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    endpoint_name: String,
    served_entity: String,
    provider: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint_name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    endpoint_name: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriterLabels {
    writer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabels {
    reason: &'static str,
}

type Histograms = Family<EntityLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS_MS)
}

/// Why a provider call failed, in a word: `rate_limited`, `http_<status>`, `connect`, `timeout`,
/// `bad_response`, `too_large`, `unsupported`.
pub fn upstream_reason(e: &modelgate_providers::ProviderError) -> String {
    use modelgate_providers::ProviderError as P;
    match e {
        P::Upstream { status: 429, .. } => "rate_limited".to_string(),
        P::Upstream { status, .. } => format!("http_{status}"),
        P::Connect(_) => "connect".into(),
        P::Timeout(_) => "timeout".into(),
        P::BadResponse(_) => "bad_response".into(),
        P::TooLarge(_) => "too_large".into(),
        P::Unsupported(_) => "unsupported".into(),
    }
}

/// What one finished request contributes.
#[derive(Debug, Clone, Default)]
pub struct Observation<'a> {
    /// Endpoint and served entity (empty when the query never reached one).
    pub labels: Option<(&'a str, &'a str)>,
    /// HTTP status sent (200 for a stream, even one that ended with an error event).
    pub status: u16,
    /// Whether a stream ended with an error event (counted as a 5xx, or 4xx for a guardrail).
    pub stream_error: Option<u16>,
    /// Whole request, in milliseconds.
    pub latency_ms: f64,
    /// Until the first token of a stream.
    pub ttft_ms: Option<f64>,
    /// Tokens in.
    pub input_tokens: u64,
    /// Tokens out.
    pub output_tokens: u64,
    /// USD.
    pub cost_usd: f64,
}

/// The query series of one endpoint and served entity, taken out of their families once:
/// prometheus-client's metrics share their values between clones, so a query counts itself with
/// one map lookup instead of hashing two label strings for each of eight families.
struct EntitySeries {
    labels: EntityLabels,
    requests: Counter,
    requests_4xx: Counter,
    requests_5xx: Counter,
    latency: Histogram,
    // Created on first use only, as before: a chat endpoint shows no time-to-first-token series
    // until it streams, and no token or cost series until a query reports some.
    ttft: std::sync::OnceLock<Histogram>,
    input_tokens: std::sync::OnceLock<Counter>,
    output_tokens: std::sync::OnceLock<Counter>,
    cost: std::sync::OnceLock<Counter<f64, AtomicU64>>,
}

/// Endpoint name → served entity → its series.
type SeriesIndex = HashMap<String, HashMap<String, Arc<EntitySeries>>>;

/// Every metric of the server.
pub struct Metrics {
    series: RwLock<SeriesIndex>,
    registry: Registry,
    requests: Family<EntityLabels, Counter>,
    requests_4xx: Family<EntityLabels, Counter>,
    requests_5xx: Family<EntityLabels, Counter>,
    latency: Histograms,
    ttft: Histograms,
    input_tokens: Family<EntityLabels, Counter>,
    output_tokens: Family<EntityLabels, Counter>,
    cost: Family<EntityLabels, Counter<f64, AtomicU64>>,
    rate_limited: Family<EndpointLabels, Counter>,
    cache_lookups: Family<CacheLabels, Counter>,
    cache_entries: Gauge,
    cache_bytes: Gauge,
    upstream_errors: Family<UpstreamLabels, Counter>,
    breaker_open: Family<EntityLabels, Gauge>,
    replicas: Family<EntityLabels, Gauge>,
    provisioned: Family<EntityLabels, Gauge>,
    redis_up: Gauge,
    leader: Gauge,
    snapshot_age: Gauge<f64, AtomicU64>,
    queue_delay: Gauge<f64, AtomicU64>,
    cold_start: Histograms,
    writer_depth: Family<WriterLabels, Gauge>,
    writer_dropped: Family<WriterLabels, Counter>,
    shed: Family<ShedLabels, Counter>,
    started: Instant,
    uptime: Gauge,
    recent: Recent,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric, all at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::default();
        let requests_4xx = Family::default();
        let requests_5xx = Family::default();
        let latency: Histograms = Family::new_with_constructor(latency_histogram);
        let ttft: Histograms = Family::new_with_constructor(latency_histogram);
        let input_tokens = Family::default();
        let output_tokens = Family::default();
        let cost = Family::default();
        let rate_limited = Family::default();
        let upstream_errors = Family::default();
        let breaker_open = Family::default();
        let replicas = Family::default();
        let provisioned = Family::default();
        let redis_up = Gauge::default();
        let leader = Gauge::default();
        let snapshot_age = Gauge::<f64, AtomicU64>::default();
        let queue_delay = Gauge::<f64, AtomicU64>::default();
        let cold_start: Histograms = Family::new_with_constructor(latency_histogram);
        let writer_depth = Family::default();
        let writer_dropped = Family::default();
        let shed = Family::default();
        let uptime = Gauge::default();
        registry.register("request_count", "Queries answered, any status", requests.clone());
        registry.register("request_4xx_count", "Queries answered with a 4xx status", requests_4xx.clone());
        registry.register("request_5xx_count", "Queries answered with a 5xx status", requests_5xx.clone());
        registry.register("request_latency_ms", "Query latency until the last byte, milliseconds", latency.clone());
        registry.register(
            "time_to_first_token_ms",
            "Streamed queries: time until the first token, milliseconds",
            ttft.clone(),
        );
        registry.register("input_tokens", "Input tokens of answered queries", input_tokens.clone());
        registry.register("output_tokens", "Output tokens of answered queries", output_tokens.clone());
        registry.register(
            "cost_usd",
            "Cost in US dollars: of answered queries from the price table, and of provisioned band-time",
            cost.clone(),
        );
        registry.register("rate_limited_count", "Queries refused by a rate limit", rate_limited.clone());
        let cache_lookups = Family::default();
        registry.register(
            "cache_lookup_count",
            "Queries of endpoints with a response cache, by result: hit, miss or bypass",
            cache_lookups.clone(),
        );
        let cache_entries = Gauge::default();
        registry.register(
            "response_cache_entries",
            "Answers held in the response cache's memory",
            cache_entries.clone(),
        );
        let cache_bytes = Gauge::default();
        registry.register("response_cache_bytes", "Bytes held in the response cache's memory", cache_bytes.clone());
        registry.register(
            "upstream_error_count",
            "Failed provider calls (including ones retried or failed over), by provider and reason",
            upstream_errors.clone(),
        );
        registry.register(
            "circuit_breaker_open",
            "1 while a served entity's circuit breaker is open or half-open, else 0",
            breaker_open.clone(),
        );
        registry.register("hosted_replicas", "Replicas serving a hosted served entity", replicas.clone());
        registry.register(
            "provisioned_throughput_tokens_per_second",
            "Foundation models with provisioned throughput: the tokens per second of the bands held now",
            provisioned.clone(),
        );
        registry.register(
            "cold_start_ms",
            "Hosted entities: time from starting a replica with none serving until it answers, milliseconds",
            cold_start.clone(),
        );
        registry.register(
            "writer_queue_depth",
            "Records waiting for a background writer (usage, inference)",
            writer_depth.clone(),
        );
        registry.register(
            "writer_dropped",
            "Records a background writer dropped: queue full, or the database failed",
            writer_dropped.clone(),
        );
        registry.register(
            "shed",
            "Connections and requests refused to protect the server: connections, in_flight, \
             body_timeout, body_too_large, audit_denials",
            shed.clone(),
        );
        registry.register("uptime_seconds", "Seconds since the server started", uptime.clone());
        registry.register(
            "redis_up",
            "With --redis-url: 1 while Redis answers (rate limits shared by every replica), 0 while each replica counts alone",
            redis_up.clone(),
        );
        registry.register(
            "replica_leader",
            "1 on the replica that runs alerts, deployments and retention (always 1 on a single server)",
            leader.clone(),
        );
        registry.register(
            "snapshot_age_seconds",
            "Seconds since the configuration this replica serves was last known current (0 on a single server)",
            snapshot_age.clone(),
        );
        registry.register(
            "queue_delay_seconds",
            "How late the server last ran work that was ready (measured every 10 ms under load, 100 ms otherwise); past --max-queue-delay twice in a row, new requests are shed",
            queue_delay.clone(),
        );
        Metrics {
            series: RwLock::default(),
            registry,
            requests,
            requests_4xx,
            requests_5xx,
            latency,
            ttft,
            input_tokens,
            output_tokens,
            cost,
            rate_limited,
            cache_lookups,
            cache_entries,
            cache_bytes,
            upstream_errors,
            breaker_open,
            replicas,
            provisioned,
            redis_up,
            leader,
            snapshot_age,
            queue_delay,
            cold_start,
            writer_depth,
            writer_dropped,
            shed,
            started: Instant::now(),
            uptime,
            recent: Recent::default(),
        }
    }

    /// The series of `endpoint` and `entity`, created on their first query.
    fn series(&self, endpoint: &str, entity: &str) -> Arc<EntitySeries> {
        let known =
            self.series.read().unwrap_or_else(|e| e.into_inner()).get(endpoint).and_then(|m| m.get(entity)).cloned();
        if let Some(s) = known {
            return s;
        }
        let labels = EntityLabels { endpoint_name: endpoint.to_string(), served_entity: entity.to_string() };
        let made = Arc::new(EntitySeries {
            requests: self.requests.get_or_create(&labels).clone(),
            // Both error series exist from the first request on, at zero, as dashboards expect.
            requests_4xx: self.requests_4xx.get_or_create(&labels).clone(),
            requests_5xx: self.requests_5xx.get_or_create(&labels).clone(),
            latency: self.latency.get_or_create(&labels).clone(),
            ttft: Default::default(),
            input_tokens: Default::default(),
            output_tokens: Default::default(),
            cost: Default::default(),
            labels,
        });
        let mut all = self.series.write().unwrap_or_else(|e| e.into_inner());
        all.entry(endpoint.to_string()).or_default().entry(entity.to_string()).or_insert(made).clone()
    }

    /// Counts one finished query.
    pub fn observe(&self, o: &Observation) {
        let Some((endpoint, entity)) = o.labels else { return };
        let s = self.series(endpoint, entity);
        s.requests.inc();
        let status = o.stream_error.unwrap_or(o.status);
        match status {
            400..=499 => {
                s.requests_4xx.inc();
            }
            500..=599 => {
                s.requests_5xx.inc();
            }
            _ => {}
        }
        // A client that hung up (499) is not an error of the endpoint's.
        let failed = status >= 400 && status != crate::telemetry::usage::CLIENT_CLOSED;
        self.recent.observe(endpoint, failed, o.latency_ms);
        s.latency.observe(o.latency_ms);
        if let Some(t) = o.ttft_ms {
            s.ttft.get_or_init(|| self.ttft.get_or_create(&s.labels).clone()).observe(t);
        }
        if o.input_tokens > 0 {
            s.input_tokens.get_or_init(|| self.input_tokens.get_or_create(&s.labels).clone()).inc_by(o.input_tokens);
        }
        if o.output_tokens > 0 {
            s.output_tokens.get_or_init(|| self.output_tokens.get_or_create(&s.labels).clone()).inc_by(o.output_tokens);
        }
        if o.cost_usd > 0.0 {
            s.cost.get_or_init(|| self.cost.get_or_create(&s.labels).clone()).inc_by(o.cost_usd);
        }
    }

    /// Whether Redis answers (`None`: not configured, no sample).
    pub fn redis_up(&self, up: Option<bool>) {
        if let Some(up) = up {
            self.redis_up.set(i64::from(up));
        }
    }

    /// This replica's role and how current its snapshot is.
    pub fn replica(&self, leader: bool, snapshot_age_secs: f64) {
        self.leader.set(i64::from(leader));
        self.snapshot_age.set(snapshot_age_secs);
    }

    /// Adds the cost of provisioned band-time of an entity.
    pub fn band_cost(&self, endpoint: &str, entity: &str, usd: f64) {
        let labels = EntityLabels { endpoint_name: endpoint.to_string(), served_entity: entity.to_string() };
        self.cost.get_or_create(&labels).inc_by(usd);
    }

    /// Cumulative per-endpoint statistics for the alert rules.
    pub fn recent(&self) -> &Recent {
        &self.recent
    }

    /// Records dropped by the writer `writer`.
    pub fn writer_dropped(&self, writer: &str, n: u64) {
        self.writer_dropped.get_or_create(&WriterLabels { writer: writer.to_string() }).inc_by(n);
    }

    /// Records waiting for the writer `writer`.
    pub fn writer_queue_depth(&self, writer: &str, n: usize) {
        self.writer_depth.get_or_create(&WriterLabels { writer: writer.to_string() }).set(n as i64);
    }

    /// How late the server last ran ready work.
    pub fn queue_delay(&self, late: std::time::Duration) {
        self.queue_delay.set(late.as_secs_f64());
    }

    /// Counts a connection or request refused to protect the server, by reason.
    pub fn shed(&self, reason: &'static str) {
        self.shed.get_or_create(&ShedLabels { reason }).inc();
    }

    /// Counts a query refused by a rate limit.
    pub fn rate_limited(&self, endpoint: &str) {
        self.rate_limited.get_or_create(&EndpointLabels { endpoint_name: endpoint.to_string() }).inc();
    }

    /// Counts a query of an endpoint with a response cache, by how it met the cache.
    pub fn cache(&self, endpoint: &str, result: &'static str) {
        self.cache_lookups.get_or_create(&CacheLabels { endpoint_name: endpoint.to_string(), result }).inc();
    }

    /// The response cache's size in memory now.
    pub fn cache_size(&self, entries: u64, bytes: u64) {
        self.cache_entries.set(entries as i64);
        self.cache_bytes.set(bytes as i64);
    }

    /// Counts a failed provider call.
    pub fn upstream_error(&self, endpoint: &str, entity: &str, provider: &str, e: &modelgate_providers::ProviderError) {
        let labels = UpstreamLabels {
            endpoint_name: endpoint.to_string(),
            served_entity: entity.to_string(),
            provider: provider.to_string(),
            reason: upstream_reason(e),
        };
        self.upstream_errors.get_or_create(&labels).inc();
    }

    /// The whole exposition, with gauges brought up to date.
    pub fn render(&self, snapshot: &Snapshot, breakers: &Breakers) -> String {
        let now = Instant::now();
        self.breaker_open.clear();
        for ep in snapshot.endpoints.values() {
            for e in &ep.entities {
                let open = breakers.status(&ep.id, &e.name, now).refusing();
                let labels = EntityLabels { endpoint_name: ep.name.clone(), served_entity: e.name.clone() };
                self.breaker_open.get_or_create(&labels).set(i64::from(open));
                if let Some(set) = &e.hosted {
                    self.replicas.get_or_create(&labels).set(set.status().ready as i64);
                    if let Some(t) = &set.throughput {
                        self.provisioned.get_or_create(&labels).set(t.status().tokens_per_second as i64);
                    }
                    let histogram = self.cold_start.get_or_create(&labels);
                    for ms in set.take_cold_starts() {
                        histogram.observe(ms);
                    }
                }
            }
        }
        self.uptime.set(self.started.elapsed().as_secs() as i64);
        self.text()
    }

    /// The exposition as it stands, gauges as last set.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The series of one endpoint: every sample labelled with it, and every metric's metadata.
    pub fn render_endpoint(&self, snapshot: &Snapshot, breakers: &Breakers, endpoint: &str) -> String {
        let all = self.render(snapshot, breakers);
        let label = format!("endpoint_name=\"{endpoint}\"");
        all.lines()
            .filter(|l| l.starts_with('#') || l.contains(&label))
            .filter(|l| !l.starts_with("# HELP writer_") && !l.starts_with("# TYPE writer_"))
            .filter(|l| !l.starts_with("# HELP uptime") && !l.starts_with("# TYPE uptime"))
            .filter(|l| !l.starts_with("# HELP shed") && !l.starts_with("# TYPE shed"))
            .filter(|l| !l.starts_with("# HELP response_cache") && !l.starts_with("# TYPE response_cache"))
            .fold(String::with_capacity(all.len()), |mut s, l| {
                s.push_str(l);
                s.push('\n');
                s
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposition(m: &Metrics) -> String {
        m.text()
    }

    fn query(status: u16, ttft_ms: Option<f64>) -> Observation<'static> {
        Observation { labels: Some(("ep", "a")), status, latency_ms: 3.0, ttft_ms, ..Default::default() }
    }

    #[test]
    fn queries_count_into_their_endpoints_series_and_lazy_series_appear_on_first_use() {
        let m = Metrics::new();
        m.observe(&query(200, None));
        m.observe(&query(503, None));
        m.observe(&Observation { labels: Some(("other", "b")), status: 200, ..Default::default() });
        let out = exposition(&m);
        let series =
            |name: &str, ep: &str, entity: &str| format!("{name}{{endpoint_name=\"{ep}\",served_entity=\"{entity}\"}}");
        assert!(out.contains(&format!("{} 2", series("request_count_total", "ep", "a"))), "{out}");
        assert!(out.contains(&format!("{} 1", series("request_5xx_count_total", "ep", "a"))), "{out}");
        assert!(out.contains(&format!("{} 0", series("request_4xx_count_total", "ep", "a"))), "{out}");
        assert!(out.contains(&format!("{} 1", series("request_count_total", "other", "b"))), "{out}");
        assert!(!out.contains("time_to_first_token_ms_count{"), "no stream yet: {out}");
        assert!(!out.contains("input_tokens_total{"), "no tokens yet: {out}");

        m.observe(&Observation { input_tokens: 7, ..query(200, Some(1.5)) });
        let out = exposition(&m);
        assert!(out.contains(&format!("{} 1", series("time_to_first_token_ms_count", "ep", "a"))), "{out}");
        assert!(out.contains(&format!("{} 7", series("input_tokens_total", "ep", "a"))), "{out}");
        assert!(out.contains(&format!("{} 3", series("request_count_total", "ep", "a"))), "{out}");
    }
}
