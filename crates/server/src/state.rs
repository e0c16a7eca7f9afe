//! Shared server state.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use arc_swap::ArcSwap;
use modelgate_core::cipher::Cipher;
use modelgate_providers::Settings;
use modelgate_store::Store;

use crate::error::ApiError;
use crate::policy::breaker::Breakers;
use crate::settings::{Limits, RetrySettings, UpstreamTimeouts};
use crate::snapshot::Snapshot;

/// Everything handlers share. One `Arc`: axum clones the state for every extractor of every
/// request, so a clone must cost one atomic increment, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The fields of [`AppState`].
pub struct Shared {
    /// Persistent state.
    pub store: Arc<dyn Store>,
    /// Master-key cipher for secrets and plaintext credentials.
    pub cipher: Arc<Cipher>,
    /// What the request path reads.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// Writers hold it across "commit, rebuild, swap" so a slower, older rebuild never replaces
    /// a newer one, and so readers of endpoint state (who take the read side) never see a commit
    /// whose snapshot is not live yet.
    refresh_lock: Arc<tokio::sync::RwLock<()>>,
    /// Deployment requests.
    pub deployer: DeployQueue,
    /// Recent runtime events per served entity (`logs`).
    pub events: Arc<EntityEvents>,
    /// The latest health probe of every served entity.
    pub health: Arc<HealthBoard>,

    /// Stable id of this installation, announced at `/.well-known/databricks-config`.
    pub workspace_id: Arc<str>,
    /// Pooled HTTP client for upstream providers.
    pub http: reqwest::Client,
    /// Provider settings (base-URL overrides).
    pub providers: Arc<Settings>,
    /// Upstream time limits.
    pub timeouts: UpstreamTimeouts,
    /// Circuit breakers of every served entity.
    pub breakers: Arc<Breakers>,
    /// Retry policy.
    pub retries: RetrySettings,
    /// Rate-limit counters.
    pub counters: Arc<crate::policy::counters::Counters>,
    /// The chat endpoint that judges `safety` and `valid_topics` guardrails.
    pub judge_endpoint: Option<String>,
    /// Prometheus metrics.
    pub metrics: Arc<crate::telemetry::metrics::Metrics>,
    /// Usage records: pricing, the writer, the database.
    pub usage: Arc<crate::telemetry::usage::UsageSink>,
    /// Inference-table payloads: the writer, the database.
    pub inference: Arc<crate::telemetry::inference::InferenceSink>,
    /// Answers of endpoints with `ai_gateway.cache_config`.
    pub cache: Arc<crate::policy::cache::ResponseCache>,
    /// Budget policies and their spend.
    pub budgets: Arc<crate::policy::budgets::Budgets>,
    /// Resource limits.
    pub limits: Limits,
    /// Which base URLs anyone may use; others need the custom base URL right.
    pub outbound: modelgate_core::outbound::OutboundPolicy,
    /// Days required between a deprecation's notice and its sunset.
    pub min_deprecation_notice_days: i64,
    /// Whether users with a password may sign in to the console with it.
    pub console_password_sign_in: bool,
    /// Hosted models' replica sets.
    pub hosting: Arc<crate::hosting::Hosting>,
    /// The other replicas of the install, if any.
    pub cluster: Arc<crate::cluster::Cluster>,
    /// OpenTelemetry traces of the data plane, when exported.
    pub traces: Option<Arc<crate::telemetry::traces::Traces>>,
}

/// Where finished queries leave their records.
pub struct Sinks {
    /// Usage records.
    pub usage: Arc<crate::telemetry::usage::UsageSink>,
    /// Inference-table payloads.
    pub inference: Arc<crate::telemetry::inference::InferenceSink>,
    /// Served entities' runtime events (hosted replicas write theirs here too).
    pub events: Arc<EntityEvents>,
    /// Hosted models' replica sets.
    pub hosting: Arc<crate::hosting::Hosting>,
    /// Rate-limit counters.
    pub counters: Arc<crate::policy::counters::Counters>,
    /// The other replicas of the install, if any.
    pub cluster: Arc<crate::cluster::Cluster>,
    /// OpenTelemetry trace export, if on.
    pub traces: Option<Arc<crate::telemetry::traces::Traces>>,
}

