#![warn(missing_docs)]
//! The modelgate server: `Server::start` with a `ServerConfig`, and `Server::shutdown`.
//!
//! The parts (see docs/architecture.md): `http` (listener, limits, authentication, audit),
//! `gateway` (the data plane as a pipeline), `api` (the control plane), `policy` (guardrails,
//! rate limits, budgets, breakers), `telemetry` (metrics, usage records, inference tables),
//! `background` (alerts, deployments, retention), `console` (the web console), and the core modules they share (`state`,
//! `snapshot`, `configs`, `access`, `settings`, `egress`).

mod access;
mod api;
mod background;
mod bootstrap;
mod cluster;
mod configs;
mod console;
mod egress;
mod error;
mod extract;
mod gateway;
mod hosting;
mod http;
mod policy;
mod routes;
mod settings;
mod snapshot;
mod state;
mod telemetry;

use background::{alerts, deployer};
use http::listener;
use telemetry::{inference, metrics, usage};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use modelgate_core::pricing::PriceTable;
use modelgate_store::{InferenceDb, Location, Store, UsageDb};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use bootstrap::StartError;
pub use modelgate_store::redacted as redacted_url;
pub use modelgate_store::transfer::Copied;
pub use policy::breaker::BreakerSettings;
pub use settings::{HostingSettings, Limits, RetrySettings, UpstreamTimeouts};
pub use telemetry::traces::{OtlpProtocol, TraceSettings};

/// How to run a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where the database and the key file live.
    pub data_dir: PathBuf,
    /// Master key text (base64 or hex of 32 bytes); `None` uses or creates the key file.
    pub master_key: Option<String>,
    /// Admin token to accept; `None` generates one on first start.
    pub admin_token: Option<String>,
    /// Hold each deployment back this long (for observing `IN_PROGRESS`).
    pub deploy_delay: Duration,
    /// Provider settings (base-URL overrides).
    pub providers: modelgate_providers::Settings,
    /// Upstream time limits.
    pub timeouts: UpstreamTimeouts,
    /// Circuit-breaker tuning.
    pub breaker: BreakerSettings,
    /// Retry policy.
    pub retries: RetrySettings,
    /// The chat endpoint that judges `safety` and `valid_topics` guardrails.
    pub judge_endpoint: Option<String>,
    /// A price file overriding or extending the built-in price table.
    pub price_table: Option<PathBuf>,
    /// How often alert rules are evaluated.
    pub alert_interval: Duration,
    /// Connection, request and body limits.
    pub limits: Limits,
    /// Base URLs anyone may point an endpoint at (besides the providers' own hosts).
    pub outbound: modelgate_core::outbound::OutboundPolicy,
    /// How long audit records are kept.
    pub audit_retention: Duration,
    /// How long usage records (the request log, usage reports, budget spend) are kept.
    pub usage_retention: Duration,
    /// The shortest time allowed between a deprecation's notice and its sunset.
    pub min_deprecation_notice: Duration,
    /// Start even if the master key file is readable by other users (with a warning).
    pub allow_insecure_key_file: bool,
    /// Let users whose password an admin set sign in to the console with it (tokens always work).
    pub console_password_sign_in: bool,
    /// Hosted models' replicas.
    pub hosting: HostingSettings,
    /// Redis for state every replica shares (rate-limit counters); `None`: per replica.
    pub redis_url: Option<String>,
    /// OpenTelemetry trace export; off without an endpoint.
    pub traces: telemetry::traces::TraceSettings,
    /// PostgreSQL for the control plane (and, unless `log_database_url` is set, the usage and
    /// inference tables), shared by every replica; `None`: SQLite files in the data directory.
    pub database_url: Option<String>,
    /// PostgreSQL for the usage and inference tables only.
    pub log_database_url: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("modelgate-data"),
            master_key: None,
            admin_token: None,
            deploy_delay: Duration::ZERO,
            providers: Default::default(),
            timeouts: Default::default(),
            breaker: Default::default(),
            retries: Default::default(),
            judge_endpoint: None,
            price_table: None,
            alert_interval: Duration::from_secs(30),
            limits: Default::default(),
            outbound: Default::default(),
            audit_retention: Duration::from_secs(365 * 24 * 3600),
            usage_retention: Duration::from_secs(400 * 24 * 3600),
            min_deprecation_notice: Duration::from_secs(30 * 24 * 3600),
            allow_insecure_key_file: false,
            console_password_sign_in: false,
            hosting: HostingSettings::default(),
            redis_url: None,
            traces: Default::default(),
            database_url: None,
            log_database_url: None,
        }
    }
}

