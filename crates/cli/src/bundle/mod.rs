//! `modelgate bundle validate | plan | deploy | destroy | summary`: serving endpoints as code.
//!
//! A bundle is a directory in git in one of two layouts: `configs/<target>/*.json|yaml`, each
//! file the body of a create-endpoint call, or a Databricks Asset Bundle (`databricks.yml`, see
//! [`dab`]). Either may give an endpoint `permissions` (`[{level, user_name | group_name |
//! service_principal_name}]`). The endpoints a bundle deploys carry the tag
//! `modelgate-bundle = <bundle>:<target>`: plan, deploy, `--prune` and destroy only ever touch
//! those, and an endpoint of that name created elsewhere is an error, not a takeover. The tag
//! `modelgate-bundle-version` records the config version the bundle last deployed, so a config
//! changed on the server since then shows as drift.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use modelgate_core::jsondiff::diff;
use modelgate_core::validate;
use modelgate_wire::CreateServingEndpoint;
use reqwest::Method;
use serde_json::{Value, json};

mod dab;

use crate::client::Client;
use crate::commands::{SE, as_config_input, at, print_json, print_table, s, wait_not_updating};
use crate::{CliError, Output};

/// Tag naming the bundle and target that own an endpoint.
pub const OWNER_TAG: &str = "modelgate-bundle";
/// Tag holding the config version the bundle last deployed.
pub const VERSION_TAG: &str = "modelgate-bundle-version";

/// Where the bundle is and which target.
#[derive(Args, Clone)]
pub struct Target {
    /// The target (environment): `configs/<target>/`, or a target of databricks.yml (default:
    /// `dev`, or the databricks.yml target marked `default: true`).
    #[arg(short = 't', long)]
    target: Option<String>,
    /// The bundle's directory.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// The bundle's name (default: `bundle.name` of databricks.yml, else the directory's name);
    /// it marks the endpoints the bundle owns.
    #[arg(long)]
    name: Option<String>,
    /// A variable of databricks.yml, over the target's value: --var model=gpt-4o (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
}

/// `modelgate bundle ...`
#[derive(Subcommand)]
pub enum BundleCmd {
    /// Check every file offline (and against the server when one is reachable); one line per
    /// problem, `FILE:FIELD: message`, exit 1 if any: modelgate bundle validate -t dev
    Validate(Target),
    /// What deploy would do, per endpoint: create, update (with a field-level diff), delete
    /// (--prune), unchanged; drift since the last deploy. Exit 0: nothing to do, 2: changes, 1: errors.
    Plan {
        #[command(flatten)]
        target: Target,
        /// Also delete endpoints this bundle deployed that are no longer in it.
        #[arg(long)]
        prune: bool,
    },
    /// Apply the plan: create and update (waiting for each to be READY), then deletes with
    /// --prune; stops at the first failed deployment with its build log.
    Deploy {
        #[command(flatten)]
        target: Target,
        /// Also delete endpoints this bundle deployed that are no longer in it.
        #[arg(long)]
        prune: bool,
        /// Do not ask before deleting.
        #[arg(long)]
        auto_approve: bool,
    },
    /// Delete every endpoint this bundle deployed to the target.
    Destroy {
        #[command(flatten)]
        target: Target,
        /// Do not ask.
        #[arg(long)]
        auto_approve: bool,
    },
    /// The bundle's endpoints on the server, with state and URL.
    Summary(Target),
}

/// One endpoint as a file describes it.
struct Desired {
    file: String,
    /// Where the endpoint sits in its file (`resources.model_serving_endpoints.chat` in a
    /// databricks.yml), prefixed to the fields problems name.
    prefix: String,
    name: String,
    /// The create body, without `permissions`.
    body: Value,
    permissions: Option<Vec<Value>>,
}

/// A bundle read for one target.
struct Bundle {
    /// Marks the endpoints it owns: `<bundle>:<target>`.
    owner: String,
    /// Where its endpoints are defined, for messages.
    source: String,
    /// The target's `workspace.host` (databricks.yml).
    host: Option<String>,
    desired: Vec<Desired>,
    /// `workspace-policy.json|yaml` at the bundle's root: the workspace policy it deploys.
    policy: Option<(String, Value)>,
}

/// A problem found in a file.
struct Problem {
    file: String,
    field: String,
    message: String,
}

