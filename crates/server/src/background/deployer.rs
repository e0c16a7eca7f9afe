//! The deployer: moves a pending config version to `ACTIVE` or `FAILED`.
//!
//! For an external model, deploying means checking that every credential resolves: referenced
//! secrets exist and decrypt, sealed plaintext values open. For a registered model version, it
//! means starting its replicas beside the ones serving now and waiting until one answers: the
//! old version serves until then, and keeps serving if the new one never does. Requests arrive on
//! a queue; on start the server re-queues versions that were pending when it last stopped.

use std::collections::HashSet;
use std::time::Duration;

use modelgate_core::secret_ref;
use modelgate_store::{ConfigRecord, DeployOutcome};
use modelgate_wire::EndpointCoreConfigInput;
use tokio::sync::mpsc;

use crate::configs;
use crate::state::AppState;
use crate::state::DeployJob;

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
            // The version stays pending; it is retried on the next start (or by the next leader).
            tracing::error!(endpoint_id = %job.endpoint_id, version = job.version, error = %e, "deployment failed to run");
        }
        app.deployer.done(&job);
    }
}

/// On the leader: queues every version still pending, whichever replica accepted it (replicas
/// that do not lead leave their versions to the leader, which hears of them at once).
pub async fn adopt_pending(app: &AppState) {
    if !app.cluster.is_leader() {
        return;
    }
    match app.store.list_endpoints().await {
        Ok(endpoints) => {
            for e in endpoints {
                if let Some(v) = e.pending_version {
                    app.deployer.enqueue(&e.id, v);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not look for pending deployments"),
    }
}

async fn deploy(app: &AppState, job: &DeployJob) -> Result<(), crate::error::ApiError> {
    let Some(record) = app.store.get_config(&job.endpoint_id, job.version).await? else {
        return Ok(());
    };
    let config = configs::parse_stored(&record)?;
    let Checked { mut ok, mut log, hosted_task, warmed } = check(app, &record, &config).await;
    if let Some(problem) = needs_missing_judge(app, &job.endpoint_id).await? {
        ok = false;
        log.push_str(&format!("{problem}\n"));
    }
    let outcome = if ok {
        DeployOutcome::Ready { task: task_of(&config).or(hosted_task), build_log: log }
    } else {
        DeployOutcome::Failed { build_log: log }
    };
    let finished = app
        .commit_and_refresh(async {
            // The warmed replica sets are now the new version's (kept by the snapshot this commit
            // builds) or, if it failed, nobody's (stopped by it); the old version served meanwhile.
            for key in &warmed {
                app.hosting.pin(key, false);
            }
            Ok(app.store.finish_deployment(&job.endpoint_id, job.version, &outcome).await?)
        })
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

/// The build-log line when the endpoint's guardrails need a judge and the server has none.
async fn needs_missing_judge(app: &AppState, endpoint_id: &str) -> Result<Option<String>, crate::error::ApiError> {
    if app.judge_endpoint.is_some() {
        return Ok(None);
    }
    let Some(e) = app.store.get_endpoint_by_id(endpoint_id).await? else { return Ok(None) };
    let gateway: Option<modelgate_wire::AiGatewayConfig> =
        e.ai_gateway.as_deref().and_then(|j| serde_json::from_str(j).ok());
    let fields =
        gateway.and_then(|g| g.guardrails).map(|g| crate::policy::guardrails::judge_fields(&g)).unwrap_or_default();
    Ok((!fields.is_empty()).then(|| format!("ai_gateway.{}", crate::policy::guardrails::no_judge_message(&fields))))
}

fn task_of(config: &EndpointCoreConfigInput) -> Option<String> {
    config.served_entities.iter().flatten().find_map(|e| e.external_model.as_ref().map(|m| m.task.clone()))
}

/// The scopes the principal named `name` (who applied a config) may read, or `None` for "all"
/// (admins).
async fn readable_scopes(app: &AppState, name: &str) -> Result<Option<HashSet<String>>, crate::error::ApiError> {
    use modelgate_store::principal_kind;
    let mut who = None;
    for kind in [principal_kind::USER, principal_kind::SERVICE_PRINCIPAL] {
        if let Some(p) = app.store.find_principal(kind, name).await? {
            who = Some(p);
            break;
        }
    }
    let Some(who) = who else { return Ok(Some(HashSet::new())) };
    let memberships = app.store.list_memberships().await?;
    let mut ids: HashSet<String> = HashSet::from([who.id.clone()]);
    let mut stack = vec![who.id];
    while let Some(cur) = stack.pop() {
        for m in memberships.iter().filter(|m| m.member_id == cur) {
            if ids.insert(m.group_id.clone()) {
                stack.push(m.group_id.clone());
            }
        }
    }
    if let Some(admins) = app.store.find_principal(principal_kind::GROUP, crate::bootstrap::ADMINS_GROUP).await?
        && ids.contains(&admins.id)
    {
        return Ok(None);
    }
    let acls = app.store.list_scope_acls().await?;
    Ok(Some(acls.into_iter().filter(|a| ids.contains(&a.principal_id)).map(|a| a.scope).collect()))
}

/// What checking a config found.
struct Checked {
    /// Whether every entity deploys.
    ok: bool,
    /// The build log.
    log: String,
    /// The task of its hosted entities, if it has some.
    hosted_task: Option<String>,
    /// The replica sets warmed up for it (pinned until the deployment commits).
    warmed: Vec<crate::hosting::SetKey>,
}

/// Checks every served entity, and starts the replicas of hosted ones; says whether all deploy,
/// with the build log. The log names entities, fields and secret references, never values.
async fn check(app: &AppState, record: &ConfigRecord, config: &EndpointCoreConfigInput) -> Checked {
    let failed = |log: String| Checked { ok: false, log, hosted_task: None, warmed: Vec::new() };
    let mut log = Vec::new();
    let mut ok = true;
    // Every READ-level grant suffices to reference a scope (READ is the lowest scope permission).
    let readable = match readable_scopes(app, &record.creator).await {
        Ok(r) => r,
        Err(e) => return failed(format!("could not check {}'s scope permissions: {e}\n", record.creator)),
    };
    let stamp = || humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    log.push(format!("{} deploying config version {}", stamp(), record.version));
    let secrets = match configs::secret_values(app.store.as_ref(), &app.cipher).await {
        Ok(s) => s,
        Err(e) => return failed(format!("could not read the secrets: {e}\n")),
    };
    let may_read = |sr: &modelgate_core::secret_ref::SecretRef, field: &str| match &readable {
        Some(scopes) if !scopes.contains(&sr.scope) => Err(format!(
            "{} may not READ secret scope '{}', needed for {sr} in external_model.{field}",
            record.creator, sr.scope
        )),
        _ => Ok(()),
    };

    let versions = match crate::hosting::entity::load_versions(app.store.as_ref()).await {
        Ok(v) => v,
        Err(e) => return failed(format!("could not read the model registry: {e}\n")),
    };
    let (mut hosted_task, mut warmed) = (None, Vec::new());
    for entity in config.served_entities.iter().flatten() {
        let name = entity.name.as_deref().unwrap_or_default();
        let mut problems = Vec::new();
        match &entity.external_model {
            Some(model) => {
                let resolved =
                    configs::resolve_credentials(model, &record.endpoint_id, &app.cipher, &secrets, &may_read);
                problems.extend(resolved.problems);
                let resolved = resolved.values;
                // Building the adapter proves the provider config and credentials are usable
                // (e.g. a Vertex AI key file parses); its message names no secret value.
                if problems.is_empty()
                    && let Err(why) = modelgate_providers::build(model, &resolved, &app.providers)
                {
                    problems.push(why);
                }
                for (k, v) in entity.environment_vars.iter().flatten() {
                    if let Ok(sr) = secret_ref::parse(v)
                        && !secrets.contains_key(&sr)
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
            None => {
                match crate::hosting::entity::resolve(&app.hosting, &record.endpoint_id, entity, &versions, &secrets) {
                    Err(why) => problems.push(why),
                    Ok(r) => {
                        app.hosting.pin(&r.key, true);
                        warmed.push(r.key.clone());
                        let model = format!(
                            "registered model {} version {}",
                            entity.entity_name.as_deref().unwrap_or_default(),
                            entity.entity_version.as_deref().unwrap_or_default()
                        );
                        log.push(format!("{} [{name}] {model} ({}): starting replicas", stamp(), r.task));
                        match r.set.warm_up().await {
                            Ok(()) => log.push(format!("{} [{name}] {model}: a replica is serving", stamp())),
                            Err(why) => problems.push(format!("{model} did not start: {why}")),
                        }
                        hosted_task.get_or_insert(r.task);
                    }
                }
            }
        }
        for p in &problems {
            log.push(format!("{} [{name}] ERROR {p}", stamp()));
        }
        ok &= problems.is_empty();
    }
    for model in config.served_models.iter().flatten() {
        ok = false;
        log.push(format!(
            "{} [{}] ERROR legacy served_models are not served here; use served_entities with entity_name '{}'",
            stamp(),
            model.name.as_deref().unwrap_or_default(),
            model.model_name.as_deref().unwrap_or_default()
        ));
    }
    log.push(format!("{} config version {} {}", stamp(), record.version, if ok { "is ready" } else { "failed" }));
    Checked { ok, log: log.join("\n") + "\n", hosted_task, warmed }
}