/// A running server.
pub struct Server {
    /// The bound address.
    pub addr: SocketAddr,
    /// The admin token generated on first start, to be shown once; call
    /// [`Server::admin_token_shown`] once it was, or the next start replaces it with a new one.
    pub new_admin_token: Option<String>,
    store: Arc<dyn Store>,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

/// Everything a server is made of before it binds: the application state and what must be
/// closed when it stops.
struct Assembly {
    app: state::AppState,
    jobs: tokio::sync::mpsc::UnboundedReceiver<state::DeployJob>,
    new_admin_token: Option<String>,
    resources: Resources,
}

/// What must be flushed and closed when the server stops.
struct Resources {
    store: Arc<dyn Store>,
    usage: Arc<usage::UsageSink>,
    inference: Arc<inference::InferenceSink>,
    usage_db: UsageDb,
    inference_db: InferenceDb,
    /// Released last, once everything is written.
    lock: bootstrap::DirLock,
}

impl Resources {
    /// Writes what the sinks hold, closes the databases and releases the data directory.
    async fn close(self) {
        self.usage.flush().await;
        self.inference.flush().await;
        self.usage_db.close().await;
        self.inference_db.close().await;
        self.store.close().await;
        drop(self.lock);
    }
}

impl Assembly {
    /// Opens the store, checks the master key, migrates, builds the snapshot and the sinks.
    async fn new(config: &ServerConfig) -> Result<Assembly, StartError> {
        bootstrap::data_dir(&config.data_dir)?;
        let lock = bootstrap::lock(&config.data_dir)?;
        let places = bootstrap::DatabasePlaces::of(config)?;
        let control = places.control.to_string();
        let database = |source| StartError::Database { what: "control-plane database", at: control.clone(), source };
        let store = places.control.open_store().await.map_err(database)?;
        let cipher = match bootstrap::master_key(
            store.as_ref(),
            &control,
            &config.data_dir,
            config.master_key.as_deref(),
            config.allow_insecure_key_file,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                store.close().await;
                return Err(match e {
                    StartError::Store(source) => database(source),
                    other => other,
                });
            }
        };
        if let Err(e) = store.migrate().await {
            store.close().await;
            return Err(database(e));
        }
        // Whatever fails from here closes the store before returning, so no pool of a failed start
        // writes to the database files after the caller has moved on (a later start, a restore).
        let assembled = async {
            bootstrap::remember_key(store.as_ref(), &cipher).await?;
            let workspace_id = bootstrap::workspace_id(store.as_ref()).await?;
            let new_admin_token = bootstrap::admin(store.as_ref(), config.admin_token.as_deref()).await?;

            let cipher = Arc::new(cipher);
            // reqwest needs a process-wide TLS provider; ring keeps aws-lc and OpenSSL out of the build.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let events = Arc::new(state::EntityEvents::default());
            // Replicas, and their working directories, that a previous run left (it was killed
            // before it could stop them).
            let reaped = hosting::process::reap_orphans(&config.data_dir.join("replicas"));
            if reaped > 0 {
                tracing::warn!(groups = reaped, "stopped replicas a previous run left running");
            }
            let _ = std::fs::remove_dir_all(config.data_dir.join("replicas"));
            let hosting_settings = hosting::HostingSettings::of(&config.hosting, &config.data_dir)
                .map_err(|(path, reason)| StartError::FoundationCatalog { path, reason })?;
            let hosting = Arc::new(hosting::Hosting::new(
                Arc::new(hosting::process::ProcessRuntime::new(reqwest::Client::new())),
                Arc::new(hosting::embedded::EmbeddedRuntime),
                hosting_settings,
                hosting::logs_into(events.clone()),
            ));
            let snapshot = snapshot::Snapshot::build(store.as_ref(), &cipher, &config.providers, &hosting).await?;
            let prices = match &config.price_table {
                None => PriceTable::builtin(),
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| StartError::PriceTable { path: path.clone(), reason: e.to_string() })?;
                    PriceTable::builtin()
                        .with_overrides(&text)
                        .map_err(|reason| StartError::PriceTable { path: path.clone(), reason })?
                }
            };
            let at = |what: &'static str, place: &Location| {
                let at = place.to_string();
                move |source| StartError::Database { what, at, source }
            };
            let usage_db = places.usage.open_usage().await.map_err(at("usage database", &places.usage))?;
            let metrics = Arc::new(metrics::Metrics::new());
            let usage = usage::UsageSink::start(usage_db.clone(), prices, metrics.clone());
            let inference_db =
                places.inference.open_inference().await.map_err(at("inference-table database", &places.inference))?;
            let inference = inference::InferenceSink::start(inference_db.clone(), metrics);
            let cluster = Arc::new(match &places.control {
                Location::Postgres(url) => cluster::Cluster::shared(url).await.map_err(database)?,
                Location::Sqlite(_) => cluster::Cluster::single(),
            });
            let (queue, jobs) = state::DeployQueue::new(cluster.leader_flag());
            let counters = match &config.redis_url {
                Some(url) => policy::counters::Counters::shared(
                    policy::shared::SharedCounters::connect(url, &workspace_id).map_err(StartError::Redis)?,
                ),
                None => policy::counters::Counters::local(),
            };
            // Spans are sent with a client of their own: a slow collector never holds the providers' pool.
            let traces = match &config.traces.endpoint {
                None => None,
                Some(_) => {
                    let client = egress::client(config.timeouts.connect).map_err(StartError::HttpClient)?;
                    telemetry::traces::Traces::start(&config.traces, client).map_err(StartError::Traces)?
                }
            };
            let app = state::AppState::new(
                store.clone(),
                cipher,
                snapshot,
                queue.clone(),
                workspace_id,
                config,
                state::Sinks {
                    usage: usage.clone(),
                    inference: inference.clone(),
                    events,
                    hosting,
                    counters: Arc::new(counters),
                    cluster,
                    traces,
                },
            )
            .map_err(StartError::HttpClient)?;

            alerts::install_defaults(app.store.as_ref()).await.map_err(|e| {
                StartError::Store(modelgate_store::StoreError::Invalid(format!("installing default alert rules: {e}")))
            })?;
            app.reload_budgets().await.map_err(|e| {
                StartError::Store(modelgate_store::StoreError::Invalid(format!("loading budget policies: {e}")))
            })?;

            // Versions left pending by the previous run are deployed now (with other replicas, by
            // the leader once it leads).
            for e in store.list_endpoints().await? {
                if let Some(v) = e.pending_version {
                    queue.enqueue(&e.id, v);
                }
            }
            Ok::<_, StartError>((app, jobs, new_admin_token, usage, inference, usage_db, inference_db))
        }
        .await;
        let (app, jobs, new_admin_token, usage, inference, usage_db, inference_db) = match assembled {
            Ok(parts) => parts,
            Err(e) => {
                store.close().await;
                return Err(e);
            }
        };
        let resources = Resources { store, usage, inference, usage_db, inference_db, lock };
        Ok(Assembly { app, jobs, new_admin_token, resources })
    }
}