impl Target {
    fn dir_name(&self) -> String {
        std::fs::canonicalize(&self.dir)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "bundle".into())
    }
}

/// Reads a JSON or YAML file into a value.
fn read_file(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
    if yaml {
        serde_norway::from_str(&text).map_err(|e| e.to_string())
    } else {
        serde_json::from_str(&text).map_err(|e| format!("line {}, column {}: {e}", e.line(), e.column()))
    }
}

/// The bundle for the target in either layout, and the problems of reading it.
fn load(t: &Target) -> Result<(Bundle, Vec<Problem>), CliError> {
    let (mut bundle, mut problems) = load_endpoints(t)?;
    for file in ["workspace-policy.json", "workspace-policy.yaml", "workspace-policy.yml"] {
        let path = t.dir.join(file);
        if !path.exists() {
            continue;
        }
        match read_file(&path) {
            Ok(v) => {
                match serde_path_to_error::deserialize::<_, modelgate_wire::WorkspacePolicy>(&v) {
                    Ok(p) => {
                        if let Err((field, message)) = modelgate_core::standards::validate(&p) {
                            problems.push(Problem { file: file.into(), field, message });
                        }
                    }
                    Err(e) => problems.push(Problem {
                        file: file.into(),
                        field: e.path().to_string(),
                        message: e.into_inner().to_string(),
                    }),
                }
                bundle.policy = Some((file.to_string(), v));
            }
            Err(e) => problems.push(Problem { file: file.into(), field: String::new(), message: e }),
        }
    }
    Ok((bundle, problems))
}

/// The bundle's endpoints for the target, in either layout.
fn load_endpoints(t: &Target) -> Result<(Bundle, Vec<Problem>), CliError> {
    if t.dir.join("databricks.yml").exists() {
        let mut overrides = Vec::new();
        for v in &t.vars {
            let (k, val) = v.split_once('=').ok_or_else(|| CliError::Usage(format!("--var {v}: give NAME=VALUE")))?;
            overrides.push((k.trim().to_string(), val.to_string()));
        }
        let (mut loaded, problems) = dab::load(&t.dir, t.target.as_deref(), &overrides).map_err(CliError::Usage)?;
        for d in &mut loaded.desired {
            d.body = expand_template(std::mem::take(&mut d.body));
        }
        let name = t.name.clone().or(loaded.name).unwrap_or_else(|| t.dir_name());
        let bundle = Bundle {
            policy: None,
            owner: format!("{name}:{}", loaded.target),
            source: t.dir.join("databricks.yml").display().to_string(),
            host: loaded.host,
            desired: loaded.desired,
        };
        return Ok((bundle, problems));
    }
    let target = t.target.clone().unwrap_or_else(|| "dev".into());
    let dir = t.dir.join("configs").join(&target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| {
            CliError::Usage(format!(
                "{}: {e} (a bundle keeps its endpoints in configs/<target>/, or is a databricks.yml)",
                dir.display()
            ))
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut desired = Vec::new();
    let mut problems = Vec::new();
    for path in files {
        let file = path.strip_prefix(&t.dir).unwrap_or(&path).display().to_string();
        let problem = |field: &str, message: String| Problem { file: file.clone(), field: field.into(), message };
        let mut body = match read_file(&path) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                problems.push(problem("", "must be a JSON object: the body of a create-endpoint call".into()));
                continue;
            }
            Err(e) => {
                problems.push(problem("", e));
                continue;
            }
        };
        let permissions = body.as_object_mut().and_then(|o| o.remove("permissions"));
        let permissions = match permissions {
            None => None,
            Some(Value::Array(p)) => Some(p),
            Some(_) => {
                problems.push(problem(
                    "permissions",
                    "must be a list of {level, user_name | group_name | service_principal_name}".into(),
                ));
                None
            }
        };
        let name = s(at(&body, "/name"));
        let body = expand_template(body);
        desired.push(Desired { file, prefix: String::new(), name, body, permissions });
    }
    let name = t.name.clone().unwrap_or_else(|| t.dir_name());
    let bundle = Bundle {
        owner: format!("{name}:{target}"),
        source: dir.display().to_string(),
        host: None,
        desired,
        policy: None,
    };
    Ok((bundle, problems))
}