impl AppState {
    /// Builds the state around an initial snapshot.
    pub fn new(
        store: Arc<dyn Store>,
        cipher: Arc<Cipher>,
        snapshot: Snapshot,
        deployer: DeployQueue,
        workspace_id: String,
        config: &crate::ServerConfig,
        sinks: Sinks,
    ) -> Result<Self, reqwest::Error> {
        let Sinks { usage, inference, events, hosting, counters, cluster, traces } = sinks;
        let timeouts = config.timeouts;
        let http = crate::egress::client(timeouts.connect)?;
        let metrics = usage.metrics.clone();
        let breakers = Arc::new(Breakers::new(config.breaker));
        breakers.sync(snapshot.entity_fingerprints());
        let health = Arc::new(HealthBoard::default());
        health.sync(snapshot.entity_fingerprints());
        let cache = Arc::new(crate::policy::cache::ResponseCache::new(
            config.limits.response_cache_size as u64,
            counters.shared_store().cloned(),
        ));
        Ok(AppState(Arc::new(Shared {
            store,
            cipher,
            snapshot: Arc::new(ArcSwap::from_pointee(snapshot)),
            refresh_lock: Arc::new(tokio::sync::RwLock::new(())),
            deployer,
            events,
            hosting,
            health,

            workspace_id: workspace_id.into(),
            http,
            providers: Arc::new(config.providers.clone()),
            timeouts,
            breakers,
            retries: config.retries,
            counters,
            judge_endpoint: config.judge_endpoint.clone(),
            metrics: metrics.clone(),
            usage,
            inference,
            cache,
            budgets: Arc::new(crate::policy::budgets::Budgets::default()),
            limits: config.limits,
            outbound: config.outbound.clone(),
            min_deprecation_notice_days: (config.min_deprecation_notice.as_secs() / 86_400) as i64,
            console_password_sign_in: config.console_password_sign_in,
            cluster,
            traces,
        })))
    }

    /// Rebuilds the snapshot from the store and swaps it in. Called after every committed change,
    /// before the response is sent, so a client that got an answer sees its change on the next
    /// request.
    pub async fn refresh(&self) -> Result<(), ApiError> {
        let _guard = self.refresh_lock.write().await;
        self.rebuild().await?;
        self.cluster.announce().await;
        Ok(())
    }

    /// Rebuilds the snapshot and the budgets after another replica's change.
    pub async fn reload(&self) -> Result<(), ApiError> {
        {
            let _guard = self.refresh_lock.write().await;
            self.rebuild().await?;
        }
        self.reload_budgets().await
    }

    /// Re-reads the budget policies and token budgets and their spend.
    pub async fn reload_budgets(&self) -> Result<(), ApiError> {
        let snapshot = self.snapshot.load_full();
        let members_of = |group: &str| snapshot.members_of(group);
        let principals =
            crate::policy::budgets::Principals { members_of: &members_of, token_budgets: snapshot.token_budgets() };
        self.budgets.reload(self.store.as_ref(), &self.usage.db, &snapshot.targets(), &principals).await
    }

    async fn rebuild(&self) -> Result<(), ApiError> {
        let snap = Snapshot::build(self.store.as_ref(), &self.cipher, &self.providers, &self.hosting).await?;
        self.breakers.sync(snap.entity_fingerprints());
        self.health.sync(snap.entity_fingerprints());
        let live = snap.hosted_keys.clone();
        self.snapshot.store(Arc::new(snap));
        // Replicas no active config serves any more (replaced, deleted) stop once their queries end.
        for set in self.hosting.retain(&live) {
            tokio::spawn(async move { set.stop(std::time::Duration::from_secs(30)).await });
        }
        Ok(())
    }

    /// Runs a write that nobody is waiting on (the deployer), then rebuilds the snapshot, as one
    /// step for readers: whoever reads the result through [`AppState::settled`] can already query it.
    pub async fn commit_and_refresh<T>(&self, write: impl Future<Output = Result<T, ApiError>>) -> Result<T, ApiError> {
        let _guard = self.refresh_lock.write().await;
        let out = write.await?;
        self.rebuild().await?;
        self.cluster.announce().await;
        Ok(out)
    }

    /// Waits for any commit-and-rebuild in progress; hold the guard while reading endpoint state.
    pub async fn settled(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.refresh_lock.read().await
    }
}

/// Most events kept per served entity.
const EVENTS_PER_ENTITY: usize = 500;

/// Runtime events of served entities, newest last, kept in memory.
#[derive(Default)]
pub struct EntityEvents {
    inner: Mutex<HashMap<(String, String), VecDeque<String>>>,
}

