//! Validation of endpoint requests.
//!
//! Everything a client sends is checked here before anything is stored. A failure is a
//! [`ValidationError`] naming the JSON path of the offending field, e.g.
//! `config.served_entities[1].external_model.openai_config.openai_api_key`. Successful
//! validation of a config produces a [`NormalizedConfig`]: served-entity names filled in with
//! the default rule and the traffic split made explicit, which is what the store keeps.

use std::collections::{BTreeMap, HashMap};

use modelgate_wire::{
    AiGatewayConfig, EndpointCoreConfigInput, EndpointTag, ExternalModel, InferenceTableConfig, RateLimit, Route,
    ServedEntityInput, ServedModelInput, TrafficConfig,
};

use crate::Provider;
use crate::credentials;
use crate::names::{default_external_entity_name, default_model_entity_name, endpoint_name_problem};
use crate::secret_ref;

/// A rejected request: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ValidationError {
    /// JSON path of the field, e.g. `config.served_entities[0].name`.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

/// `path.field`, or just `field` at the top level of a request body.
fn sub(path: &str, field: &str) -> String {
    if path.is_empty() { field.to_string() } else { format!("{path}.{field}") }
}

fn err(path: impl Into<String>, message: impl Into<String>) -> ValidationError {
    ValidationError { path: path.into(), message: message.into() }
}

type Result<T> = std::result::Result<T, ValidationError>;

/// Most served entities (and legacy served models) one config may hold.
pub const MAX_SERVED_ENTITIES: usize = 15;
/// Tasks an external model may have.
pub const TASKS: [&str; 4] = ["llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings", "llm/v1/images"];
/// Accepted `workload_type` values.
pub const WORKLOAD_TYPES: [&str; 9] = [
    "CPU",
    "CPU_LARGE",
    "CPU_MEDIUM",
    "GPU_SMALL",
    "GPU_MEDIUM",
    "GPU_LARGE",
    "GPU_XLARGE",
    "GPU_XLARGE_8",
    "MULTIGPU_MEDIUM",
];
/// Most rate limits per endpoint, and most of them keyed by group.
pub const MAX_RATE_LIMITS: usize = 20;
/// See [`MAX_RATE_LIMITS`].
pub const MAX_GROUP_RATE_LIMITS: usize = 5;
/// Most `invalid_keywords` (and most `valid_topics`) per guardrail side.
pub const MAX_GUARDRAIL_WORDS: usize = 200;
/// Longest keyword or topic, in bytes.
pub const MAX_GUARDRAIL_WORD_LEN: usize = 256;
/// Most tags on an endpoint.
pub const MAX_TAGS: usize = 50;
/// Longest tag key or value, in bytes.
pub const MAX_TAG_LEN: usize = 255;

/// What a config serves. An endpoint cannot switch between the two on update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServingKind {
    /// Every entity is an `external_model`.
    ExternalModel,
    /// Registered, foundation or legacy served models.
    Model,
}

impl ServingKind {
    /// The `endpoint_type` string shown on the endpoint.
    pub fn endpoint_type(self) -> &'static str {
        match self {
            ServingKind::ExternalModel => "EXTERNAL_MODEL",
            ServingKind::Model => "CUSTOM_MODEL",
        }
    }
}

/// A validated config, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizedConfig {
    /// The config with every served-entity name and the traffic split filled in.
    pub config: EndpointCoreConfigInput,
    /// The task shared by the external models, if any.
    pub task: Option<String>,
    /// What the config serves.
    pub kind: ServingKind,
}

/// Checks an endpoint name.
pub fn endpoint_name(name: &str, path: &str) -> Result<()> {
    match endpoint_name_problem(name) {
        Some(p) => Err(err(path, format!("invalid endpoint name: {p}"))),
        None => Ok(()),
    }
}

/// The kind a stored config has (used to refuse switching kinds on update).
pub fn kind_of(config: &EndpointCoreConfigInput) -> ServingKind {
    let external = config.served_entities.iter().flatten().any(|e| e.external_model.is_some());
    if external { ServingKind::ExternalModel } else { ServingKind::Model }
}

/// Validates a config and fills in what the client may leave out.
pub fn normalize_config(mut config: EndpointCoreConfigInput, path: &str) -> Result<NormalizedConfig> {
    let entities = config.served_entities.get_or_insert_with(Vec::new);
    let models_len = config.served_models.as_ref().map_or(0, Vec::len);
    if entities.is_empty() && models_len == 0 {
        return Err(err(sub(path, "served_entities"), "at least one served entity is required"));
    }
    if entities.len() + models_len > MAX_SERVED_ENTITIES {
        return Err(err(
            sub(path, "served_entities"),
            format!("{} served entities given; at most {MAX_SERVED_ENTITIES} are allowed", entities.len() + models_len),
        ));
    }

    // name -> path of the entity that claimed it, for duplicate reporting.
    let mut names: HashMap<String, String> = HashMap::new();
    let mut task: Option<(String, String)> = None;
    let mut external_count = 0;

    for (i, entity) in entities.iter_mut().enumerate() {
        let epath = sub(path, &format!("served_entities[{i}]"));
        if entity.external_model.is_some() {
            external_count += 1;
        }
        validate_entity(entity, &epath)?;
        if let Some(m) = &entity.external_model {
            match &task {
                None => task = Some((m.task.clone(), epath.clone())),
                Some((t, first)) if *t != m.task => {
                    return Err(err(
                        format!("{epath}.external_model.task"),
                        format!(
                            "all external models of an endpoint must share one task: '{}' differs from '{t}' of {first}",
                            m.task
                        ),
                    ));
                }
                _ => {}
            }
        }
        claim_name(&mut names, entity.name.as_deref().unwrap_or_default(), &epath)?;
    }
    if let Some(models) = config.served_models.as_mut() {
        for (j, model) in models.iter_mut().enumerate() {
            let mpath = sub(path, &format!("served_models[{j}]"));
            validate_served_model(model, &mpath)?;
            claim_name(&mut names, model.name.as_deref().unwrap_or_default(), &mpath)?;
        }
    }

    let entity_count = config.served_entities.as_ref().map_or(0, Vec::len) + models_len;
    if external_count > 0 && external_count != entity_count {
        return Err(err(
            sub(path, "served_entities"),
            "an endpoint cannot mix external models with registered or foundation models",
        ));
    }

    let ordered_names: Vec<String> = config
        .served_entities
        .iter()
        .flatten()
        .filter_map(|e| e.name.clone())
        .chain(config.served_models.iter().flatten().filter_map(|m| m.name.clone()))
        .collect();
    config.traffic_config = Some(normalize_traffic(config.traffic_config.take(), &ordered_names, path)?);

    if let Some(ac) = &config.auto_capture_config {
        inference_table(ac, &sub(path, "auto_capture_config"))?;
    }
    if config.served_models.as_ref().is_some_and(Vec::is_empty) {
        config.served_models = None;
    }
    config.name = None;

    let kind = if external_count > 0 { ServingKind::ExternalModel } else { ServingKind::Model };
    Ok(NormalizedConfig { config, task: task.map(|(t, _)| t), kind })
}

