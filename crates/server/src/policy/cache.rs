//! The response cache (`ai_gateway.cache_config`): an answer to a query identical to one answered
//! before is served again instead of asking the provider.
//!
//! A query's key is a SHA-256 of the endpoint, its active config version and output guardrails
//! (a new version or policy never serves an old answer), the caller when the endpoint caches per
//! caller, and the request body in canonical form (keys sorted, so field order does not matter)
//! without the fields that steer the gateway rather than the model (`model`, `stream`,
//! `stream_options`, `client_request_id`, `usage_context`). The lookup happens after admission:
//! whoever gets an answer from the cache was allowed to query the endpoint, passed its budgets,
//! rate limits and input guardrails, and would have received the same answer from the provider.
//!
//! Entries live in memory, bounded in bytes with least-recently-used eviction, and, when the server
//! has Redis, in Redis too, so every replica shares them. Each entry carries its own expiry, so an
//! answer is never served after its TTL whichever tier it comes from.
//!
//! Semantic caching (answering similar, not identical, queries) would plug in here as another
//! lookup keyed by an embedding of the prompt; it is not built.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use modelgate_providers::{Body, Task};
use modelgate_wire::AiGatewayConfig;
use ring::digest::{Context, SHA256};
use serde_json::Value;

use super::shared::SharedCounters;

/// Fields of a query that do not change its answer.
const UNKEYED_FIELDS: [&str; 5] = ["model", "stream", "stream_options", "client_request_id", "usage_context"];
/// Default `ttl_seconds`.
pub const DEFAULT_TTL_SECONDS: u64 = 300;

/// A query's cache key.
pub type Key = [u8; 32];

/// An endpoint's cache settings, as the request path reads them (built with the snapshot).
#[derive(Debug)]
pub struct LiveCache {
    /// How long an answer is served.
    pub ttl: Duration,
    /// Chat and completions answers of sampling queries are cached too.
    pub cache_sampled: bool,
    /// Each caller has its own entries.
    pub per_caller: bool,
    /// The part of every key that names the endpoint, its config version and output policy.
    seed: Key,
}

impl LiveCache {
    /// The settings of endpoint `id` at `config_version`, if its cache is on.
    pub fn of(id: &str, config_version: Option<i64>, gateway: Option<&AiGatewayConfig>) -> Option<LiveCache> {
        let g = gateway?;
        let c = g.cache_config.as_ref().filter(|c| c.enabled)?;
        let mut ctx = Context::new(&SHA256);
        ctx.update(b"modelgate-cache-v1\0");
        ctx.update(id.as_bytes());
        ctx.update(&config_version.unwrap_or(0).to_le_bytes());
        // Guardrails change what an answer looks like (masked, refused); the serialised policy
        // is stable for a given policy (struct fields in declaration order).
        if let Some(gr) = &g.guardrails {
            ctx.update(serde_json::to_string(gr).unwrap_or_default().as_bytes());
        }
        Some(LiveCache {
            ttl: Duration::from_secs(c.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS)),
            cache_sampled: c.cache_sampled.unwrap_or(false),
            per_caller: c.scope.as_deref() == Some("caller"),
            seed: digest(ctx),
        })
    }
}

fn digest(ctx: Context) -> Key {
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// What the client's `Cache-Control` (or `Pragma: no-cache`) asks of the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directive {
    /// `no-cache`: do not answer from the cache (the fresh answer is still stored).
    pub no_cache: bool,
    /// `no-store`: neither answer from the cache nor store the answer.
    pub no_store: bool,
}

