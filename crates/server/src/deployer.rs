//! The deployer: moves a pending config version to `ACTIVE` or `FAILED`.
//!
//! For an external model, deploying means checking that every credential resolves: referenced
//! secrets exist and decrypt, sealed plaintext values open. Registered and foundation models
//! cannot be served by this server yet, and say so in the build log. Requests arrive on a queue;
//! on start the server re-queues versions that were pending when it last stopped.

use std::time::Duration;

use modelgate_core::credentials;
use modelgate_core::secret_ref;
use modelgate_store::{ConfigRecord, DeployOutcome};
use modelgate_wire::EndpointCoreConfigInput;
use tokio::sync::mpsc;

use crate::configs;
use crate::state::AppState;

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
pub struct DeployQueue(mpsc::UnboundedSender<DeployJob>);

impl DeployQueue {
    /// A queue and its receiving end.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<DeployJob>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), rx)
    }

    /// Queues a deployment. If the deployer has stopped (shutdown), the version stays pending in
    /// the store and is deployed on the next start.
    pub fn enqueue(&self, endpoint_id: &str, version: i64) {
        let _ = self.0.send(DeployJob { endpoint_id: endpoint_id.to_string(), version });
    }
}

/// Runs deployments until the queue closes or `stop` fires. `delay` holds each job back before it
/// starts (lets tests and demos observe the `IN_PROGRESS` state).
pub async fn run(
    app: AppState,
    mut jobs: mpsc::UnboundedReceiver<DeployJob>,
    delay: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let job = tokio::select! {
            job = jobs.recv() => match job { Some(j) => j, None => return },
            _ = stop.changed() => return,
        };
        if !delay.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.changed() => return,
            }
        }
        if let Err(e) = deploy(&app, &job).await {
            // The version stays pending; it is retried on the next start.
            tracing::error!(endpoint_id = %job.endpoint_id, version = job.version, error = %e, "deployment failed to run");
        }
    }
}

async fn deploy(app: &AppState, job: &DeployJob) -> Result<(), crate::error::ApiError> {
    let Some(record) = app.store.get_config(&job.endpoint_id, job.version).await? else {
        return Ok(());
    };
    let config = configs::parse_stored(&record)?;
    let (ok, log) = check(app, &record, &config).await;
    let outcome = if ok {
        DeployOutcome::Ready { task: task_of(&config), build_log: log }
    } else {
        DeployOutcome::Failed { build_log: log }
    };
    let finished = app
        .commit_and_refresh(async { Ok(app.store.finish_deployment(&job.endpoint_id, job.version, &outcome).await?) })
        .await?;
    if finished {
        let verdict = if ok { "is serving" } else { "failed to deploy; see build-logs" };
        for e in config.served_entities.iter().flatten().filter_map(|e| e.name.as_deref()) {
            app.events.push(&job.endpoint_id, e, format!("config version {} {verdict}", job.version));
        }
        tracing::info!(endpoint_id = %job.endpoint_id, version = job.version, ready = ok, "deployment finished");
    }
    Ok(())
}

fn task_of(config: &EndpointCoreConfigInput) -> Option<String> {
    config.served_entities.iter().flatten().find_map(|e| e.external_model.as_ref().map(|m| m.task.clone()))
}

/// Checks every served entity; returns whether all deploy, and the build log. The log names
/// entities, fields and secret references, never values.
async fn check(app: &AppState, record: &ConfigRecord, config: &EndpointCoreConfigInput) -> (bool, String) {
    let mut log = Vec::new();
    let mut ok = true;
    let stamp = || humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    log.push(format!("{} deploying config version {}", stamp(), record.version));
    let context = configs::credential_context(&record.endpoint_id);

    for entity in config.served_entities.iter().flatten() {
        let name = entity.name.as_deref().unwrap_or_default();
        let mut problems = Vec::new();
        match &entity.external_model {
            Some(model) => {
                let mut resolved = modelgate_providers::Credentials::new();
                for slot in credentials::slots(&mut model.clone()) {
                    let value = if let Some(r) = slot.reference.as_deref() {
                        match secret_ref::parse(r) {
                            Ok(sr) => match app.store.get_secret(&sr.scope, &sr.key).await {
                                Ok(Some(s)) => {
                                    let ctx = configs::secret_context(&s.scope, &s.key);
                                    match app.cipher.open(&ctx, &s.value).map(String::from_utf8) {
                                        Ok(Ok(v)) => Some(v),
                                        Ok(Err(_)) => {
                                            problems.push(format!(
                                                "secret {sr} for external_model.{} is not UTF-8 text",
                                                slot.reference_field
                                            ));
                                            None
                                        }
                                        Err(_) => {
                                            problems.push(format!("secret {sr} for external_model.{} does not decrypt with the master key", slot.reference_field));
                                            None
                                        }
                                    }
                                }
                                Ok(None) => {
                                    problems.push(format!(
                                        "secret {sr} referenced by external_model.{} does not exist",
                                        slot.reference_field
                                    ));
                                    None
                                }
                                Err(e) => {
                                    problems.push(format!("could not read secret {sr}: {e}"));
                                    None
                                }
                            },
                            Err(e) => {
                                problems.push(format!("external_model.{}: {e}", slot.reference_field));
                                None
                            }
                        }
                    } else if let Some(sealed) = slot.plaintext.as_deref() {
                        match app.cipher.open_text(&context, sealed) {
                            Ok(v) => Some(v),
                            Err(_) => {
                                problems.push(format!(
                                    "external_model.{} does not decrypt with the master key",
                                    slot.plaintext_field
                                ));
                                None
                            }
                        }
                    } else {
                        None
                    };
                    if let Some(v) = value {
                        resolved.insert(slot.reference_field, modelgate_core::SecretString::new(v));
                    }
                }
                // Building the adapter proves the provider config and credentials are usable
                // (e.g. a Vertex AI key file parses); its message names no secret value.
                if problems.is_empty()
                    && let Err(why) = modelgate_providers::build(model, &resolved, &app.providers)
                {
                    problems.push(why);
                }
                for (k, v) in entity.environment_vars.iter().flatten() {
                    if let Ok(sr) = secret_ref::parse(v)
                        && !matches!(app.store.get_secret(&sr.scope, &sr.key).await, Ok(Some(_)))
                    {
                        problems.push(format!("secret {sr} referenced by environment_vars.{k} does not exist"));
                    }
                }
                if problems.is_empty() {
                    log.push(format!(
                        "{} [{name}] external model {}/{} ({}): credentials resolved",
                        stamp(),
                        model.provider,
                        model.name,
                        model.task
                    ));
                }
            }
            None => problems.push(format!(
                "serving '{}' requires a model runtime, which this server does not provide yet; \
                 use an external_model served entity",
                entity.entity_name.as_deref().unwrap_or(name)
            )),
        }
        for p in &problems {
            log.push(format!("{} [{name}] ERROR {p}", stamp()));
        }
        ok &= problems.is_empty();
    }
    for model in config.served_models.iter().flatten() {
        ok = false;
        log.push(format!(
            "{} [{}] ERROR serving registered model '{}' requires a model runtime, which this server does not provide yet",
            stamp(),
            model.name.as_deref().unwrap_or_default(),
            model.model_name.as_deref().unwrap_or_default()
        ));
    }
    log.push(format!("{} config version {} {}", stamp(), record.version, if ok { "is ready" } else { "failed" }));
    (ok, log.join("\n") + "\n")
}