fn claim_name(names: &mut HashMap<String, String>, name: &str, epath: &str) -> Result<()> {
    if let Some(first) = names.insert(name.to_string(), epath.to_string()) {
        return Err(err(
            format!("{epath}.name"),
            format!("served entity name '{name}' is already used by {first}; names must be unique within an endpoint"),
        ));
    }
    Ok(())
}

fn entity_name_rule(name: &mut Option<String>, default: Option<String>, npath: &str, from: &str) -> Result<()> {
    match name {
        Some(n) => {
            if let Some(p) = endpoint_name_problem(n) {
                return Err(err(npath, format!("invalid served entity name: {p}")));
            }
        }
        None => {
            let d = default.ok_or_else(|| err(npath, "a name is required"))?;
            if let Some(p) = endpoint_name_problem(&d) {
                return Err(err(
                    npath,
                    format!("the default name derived from {from} is invalid ({p}); set name explicitly"),
                ));
            }
            *name = Some(d);
        }
    }
    Ok(())
}

fn validate_entity(entity: &mut ServedEntityInput, epath: &str) -> Result<()> {
    let default = if let Some(model) = entity.external_model.as_mut() {
        if entity.entity_name.is_some() || entity.entity_version.is_some() {
            return Err(err(
                format!("{epath}.entity_name"),
                "set either external_model or entity_name/entity_version, not both",
            ));
        }
        external_model(model, &format!("{epath}.external_model"))?;
        (Some(default_external_entity_name(&model.name)), "external_model.name")
    } else {
        let name =
            entity.entity_name.as_deref().filter(|n| !n.trim().is_empty()).ok_or_else(|| {
                err(format!("{epath}.entity_name"), "either external_model or entity_name is required")
            })?;
        let d = match entity.entity_version.as_deref() {
            Some(v) if !v.is_empty() => default_model_entity_name(name, v),
            _ => name.rsplit('.').next().unwrap_or(name).to_string(),
        };
        (Some(d), "entity_name and entity_version")
    };
    entity_name_rule(&mut entity.name, default.0, &format!("{epath}.name"), default.1)?;
    for (field, value) in [("priority", entity.priority), ("weight", entity.weight)] {
        if let Some(v) = value
            && !(0..=1000).contains(&v)
        {
            return Err(err(format!("{epath}.{field}"), format!("must be between 0 and 1000, got {v}")));
        }
    }
    environment_vars(entity.environment_vars.as_ref(), epath)?;
    sizing(
        epath,
        entity.workload_type.as_deref(),
        entity.workload_size.as_deref(),
        [
            ("min_provisioned_concurrency", entity.min_provisioned_concurrency),
            ("max_provisioned_concurrency", entity.max_provisioned_concurrency),
            ("min_provisioned_throughput", entity.min_provisioned_throughput),
            ("max_provisioned_throughput", entity.max_provisioned_throughput),
            ("provisioned_model_units", entity.provisioned_model_units),
        ],
    )
}

fn validate_served_model(model: &mut ServedModelInput, mpath: &str) -> Result<()> {
    let name = non_empty(model.model_name.as_deref(), &format!("{mpath}.model_name"))?;
    let version = non_empty(model.model_version.as_deref(), &format!("{mpath}.model_version"))?;
    if model.scale_to_zero_enabled.is_none() {
        return Err(err(format!("{mpath}.scale_to_zero_enabled"), "is required for served_models"));
    }
    let default = default_model_entity_name(name, version);
    entity_name_rule(&mut model.name, Some(default), &format!("{mpath}.name"), "model_name and model_version")?;
    environment_vars(model.environment_vars.as_ref(), mpath)?;
    sizing(
        mpath,
        model.workload_type.as_deref(),
        model.workload_size.as_deref(),
        [
            ("min_provisioned_concurrency", model.min_provisioned_concurrency),
            ("max_provisioned_concurrency", model.max_provisioned_concurrency),
            ("min_provisioned_throughput", model.min_provisioned_throughput),
            ("max_provisioned_throughput", model.max_provisioned_throughput),
            ("provisioned_model_units", model.provisioned_model_units),
        ],
    )
}

fn sizing(
    epath: &str,
    workload_type: Option<&str>,
    workload_size: Option<&str>,
    numbers: [(&str, Option<i64>); 5],
) -> Result<()> {
    if let Some(t) = workload_type
        && !WORKLOAD_TYPES.contains(&t)
    {
        return Err(err(
            format!("{epath}.workload_type"),
            format!("'{t}' is not one of {}", WORKLOAD_TYPES.join(", ")),
        ));
    }
    if workload_size.is_some_and(|s| s.trim().is_empty()) {
        return Err(err(format!("{epath}.workload_size"), "must not be empty"));
    }
    for (field, value) in numbers {
        if let Some(v) = value
            && v < 0
        {
            return Err(err(format!("{epath}.{field}"), format!("must not be negative, got {v}")));
        }
    }
    let [min_c, max_c, min_t, max_t, _] = numbers;
    for ((lo_name, lo), (hi_name, hi)) in [(min_c, max_c), (min_t, max_t)] {
        if let (Some(a), Some(b)) = (lo, hi)
            && a > b
        {
            return Err(err(format!("{epath}.{lo_name}"), format!("{a} is larger than {hi_name} = {b}")));
        }
    }
    Ok(())
}

