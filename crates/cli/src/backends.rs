//! `modelgate backends import FILE`: turns a list of backend definitions (deployments of models
//! on Azure OpenAI, AI Foundry or any OpenAI-compatible server) into one serving endpoint per
//! model, pooling every backend that serves it by priority and weight.

use std::collections::BTreeMap;

use clap::Subcommand;
use modelgate_core::{names, secret_ref};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::Client;
use crate::commands::{SE, at, print_json, s, set};
use crate::{CliError, Output};

/// Azure API version used when a backend names none.
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

/// `modelgate backends ...`
#[derive(Subcommand)]
pub enum BackendsCmd {
    /// Create or update one endpoint per model from a file of backends (JSON or YAML):
    /// modelgate backends import backends.yaml [--dry-run]
    Import {
        /// The file: a list of backends, or an object with a `backends` list.
        file: String,
        /// Print the plan (create / update / unchanged per endpoint) and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// One backend of the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backend {
    /// Unique id; becomes the served-entity name.
    pub backend_id: String,
    /// `azure-openai`, `ai-foundry` or `external`.
    pub backend_type: String,
    /// Base URL of the backend.
    pub endpoint: String,
    /// `managedIdentity`, `apiKey` or `token`.
    pub auth_scheme: String,
    /// Models it serves: names, or `{name, deployment?, task?}`.
    pub supported_models: Vec<ModelRef>,
    /// Failover tier; lower is tried first.
    #[serde(default)]
    pub priority: Option<u32>,
    /// Share within the tier.
    #[serde(default)]
    pub weight: Option<u32>,
    /// `apiKey`: secret reference holding the key.
    #[serde(default)]
    pub api_key: Option<String>,
    /// `external` with `apiKey`: send the key in this header instead of `Authorization: Bearer`.
    #[serde(default)]
    pub api_key_header: Option<String>,
    /// `token`: secret reference holding a bearer token.
    #[serde(default)]
    pub token: Option<String>,
    /// `managedIdentity`: Entra tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// `managedIdentity`: application (client) id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// `managedIdentity`: secret reference holding the client secret.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Azure API version.
    #[serde(default)]
    pub api_version: Option<String>,
}

/// A supported model.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ModelRef {
    /// Just the model name; the deployment has the same name.
    Name(String),
    /// A model with its deployment name or task.
    Detailed {
        /// Model name (what clients send as `model`).
        name: String,
        /// Azure deployment name, when it differs from the model name.
        #[serde(default)]
        deployment: Option<String>,
        /// `llm/v1/chat`, `llm/v1/completions`, `llm/v1/embeddings` or `llm/v1/images`.
        #[serde(default)]
        task: Option<String>,
    },
}

impl ModelRef {
    fn name(&self) -> &str {
        match self {
            ModelRef::Name(n) | ModelRef::Detailed { name: n, .. } => n,
        }
    }
}

/// The endpoint one model gets.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointPlan {
    /// Endpoint name (the model name, with characters endpoints cannot have replaced by `-`).
    pub name: String,
    /// The model name as written in the file.
    pub model: String,
    /// Its served entities, one per backend.
    pub served_entities: Vec<Value>,
}

/// Parses a backends file, JSON or YAML.
pub fn parse(text: &str, source: &str) -> Result<Vec<Backend>, String> {
    let mut v: Value = if text.trim_start().starts_with(['[', '{']) {
        serde_json::from_str(text).map_err(|e| format!("{source}: {e}"))?
    } else {
        serde_norway::from_str(text).map_err(|e| format!("{source}: {e}"))?
    };
    if let Some(list) = v.get_mut("backends") {
        v = list.take();
    }
    serde_path_to_error::deserialize(v).map_err(|e| format!("{source}: backends{}: {}", e.path(), e.inner()))
}

fn endpoint_name(model: &str) -> String {
    model.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect()
}

fn reference(b: &Backend, field: &str, value: &Option<String>) -> Result<String, String> {
    let at = format!("backend '{}': {field}", b.backend_id);
    let v = value.as_deref().ok_or_else(|| format!("{at} is required for authScheme {}", b.auth_scheme))?;
    secret_ref::parse(v)
        .map_err(|e| format!("{at}: {e}; write a secret reference such as {{{{secrets/scope/key}}}}"))?;
    Ok(v.to_string())
}