impl crate::hosting::EventSink for EntityEvents {
    fn push_line(&self, endpoint_id: &str, entity: &str, line: &str) {
        self.push(endpoint_id, entity, line);
    }
}

impl EntityEvents {
    /// Appends a timestamped line for an entity of an endpoint (by endpoint id).
    pub fn push(&self, endpoint_id: &str, entity: &str, line: impl std::fmt::Display) {
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let q = map.entry((endpoint_id.to_string(), entity.to_string())).or_default();
        if q.len() == EVENTS_PER_ENTITY {
            q.pop_front();
        }
        q.push_back(format!("{stamp} {line}"));
    }

    /// The events of one entity, one per line.
    pub fn text(&self, endpoint_id: &str, entity: &str) -> String {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(endpoint_id.to_string(), entity.to_string()))
            .map(|q| q.iter().map(|l| format!("{l}\n")).collect())
            .unwrap_or_default()
    }

    /// Forgets a deleted endpoint.
    pub fn forget(&self, endpoint_id: &str) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|(id, _), _| id != endpoint_id);
    }
}

/// The latest health probe of every served entity, by (endpoint id, entity name), kept in memory.
/// A probe result is forgotten when its entity's config changes.
#[derive(Default)]
pub struct HealthBoard {
    inner: Mutex<HashMap<(String, String), (u64, modelgate_wire::EntityHealth)>>,
    fingerprints: Mutex<HashMap<(String, String), u64>>,
}

impl HealthBoard {
    /// Records a probe of an entity of an endpoint (by id); returns the previous one.
    pub fn record(&self, endpoint_id: &str, h: modelgate_wire::EntityHealth) -> Option<modelgate_wire::EntityHealth> {
        let key = (endpoint_id.to_string(), h.name.clone());
        let fp = self.fingerprints.lock().unwrap_or_else(|e| e.into_inner()).get(&key).copied().unwrap_or(0);
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(key, (fp, h)).map(|(_, old)| old)
    }

    /// The latest probe of an entity.
    pub fn get(&self, endpoint_id: &str, entity: &str) -> Option<modelgate_wire::EntityHealth> {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(endpoint_id.to_string(), entity.to_string())).map(|(_, h)| h.clone())
    }

    /// Keeps the probes of the entities in `live` whose config is unchanged.
    pub fn sync(&self, live: impl IntoIterator<Item = ((String, String), u64)>) {
        let live: HashMap<(String, String), u64> = live.into_iter().collect();
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).retain(|k, (fp, _)| live.get(k) == Some(fp));
        *self.fingerprints.lock().unwrap_or_else(|e| e.into_inner()) = live;
    }
}

/// A request to deploy `version` of endpoint `endpoint_id`.
#[derive(Debug, Clone)]
pub struct DeployJob {
    /// Endpoint id.
    pub endpoint_id: String,
    /// Config version.
    pub version: i64,
}

/// Sending side of the deploy queue.
#[derive(Clone)]
pub struct DeployQueue {
    tx: mpsc::UnboundedSender<DeployJob>,
    /// Jobs queued or running, so a version is never queued twice.
    queued: Arc<Mutex<std::collections::HashSet<(String, i64)>>>,
    /// Whether this replica deploys (the leader does; see `cluster`).
    leader: Arc<std::sync::atomic::AtomicBool>,
}

impl DeployQueue {
    /// A queue and its receiving end; jobs are taken while `leader` holds.
    pub fn new(leader: Arc<std::sync::atomic::AtomicBool>) -> (Self, mpsc::UnboundedReceiver<DeployJob>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx, queued: Arc::default(), leader }, rx)
    }

    /// Queues a deployment, unless it is queued already or another replica leads (the leader
    /// takes every pending version it hears of). If the deployer has stopped (shutdown), the
    /// version stays pending in the store and is deployed on the next start.
    pub fn enqueue(&self, endpoint_id: &str, version: i64) {
        if !self.leader.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let key = (endpoint_id.to_string(), version);
        if !self.queued.lock().unwrap_or_else(|e| e.into_inner()).insert(key) {
            return;
        }
        let _ = self.tx.send(DeployJob { endpoint_id: endpoint_id.to_string(), version });
    }

    /// Marks a job finished: the version may be queued again (it will not be, unless pending).
    pub fn done(&self, job: &DeployJob) {
        self.queued.lock().unwrap_or_else(|e| e.into_inner()).remove(&(job.endpoint_id.clone(), job.version));
    }
}