impl Directive {
    /// Reads the request's headers.
    pub fn of(headers: &HeaderMap) -> Directive {
        let mut d = Directive::default();
        for v in headers.get_all(axum::http::header::CACHE_CONTROL).iter().filter_map(|v| v.to_str().ok()) {
            for token in v.split(',').map(|t| t.trim()) {
                if token.eq_ignore_ascii_case("no-cache") || token.eq_ignore_ascii_case("max-age=0") {
                    d.no_cache = true;
                } else if token.eq_ignore_ascii_case("no-store") {
                    d.no_store = true;
                }
            }
        }
        if headers.get(axum::http::header::PRAGMA).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("no-cache"))
        {
            d.no_cache = true;
        }
        d
    }
}

/// How a query met the cache, as the `x-modelgate-cache` header and the metrics say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered from the cache.
    Hit,
    /// Looked up, not found: the provider answered (and the answer was stored).
    Miss,
    /// Not looked up: the client asked so, or the query samples and the endpoint does not cache
    /// sampled answers.
    Bypass,
}

impl Outcome {
    /// `hit`, `miss` or `bypass`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Bypass => "bypass",
        }
    }
}

/// The cache's part in one query.
#[derive(Debug, Clone, Copy)]
pub struct Lookup {
    /// The query's key.
    pub key: Key,
    /// Whether it may be answered from the cache.
    pub read: bool,
    /// Whether its answer may be stored.
    pub write: bool,
    /// How long a stored answer lives.
    pub ttl: Duration,
}

impl Lookup {
    /// The cache's part in a query of `task` by `caller_id` on an endpoint with `live` settings;
    /// `None` when it takes none (a task that is not cached, a sampling query).
    pub fn plan(live: &LiveCache, task: Task, caller_id: &str, body: &Body, d: Directive) -> Option<Lookup> {
        let cacheable = match task {
            Task::Embeddings => true,
            Task::Chat | Task::Completions => live.cache_sampled || !samples(body),
            Task::Images | Task::Scoring => false,
        };
        if !cacheable || (d.no_cache && d.no_store) {
            return None;
        }
        let mut ctx = Context::new(&SHA256);
        ctx.update(&live.seed);
        if live.per_caller {
            ctx.update(caller_id.as_bytes());
            ctx.update(b"\0");
        }
        feed_object(&mut ctx, body, &UNKEYED_FIELDS);
        Some(Lookup { key: digest(ctx), read: !d.no_cache && !d.no_store, write: !d.no_store, ttl: live.ttl })
    }
}

/// Whether a chat or completions query samples: anything but `temperature: 0` (the providers'
/// default temperature is above 0).
fn samples(body: &Body) -> bool {
    body.get("temperature").and_then(Value::as_f64) != Some(0.0)
}

/// Feeds `v` to `ctx` in a form where equal JSON values give equal bytes and different ones
/// different bytes: every value is tagged and every string and container length-prefixed, object
/// keys sorted.
fn feed(ctx: &mut Context, v: &Value) {
    match v {
        Value::Null => ctx.update(b"n"),
        Value::Bool(true) => ctx.update(b"t"),
        Value::Bool(false) => ctx.update(b"f"),
        Value::Number(n) => {
            let text = n.to_string();
            ctx.update(b"#");
            feed_str(ctx, &text);
        }
        Value::String(s) => {
            ctx.update(b"s");
            feed_str(ctx, s);
        }
        Value::Array(items) => {
            ctx.update(b"[");
            ctx.update(&(items.len() as u64).to_le_bytes());
            for item in items {
                feed(ctx, item);
            }
        }
        Value::Object(map) => feed_object(ctx, map, &[]),
    }
}

fn feed_str(ctx: &mut Context, s: &str) {
    ctx.update(&(s.len() as u64).to_le_bytes());
    ctx.update(s.as_bytes());
}

fn feed_object(ctx: &mut Context, map: &serde_json::Map<String, Value>, skip: &[&str]) {
    let mut fields: Vec<(&String, &Value)> = map.iter().filter(|(k, _)| !skip.contains(&k.as_str())).collect();
    fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
    ctx.update(b"{");
    ctx.update(&(fields.len() as u64).to_le_bytes());
    for (k, v) in fields {
        feed_str(ctx, k);
        feed(ctx, v);
    }
}