fn external_model(b: &Backend, model: &ModelRef) -> Result<Value, String> {
    let (name, deployment, task) = match model {
        ModelRef::Name(n) => (n.as_str(), n.as_str(), None),
        ModelRef::Detailed { name, deployment, task } => {
            (name.as_str(), deployment.as_deref().unwrap_or(name), task.as_deref())
        }
    };
    let task = task.unwrap_or(if name.contains("embed") { "llm/v1/embeddings" } else { "llm/v1/chat" });
    let base = b.endpoint.trim_end_matches('/');
    let config = match (b.backend_type.as_str(), b.auth_scheme.as_str()) {
        ("azure-openai" | "ai-foundry", "apiKey") => (
            "openai_config",
            json!({
            "openai_api_type": "azure", "openai_api_base": base, "openai_deployment_name": deployment,
            "openai_api_version": b.api_version.as_deref().unwrap_or(DEFAULT_AZURE_API_VERSION),
            "openai_api_key": reference(b, "apiKey", &b.api_key)?}),
        ),
        ("azure-openai" | "ai-foundry", "managedIdentity") => {
            let plain = |f: &str, v: &Option<String>| {
                v.clone().ok_or_else(|| {
                    format!("backend '{}': {f} is required for authScheme managedIdentity", b.backend_id)
                })
            };
            (
                "openai_config",
                json!({
                "openai_api_type": "azuread", "openai_api_base": base, "openai_deployment_name": deployment,
                "openai_api_version": b.api_version.as_deref().unwrap_or(DEFAULT_AZURE_API_VERSION),
                "microsoft_entra_tenant_id": plain("tenantId", &b.tenant_id)?,
                "microsoft_entra_client_id": plain("clientId", &b.client_id)?,
                "microsoft_entra_client_secret": reference(b, "clientSecret", &b.client_secret)?}),
            )
        }
        ("external", "apiKey") if b.api_key_header.is_none() => {
            ("openai_config", json!({"openai_api_base": base, "openai_api_key": reference(b, "apiKey", &b.api_key)?}))
        }
        ("external", "apiKey") => (
            "custom_provider_config",
            json!({"custom_provider_url": base,
            "api_key_auth": {"key": b.api_key_header, "value": reference(b, "apiKey", &b.api_key)?}}),
        ),
        ("external", "token") => (
            "custom_provider_config",
            json!({"custom_provider_url": base,
            "bearer_token_auth": {"token": reference(b, "token", &b.token)?}}),
        ),
        ("azure-openai" | "ai-foundry" | "external", scheme) => {
            return Err(format!(
                "backend '{}': authScheme '{scheme}' is not supported for backendType '{}'; use {}",
                b.backend_id,
                b.backend_type,
                if b.backend_type == "external" { "apiKey or token" } else { "apiKey or managedIdentity" }
            ));
        }
        (other, _) => {
            return Err(format!(
                "backend '{}': backendType '{other}' is not one of azure-openai, ai-foundry, external",
                b.backend_id
            ));
        }
    };
    let provider = if config.0 == "custom_provider_config" { "custom" } else { "openai" };
    let mut m = json!({"provider": provider, "name": name, "task": task});
    set(&mut m, config.0, config.1);
    Ok(m)
}

