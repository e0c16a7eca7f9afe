//! A hosted served entity (`entity_name` + `entity_version` of a registered model) resolved to
//! the replica set that serves it: the version's command and files, its environment with
//! secrets resolved, its sizing. The snapshot and the deployer resolve it the same way, so the
//! set a deployment warms up is the one the next snapshot serves from.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::Arc;

use modelgate_core::foundation::{FoundationModel, Provisioned};
use modelgate_core::models::Runtime as RuntimeKind;
use modelgate_core::secret::SecretString;
use modelgate_core::secret_ref;
use modelgate_store::{ModelVersionRecord, Store, StoreError};
use modelgate_wire::{ExternalModel, OpenAiConfig, ServedEntityInput};

use super::replicas::{AdapterFor, ReplicaSet, Sizing};
use super::runtime::ReplicaSpec;
use super::throughput::{Billing, Throughput};
use super::{Hosting, SetKey};
use crate::configs::SecretValues;

/// Every registered model version, by (model name, version number as text).
pub type ModelVersions = HashMap<(String, String), ModelVersionRecord>;

/// Reads every model version (two queries, whatever the number of models).
pub async fn load_versions(store: &dyn Store) -> Result<ModelVersions, StoreError> {
    let names: HashMap<String, String> = store.list_models().await?.into_iter().map(|m| (m.id, m.name)).collect();
    Ok(store
        .list_all_model_versions()
        .await?
        .into_iter()
        .filter_map(|v| Some(((names.get(&v.model_id)?.clone(), v.version.to_string()), v)))
        .collect())
}

/// A hosted entity resolved: its set, the key it is kept under, and the task it serves.
pub struct Resolved {
    /// Where the set is kept.
    pub key: SetKey,
    /// The replicas.
    pub set: Arc<ReplicaSet>,
    /// `llm/v1/chat`, ...
    pub task: String,
}

/// Keys of the set fingerprints: random per process (they hash resolved secrets).
fn keys() -> &'static std::hash::RandomState {
    static KEYS: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    KEYS.get_or_init(std::hash::RandomState::new)
}

/// The files of foundation model `m`, if they are installed under `dir`: an embedded model's
/// weights and tokenizer, or a process model's directory (its command's `$MODEL_PATH`).
pub fn foundation_files(m: &FoundationModel, dir: &std::path::Path) -> Result<PathBuf, String> {
    let path = dir.join(&m.dir);
    let missing = match m.runtime {
        RuntimeKind::Embedded => modelgate_core::models::EMBEDDED_FILES.into_iter().any(|f| !path.join(f).is_file()),
        RuntimeKind::Process => !path.is_dir(),
    };
    if missing {
        let what = match m.runtime {
            RuntimeKind::Embedded => format!("its files ({})", modelgate_core::models::EMBEDDED_FILES.join(", ")),
            RuntimeKind::Process => "the directory its command reads as $MODEL_PATH".to_string(),
        };
        return Err(format!("foundation model {} is not installed: create {what} in {}", m.name, path.display()));
    }
    Ok(path)
}

/// The version a foundation model serves as: the catalog's runtime and task, its installed files.
fn foundation_version(m: &FoundationModel, dir: &std::path::Path) -> Result<ModelVersionRecord, String> {
    Ok(ModelVersionRecord {
        model_id: m.name.clone(),
        version: 1,
        source: foundation_files(m, dir)?.display().to_string(),
        runtime: m.runtime.as_str().to_string(),
        task: m.task.clone(),
        command: m.command.as_ref().and_then(|c| serde_json::to_string(c).ok()),
        env: None,
        content_hash: String::new(),
        description: m.description.clone(),
        creator: "modelgate".to_string(),
        created_at: 0,
    })
}

/// The version `entity` names, or why it cannot be served (in words for the build log).
pub fn version_of<'a>(
    entity: &ServedEntityInput,
    versions: &'a ModelVersions,
) -> Result<&'a ModelVersionRecord, String> {
    let name = entity.entity_name.as_deref().unwrap_or_default();
    let version = entity
        .entity_version
        .as_deref()
        .ok_or_else(|| format!("entity_version is required to serve registered model '{name}'"))?;
    versions
        .get(&(name.to_string(), version.to_string()))
        .ok_or_else(|| format!("version {version} of registered model '{name}' does not exist"))
}