/// A cached answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The whole answer as its client received it (OpenAI shape, after output guardrails).
    pub body: Bytes,
    /// The served entity that answered.
    pub entity: String,
    /// When it was stored, ms since the epoch.
    pub stored_ms: i64,
    /// When it stops being served, ms since the epoch.
    pub expires_ms: i64,
}

/// Version byte of an entry's form in Redis.
const ENTRY_FORMAT: u8 = 1;

impl Entry {
    /// Its form in Redis: version, stored and expiry times, entity name (length-prefixed), body.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(19 + self.entity.len() + self.body.len());
        out.push(ENTRY_FORMAT);
        out.extend_from_slice(&self.stored_ms.to_le_bytes());
        out.extend_from_slice(&self.expires_ms.to_le_bytes());
        out.extend_from_slice(&(self.entity.len() as u16).to_le_bytes());
        out.extend_from_slice(self.entity.as_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    /// An entry read back from Redis; `None` for anything not written by [`Entry::encode`].
    fn decode(bytes: &[u8]) -> Option<Entry> {
        let (&format, rest) = bytes.split_first()?;
        if format != ENTRY_FORMAT {
            return None;
        }
        let int = |b: &[u8]| -> Option<i64> { Some(i64::from_le_bytes(b.try_into().ok()?)) };
        let stored_ms = int(rest.get(..8)?)?;
        let expires_ms = int(rest.get(8..16)?)?;
        let len = u16::from_le_bytes(rest.get(16..18)?.try_into().ok()?) as usize;
        let entity = std::str::from_utf8(rest.get(18..18 + len)?).ok()?.to_string();
        let body = Bytes::copy_from_slice(rest.get(18 + len..)?);
        Some(Entry { body, entity, stored_ms, expires_ms })
    }

    /// Its age in whole seconds at `now_ms`.
    pub fn age_secs(&self, now_ms: i64) -> u64 {
        ((now_ms - self.stored_ms).max(0) / 1000) as u64
    }

    fn weight(&self) -> u32 {
        (self.body.len() + self.entity.len() + 64).min(u32::MAX as usize) as u32
    }
}

/// The server's response cache.
pub struct ResponseCache {
    local: moka::sync::Cache<Key, Arc<Entry>>,
    shared: Option<SharedCounters>,
    /// Largest answer stored: a few huge answers must not evict everything else.
    max_entry: usize,
}

impl ResponseCache {
    /// A cache of at most `max_bytes` in memory, shared through Redis when `shared` is given.
    pub fn new(max_bytes: u64, shared: Option<SharedCounters>) -> Self {
        let local = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_: &Key, e: &Arc<Entry>| e.weight())
            // No entry outlives the longest TTL; shorter ones are checked on read.
            .time_to_live(Duration::from_secs(*modelgate_core::validate::CACHE_TTL_SECONDS.end()))
            .build();
        ResponseCache { local, shared, max_entry: (max_bytes / 16).max(1) as usize }
    }

    /// The answer stored under `key` and not expired at `now_ms`: from memory, else from Redis
    /// (then kept in memory too).
    pub async fn get(&self, key: &Key, now_ms: i64) -> Option<Arc<Entry>> {
        if let Some(e) = self.local.get(key) {
            if e.expires_ms > now_ms {
                return Some(e);
            }
            self.local.invalidate(key);
        }
        let redis = self.shared.as_ref().filter(|r| r.up())?;
        let bytes = redis.cache_get(&modelgate_core::token::hex(key)).await?;
        let entry = Arc::new(Entry::decode(&bytes)?);
        if entry.expires_ms <= now_ms {
            return None;
        }
        self.local.insert(*key, entry.clone());
        Some(entry)
    }