/// Checks environment variable names and the secret references among the values; `epath` is the
/// path of the object that holds `environment_vars`.
pub fn environment_vars(vars: Option<&BTreeMap<String, String>>, epath: &str) -> Result<()> {
    for (k, v) in vars.into_iter().flatten() {
        let vpath = format!("{epath}.environment_vars.{k}");
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(err(vpath, "environment variable names may contain only letters, digits and '_'"));
        }
        if secret_ref::looks_like_ref(v) {
            secret_ref::parse(v).map_err(|m| err(vpath, m))?;
        }
    }
    Ok(())
}

fn non_empty<'a>(v: Option<&'a str>, path: &str) -> Result<&'a str> {
    match v {
        Some(s) if !s.trim().is_empty() => Ok(s),
        Some(_) => Err(err(path, "must not be empty")),
        None => Err(err(path, "is required")),
    }
}

fn http_url(v: Option<&str>, path: &str, required: bool) -> Result<()> {
    match v {
        None if !required => Ok(()),
        None => Err(err(path, "is required")),
        Some(u) => crate::outbound::parse_url(u).map(|_| ()).map_err(|m| err(path, m)),
    }
}

/// A value that becomes part of an upstream URL (a region, a project, a deployment name, an API
/// version, a tenant): it must not be able to change the URL's host or path.
fn url_component(v: Option<&str>, path: &str) -> Result<()> {
    let Some(v) = v else { return Ok(()) };
    if v.is_empty() || v.len() > 128 {
        return Err(err(path, "must be 1 to 128 characters"));
    }
    if let Some(c) = v.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_.~:@".contains(*c))) {
        return Err(err(path, format!("must not contain {c:?}; only letters, digits and - _ . ~ : @ are allowed")));
    }
    Ok(())
}

/// The custom base URLs of an external model (fields that point the gateway somewhere other than
/// the provider's own host), with their field paths under `path`.
pub fn base_urls(m: &ExternalModel, path: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut push = |field: String, v: Option<&String>| {
        if let Some(v) = v {
            out.push((field, v.clone()));
        }
    };
    if let Some(c) = &m.openai_config {
        push(format!("{path}.openai_config.openai_api_base"), c.openai_api_base.as_ref());
    }
    if let Some(c) = &m.cohere_config {
        push(format!("{path}.cohere_config.cohere_api_base"), c.cohere_api_base.as_ref());
    }
    if let Some(c) = &m.databricks_model_serving_config {
        push(
            format!("{path}.databricks_model_serving_config.databricks_workspace_url"),
            c.databricks_workspace_url.as_ref(),
        );
    }
    if let Some(c) = &m.custom_provider_config {
        push(format!("{path}.custom_provider_config.custom_provider_url"), c.custom_provider_url.as_ref());
    }
    out
}

fn present_configs(m: &ExternalModel) -> Vec<&'static str> {
    let mut v = Vec::new();
    let pairs: [(&'static str, bool); 9] = [
        ("openai_config", m.openai_config.is_some()),
        ("anthropic_config", m.anthropic_config.is_some()),
        ("cohere_config", m.cohere_config.is_some()),
        ("ai21labs_config", m.ai21labs_config.is_some()),
        ("amazon_bedrock_config", m.amazon_bedrock_config.is_some()),
        ("google_cloud_vertex_ai_config", m.google_cloud_vertex_ai_config.is_some()),
        ("palm_config", m.palm_config.is_some()),
        ("databricks_model_serving_config", m.databricks_model_serving_config.is_some()),
        ("custom_provider_config", m.custom_provider_config.is_some()),
    ];
    for (k, present) in pairs {
        if present {
            v.push(k);
        }
    }
    v
}

/// Validates an `external_model` block at `path`.
pub fn external_model(m: &mut ExternalModel, path: &str) -> Result<()> {
    if m.provider == "palm" {
        return Err(err(
            format!("{path}.provider"),
            "the PaLM API has been retired by Google; use provider 'google-cloud-vertex-ai' (Gemini) instead",
        ));
    }
    let Some(provider) = Provider::parse(&m.provider) else {
        let names: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
        return Err(err(
            format!("{path}.provider"),
            format!("'{}' is not a supported provider; use one of {}", m.provider, names.join(", ")),
        ));
    };
    non_empty(Some(&m.name), &format!("{path}.name"))?;
    if let Some(p) = crate::names::label_problem(&m.name, 256) {
        return Err(err(format!("{path}.name"), p));
    }
    if !TASKS.contains(&m.task.as_str()) {
        return Err(err(format!("{path}.task"), format!("'{}' is not one of {}", m.task, TASKS.join(", "))));
    }
    if let Some(tasks) = provider.tasks()
        && !tasks.contains(&m.task.as_str())
    {
        return Err(err(
            format!("{path}.task"),
            format!("provider '{}' does not offer {}; it offers {}", m.provider, m.task, tasks.join(", ")),
        ));
    }
    let expected = provider.config_key();
    for key in present_configs(m) {
        if key != expected {
            return Err(err(
                format!("{path}.{key}"),
                format!("is set but provider is '{}', which takes {expected}", m.provider),
            ));
        }
    }
    if !present_configs(m).contains(&expected) {
        return Err(err(format!("{path}.{expected}"), format!("is required for provider '{}'", m.provider)));
    }

    for slot in credentials::slots(m) {
        match (slot.reference.as_deref(), slot.plaintext.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(err(
                    format!("{path}.{}", slot.plaintext_field),
                    format!("set only one of {} or {}", slot.reference_field, slot.plaintext_field),
                ));
            }
            (Some(r), None) => {
                secret_ref::parse(r).map_err(|e| err(format!("{path}.{}", slot.reference_field), e))?;
            }
            (None, Some("")) => {
                return Err(err(format!("{path}.{}", slot.plaintext_field), "must not be empty"));
            }
            (None, None) if slot.required => {
                return Err(err(
                    format!("{path}.{}", slot.reference_field),
                    format!("one of {} or {} is required", slot.reference_field, slot.plaintext_field),
                ));
            }
            _ => {}
        }
    }

    match provider {
        Provider::OpenAi => openai(m, path),
        Provider::Cohere => {
            let c = m.cohere_config.as_ref().map(|c| c.cohere_api_base.as_deref());
            http_url(c.flatten(), &format!("{path}.cohere_config.cohere_api_base"), false)
        }
        Provider::AmazonBedrock => bedrock(m, path),
        Provider::GoogleCloudVertexAi => {
            let c = present(m.google_cloud_vertex_ai_config.as_ref(), path, "google_cloud_vertex_ai_config")?;
            let p = format!("{path}.google_cloud_vertex_ai_config");
            non_empty(c.project_id.as_deref(), &format!("{p}.project_id"))?;
            non_empty(c.region.as_deref(), &format!("{p}.region"))?;
            url_component(c.project_id.as_deref(), &format!("{p}.project_id"))?;
            url_component(c.region.as_deref(), &format!("{p}.region"))?;
            url_component(Some(&m.name), &format!("{path}.name"))
        }
        Provider::DatabricksModelServing => {
            let c = present(m.databricks_model_serving_config.as_ref(), path, "databricks_model_serving_config")?;
            http_url(
                c.databricks_workspace_url.as_deref(),
                &format!("{path}.databricks_model_serving_config.databricks_workspace_url"),
                true,
            )
        }
        Provider::Custom => custom(m, path),
        Provider::Anthropic | Provider::Ai21Labs => Ok(()),
    }
}

