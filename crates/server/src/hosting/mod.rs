//! Hosted models: serving registered model versions on this machine. A [`runtime::Runtime`]
//! starts replicas; a [`replicas::ReplicaSet`] keeps the replicas of one served entity and leases
//! their capacity to queries; [`Hosting`] holds every set, keyed by what its replicas run, so a
//! snapshot rebuild that changes nothing about an entity keeps its replicas.

pub mod embedded;
pub mod entity;
pub mod process;
pub mod replicas;
pub mod runtime;
pub mod source;
pub mod throughput;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use replicas::ReplicaSet;

/// Server-wide settings of hosted models, as the replica sets use them.
#[derive(Debug, Clone)]
pub struct HostingSettings {
    /// Where replicas get their working directories.
    pub work_root: PathBuf,
    /// How long an entity that may scale to zero keeps its replicas without a query.
    pub idle_to_zero: Duration,
    /// How long a replica above the minimum may go unused before it stops.
    pub scale_down_after: Duration,
    /// How long a query (or a deployment) waits for a replica to start answering.
    pub cold_start_timeout: Duration,
    /// Limits of each replica.
    pub limits: runtime::ReplicaLimits,
    /// Where the foundation models' files are.
    pub foundation_dir: PathBuf,
    /// The foundation models this server knows.
    pub catalog: Arc<modelgate_core::foundation::Catalog>,
}

/// The file, in the foundation-models directory, where an operator adds models to the catalog.
pub const CATALOG_FILE: &str = "catalog.toml";

/// The operator's catalog file as written: `[[model]]` tables.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    model: Vec<modelgate_core::foundation::FoundationModel>,
}

/// The catalog: the built-in models and those of `dir/catalog.toml`, if there is one.
pub fn load_catalog(dir: &std::path::Path) -> Result<modelgate_core::foundation::Catalog, (PathBuf, String)> {
    let path = dir.join(CATALOG_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err((path, e.to_string())),
    };
    let file: CatalogFile = toml::from_str(&text).map_err(|e| (path.clone(), e.to_string()))?;
    modelgate_core::foundation::Catalog::with(file.model, CATALOG_FILE)
        .map_err(|e| (path.clone(), format!("{}: {}", e.path, e.message)))
}

impl HostingSettings {
    /// The server's settings for a data directory; fails on an invalid catalog file (its path and
    /// what is wrong).
    pub fn of(s: &crate::settings::HostingSettings, data_dir: &std::path::Path) -> Result<Self, (PathBuf, String)> {
        let foundation_dir = s.foundation_models_dir.clone().unwrap_or_else(|| data_dir.join("foundation-models"));
        Ok(HostingSettings {
            work_root: data_dir.join("replicas"),
            catalog: Arc::new(load_catalog(&foundation_dir)?),
            foundation_dir,
            idle_to_zero: s.idle_to_zero,
            scale_down_after: s.scale_down_after,
            cold_start_timeout: s.cold_start_timeout,
            limits: runtime::ReplicaLimits { memory_bytes: s.replica_memory, open_files: s.replica_open_files },
        })
    }
}

/// Replicas' output into the entity events (the served entity's `logs`), through `push(endpoint
/// id, entity, line)`.
pub fn logs_into<E: EventSink + 'static>(events: Arc<E>) -> LogsFor {
    Arc::new(move |endpoint_id: &str, entity: &str| {
        let (events, endpoint_id, entity) = (events.clone(), endpoint_id.to_string(), entity.to_string());
        Arc::new(move |line: &str| events.push_line(&endpoint_id, &entity, line))
    })
}

/// Where replicas' output lines are kept.
pub trait EventSink: Send + Sync {
    /// Keeps one line of an entity of an endpoint.
    fn push_line(&self, endpoint_id: &str, entity: &str, line: &str);
}

/// What identifies a replica set: the endpoint (by id), the entity, and a fingerprint of
/// everything its replicas run (version, files, environment, sizing).
pub type SetKey = (String, String, u64);

/// Where the output of an entity's replicas goes, by endpoint id and entity name.
pub type LogsFor = Arc<dyn Fn(&str, &str) -> runtime::LogSink + Send + Sync>;

/// Every replica set of the server.
pub struct Hosting {
    /// Starts `process` replicas.
    pub runtime: Arc<dyn runtime::Runtime>,
    /// Starts `embedded` replicas.
    pub embedded: Arc<dyn runtime::Runtime>,
    /// The settings.
    pub settings: HostingSettings,
    /// Where replicas' output goes.
    pub logs_for: LogsFor,
    sets: Mutex<HashMap<SetKey, Arc<ReplicaSet>>>,
    /// Sets a deployment is warming up: kept even while no snapshot uses them yet.
    pinned: Mutex<HashSet<SetKey>>,
    /// Throughputs of sets removed since the last billing, for their last charge.
    retired: Mutex<Vec<Arc<throughput::Throughput>>>,
}

impl Hosting {
    /// No set yet.
    pub fn new(
        runtime: Arc<dyn runtime::Runtime>,
        embedded: Arc<dyn runtime::Runtime>,
        settings: HostingSettings,
        logs_for: LogsFor,
    ) -> Self {
        Hosting {
            runtime,
            embedded,
            settings,
            logs_for,
            sets: Mutex::default(),
            pinned: Mutex::default(),
            retired: Mutex::default(),
        }
    }

    /// The set for `key`, made by `make` (and supervised from then on) if there is none.
    pub fn set(&self, key: &SetKey, make: impl FnOnce() -> Arc<ReplicaSet>) -> Arc<ReplicaSet> {
        let mut sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        sets.entry(key.clone())
            .or_insert_with(|| {
                let set = make();
                tokio::spawn(set.clone().supervise());
                set
            })
            .clone()
    }

    /// Keeps `key` while a deployment warms it up (`false` releases it).
    pub fn pin(&self, key: &SetKey, pinned: bool) {
        let mut p = self.pinned.lock().unwrap_or_else(|e| e.into_inner());
        if pinned {
            p.insert(key.clone());
        } else {
            p.remove(key);
        }
    }

    /// Removes the sets neither in `live` nor pinned, and returns them to be stopped (after their
    /// queries drain): what a new config version replaced, or a deleted endpoint left.
    pub fn retain(&self, live: &HashSet<SetKey>) -> Vec<Arc<ReplicaSet>> {
        let pinned = self.pinned.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<SetKey> = sets.keys().filter(|k| !live.contains(*k) && !pinned.contains(*k)).cloned().collect();
        let gone: Vec<Arc<ReplicaSet>> = gone.iter().filter_map(|k| sets.remove(k)).collect();
        self.retired.lock().unwrap_or_else(|e| e.into_inner()).extend(gone.iter().filter_map(|s| s.throughput.clone()));
        gone
    }

    /// Every provisioned throughput to bill: those serving and those removed since the last call.
    pub fn throughputs(&self) -> Vec<Arc<throughput::Throughput>> {
        let mut all = std::mem::take(&mut *self.retired.lock().unwrap_or_else(|e| e.into_inner()));
        let sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        all.extend(sets.values().filter_map(|s| s.throughput.clone()));
        all
    }

    /// Every set, to stop at shutdown (their throughputs stay to be billed a last time).
    pub fn all(&self) -> Vec<Arc<ReplicaSet>> {
        let all: Vec<Arc<ReplicaSet>> =
            self.sets.lock().unwrap_or_else(|e| e.into_inner()).drain().map(|(_, s)| s).collect();
        self.retired.lock().unwrap_or_else(|e| e.into_inner()).extend(all.iter().filter_map(|s| s.throughput.clone()));
        all
    }
}