    /// Stores an answer under `key`, in memory and (in the background) in Redis. Answers larger
    /// than a sixteenth of the cache are not stored.
    pub fn put(&self, key: Key, entry: Entry, now_ms: i64) {
        if entry.body.len() > self.max_entry || entry.expires_ms <= now_ms {
            return;
        }
        // Sent in the background (the answer has gone out already); outside a runtime (a
        // settlement dropped during shutdown) only memory gets it.
        if let (Some(redis), Ok(runtime)) =
            (self.shared.clone().filter(|r| r.up()), tokio::runtime::Handle::try_current())
        {
            let ttl_ms = (entry.expires_ms - now_ms) as u64;
            let bytes = entry.encode();
            let id = modelgate_core::token::hex(&key);
            runtime.spawn(async move { redis.cache_put(&id, bytes, ttl_ms).await });
        }
        self.local.insert(key, Arc::new(entry));
    }

    /// Entries and bytes held in memory now.
    pub fn size(&self) -> (u64, u64) {
        self.local.run_pending_tasks();
        (self.local.entry_count(), self.local.weighted_size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Body {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("a test body is an object"),
        }
    }

    fn live(cfg: Value) -> LiveCache {
        let g: AiGatewayConfig = serde_json::from_value(json!({"cache_config": cfg})).unwrap();
        LiveCache::of("ep1", Some(3), Some(&g)).unwrap()
    }

    fn key(l: &LiveCache, task: Task, caller: &str, b: Value) -> Option<Key> {
        Lookup::plan(l, task, caller, &body(b), Directive::default()).map(|l| l.key)
    }

    #[test]
    fn equal_queries_share_a_key_whatever_their_field_order_or_gateway_fields() {
        let l = live(json!({"enabled": true}));
        let a = key(&l, Task::Embeddings, "u1", json!({"input": ["a", "b"], "dimensions": 8, "model": "x"}));
        let b = key(
            &l,
            Task::Embeddings,
            "u2",
            json!({"dimensions": 8, "client_request_id": "r", "usage_context": {"t": 1}, "input": ["a", "b"]}),
        );
        assert!(a.is_some() && a == b);
        for other in [
            json!({"input": ["a", "b"], "dimensions": 9}),
            json!({"input": ["b", "a"], "dimensions": 8}),
            json!({"input": ["ab"], "dimensions": 8}),
            json!({"input": ["a", "b"], "dimensions": "8"}),
            json!({"input": ["a", "b"], "dimensions": 8, "user": "x"}),
        ] {
            assert_ne!(key(&l, Task::Embeddings, "u1", other.clone()), a, "{other}");
        }
    }

    #[test]
    fn the_endpoint_version_guardrails_and_scope_are_in_the_key() {
        let q = json!({"input": "a"});
        let base = key(&live(json!({"enabled": true})), Task::Embeddings, "u1", q.clone());
        let g = |v: Value| serde_json::from_value::<AiGatewayConfig>(v).unwrap();
        let on = json!({"cache_config": {"enabled": true}});
        let other_version = LiveCache::of("ep1", Some(4), Some(&g(on.clone()))).unwrap();
        let other_endpoint = LiveCache::of("ep2", Some(3), Some(&g(on))).unwrap();
        let guarded = LiveCache::of(
            "ep1",
            Some(3),
            Some(&g(
                json!({"cache_config": {"enabled": true}, "guardrails": {"output": {"pii": {"behavior": "MASK"}}}}),
            )),
        )
        .unwrap();
        for l in [other_version, other_endpoint, guarded] {
            assert_ne!(key(&l, Task::Embeddings, "u1", q.clone()), base);
        }
        let per_caller = live(json!({"enabled": true, "scope": "caller"}));
        assert_ne!(
            key(&per_caller, Task::Embeddings, "u1", q.clone()),
            key(&per_caller, Task::Embeddings, "u2", q.clone())
        );
        assert_eq!(key(&per_caller, Task::Embeddings, "u1", q.clone()), key(&per_caller, Task::Embeddings, "u1", q));
    }

    #[test]
    fn sampling_queries_are_not_cached_unless_the_endpoint_says_so() {
        let l = live(json!({"enabled": true}));
        let chat = |t: Option<f64>| {
            let mut b = json!({"messages": [{"role": "user", "content": "hi"}]});
            if let Some(t) = t {
                b["temperature"] = json!(t);
            }
            b
        };
        assert!(key(&l, Task::Chat, "u", chat(None)).is_none());
        assert!(key(&l, Task::Chat, "u", chat(Some(0.7))).is_none());
        assert!(key(&l, Task::Chat, "u", chat(Some(0.0))).is_some());
        assert!(key(&l, Task::Completions, "u", json!({"prompt": "x", "temperature": 0})).is_some());
        assert!(key(&l, Task::Images, "u", json!({"prompt": "x"})).is_none());
        let sampled = live(json!({"enabled": true, "cache_sampled": true}));
        assert!(key(&sampled, Task::Chat, "u", chat(Some(0.7))).is_some());
        let off: AiGatewayConfig = serde_json::from_value(json!({"cache_config": {"enabled": false}})).unwrap();
        assert!(LiveCache::of("ep1", Some(1), Some(&off)).is_none());
    }

    #[test]
    fn cache_control_reads_no_cache_and_no_store() {
        let d = |pairs: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
            }
            Directive::of(&h)
        };
        assert_eq!(d(&[]), Directive::default());
        assert_eq!(d(&[("cache-control", "No-Cache")]), Directive { no_cache: true, no_store: false });
        assert_eq!(d(&[("cache-control", "max-age=0, no-store")]), Directive { no_cache: true, no_store: true });
        assert_eq!(d(&[("pragma", "no-cache")]), Directive { no_cache: true, no_store: false });
        let l = live(json!({"enabled": true}));
        let q = body(json!({"input": "a"}));
        let no_cache = Lookup::plan(&l, Task::Embeddings, "u", &q, Directive { no_cache: true, no_store: false });
        assert!(no_cache.is_some_and(|l| !l.read && l.write));
        let no_store = Lookup::plan(&l, Task::Embeddings, "u", &q, Directive { no_cache: false, no_store: true });
        assert!(no_store.is_some_and(|l| !l.read && !l.write));
    }

    #[test]
    fn entries_round_trip_through_their_redis_form_and_junk_is_refused() {
        let e = Entry { body: Bytes::from_static(b"{\"data\":[]}"), entity: "m-1".into(), stored_ms: 5, expires_ms: 9 };
        assert_eq!(Entry::decode(&e.encode()), Some(e.clone()));
        assert_eq!(Entry::decode(b""), None);
        assert_eq!(Entry::decode(&[2, 0, 0]), None);
        assert_eq!(Entry::decode(&e.encode()[..12]), None);
    }

    #[tokio::test]
    async fn entries_expire_and_the_size_bound_evicts() {
        let cache = ResponseCache::new(64 * 1024, None);
        let entry = |n: usize, expires_ms| Entry {
            body: Bytes::from(vec![b'x'; n]),
            entity: "e".into(),
            stored_ms: 0,
            expires_ms,
        };
        cache.put([1; 32], entry(10, 1_000), 0);
        assert!(cache.get(&[1; 32], 999).await.is_some());
        assert!(cache.get(&[1; 32], 1_000).await.is_none(), "served after its TTL");
        cache.put([2; 32], entry(8 * 1024, 1_000), 0);
        assert!(cache.get(&[2; 32], 0).await.is_none(), "an answer over a sixteenth of the cache is not kept");
        for i in 0..40u8 {
            cache.put([i + 10; 32], entry(3 * 1024, 1_000), 0);
        }
        let (_, bytes) = cache.size();
        assert!(bytes <= 64 * 1024, "{bytes} bytes held");
    }
}