impl Server {
    /// Binds, locks the data directory, opens the store, checks the master key, migrates, builds
    /// the snapshot and serves.
    pub async fn start(config: ServerConfig) -> Result<Server, StartError> {
        // Bound first: a first start that cannot listen must not create (and lose) the admin token.
        let bound = tokio::net::TcpListener::bind(config.listen).await.and_then(|s| Ok((s.local_addr()?, s)));
        let (addr, socket) = bound.map_err(|source| StartError::Bind { addr: config.listen, source })?;
        let Assembly { app, jobs, new_admin_token, resources } = Assembly::new(&config).await?;
        let store = resources.store.clone();

        let (stop, stop_rx) = watch::channel(false);
        let deployer = tokio::spawn(deployer::run(app.clone(), jobs, config.deploy_delay, stop_rx.clone()));
        let retention = tokio::spawn(background::retention::inference(app.clone(), stop_rx.clone()));
        let alerting = tokio::spawn(alerts::run(app.clone(), config.alert_interval, stop_rx.clone()));
        let health = tokio::spawn(background::health::run(app.clone(), stop_rx.clone()));
        let keep = background::retention::Retention { audit: config.audit_retention, requests: config.usage_retention };
        let audit_retention = tokio::spawn(background::retention::records(app.clone(), keep, stop_rx.clone()));
        let billing =
            tokio::spawn(background::billing::run(app.clone(), config.hosting.billing_interval, stop_rx.clone()));
        let billed = app.clone();
        let traced = app.clone();
        let redis_watch = app.counters.shared_store().cloned().map(|s| tokio::spawn(s.watch(stop_rx.clone())));
        let following = tokio::spawn(background::cluster::follow(app.clone(), stop_rx.clone()));
        let spend_sharing = tokio::spawn(background::cluster::share_budgets(app.clone(), stop_rx.clone()));
        let leading = tokio::spawn(background::cluster::lead(app.clone(), stop_rx.clone()));
        let metrics = app.metrics.clone();
        let hosting = app.hosting.clone();
        let gate = http::limits::Gate::new(config.limits, metrics.clone());
        let queue_probe = tokio::spawn(gate.clone().watch_queue_delay(stop_rx.clone()));
        let router = routes::router(app, gate.clone());
        let task = tokio::spawn(async move {
            let served = listener::serve(socket, router, gate, metrics, stop_rx).await;
            let _ = queue_probe.await;
            let _ = deployer.await;
            let _ = retention.await;
            let _ = alerting.await;
            let _ = health.await;
            let _ = audit_retention.await;
            let _ = billing.await;
            if let Some(w) = redis_watch {
                let _ = w.await;
            }
            let _ = following.await;
            let _ = spend_sharing.await;
            let _ = leading.await;
            // Every query has finished: the hosted models' replicas go, with everything they started,
            // and their provisioned band-time is billed to the end.
            for set in hosting.all() {
                set.stop(std::time::Duration::from_secs(5)).await;
            }
            background::billing::bill(&billed);
            // Write what the queries left.
            if let Some(traces) = &traced.traces {
                traces.shutdown().await;
            }
            resources.close().await;
            served
        });
        tracing::info!(%addr, data_dir = %config.data_dir.display(), "modelgate listening");
        Ok(Server { addr, new_admin_token, store, stop, task })
    }