/// A desired endpoint's body on top of its template (as the server would apply it), so plans
/// compare what the server will hold; an unknown template is left for validate to name.
fn expand_template(body: Value) -> Value {
    let Some(name) = body.get("template").and_then(Value::as_str) else { return body };
    let Some(t) = modelgate_core::templates::find(name) else { return body };
    let mut out = modelgate_core::templates::apply(t, &body);
    if let Some(o) = out.as_object_mut() {
        o.remove("template");
    }
    out
}

/// The offline checks of one file: the same rules the server applies.
fn check(d: &Desired) -> Vec<Problem> {
    let field = |path: &str| match (d.prefix.is_empty(), path.is_empty() || path == ".") {
        (true, true) => String::new(),
        (true, false) => path.to_string(),
        (false, true) => d.prefix.clone(),
        (false, false) => format!("{}.{path}", d.prefix),
    };
    let mut out = Vec::new();
    let mut problem = |e: validate::ValidationError| {
        out.push(Problem { file: d.file.clone(), field: field(&e.path), message: e.message.clone() })
    };
    let req: CreateServingEndpoint = match serde_path_to_error::deserialize(&d.body) {
        Ok(r) => r,
        Err(e) => {
            let path = e.path().to_string();
            return vec![Problem { file: d.file.clone(), field: field(&path), message: e.into_inner().to_string() }];
        }
    };
    if let Err(e) = validate::endpoint_name(&req.name, "name") {
        problem(e);
    }
    match req.config {
        None => problem(validate::ValidationError { path: "config".into(), message: "is required".into() }),
        Some(c) => {
            if let Err(e) = validate::normalize_config(c, "config") {
                problem(e);
            }
        }
    }
    if let Some(g) = &req.ai_gateway
        && let Err(e) = validate::ai_gateway(g, "ai_gateway")
    {
        problem(e);
    }
    if let Some(t) = &req.tags
        && let Err(e) = validate::tags(t, "tags")
    {
        problem(e);
    }
    if let Some(r) = &req.rate_limits
        && let Err(e) = validate::legacy_rate_limits(r, "rate_limits")
    {
        problem(e);
    }
    // The server's minimum notice may be longer than the default; it says so when deployed.
    if let Some(dep) = &req.deprecation
        && let Err(e) = validate::deprecation(dep, &req.name, 30, "deprecation")
    {
        problem(e);
    }
    for (i, p) in d.permissions.iter().flatten().enumerate() {
        let who = ["user_name", "group_name", "service_principal_name"].iter().filter(|k| p.get(**k).is_some()).count();
        let level = p.get("level").and_then(Value::as_str);
        if who != 1 {
            problem(validate::ValidationError {
                path: format!("permissions[{i}]"),
                message: "give exactly one of user_name, group_name, service_principal_name".into(),
            });
        }
        if !matches!(level, Some("CAN_VIEW" | "CAN_QUERY" | "CAN_MANAGE")) {
            problem(validate::ValidationError {
                path: format!("permissions[{i}].level"),
                message: "must be CAN_VIEW, CAN_QUERY or CAN_MANAGE".into(),
            });
        }
    }
    out
}

fn all_problems(desired: &[Desired], mut problems: Vec<Problem>) -> Vec<Problem> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for d in desired {
        problems.extend(check(d));
        if let Some(first) = seen.insert(&d.name, &d.file) {
            problems.push(Problem {
                file: d.file.clone(),
                field: "name".into(),
                message: format!("'{}' is also the name in {first}", d.name),
            });
        }
    }
    problems
}

fn print_problems(problems: &[Problem], output: Output) {
    if output == Output::Json {
        let v: Vec<Value> =
            problems.iter().map(|p| json!({"file": p.file, "field": p.field, "message": p.message})).collect();
        print_json(&json!({"problems": v}));
    } else {
        for p in problems {
            if p.field.is_empty() {
                eprintln!("{}: {}", p.file, p.message);
            } else {
                eprintln!("{}:{}: {}", p.file, p.field, p.message);
            }
        }
    }
}

/// What plan found for one endpoint.
struct Step {
    name: String,
    action: &'static str,
    changes: Vec<String>,
    drift: Option<String>,
    desired: Option<Desired>,
    /// For the workspace policy's step: the policy to put.
    policy: Option<Value>,
}

/// The name of the plan step of the workspace policy.
const POLICY_STEP: &str = "workspace-policy";