/// The provider config `external_model` checked was there; a missing one is reported, not assumed.
fn present<'a, T>(config: Option<&'a T>, path: &str, key: &str) -> Result<&'a T> {
    config.ok_or_else(|| err(format!("{path}.{key}"), "is required"))
}

fn openai(m: &ExternalModel, path: &str) -> Result<()> {
    let c = present(m.openai_config.as_ref(), path, "openai_config")?;
    let p = format!("{path}.openai_config");
    let api_type = c.openai_api_type.as_deref().unwrap_or("openai");
    if !["openai", "azure", "azuread"].contains(&api_type) {
        return Err(err(format!("{p}.openai_api_type"), format!("'{api_type}' is not one of openai, azure, azuread")));
    }
    let azure = api_type != "openai";
    http_url(c.openai_api_base.as_deref(), &format!("{p}.openai_api_base"), azure)?;
    if azure {
        non_empty(c.openai_api_version.as_deref(), &format!("{p}.openai_api_version"))?;
        non_empty(c.openai_deployment_name.as_deref(), &format!("{p}.openai_deployment_name"))?;
    }
    url_component(c.openai_api_version.as_deref(), &format!("{p}.openai_api_version"))?;
    url_component(c.openai_deployment_name.as_deref(), &format!("{p}.openai_deployment_name"))?;
    url_component(c.microsoft_entra_tenant_id.as_deref(), &format!("{p}.microsoft_entra_tenant_id"))?;
    let has_key = c.openai_api_key.is_some() || c.openai_api_key_plaintext.is_some();
    let has_entra_secret =
        c.microsoft_entra_client_secret.is_some() || c.microsoft_entra_client_secret_plaintext.is_some();
    let entra = has_entra_secret || c.microsoft_entra_client_id.is_some() || c.microsoft_entra_tenant_id.is_some();
    match (has_key, entra) {
        (true, true) => Err(err(
            format!("{p}.microsoft_entra_client_id"),
            "authenticate with either an API key or Microsoft Entra ID credentials, not both",
        )),
        (false, false) => Err(err(
            format!("{p}.openai_api_key"),
            "one of openai_api_key or openai_api_key_plaintext is required \
             (or microsoft_entra_client_id, microsoft_entra_tenant_id and a client secret)",
        )),
        (true, false) => Ok(()),
        (false, true) => {
            if !azure {
                return Err(err(
                    format!("{p}.openai_api_type"),
                    "Microsoft Entra ID credentials require openai_api_type 'azure' or 'azuread'",
                ));
            }
            non_empty(c.microsoft_entra_client_id.as_deref(), &format!("{p}.microsoft_entra_client_id"))?;
            non_empty(c.microsoft_entra_tenant_id.as_deref(), &format!("{p}.microsoft_entra_tenant_id"))?;
            if !has_entra_secret {
                return Err(err(
                    format!("{p}.microsoft_entra_client_secret"),
                    "one of microsoft_entra_client_secret or microsoft_entra_client_secret_plaintext is required",
                ));
            }
            Ok(())
        }
    }
}

fn bedrock(m: &ExternalModel, path: &str) -> Result<()> {
    let c = present(m.amazon_bedrock_config.as_ref(), path, "amazon_bedrock_config")?;
    let p = format!("{path}.amazon_bedrock_config");
    non_empty(c.aws_region.as_deref(), &format!("{p}.aws_region"))?;
    url_component(c.aws_region.as_deref(), &format!("{p}.aws_region"))?;
    let bp = non_empty(c.bedrock_provider.as_deref(), &format!("{p}.bedrock_provider"))?;
    if !["anthropic", "cohere", "ai21labs", "amazon"].contains(&bp.to_ascii_lowercase().as_str()) {
        return Err(err(
            format!("{p}.bedrock_provider"),
            format!("'{bp}' is not one of anthropic, cohere, ai21labs, amazon"),
        ));
    }
    if m.task == "llm/v1/embeddings" && !["amazon", "cohere"].contains(&bp.to_ascii_lowercase().as_str()) {
        return Err(err(
            format!("{path}.task"),
            format!("Bedrock offers embeddings only for bedrock_provider amazon and cohere, not '{bp}'"),
        ));
    }
    if m.task == "llm/v1/images" && !bp.eq_ignore_ascii_case("amazon") {
        return Err(err(
            format!("{path}.task"),
            format!("Bedrock offers images only for bedrock_provider amazon (Titan Image Generator), not '{bp}'"),
        ));
    }
    let id = c.aws_access_key_id.is_some() || c.aws_access_key_id_plaintext.is_some();
    let secret = c.aws_secret_access_key.is_some() || c.aws_secret_access_key_plaintext.is_some();
    let methods = usize::from(id || secret)
        + usize::from(c.instance_profile_arn.is_some())
        + usize::from(c.uc_service_credential_name.is_some());
    if methods == 0 {
        return Err(err(
            format!("{p}.aws_access_key_id"),
            "an access key (aws_access_key_id and aws_secret_access_key), instance_profile_arn \
             or uc_service_credential_name is required",
        ));
    }
    if methods > 1 {
        return Err(err(
            format!("{p}.instance_profile_arn"),
            "use only one authentication method: access keys, instance_profile_arn or uc_service_credential_name",
        ));
    }
    if id != secret {
        let missing = if id { "aws_secret_access_key" } else { "aws_access_key_id" };
        return Err(err(
            format!("{p}.{missing}"),
            format!("one of {missing} or {missing}_plaintext is required with an access key"),
        ));
    }
    Ok(())
}