/// Resolves `entity` of endpoint `endpoint_id` to its replica set (made if new). Fails, in words naming no secret value, when the version, a secret or the hardware is
/// missing.
pub fn resolve(
    hosting: &Hosting,
    endpoint_id: &str,
    entity: &ServedEntityInput,
    versions: &ModelVersions,
    secrets: &SecretValues,
) -> Result<Resolved, String> {
    let foundation = entity.entity_name.as_deref().and_then(|n| hosting.settings.catalog.find(n));
    let builtin = foundation.map(|m| foundation_version(m, &hosting.settings.foundation_dir)).transpose()?;
    let v = match &builtin {
        Some(v) => v,
        None => version_of(entity, versions)?,
    };
    let runtime = match RuntimeKind::parse(&v.runtime) {
        Some(RuntimeKind::Process) => hosting.runtime.clone(),
        Some(RuntimeKind::Embedded) => hosting.embedded.clone(),
        None => return Err(format!("runtime '{}' is not known", v.runtime)),
    };
    if let Some(t) = entity.workload_type.as_deref().filter(|t| t.starts_with("GPU")) {
        return Err(format!("workload_type {t} needs a GPU, and this server has none; use CPU"));
    }
    let settings = &hosting.settings;

    // The version's declared environment, then the entity's (which wins), secrets resolved.
    let declared: BTreeMap<String, String> =
        v.env.as_deref().and_then(|e| serde_json::from_str(e).ok()).unwrap_or_default();
    let mut env = BTreeMap::new();
    for (k, value) in declared.iter().chain(entity.environment_vars.iter().flatten()) {
        let resolved = match secret_ref::parse(value) {
            Ok(r) => match secrets.get(&r) {
                Some(Ok(s)) => s.expose().to_string(),
                Some(Err(why)) => return Err(format!("secret {r} for {k} {why}")),
                None => return Err(format!("secret {r} referenced by {k} does not exist")),
            },
            Err(_) => value.clone(),
        };
        env.insert(k.clone(), resolved);
    }
    let command: Vec<String> = v.command.as_deref().and_then(|c| serde_json::from_str(c).ok()).unwrap_or_default();
    let entity_name = entity.name.clone().unwrap_or_default();
    let provisioned = match foundation {
        Some(m) => provisioned(entity, m)?,
        None => None,
    };
    let sizing = match provisioned {
        Some(p) => Sizing::provisioned(p.min_bands, p.max_bands, settings.idle_to_zero, settings.cold_start_timeout),
        None => Sizing::of(
            entity.workload_size.as_deref(),
            entity.scale_to_zero_enabled.unwrap_or(false),
            settings.idle_to_zero,
            settings.cold_start_timeout,
        )?,
    }
    .scaling_down_after(settings.scale_down_after);
    let what = (
        (&v.model_id, v.version, &v.content_hash, &command, &env),
        (&entity.workload_size, entity.scale_to_zero_enabled, provisioned.map(|p| (p.min_bands, p.max_bands))),
    );
    let key: SetKey = (endpoint_id.to_string(), entity_name, keys().hash_one(what));
    let spec = ReplicaSpec {
        command,
        env,
        model_path: PathBuf::from(&v.source),
        work_root: settings.work_root.clone(),
        limits: settings.limits,
    };
    let model = entity.entity_name.clone().unwrap_or_default();
    let task = v.task.clone();
    let adapter_for = replica_adapter(model, task.clone());
    let log = (hosting.logs_for)(endpoint_id, &key.1);
    let throughput = foundation.zip(provisioned).map(|(m, p)| {
        let billing = Billing {
            endpoint_id: endpoint_id.to_string(),
            entity: key.1.clone(),
            model: m.name.clone(),
            band_usd_per_hour: m.band_usd_per_hour,
        };
        Throughput::new(m.band_tokens_per_second, p, settings.scale_down_after, billing)
    });
    let set = hosting.set(&key, || ReplicaSet::new(runtime, spec, sizing, adapter_for, log, throughput));
    Ok(Resolved { key, set, task })
}

/// The provisioned throughput `entity` asks of foundation model `m`, in bands (`None`: pay per
/// token), or why it cannot have it.
pub fn provisioned(entity: &ServedEntityInput, m: &FoundationModel) -> Result<Option<Provisioned>, String> {
    modelgate_core::foundation::provisioned(
        m,
        entity.min_provisioned_throughput,
        entity.max_provisioned_throughput,
        entity.provisioned_model_units,
    )
    .map_err(|(field, why)| format!("{field}: {why}"))
}

/// The adapter for a replica: the MLflow scoring protocol for a scoring version, else the
/// OpenAI-compatible wire format at its base URL with a key of its own (the replica may ignore
/// it). No provider base-URL override applies: the replica is here.
fn replica_adapter(model: String, task: String) -> AdapterFor {
    if task == modelgate_core::models::SCORING {
        return Arc::new(|base_url: &str| {
            Ok(Arc::new(modelgate_providers::scoring::MlflowScoring::new(base_url))
                as Arc<dyn modelgate_providers::Adapter>)
        });
    }
    let providers = modelgate_providers::Settings::default();
    let key = SecretString::new(format!("mg-replica-{}", modelgate_core::token::random_hex(16)));
    Arc::new(move |base_url: &str| {
        let m = ExternalModel {
            provider: "openai".into(),
            name: model.clone(),
            task: task.clone(),
            openai_config: Some(OpenAiConfig { openai_api_base: Some(format!("{base_url}/v1")), ..Default::default() }),
            ..Default::default()
        };
        let creds = BTreeMap::from([("openai_config.openai_api_key", key.clone())]);
        modelgate_providers::build(&m, &creds, &providers)
    })
}