    /// Records that [`Server::new_admin_token`] was shown to the operator.
    pub async fn admin_token_shown(&self) -> Result<(), StartError> {
        Ok(bootstrap::admin_token_shown(self.store.as_ref()).await?)
    }

    /// Stops accepting connections, lets in-flight requests and the current deployment finish,
    /// closes the store, and returns.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Moves the install in `data_dir` from its SQLite files to PostgreSQL: migrates `to` (and
/// `to_logs`, for the usage and inference tables; default `to`), which must be empty, and copies
/// every row. Takes the data directory's lock, so it refuses while a server runs on it;
/// `progress` hears each table as it is copied.
pub async fn migrate_store(
    data_dir: &std::path::Path,
    to: &str,
    to_logs: Option<&str>,
    progress: impl FnMut(&str, u64),
) -> Result<Copied, StartError> {
    let _lock = bootstrap::lock(data_dir)?;
    let control = data_dir.join(bootstrap::DB_FILE);
    if !control.exists() {
        return Err(StartError::DatabaseUrl(format!(
            "{} has no {} to migrate: --from names the data directory of a server that has run",
            data_dir.display(),
            bootstrap::DB_FILE
        )));
    }
    let target = Location::postgres(to).map_err(StartError::DatabaseUrl)?;
    let logs = Location::postgres(to_logs.unwrap_or(to)).map_err(StartError::DatabaseUrl)?;
    let at = |what: &'static str, place: &Location| {
        let at = place.to_string();
        move |source| StartError::Database { what, at, source }
    };
    let store = target.open_store().await.map_err(at("control-plane database", &target))?;
    let migrated = store.migrate().await;
    store.close().await;
    migrated.map_err(at("control-plane database", &target))?;
    logs.open_usage().await.map_err(at("usage database", &logs))?.close().await;
    logs.open_inference().await.map_err(at("inference-table database", &logs))?.close().await;
    let transfer = modelgate_store::transfer::Transfer {
        control: &control,
        usage: &data_dir.join(bootstrap::USAGE_DB_FILE),
        inference: &data_dir.join(bootstrap::INFERENCE_DB_FILE),
        to,
        to_logs: to_logs.unwrap_or(to),
    };
    transfer.run(progress).await.map_err(at("migration to", &target))
}