/// A config as the server would store it, for comparison.
fn normalized_config(config: &Value) -> Value {
    let parsed: Result<modelgate_wire::EndpointCoreConfigInput, _> = serde_json::from_value(config.clone());
    match parsed.ok().and_then(|c| validate::normalize_config(c, "").ok()) {
        Some(n) => serde_json::to_value(n.config).unwrap_or(Value::Null),
        None => config.clone(),
    }
}

/// Tags as a sorted map, without the bundle's own.
fn tag_map(tags: &Value) -> Value {
    let map: BTreeMap<String, Value> = tags
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| (s(at(t, "/key")), at(t, "/value").clone()))
        .filter(|(k, _)| k != OWNER_TAG && k != VERSION_TAG)
        .collect();
    serde_json::to_value(map).unwrap_or(Value::Null)
}

fn tag_value(endpoint: &Value, key: &str) -> Option<String> {
    at(endpoint, "/tags").as_array()?.iter().find(|t| at(t, "/key") == key).map(|t| s(at(t, "/value")))
}

/// Direct grants as `{principal: level}`, from the Permissions API answer.
fn grants_of(acl: &Value) -> Value {
    let mut map = BTreeMap::new();
    for e in at(acl, "/access_control_list").as_array().into_iter().flatten() {
        let who = ["user_name", "group_name", "service_principal_name"]
            .iter()
            .find_map(|k| e.get(*k).and_then(Value::as_str));
        let direct = at(e, "/all_permissions").as_array().into_iter().flatten().find(|p| at(p, "/inherited") != true);
        if let (Some(who), Some(p)) = (who, direct) {
            map.insert(who.to_string(), at(p, "/permission_level").clone());
        }
    }
    serde_json::to_value(map).unwrap_or(Value::Null)
}

fn desired_grants(perms: &[Value]) -> Value {
    let mut map = BTreeMap::new();
    for p in perms {
        if let Some(who) =
            ["user_name", "group_name", "service_principal_name"].iter().find_map(|k| p.get(*k).and_then(Value::as_str))
        {
            map.insert(who.to_string(), at(p, "/level").clone());
        }
    }
    serde_json::to_value(map).unwrap_or(Value::Null)
}