fn custom(m: &ExternalModel, path: &str) -> Result<()> {
    let c = present(m.custom_provider_config.as_ref(), path, "custom_provider_config")?;
    let p = format!("{path}.custom_provider_config");
    http_url(c.custom_provider_url.as_deref(), &format!("{p}.custom_provider_url"), true)?;
    match (&c.api_key_auth, &c.bearer_token_auth) {
        (Some(_), Some(_)) => {
            Err(err(format!("{p}.bearer_token_auth"), "set exactly one of api_key_auth or bearer_token_auth"))
        }
        (None, None) => Err(err(format!("{p}.api_key_auth"), "one of api_key_auth or bearer_token_auth is required")),
        (Some(a), None) => {
            let key = non_empty(a.key.as_deref(), &format!("{p}.api_key_auth.key"))?;
            header_name(key, &format!("{p}.api_key_auth.key"))
        }
        (None, Some(_)) => Ok(()),
    }
}

/// An HTTP header name the gateway may set on upstream requests: a valid token, and not one that
/// framing or routing depends on.
fn header_name(name: &str, path: &str) -> Result<()> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.len() > 128 || !name.chars().all(token) {
        return Err(err(path, "is not a valid HTTP header name (letters, digits and -, at most 128 characters)"));
    }
    const RESERVED: [&str; 8] =
        ["host", "content-length", "transfer-encoding", "connection", "content-type", "te", "upgrade", "trailer"];
    if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(err(path, format!("'{name}' is set by the gateway itself and cannot carry a credential")));
    }
    Ok(())
}

fn route_target(route: &Route, rpath: &str) -> Result<String> {
    match (route.served_entity_name.as_deref(), route.served_model_name.as_deref()) {
        (Some(a), Some(b)) if a != b => Err(err(
            format!("{rpath}.served_entity_name"),
            format!("'{a}' and served_model_name '{b}' disagree; set one of them"),
        )),
        (Some(a), _) | (None, Some(a)) => Ok(a.to_string()),
        (None, None) => Err(err(format!("{rpath}.served_entity_name"), "is required")),
    }
}

fn normalize_traffic(traffic: Option<TrafficConfig>, names: &[String], path: &str) -> Result<TrafficConfig> {
    let tpath = sub(path, "traffic_config.routes");
    let routes = match traffic.map(|t| t.routes) {
        Some(Some(r)) if r.is_empty() => {
            return Err(err(tpath, "must not be empty; omit traffic_config to share traffic evenly"));
        }
        Some(r) => r.unwrap_or_default(),
        None => Vec::new(),
    };
    if routes.is_empty() {
        // No split given: share evenly, remainder to the first entities, so 3 entities get 34/33/33.
        let n = names.len() as i64;
        let routes = names
            .iter()
            .enumerate()
            .map(|(i, name)| Route {
                served_model_name: Some(name.clone()),
                served_entity_name: Some(name.clone()),
                traffic_percentage: 100 / n + i64::from((i as i64) < 100 % n),
            })
            .collect();
        return Ok(TrafficConfig { routes: Some(routes) });
    }
    let mut seen = HashMap::new();
    let mut total = 0;
    for (k, route) in routes.iter().enumerate() {
        let rpath = format!("{tpath}[{k}]");
        let target = route_target(route, &rpath)?;
        if !names.contains(&target) {
            return Err(err(
                format!("{rpath}.served_entity_name"),
                format!("'{target}' is not a served entity of this config (served entities: {})", names.join(", ")),
            ));
        }
        if let Some(first) = seen.insert(target.clone(), k) {
            return Err(err(rpath, format!("'{target}' already has a route at routes[{first}]")));
        }
        if !(0..=100).contains(&route.traffic_percentage) {
            return Err(err(
                format!("{rpath}.traffic_percentage"),
                format!("must be between 0 and 100, got {}", route.traffic_percentage),
            ));
        }
        total += route.traffic_percentage;
    }
    if total != 100 {
        return Err(err(tpath, format!("traffic percentages must add up to 100, they add up to {total}")));
    }
    // One shape whichever spelling the client used, so equal configs compare equal.
    let routes = routes
        .into_iter()
        .map(|r| {
            let target = r.served_entity_name.or(r.served_model_name);
            Route { served_model_name: target.clone(), served_entity_name: target, ..r }
        })
        .collect();
    Ok(TrafficConfig { routes: Some(routes) })
}

/// Largest payload an inference table may keep.
pub const MAX_PAYLOAD_BYTES: i64 = 10 * 1024 * 1024;