/// One endpoint per model, each pooling the backends that serve it (ordered by model name).
pub fn plan(backends: &[Backend]) -> Result<Vec<EndpointPlan>, String> {
    let mut seen = std::collections::HashSet::new();
    let mut by_model: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for b in backends {
        if let Some(p) = names::endpoint_name_problem(&b.backend_id) {
            return Err(format!("backendId: {p}"));
        }
        if !seen.insert(b.backend_id.clone()) {
            return Err(format!("backendId '{}' appears twice", b.backend_id));
        }
        if !(b.endpoint.starts_with("https://") || b.endpoint.starts_with("http://")) {
            return Err(format!("backend '{}': endpoint '{}' is not an http(s) URL", b.backend_id, b.endpoint));
        }
        if b.supported_models.is_empty() {
            return Err(format!("backend '{}': supportedModels is empty", b.backend_id));
        }
        for m in &b.supported_models {
            let mut entity = json!({"name": b.backend_id, "external_model": external_model(b, m)?});
            set(&mut entity, "priority", json!(b.priority.unwrap_or(1)));
            set(&mut entity, "weight", json!(b.weight.unwrap_or(1)));
            by_model.entry(m.name().to_string()).or_default().push(entity);
        }
    }
    let mut names_taken: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for (model, served_entities) in by_model {
        let name = endpoint_name(&model);
        if let Some(p) = names::endpoint_name_problem(&name) {
            return Err(format!("model '{model}': {p}"));
        }
        if let Some(other) = names_taken.insert(name.clone(), model.clone()) {
            return Err(format!("models '{other}' and '{model}' would both become endpoint '{name}'"));
        }
        out.push(EndpointPlan { name, model, served_entities });
    }
    Ok(out)
}

/// What an import does to one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Create,
    Update,
    Unchanged,
}

/// The fields an import sets, of an endpoint's served entities as the server returns them.
fn comparable(entities: &Value) -> Vec<Value> {
    let mut v: Vec<Value> = entities
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| json!({"name": at(e, "/name"), "external_model": at(e, "/external_model"), "priority": at(e, "/priority"), "weight": at(e, "/weight")}))
        .collect();
    v.sort_by_key(|e| at(e, "/name").to_string());
    v
}

async fn action(client: &Client, p: &EndpointPlan) -> Result<Action, CliError> {
    match client.json(Method::GET, &format!("{SE}/{}", p.name), None).await {
        Ok(e) => {
            let current = e.get("pending_config").filter(|c| !c.is_null()).unwrap_or(at(&e, "/config"));
            let same = comparable(at(current, "/served_entities")) == comparable(&json!(p.served_entities));
            Ok(if same { Action::Unchanged } else { Action::Update })
        }
        Err(CliError::Api { code, .. }) if code == "RESOURCE_DOES_NOT_EXIST" => Ok(Action::Create),
        Err(e) => Err(e),
    }
}