/// Compares the bundle with the server.
async fn plan(client: &Client, bundle: Bundle, prune: bool) -> Result<Vec<Step>, CliError> {
    let owner = bundle.owner.clone();
    let desired = bundle.desired;
    let mut steps = Vec::new();
    if let Some((_, want)) = &bundle.policy {
        let current = client.json(Method::GET, "/api/2.0/workspace-policy", None).await?;
        let mut changes = Vec::new();
        diff("", &current, want, &mut changes);
        let action = if changes.is_empty() { "unchanged" } else { "update" };
        steps.push(Step {
            name: POLICY_STEP.into(),
            action,
            changes,
            drift: None,
            desired: None,
            policy: Some(want.clone()),
        });
    }
    let mut wanted = std::collections::BTreeSet::new();
    for d in desired {
        wanted.insert(d.name.clone());
        let current = match client.json(Method::GET, &format!("{SE}/{}", d.name), None).await {
            Ok(v) => v,
            Err(CliError::Api { code, .. }) if code == "RESOURCE_DOES_NOT_EXIST" => {
                steps.push(Step {
                    name: d.name.clone(),
                    action: "create",
                    changes: Vec::new(),
                    drift: None,
                    desired: Some(d),
                    policy: None,
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        if tag_value(&current, OWNER_TAG).as_deref() != Some(owner.as_str()) {
            return Err(CliError::Usage(format!(
                "{}: endpoint '{}' exists and is not managed by this bundle ({owner}); delete or rename it, or tag it \
                 {OWNER_TAG}={owner} to adopt it",
                d.file, d.name
            )));
        }
        let mut changes = Vec::new();
        let server_config = as_config_input(current.get("config").cloned().unwrap_or(Value::Null));
        let want_config = d.body.get("config").cloned().unwrap_or(Value::Null);
        diff("config", &normalized_config(&server_config), &normalized_config(&want_config), &mut changes);
        diff("tags", &tag_map(at(&current, "/tags")), &tag_map(at(&d.body, "/tags")), &mut changes);
        diff("ai_gateway", at(&current, "/ai_gateway"), at(&d.body, "/ai_gateway"), &mut changes);
        diff("deprecation", at(&current, "/deprecation"), at(&d.body, "/deprecation"), &mut changes);
        if let Some(perms) = &d.permissions {
            let id = s(at(&current, "/id"));
            let acl = client.json(Method::GET, &format!("/api/2.0/permissions/serving-endpoints/{id}"), None).await?;
            diff("permissions", &grants_of(&acl), &desired_grants(perms), &mut changes);
        }
        let deployed = tag_value(&current, VERSION_TAG);
        let version = at(&current, "/config/config_version").as_i64().map(|v| v.to_string());
        let drift = match (deployed, version) {
            (Some(d), Some(v)) if d != v => {
                Some(format!("config changed on the server since the last deploy (version {v}, deployed {d})"))
            }
            _ => None,
        };
        let action = if changes.is_empty() { "unchanged" } else { "update" };
        steps.push(Step { name: d.name.clone(), action, changes, drift, desired: Some(d), policy: None });
    }
    if prune {
        for name in owned(client, &owner).await? {
            if !wanted.contains(&name) {
                steps.push(Step {
                    name,
                    action: "delete",
                    changes: Vec::new(),
                    drift: None,
                    desired: None,
                    policy: None,
                });
            }
        }
    }
    Ok(steps)
}

/// Names of the endpoints `owner` deployed.
async fn owned(client: &Client, owner: &str) -> Result<Vec<String>, CliError> {
    let list = client.json(Method::GET, SE, None).await?;
    Ok(at(&list, "/endpoints")
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| tag_value(e, OWNER_TAG).as_deref() == Some(owner))
        .map(|e| s(at(e, "/name")))
        .collect())
}

fn print_plan(steps: &[Step], output: Output) {
    if output == Output::Json {
        let v: Vec<Value> = steps
            .iter()
            .map(|st| json!({"name": st.name, "action": st.action, "changes": st.changes, "drift": st.drift}))
            .collect();
        print_json(&Value::Array(v));
        return;
    }
    for st in steps {
        out!("{} {}", st.action, st.name);
        for c in &st.changes {
            out!("    {c}");
        }
        if let Some(d) = &st.drift {
            out!("    drift: {d}");
        }
    }
    let count = |a: &str| steps.iter().filter(|st| st.action == a).count();
    out!(
        "Plan: {} to create, {} to update, {} to delete, {} unchanged.",
        count("create"),
        count("update"),
        count("delete"),
        count("unchanged")
    );
}

/// The create body of a desired endpoint, with the bundle's tag.
fn with_owner(body: &Value, owner: &str) -> Value {
    let mut body = body.clone();
    let mut tags: Vec<Value> = at(&body, "/tags").as_array().cloned().unwrap_or_default();
    tags.retain(|t| at(t, "/key") != OWNER_TAG && at(t, "/key") != VERSION_TAG);
    tags.push(json!({"key": OWNER_TAG, "value": owner}));
    if let Some(o) = body.as_object_mut() {
        o.insert("tags".into(), Value::Array(tags));
    }
    body
}

fn confirm(question: &str) -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}

/// Creates or updates one endpoint and waits for it; records the deployed version.
async fn apply(client: &Client, owner: &str, st: &Step) -> Result<(), CliError> {
    let Some(d) = &st.desired else { return Ok(()) };
    let name = &d.name;
    let body = with_owner(&d.body, owner);
    if st.action == "create" {
        client.json(Method::POST, SE, Some(&body)).await?;
    } else {
        if let Some(config) = body.get("config") {
            client.json(Method::PUT, &format!("{SE}/{name}/config"), Some(config)).await?;
        }
        let gateway = body.get("ai_gateway").cloned().unwrap_or_else(|| json!({}));
        if st.changes.iter().any(|c| c.starts_with("ai_gateway")) {
            client.json(Method::PUT, &format!("{SE}/{name}/ai-gateway"), Some(&gateway)).await?;
        }
        if st.changes.iter().any(|c| c.starts_with("deprecation")) {
            let path = format!("{SE}/{name}/deprecation");
            match body.get("deprecation") {
                Some(dep) => client.json(Method::PUT, &path, Some(dep)).await?,
                None => client.json(Method::DELETE, &path, None).await?,
            };
        }
        if st.changes.iter().any(|c| c.starts_with("tags")) {
            let current = client.json(Method::GET, &format!("{SE}/{name}"), None).await?;
            let delete: Vec<String> = at(&current, "/tags")
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| s(at(t, "/key")))
                .filter(|k| k != OWNER_TAG && k != VERSION_TAG)
                .collect();
            let add: Vec<Value> = at(&body, "/tags").as_array().cloned().unwrap_or_default();
            let patch = json!({"delete_tags": delete, "add_tags": add});
            client.json(Method::PATCH, &format!("{SE}/{name}/tags"), Some(&patch)).await?;
        }
    }
    let e = wait_not_updating(client, name, Duration::from_secs(20 * 60)).await?;
    if let Some(perms) = &d.permissions {
        let acl: Vec<Value> = perms
            .iter()
            .map(|p| {
                let mut e = p.clone();
                if let Some(o) = e.as_object_mut() {
                    let level = o.remove("level").unwrap_or(Value::Null);
                    o.insert("permission_level".into(), level);
                }
                e
            })
            .collect();
        let id = s(at(&e, "/id"));
        client
            .json(
                Method::PUT,
                &format!("/api/2.0/permissions/serving-endpoints/{id}"),
                Some(&json!({"access_control_list": acl})),
            )
            .await?;
    }
    let version = s(at(&e, "/config/config_version"));
    let tag = json!({"add_tags": [{"key": VERSION_TAG, "value": version}]});
    client.json(Method::PATCH, &format!("{SE}/{name}/tags"), Some(&tag)).await?;
    Ok(())
}

/// Every string of `v` that is a secret reference, with its JSON path under `path`.
fn secret_refs(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) if s.starts_with("{{secrets/") => out.push((path.to_string(), s.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                secret_refs(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(o) => {
            for (k, item) in o {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                secret_refs(item, &p, out);
            }
        }
        _ => {}
    }
}

/// The checks that need the server: referenced secrets exist and this caller may read them
/// (as the deployment will), named users, groups and service principals exist, budget policies
/// exist.
async fn online_problems(client: &Client, desired: &[Desired]) -> Result<Vec<Problem>, CliError> {
    let mut problems = Vec::new();
    let mut scopes: BTreeMap<String, Result<Vec<String>, String>> = BTreeMap::new();
    let names = |v: &Value, field: &str| -> Vec<String> {
        at(v, "/Resources").as_array().into_iter().flatten().map(|r| s(at(r, &format!("/{field}")))).collect()
    };
    let scim = "/api/2.0/preview/scim/v2";
    let users = names(&client.json(Method::GET, &format!("{scim}/Users"), None).await?, "userName");
    let groups = names(&client.json(Method::GET, &format!("{scim}/Groups"), None).await?, "displayName");
    let apps = names(&client.json(Method::GET, &format!("{scim}/ServicePrincipals"), None).await?, "applicationId");
    let policies: Vec<String> = at(&client.json(Method::GET, "/api/2.0/budget-policies", None).await?, "/policies")
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| s(at(p, "/policy_id")))
        .collect();
    let policy: Option<modelgate_wire::WorkspacePolicy> =
        serde_json::from_value(client.json(Method::GET, "/api/2.0/workspace-policy", None).await?).ok();
    for d in desired {
        let field = |p: &str| if d.prefix.is_empty() { p.to_string() } else { format!("{}.{p}", d.prefix) };
        // The workspace policy, as the server will apply it on deploy.
        if let Some(policy) = &policy {
            let tags: BTreeMap<String, String> = at(&d.body, "/tags")
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| (s(at(t, "/key")), s(at(t, "/value"))))
                .collect();
            let entities: Vec<(String, String)> = at(&d.body, "/config/served_entities")
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    Some((
                        e.pointer("/external_model/provider")?.as_str()?.to_string(),
                        e.pointer("/external_model/name")?.as_str()?.to_string(),
                    ))
                })
                .collect();
            let facts = modelgate_core::standards::Facts { name: &d.name, tags: &tags, entities: &entities };
            for (rule, message) in modelgate_core::standards::violations(policy, &facts) {
                let at_field = match rule.as_str() {
                    "naming" => "name",
                    "required_tags" => "tags",
                    _ => "config.served_entities",
                };
                problems.push(Problem {
                    file: d.file.clone(),
                    field: field(at_field),
                    message: format!("workspace policy {rule}: {message}"),
                });
            }
        }
        let mut problem =
            |path: &str, message: String| problems.push(Problem { file: d.file.clone(), field: field(path), message });
        let mut refs = Vec::new();
        secret_refs(&d.body, "", &mut refs);
        for (path, reference) in refs {
            let Ok(r) = modelgate_core::secret_ref::parse(&reference) else { continue };
            if !scopes.contains_key(&r.scope) {
                let listed =
                    client.json_query(Method::GET, "/api/2.0/secrets/list", &[("scope", &r.scope)], None).await;
                let keys = match listed {
                    Ok(v) => {
                        Ok(at(&v, "/secrets").as_array().into_iter().flatten().map(|k| s(at(k, "/key"))).collect())
                    }
                    Err(CliError::Api { code, message }) => Err(format!("{code}: {message}")),
                    Err(e) => return Err(e),
                };
                scopes.insert(r.scope.clone(), keys);
            }
            match scopes.get(&r.scope) {
                Some(Err(why)) => problem(&path, format!("{reference}: the scope cannot be read ({why})")),
                Some(Ok(keys)) if !keys.contains(&r.key) => {
                    problem(&path, format!("{reference}: no secret '{}' in scope '{}'", r.key, r.scope))
                }
                _ => {}
            }
        }
        for (i, l) in at(&d.body, "/ai_gateway/rate_limits").as_array().into_iter().flatten().enumerate() {
            let Some(who) = l.get("principal").and_then(Value::as_str) else { continue };
            let known = match l.get("key").and_then(Value::as_str) {
                Some("user_group") => groups.iter().any(|g| g == who),
                Some("service_principal") => apps.iter().any(|a| a == who),
                _ => users.iter().chain(&apps).any(|u| u == who),
            };
            if !known {
                problem(
                    &format!("ai_gateway.rate_limits[{i}].principal"),
                    format!("no principal named '{who}' exists"),
                );
            }
        }
        for (i, p) in d.permissions.iter().flatten().enumerate() {
            let missing = [("user_name", &users), ("group_name", &groups), ("service_principal_name", &apps)]
                .into_iter()
                .find_map(|(k, known)| {
                    p.get(k).and_then(Value::as_str).filter(|who| !known.iter().any(|n| n == who)).map(|w| (k, w))
                });
            if let Some((k, who)) = missing {
                problem(&format!("permissions[{i}].{k}"), format!("'{who}' does not exist"));
            }
        }
        if let Some(id) = d.body.get("budget_policy_id").and_then(Value::as_str)
            && !policies.iter().any(|p| p == id)
        {
            problem("budget_policy_id", format!("no budget policy '{id}' exists"));
        }
    }
    Ok(problems)
}