fn inference_table(c: &InferenceTableConfig, path: &str) -> Result<()> {
    if c.enabled == Some(true) {
        non_empty(c.catalog_name.as_deref(), &format!("{path}.catalog_name"))?;
        non_empty(c.schema_name.as_deref(), &format!("{path}.schema_name"))?;
    }
    if let Some(f) = c.sampling_fraction
        && !(f > 0.0 && f <= 1.0)
    {
        return Err(err(format!("{path}.sampling_fraction"), format!("must be in (0, 1], got {f}")));
    }
    if let Some(b) = c.max_payload_bytes
        && !(1..=MAX_PAYLOAD_BYTES).contains(&b)
    {
        return Err(err(format!("{path}.max_payload_bytes"), format!("must be 1 to {MAX_PAYLOAD_BYTES}, got {b}")));
    }
    if let Some(d) = c.retention_days
        && !(1..=3650).contains(&d)
    {
        return Err(err(format!("{path}.retention_days"), format!("must be 1 to 3650, got {d}")));
    }
    Ok(())
}

/// Validates a deprecation notice at `path`: real dates, the sunset at least `min_notice_days`
/// after the notice, and a replacement that is not the endpoint itself.
pub fn deprecation(d: &modelgate_wire::Deprecation, endpoint: &str, min_notice_days: i64, path: &str) -> Result<()> {
    let notice = crate::period::day_of(&d.notice_date)
        .ok_or_else(|| err(format!("{path}.notice_date"), format!("'{}' is not a date YYYY-MM-DD", d.notice_date)))?;
    let sunset = crate::period::day_of(&d.sunset_date)
        .ok_or_else(|| err(format!("{path}.sunset_date"), format!("'{}' is not a date YYYY-MM-DD", d.sunset_date)))?;
    if sunset - notice < min_notice_days {
        return Err(err(
            format!("{path}.sunset_date"),
            format!(
                "must be at least {min_notice_days} days after notice_date (the workspace's minimum notice); it is {} days",
                sunset - notice
            ),
        ));
    }
    if let Some(r) = &d.replacement {
        endpoint_name(r, &format!("{path}.replacement"))?;
        if r == endpoint {
            return Err(err(format!("{path}.replacement"), "must be another endpoint"));
        }
    }
    if d.forward == Some(true) && d.replacement.is_none() {
        return Err(err(format!("{path}.forward"), "needs a replacement to forward to"));
    }
    Ok(())
}

/// Bounds of `health_check_config.interval_seconds`.
pub const HEALTH_CHECK_INTERVAL_SECONDS: std::ops::RangeInclusive<u64> = 10..=86_400;

/// A rate limit's period and amounts at `path`: per minute, calls or tokens or both, none negative.
fn per_minute(path: &str, renewal_period: &str, calls: Option<i64>, tokens: Option<i64>) -> Result<()> {
    if renewal_period != "minute" {
        return Err(err(
            format!("{path}.renewal_period"),
            format!("'{renewal_period}' is not supported; the only renewal period is 'minute'"),
        ));
    }
    if calls.is_none() && tokens.is_none() {
        return Err(err(format!("{path}.calls"), "set calls, tokens or both"));
    }
    for (f, v) in [("calls", calls), ("tokens", tokens)] {
        if let Some(v) = v
            && v < 0
        {
            return Err(err(format!("{path}.{f}"), format!("must not be negative, got {v}")));
        }
    }
    Ok(())
}

/// Most endpoints a token's `allowed_endpoints` may name.
pub const MAX_TOKEN_ENDPOINTS: usize = 100;

/// Validates a token's `limits`.
pub fn token_limits(l: &modelgate_wire::TokenLimits) -> Result<()> {
    if let Some(names) = &l.allowed_endpoints {
        if names.is_empty() {
            return Err(err("limits.allowed_endpoints", "name at least one endpoint (omit the field to allow all)"));
        }
        if names.len() > MAX_TOKEN_ENDPOINTS {
            return Err(err(
                "limits.allowed_endpoints",
                format!("{} endpoints given; at most {MAX_TOKEN_ENDPOINTS} are allowed", names.len()),
            ));
        }
        for (i, n) in names.iter().enumerate() {
            if let Some(p) = endpoint_name_problem(n) {
                return Err(err(format!("limits.allowed_endpoints[{i}]"), p));
            }
        }
    }
    let limits = l.rate_limits.as_deref().unwrap_or_default();
    if limits.len() > MAX_RATE_LIMITS {
        return Err(err(
            "limits.rate_limits",
            format!("{} given; at most {MAX_RATE_LIMITS} are allowed", limits.len()),
        ));
    }
    for (i, r) in limits.iter().enumerate() {
        per_minute(&format!("limits.rate_limits[{i}]"), &r.renewal_period, r.calls, r.tokens)?;
    }
    if let Some(b) = &l.budget {
        if !(b.amount_usd.is_finite() && b.amount_usd > 0.0) {
            return Err(err("limits.budget.amount_usd", format!("must be a positive number, got {}", b.amount_usd)));
        }
        if let Err(e) = b.period.parse::<crate::period::Period>() {
            return Err(err("limits.budget.period", e));
        }
        if let Some(a) = b.action.as_deref()
            && !["ALERT", "BLOCK"].contains(&a)
        {
            return Err(err("limits.budget.action", format!("'{a}' is not ALERT or BLOCK")));
        }
    }
    Ok(())
}

/// Bounds of `cache_config.ttl_seconds`.
pub const CACHE_TTL_SECONDS: std::ops::RangeInclusive<u64> = 1..=86_400;