/// Runs `modelgate backends ...`.
pub async fn run(client: &Client, cmd: BackendsCmd, output: Output) -> Result<(), CliError> {
    let BackendsCmd::Import { file, dry_run } = cmd;
    let text = std::fs::read_to_string(&file).map_err(|e| CliError::Usage(format!("{file}: {e}")))?;
    let plans = parse(&text, &file).and_then(|b| plan(&b)).map_err(CliError::Usage)?;
    let mut rows = Vec::new();
    let mut failed = 0;
    for p in &plans {
        let act = action(client, p).await?;
        let backends: Vec<String> = p
            .served_entities
            .iter()
            .map(|e| format!("{} (priority {}, weight {})", s(at(e, "/name")), at(e, "/priority"), at(e, "/weight")))
            .collect();
        let mut outcome = match (act, dry_run) {
            (Action::Create, true) => "would create",
            (Action::Update, true) => "would update",
            (Action::Create, false) => "created",
            (Action::Update, false) => "updated",
            (Action::Unchanged, _) => "unchanged",
        }
        .to_string();
        if !dry_run {
            let config = json!({"served_entities": p.served_entities});
            let result = match act {
                Action::Create => client.json(Method::POST, SE, Some(&json!({"name": p.name, "config": config}))).await,
                Action::Update => client.json(Method::PUT, &format!("{SE}/{}/config", p.name), Some(&config)).await,
                Action::Unchanged => Ok(Value::Null),
            };
            if let Err(e) = result {
                failed += 1;
                outcome = format!("failed: {e}");
            }
        }
        rows.push((p, outcome, backends));
    }
    if output != Output::Text {
        let v: Vec<Value> = rows
            .iter()
            .map(|(p, outcome, _)| json!({"endpoint": p.name, "model": p.model, "action": outcome, "served_entities": p.served_entities}))
            .collect();
        print_json(&json!({"endpoints": v, "dry_run": dry_run}));
    } else {
        let table = rows
            .iter()
            .map(|(p, outcome, backends)| vec![p.name.clone(), p.model.clone(), outcome.clone(), backends.join("\n")]);
        crate::commands::print_table(&["Endpoint", "Model", "Action", "Backends"], table.collect());
    }
    if failed > 0 {
        return Err(CliError::Usage(format!("{failed} of {} endpoints could not be imported", plans.len())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
backends:
  - backendId: sweden
    backendType: azure-openai
    endpoint: https://se.openai.azure.com/
    authScheme: apiKey
    apiKey: "{{secrets/azure/se}}"
    supportedModels: [gpt-4o, {name: gpt-4.1-mini, deployment: mini-prod}]
    priority: 1
    weight: 3
  - backendId: france
    backendType: ai-foundry
    endpoint: https://fr.openai.azure.com
    authScheme: managedIdentity
    tenantId: t-1
    clientId: c-1
    clientSecret: "{{secrets/azure/sp}}"
    supportedModels: [gpt-4o]
  - backendId: vllm
    backendType: external
    endpoint: http://vllm.internal:8000/v1
    authScheme: token
    token: "{{secrets/vllm/token}}"
    supportedModels: [text-embedding-3-small]
"#;

    #[test]
    fn one_endpoint_per_model_pooling_its_backends() {
        let plans = plan(&parse(FILE, "f").unwrap()).unwrap();
        let names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["gpt-4-1-mini", "gpt-4o", "text-embedding-3-small"]);
        let gpt4o = &plans[1];
        assert_eq!(gpt4o.served_entities.len(), 2);
        let se = &gpt4o.served_entities[0];
        assert_eq!(se["priority"], 1);
        assert_eq!(se["weight"], 3);
        assert_eq!(se["external_model"]["openai_config"]["openai_api_type"], "azure");
        assert_eq!(se["external_model"]["openai_config"]["openai_api_base"], "https://se.openai.azure.com");
        let fr = &gpt4o.served_entities[1]["external_model"]["openai_config"];
        assert_eq!(fr["openai_api_type"], "azuread");
        assert_eq!(fr["microsoft_entra_client_secret"], "{{secrets/azure/sp}}");
        assert_eq!(
            plans[0].served_entities[0]["external_model"]["openai_config"]["openai_deployment_name"],
            "mini-prod"
        );
        let emb = &plans[2].served_entities[0]["external_model"];
        assert_eq!(emb["task"], "llm/v1/embeddings");
        assert_eq!(emb["provider"], "custom");
        assert_eq!(emb["custom_provider_config"]["bearer_token_auth"]["token"], "{{secrets/vllm/token}}");
    }

    #[test]
    fn bad_files_name_the_problem() {
        let bad = |text: &str| plan(&parse(text, "f").unwrap()).unwrap_err();
        let base = |extra: &str| {
            format!(
                r#"[{{"backendId": "a", "backendType": "azure-openai", "endpoint": "https://x", "supportedModels": ["m"], {extra}}}]"#
            )
        };
        assert!(bad(&base(r#""authScheme": "apiKey""#)).contains("apiKey is required"));
        assert!(bad(&base(r#""authScheme": "apiKey", "apiKey": "sk-plain""#)).contains("secret reference"));
        assert!(bad(&base(r#""authScheme": "token", "token": "{{secrets/a/b}}""#)).contains("not supported"));
        assert!(
            bad(&base(r#""authScheme": "managedIdentity", "clientSecret": "{{secrets/a/b}}""#)).contains("tenantId")
        );
        let twice = r#"[{"backendId": "a", "backendType": "external", "endpoint": "https://x", "authScheme": "token", "token": "{{secrets/a/b}}", "supportedModels": ["m"]},
                        {"backendId": "a", "backendType": "external", "endpoint": "https://y", "authScheme": "token", "token": "{{secrets/a/b}}", "supportedModels": ["m"]}]"#;
        assert!(bad(twice).contains("appears twice"));
        assert!(parse(r#"[{"backendId": "a", "typo": 1}]"#, "f").is_err(), "unknown fields are refused");
    }
}