/// How to reach the server, as given on the command line; the target's `workspace.host` of a
/// databricks.yml is used when neither `--host` nor `MODELGATE_HOST` names one.
pub struct Connection {
    /// `--host` / `MODELGATE_HOST`.
    pub host: Option<String>,
    /// `--token` / `MODELGATE_TOKEN`.
    pub token: Option<String>,
    /// `--profile`.
    pub profile: Option<String>,
}

impl Connection {
    fn client(&self, bundle: &Bundle) -> Result<Client, CliError> {
        let host = self.host.clone().or_else(|| bundle.host.clone());
        let (host, token) = crate::profile::resolve(host, self.token.clone(), self.profile.as_deref())?;
        Client::new(host, token)
    }
}

/// The bundle read for its target, with its problems checked; `Err(1)` after printing them.
fn checked(t: &Target, output: Output) -> Result<Result<Bundle, u8>, CliError> {
    let (bundle, problems) = load(t)?;
    let problems = all_problems(&bundle.desired, problems);
    if problems.is_empty() {
        Ok(Ok(bundle))
    } else {
        print_problems(&problems, output);
        Ok(Err(1))
    }
}

/// Runs `modelgate bundle ...`; returns the exit code (plan: 0 nothing to do, 2 changes, 1
/// problems).
pub async fn run(conn: Connection, cmd: BundleCmd, output: Output) -> Result<u8, CliError> {
    match cmd {
        BundleCmd::Validate(t) => {
            let bundle = match checked(&t, output)? {
                Ok(b) => b,
                Err(code) => return Ok(code),
            };
            // Online checks when a server can be reached; offline validation stands alone.
            let online = match conn.client(&bundle) {
                Ok(client) => match online_problems(&client, &bundle.desired).await {
                    Ok(problems) => Some(problems),
                    Err(CliError::Connect(_)) => None,
                    Err(e) => return Err(e),
                },
                Err(_) => None,
            };
            if let Some(problems) = &online
                && !problems.is_empty()
            {
                print_problems(problems, output);
                return Ok(1);
            }
            if online.is_none() && output != Output::Json {
                eprintln!(
                    "(no server reachable: the online checks of secrets, principals and budget policies were skipped)"
                );
            }
            if output != Output::Json {
                out!("{} endpoint(s) in {}: valid.", bundle.desired.len(), bundle.source);
            } else {
                print_json(&json!({"problems": []}));
            }
            Ok(0)
        }
        BundleCmd::Plan { target, prune } => {
            let bundle = match checked(&target, output)? {
                Ok(b) => b,
                Err(code) => return Ok(code),
            };
            let client = conn.client(&bundle)?;
            let steps = plan(&client, bundle, prune).await?;
            print_plan(&steps, output);
            Ok(if steps.iter().all(|st| st.action == "unchanged") { 0 } else { 2 })
        }
        BundleCmd::Deploy { target, prune, auto_approve } => {
            let bundle = match checked(&target, output)? {
                Ok(b) => b,
                Err(code) => return Ok(code),
            };
            let client = conn.client(&bundle)?;
            let owner = bundle.owner.clone();
            let steps = plan(&client, bundle, prune).await?;
            print_plan(&steps, output);
            // The policy first: the endpoints that follow are checked against it.
            if let Some(policy) = steps
                .iter()
                .find(|st| st.name == POLICY_STEP && st.action == "update")
                .and_then(|st| st.policy.as_ref())
            {
                eprintln!("updating the workspace policy ...");
                client.json(Method::PUT, "/api/2.0/workspace-policy", Some(policy)).await?;
            }
            for st in
                steps.iter().filter(|st| st.name != POLICY_STEP && (st.action == "create" || st.action == "update"))
            {
                eprintln!("{} {} ...", if st.action == "create" { "creating" } else { "updating" }, st.name);
                apply(&client, &owner, st).await.map_err(|e| match e {
                    CliError::Api { code, message } => {
                        CliError::Api { code, message: format!("{}: {message}", st.name) }
                    }
                    other => other,
                })?;
            }
            let deletes: Vec<&Step> = steps.iter().filter(|st| st.action == "delete").collect();
            if !deletes.is_empty() && !auto_approve && !confirm(&format!("Delete {} endpoint(s)?", deletes.len())) {
                return Err(CliError::Usage("deletes not approved: give --auto-approve (nothing was deleted)".into()));
            }
            for st in deletes {
                eprintln!("deleting {} ...", st.name);
                client.json(Method::DELETE, &format!("{SE}/{}", st.name), None).await?;
            }
            Ok(0)
        }
        BundleCmd::Destroy { target, auto_approve } => {
            let (bundle, _) = load(&target)?;
            let client = conn.client(&bundle)?;
            let names = owned(&client, &bundle.owner).await?;
            if !names.is_empty()
                && !auto_approve
                && !confirm(&format!("Delete {} endpoint(s): {}?", names.len(), names.join(", ")))
            {
                return Err(CliError::Usage("not approved: give --auto-approve (nothing was deleted)".into()));
            }
            for name in &names {
                client.json(Method::DELETE, &format!("{SE}/{name}"), None).await?;
                out!("deleted {name}");
            }
            Ok(0)
        }
        BundleCmd::Summary(t) => {
            let (bundle, _) = load(&t)?;
            let client = conn.client(&bundle)?;
            let list = client.json(Method::GET, SE, None).await?;
            let owner = bundle.owner;
            let mine: Vec<Value> = at(&list, "/endpoints")
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| tag_value(e, OWNER_TAG).as_deref() == Some(owner.as_str()))
                .cloned()
                .collect();
            if output == Output::Json {
                print_json(&json!({"bundle": owner, "endpoints": mine}));
            } else {
                let rows = mine
                    .iter()
                    .map(|e| {
                        let name = s(at(e, "/name"));
                        vec![
                            name.clone(),
                            s(at(e, "/state/ready")),
                            tag_value(e, VERSION_TAG).unwrap_or_default(),
                            format!("{}/serving-endpoints/{name}/invocations", client.host()),
                        ]
                    })
                    .collect();
                print_table(&["Name", "State", "Version", "URL"], rows);
            }
            Ok(0)
        }
    }
}