/// Validates an `ai_gateway` block at `path`.
pub fn ai_gateway(g: &AiGatewayConfig, path: &str) -> Result<()> {
    if let Some(c) = &g.cache_config {
        let cpath = sub(path, "cache_config");
        if let Some(t) = c.ttl_seconds
            && !CACHE_TTL_SECONDS.contains(&t)
        {
            return Err(err(
                format!("{cpath}.ttl_seconds"),
                format!("must be {} to {} seconds, got {t}", CACHE_TTL_SECONDS.start(), CACHE_TTL_SECONDS.end()),
            ));
        }
        if let Some(scope) = c.scope.as_deref()
            && !["endpoint", "caller"].contains(&scope)
        {
            return Err(err(format!("{cpath}.scope"), format!("'{scope}' is not one of endpoint, caller")));
        }
    }
    if let Some(i) = g.health_check_config.as_ref().and_then(|h| h.interval_seconds)
        && !HEALTH_CHECK_INTERVAL_SECONDS.contains(&i)
    {
        return Err(err(
            format!("{}.interval_seconds", sub(path, "health_check_config")),
            format!(
                "must be {} to {} seconds, got {i}",
                HEALTH_CHECK_INTERVAL_SECONDS.start(),
                HEALTH_CHECK_INTERVAL_SECONDS.end()
            ),
        ));
    }
    if let Some(t) = &g.inference_table_config {
        inference_table(t, &sub(path, "inference_table_config"))?;
    }
    if let Some(limits) = &g.rate_limits {
        let lpath = sub(path, "rate_limits");
        if limits.len() > MAX_RATE_LIMITS {
            return Err(err(
                lpath,
                format!("{} rate limits given; at most {MAX_RATE_LIMITS} are allowed", limits.len()),
            ));
        }
        let groups = limits.iter().filter(|l| l.key.as_deref() == Some("user_group")).count();
        if groups > MAX_GROUP_RATE_LIMITS {
            return Err(err(
                lpath,
                format!("{groups} user_group rate limits given; at most {MAX_GROUP_RATE_LIMITS} are allowed"),
            ));
        }
        let mut seen = HashMap::new();
        for (i, l) in limits.iter().enumerate() {
            let p = format!("{lpath}[{i}]");
            per_minute(&p, &l.renewal_period, l.calls, l.tokens)?;
            let key = l.key.as_deref().unwrap_or("endpoint");
            match key {
                "endpoint" if l.principal.is_some() => {
                    return Err(err(format!("{p}.principal"), "an endpoint-wide limit takes no principal"));
                }
                "user_group" | "service_principal" if l.principal.as_deref().is_none_or(str::is_empty) => {
                    return Err(err(format!("{p}.principal"), format!("is required for key '{key}'")));
                }
                "endpoint" | "user" | "user_group" | "service_principal" => {}
                other => {
                    return Err(err(
                        format!("{p}.key"),
                        format!("'{other}' is not one of endpoint, user, user_group, service_principal"),
                    ));
                }
            }
            if let Some(first) = seen.insert((key, l.principal.as_deref()), i) {
                return Err(err(p, format!("duplicates the limit at rate_limits[{first}] (same key and principal)")));
            }
        }
    }
    if let Some(gr) = &g.guardrails {
        for (side, params) in [("input", &gr.input), ("output", &gr.output)] {
            let Some(params) = params else { continue };
            if let Some(b) = params.pii.as_ref().and_then(|p| p.behavior.as_deref())
                && !["BLOCK", "MASK", "NONE"].contains(&b)
            {
                return Err(err(
                    sub(path, &format!("guardrails.{side}.pii.behavior")),
                    format!("'{b}' is not one of BLOCK, MASK, NONE"),
                ));
            }
            for (field, list) in
                [("invalid_keywords", &params.invalid_keywords), ("valid_topics", &params.valid_topics)]
            {
                let list = list.as_deref().unwrap_or_default();
                let lpath = sub(path, &format!("guardrails.{side}.{field}"));
                if list.len() > MAX_GUARDRAIL_WORDS {
                    return Err(err(
                        lpath,
                        format!("{} entries given; at most {MAX_GUARDRAIL_WORDS} are allowed", list.len()),
                    ));
                }
                for (i, k) in list.iter().enumerate() {
                    if let Some(p) = crate::names::label_problem(k, MAX_GUARDRAIL_WORD_LEN) {
                        return Err(err(format!("{lpath}[{i}]"), p));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Validates legacy `rate_limits` at `path`.
pub fn legacy_rate_limits(limits: &[RateLimit], path: &str) -> Result<()> {
    for (i, l) in limits.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if l.renewal_period != "minute" {
            return Err(err(
                format!("{p}.renewal_period"),
                format!("'{}' is not supported; the only renewal period is 'minute'", l.renewal_period),
            ));
        }
        if l.calls < 0 {
            return Err(err(format!("{p}.calls"), format!("must not be negative, got {}", l.calls)));
        }
        if let Some(k) = l.key.as_deref()
            && !["user", "endpoint"].contains(&k)
        {
            return Err(err(format!("{p}.key"), format!("'{k}' is not one of user, endpoint")));
        }
    }
    Ok(())
}

/// Validates tags at `path`.
pub fn tags(tags: &[EndpointTag], path: &str) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(err(path, format!("{} tags given; at most {MAX_TAGS} are allowed", tags.len())));
    }
    let mut seen = HashMap::new();
    for (i, t) in tags.iter().enumerate() {
        let p = format!("{path}[{i}].key");
        if let Some(problem) = crate::names::label_problem(&t.key, MAX_TAG_LEN) {
            return Err(err(p, problem));
        }
        if let Some(problem) = t.value.as_deref().and_then(|v| crate::names::text_problem(v, MAX_TAG_LEN, false)) {
            return Err(err(format!("{path}[{i}].value"), problem));
        }
        if let Some(first) = seen.insert(t.key.as_str(), i) {
            return Err(err(p, format!("duplicate tag key '{}' (also at [{first}])", t.key)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: serde_json::Value) -> EndpointCoreConfigInput {
        serde_json::from_value(v).unwrap()
    }

    fn openai_entity(name: &str) -> serde_json::Value {
        json!({"external_model": {"provider": "openai", "name": name, "task": "llm/v1/chat",
               "openai_config": {"openai_api_key": "{{secrets/s/k}}"}}})
    }

    fn fails(v: serde_json::Value) -> ValidationError {
        normalize_config(cfg(v), "config").unwrap_err()
    }

    #[test]
    fn fills_default_names_and_even_traffic() {
        let n = normalize_config(
            cfg(json!({"served_entities": [openai_entity("gpt-4.1:mini"), openai_entity("o3"), openai_entity("o4")]})),
            "config",
        )
        .unwrap();
        let ents = n.config.served_entities.unwrap();
        assert_eq!(ents[0].name.as_deref(), Some("gpt-4-1-mini"));
        let pct: Vec<i64> =
            n.config.traffic_config.unwrap().routes.unwrap().iter().map(|r| r.traffic_percentage).collect();
        assert_eq!(pct, vec![34, 33, 33]);
        assert_eq!(n.task.as_deref(), Some("llm/v1/chat"));
        assert_eq!(n.kind, ServingKind::ExternalModel);
    }

    #[test]
    fn names_the_field_path() {
        let e = fails(json!({"served_entities": [openai_entity("a"), {"external_model":
            {"provider": "openai", "name": "b", "task": "llm/v1/chat", "openai_config": {}}}]}));
        assert_eq!(e.path, "config.served_entities[1].external_model.openai_config.openai_api_key");
    }

    #[test]
    fn rejects_duplicates_bad_routes_and_mixed_tasks() {
        let e = fails(json!({"served_entities": [openai_entity("a"), openai_entity("a")]}));
        assert_eq!(e.path, "config.served_entities[1].name");
        let e = fails(json!({"served_entities": [openai_entity("a"), openai_entity("b")],
            "traffic_config": {"routes": [{"served_model_name": "a", "traffic_percentage": 60},
                                          {"served_model_name": "b", "traffic_percentage": 30}]}}));
        assert!(e.message.contains("add up to 90"), "{e}");
        let e = fails(json!({"served_entities": [openai_entity("a")],
            "traffic_config": {"routes": [{"served_model_name": "zz", "traffic_percentage": 100}]}}));
        assert!(e.message.contains("'zz' is not a served entity"), "{e}");
        let mut other = openai_entity("b");
        other["external_model"]["task"] = json!("llm/v1/embeddings");
        let e = fails(json!({"served_entities": [openai_entity("a"), other]}));
        assert_eq!(e.path, "config.served_entities[1].external_model.task");
    }

    #[test]
    fn rejects_bad_secret_refs_and_provider_mismatch() {
        let mut ent = openai_entity("a");
        ent["external_model"]["openai_config"]["openai_api_key"] = json!("sk-raw-key");
        let e = fails(json!({"served_entities": [ent]}));
        assert!(e.message.contains("{{secrets/<scope>/<key>}}") && !e.message.contains("sk-raw-key"));
        let e = fails(json!({"served_entities": [{"external_model": {"provider": "anthropic", "name": "c",
            "task": "llm/v1/chat", "openai_config": {"openai_api_key": "{{secrets/s/k}}"}}}]}));
        assert_eq!(e.path, "config.served_entities[0].external_model.openai_config");
        let e = fails(json!({"served_entities": [{"external_model": {"provider": "palm", "name": "c",
            "task": "llm/v1/chat", "palm_config": {"palm_api_key": "{{secrets/s/k}}"}}}]}));
        assert!(e.message.contains("retired"));
    }

    #[test]
    fn provider_specific_rules() {
        let azure = json!({"served_entities": [{"external_model": {"provider": "openai", "name": "gpt", "task": "llm/v1/chat",
            "openai_config": {"openai_api_type": "azure", "openai_api_key": "{{secrets/s/k}}",
                              "openai_api_base": "https://x.openai.azure.com"}}}]});
        assert!(fails(azure).path.ends_with("openai_api_version"));
        let bedrock = json!({"served_entities": [{"external_model": {"provider": "amazon-bedrock", "name": "m",
            "task": "llm/v1/chat", "amazon_bedrock_config": {"aws_region": "us-east-1", "bedrock_provider": "Anthropic",
            "aws_access_key_id": "{{secrets/s/id}}"}}}]});
        assert!(fails(bedrock).path.ends_with("aws_secret_access_key"));
        let custom = json!({"served_entities": [{"external_model": {"provider": "custom", "name": "m",
            "task": "llm/v1/chat", "custom_provider_config": {"custom_provider_url": "ftp://x",
            "bearer_token_auth": {"token_plaintext": "t"}}}}]});
        assert!(fails(custom).path.ends_with("custom_provider_url"));
    }

    #[test]
    fn cannot_mix_kinds_and_limits_count() {
        let e =
            fails(json!({"served_entities": [openai_entity("a"), {"entity_name": "cat.s.m", "entity_version": "1"}]}));
        assert!(e.message.contains("cannot mix"));
        let many: Vec<_> = (0..16).map(|i| openai_entity(&format!("m{i}"))).collect();
        assert!(fails(json!({"served_entities": many})).message.contains("at most 15"));
    }

    #[test]
    fn gateway_rate_limits() {
        let g: AiGatewayConfig = serde_json::from_value(json!({"rate_limits": [
            {"renewal_period": "minute", "calls": 10, "key": "user_group"}]}))
        .unwrap();
        assert_eq!(ai_gateway(&g, "ai_gateway").unwrap_err().path, "ai_gateway.rate_limits[0].principal");
        let g: AiGatewayConfig = serde_json::from_value(json!({"rate_limits": [
            {"renewal_period": "hour", "calls": 10}]}))
        .unwrap();
        assert!(ai_gateway(&g, "ai_gateway").is_err());
    }

    #[test]
    fn cache_config_bounds() {
        let check = |v: serde_json::Value| {
            let g: AiGatewayConfig = serde_json::from_value(json!({"cache_config": v})).unwrap();
            ai_gateway(&g, "ai_gateway")
        };
        assert!(check(json!({"enabled": true, "ttl_seconds": 60, "scope": "caller", "cache_sampled": true})).is_ok());
        assert_eq!(
            check(json!({"enabled": true, "ttl_seconds": 0})).unwrap_err().path,
            "ai_gateway.cache_config.ttl_seconds"
        );
        assert!(check(json!({"enabled": true, "ttl_seconds": 86_401})).unwrap_err().message.contains("1 to 86400"));
        let e = check(json!({"enabled": true, "scope": "user"})).unwrap_err();
        assert_eq!((e.path.as_str(), e.message.contains("'user'")), ("ai_gateway.cache_config.scope", true));
        assert!(
            serde_json::from_value::<AiGatewayConfig>(json!({"cache_config": {"enabled": true, "ttl": 5}})).is_err()
        );
    }
}
