//! Client commands. Each mirrors a Databricks CLI verb and maps to one API call (plus waiting
//! for `NOT_UPDATING` where the Databricks CLI waits too).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::{Args, Subcommand};
use comfy_table::Table;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::Client;
use crate::{CliError, Output};

pub const SE: &str = "/api/2.0/serving-endpoints";

/// `--json` for commands with a request body.
#[derive(Args)]
pub struct JsonArg {
    /// Request body: inline JSON, `@path/to/file.json`, or `@-` for standard input.
    #[arg(long)]
    json: Option<String>,
}

/// Waiting behaviour of commands that start a config update.
#[derive(Args)]
pub struct WaitArgs {
    /// Return at once instead of waiting for the update to finish.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for NOT_UPDATING (e.g. 90s, 20m).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20m")]
    timeout: Duration,
}

/// `modelgate serving-endpoints ...`
#[derive(Subcommand)]
pub enum EndpointsCmd {
    /// List endpoints.
    List,
    /// Show one endpoint.
    Get {
        /// Endpoint name.
        name: String,
    },
    /// Query an endpoint, as `databricks serving-endpoints query` does; a body with
    /// `"stream": true` prints each streamed chunk as it arrives:
    /// modelgate serving-endpoints query chat --json '{"messages": [{"role": "user", "content": "hi"}]}'
    Query {
        /// Endpoint name.
        name: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Which models served when: one line per config version that served (oldest first), with
    /// its served entities, providers, models and traffic, from the config versions:
    /// modelgate serving-endpoints history chat
    History {
        /// Endpoint name.
        name: String,
    },
    /// Wait until an endpoint's config update finishes (state.config_update NOT_UPDATING), then
    /// print it; fails with the build log if the update failed:
    /// modelgate serving-endpoints wait chat --timeout 5m
    Wait {
        /// Endpoint name.
        name: String,
        /// How long to wait.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "20m")]
        timeout: Duration,
    },
    /// Changes of the settings kept outside config versions (ai_gateway, rate limits, tags,
    /// permissions, budget policy, notifications), newest first:
    /// modelgate serving-endpoints settings-history chat
    SettingsHistory {
        /// Endpoint name.
        name: String,
    },
    /// Undo one settings change (its field gets back the value before it):
    /// modelgate serving-endpoints restore-settings chat 12
    RestoreSettings {
        /// Endpoint name.
        name: String,
        /// The change, from settings-history.
        change_id: i64,
    },
    /// Send a minimal real query to every served entity and report, per entity, whether it is
    /// reachable, accepts the credentials and knows the model, and how fast it answered; exits
    /// non-zero if any entity failed: modelgate serving-endpoints test chat
    Test {
        /// Endpoint name.
        name: String,
    },
    /// Create an endpoint from a JSON body (see docs/api.md), or from a config alone (the body of
    /// update-config) with NAME; NAME overrides the body's name.
    Create {
        /// Endpoint name.
        name: Option<String>,
        #[command(flatten)]
        json: JsonArg,
        /// Description to set.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Replace the served entities and traffic config (a new config version).
    UpdateConfig {
        /// Endpoint name.
        name: String,
        #[command(flatten)]
        json: JsonArg,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Delete an endpoint and its config history.
    Delete {
        /// Endpoint name.
        name: String,
    },
    /// Request rate, error rate, p50/p95/p99 latency, tokens and cost over the last 5 minutes,
    /// hour and day.
    GetMetrics {
        /// Endpoint name.
        name: String,
    },
    /// Print the OpenAPI document of the endpoint's invocation API.
    GetOpenApi {
        /// Endpoint name.
        name: String,
    },
    /// Print the deployment log of a served entity.
    BuildLogs {
        /// Endpoint name.
        name: String,
        /// Served entity (model) name.
        served_model_name: String,
    },
    /// Print recent runtime events of a served entity.
    Logs {
        /// Endpoint name.
        name: String,
        /// Served entity (model) name.
        served_model_name: String,
    },
    /// Replace the legacy rate limits: --json '{"rate_limits": [...]}'.
    Put {
        /// Endpoint name.
        name: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Replace the AI Gateway config (usage tracking, inference table, rate limits, guardrails, fallbacks).
    PutAiGateway {
        /// Endpoint name.
        name: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Add or delete tags: --json '{"add_tags": [{"key": "team", "value": "ml"}], "delete_tags": ["old"]}'.
    Patch {
        /// Endpoint name.
        name: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Stop serving: queries are refused until `start`.
    Stop {
        /// Endpoint name.
        name: String,
    },
    /// Serve again after `stop`.
    Start {
        /// Endpoint name.
        name: String,
    },
    /// List every config version with its status and build log.
    ConfigVersions {
        /// Endpoint name.
        name: String,
    },
    /// Deploy the content of an earlier config version as a new version.
    Rollback {
        /// Endpoint name.
        name: String,
        /// The version to return to.
        config_version: i64,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

/// `modelgate secrets ...`
#[derive(Subcommand)]
pub enum SecretsCmd {
    /// Create a secret scope.
    CreateScope {
        /// Scope name.
        scope: String,
        /// Only `users` is accepted.
        #[arg(long)]
        initial_manage_principal: Option<String>,
    },
    /// List scopes.
    ListScopes,
    /// Delete a scope and its secrets.
    DeleteScope {
        /// Scope name.
        scope: String,
    },
    /// Store a secret. The value comes from --string-value, --bytes-value or standard input
    /// (one trailing newline is dropped from standard input).
    PutSecret {
        /// Scope name.
        scope: String,
        /// Key name.
        key: String,
        /// The value as text.
        #[arg(long, conflicts_with = "bytes_value")]
        string_value: Option<String>,
        /// The value as raw bytes (sent base64-encoded).
        #[arg(long)]
        bytes_value: Option<String>,
    },
    /// Print a secret's value (admins only).
    GetSecret {
        /// Scope name.
        scope: String,
        /// Key name.
        key: String,
    },
    /// List the keys of a scope (never values).
    ListSecrets {
        /// Scope name.
        scope: String,
    },
    /// Delete a secret.
    DeleteSecret {
        /// Scope name.
        scope: String,
        /// Key name.
        key: String,
    },
    /// Grant READ, WRITE or MANAGE on a scope to a user, group or service principal (application id).
    PutAcl {
        /// Scope name.
        scope: String,
        /// User name, group name or service principal application id.
        principal: String,
        /// READ, WRITE or MANAGE.
        permission: String,
    },
    /// Show one principal's permission on a scope.
    GetAcl {
        /// Scope name.
        scope: String,
        /// User name, group name or application id.
        principal: String,
    },
    /// List who may use a scope.
    ListAcls {
        /// Scope name.
        scope: String,
    },
    /// Remove a principal's permission on a scope.
    DeleteAcl {
        /// Scope name.
        scope: String,
        /// User name, group name or application id.
        principal: String,
    },
}

/// A token's own limits, on top of its owner's permissions (docs/identity.md#keys).
#[derive(Args, Default)]
pub struct TokenLimitArgs {
    /// The token may query only this endpoint (repeatable).
    #[arg(long = "allow-endpoint", value_name = "ENDPOINT")]
    allow_endpoints: Vec<String>,
    /// Most queries per minute, over every endpoint the token queries.
    #[arg(long, value_name = "N")]
    calls_per_minute: Option<i64>,
    /// Most tokens (input and output) per minute, over every endpoint.
    #[arg(long, value_name = "N")]
    tokens_per_minute: Option<i64>,
    /// Budget in USD per --budget-period.
    #[arg(long, value_name = "USD")]
    budget_usd: Option<f64>,
    /// day, week or month.
    #[arg(long, default_value = "month", requires = "budget_usd")]
    budget_period: String,
    /// What happens at 100 % of the budget: ALERT (spend shows, queries go on) or BLOCK (429).
    #[arg(long, default_value = "ALERT", requires = "budget_usd")]
    budget_action: String,
}

impl TokenLimitArgs {
    /// The `limits` object the API takes (empty for none).
    fn to_json(&self) -> Value {
        let mut limits = json!({});
        if !self.allow_endpoints.is_empty() {
            set(&mut limits, "allowed_endpoints", json!(self.allow_endpoints));
        }
        if self.calls_per_minute.is_some() || self.tokens_per_minute.is_some() {
            let mut l = json!({"renewal_period": "minute"});
            if let Some(c) = self.calls_per_minute {
                set(&mut l, "calls", json!(c));
            }
            if let Some(t) = self.tokens_per_minute {
                set(&mut l, "tokens", json!(t));
            }
            set(&mut limits, "rate_limits", json!([l]));
        }
        if let Some(usd) = self.budget_usd {
            let budget = json!({"amount_usd": usd, "period": self.budget_period, "action": self.budget_action});
            set(&mut limits, "budget", budget);
        }
        limits
    }
}

/// `modelgate tokens ...`
#[derive(Subcommand)]
pub enum TokensCmd {
    /// Create a token for yourself, or (admins) for a service principal or user; the value is printed once.
    Create {
        /// Create it for this service principal (application id) instead of yourself.
        #[arg(long, conflicts_with = "for_user")]
        for_application_id: Option<String>,
        /// Create it for this user instead of yourself.
        #[arg(long)]
        for_user: Option<String>,
        /// Lifetime in seconds (default: no expiry).
        #[arg(long)]
        lifetime_seconds: Option<i64>,
        /// Comment shown in listings.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        limits: TokenLimitArgs,
    },
    /// Replace a token's own limits (admins, or whoever created the token); no limit flags
    /// removes them all.
    SetLimits {
        /// Token id (from `tokens list`).
        token_id: String,
        #[command(flatten)]
        limits: TokenLimitArgs,
    },
    /// List your tokens (with --all, admins see every principal's).
    List {
        /// Every principal's tokens (admins).
        #[arg(long)]
        all: bool,
    },
    /// Revoke a token by id; effective immediately (with --any-owner, admins revoke anyone's).
    Revoke {
        /// Token id (from `tokens list`).
        token_id: String,
        /// Revoke a token of another principal (admins).
        #[arg(long)]
        any_owner: bool,
    },
}

pub fn read_json(arg: &JsonArg, required: bool) -> Result<Value, CliError> {
    let text = match arg.json.as_deref() {
        None if required => return Err(CliError::Usage("--json is required".into())),
        None => return Ok(json!({})),
        Some("@-") => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map_err(|e| CliError::Usage(format!("reading stdin: {e}")))?;
            s
        }
        Some(a) if a.starts_with('@') => {
            std::fs::read_to_string(&a[1..]).map_err(|e| CliError::Usage(format!("{}: {e}", &a[1..])))?
        }
        Some(inline) => inline.to_string(),
    };
    serde_json::from_str(&text).map_err(|e| CliError::Usage(format!("--json is not valid JSON: {e}")))
}

/// Prints a document as JSON, or as YAML with `-o yaml`.
pub fn print_json(v: &Value) {
    if crate::output() == Output::Yaml {
        out!("{}", serde_norway::to_string(v).unwrap_or_default().trim_end());
    } else {
        out!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    }
}

/// Prints rows under a header, columns aligned, no rules between rows (as `kubectl get`). Only
/// the last column (by convention the free text: a message, a comment) wraps, to the terminal's
/// width or else 100 columns; names and ids never do, so they can be copied whole.
pub fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut t = Table::new();
    t.load_style(comfy_table::presets::NOTHING);
    t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        t.set_width(100);
    }
    t.set_header(headers.iter().map(|h| h.to_uppercase()).collect::<Vec<_>>());
    for r in rows {
        t.add_row(r);
    }
    use comfy_table::{ColumnConstraint, Width};
    let last = headers.len().saturating_sub(1);
    let readable = ColumnConstraint::LowerBoundary(Width::Fixed(30));
    t.set_constraints((0..last).map(|_| ColumnConstraint::ContentWidth).chain([readable]));
    out!("{t}");
}

/// Prints a list answer: the JSON as is with `-o json`, else a table of `v[key]` with one row per
/// item made by `row`.
pub fn print_list(v: &Value, output: Output, key: &str, headers: &[&str], row: impl Fn(&Value) -> Vec<String>) {
    let rows = || at(v, &format!("/{key}")).as_array().cloned().unwrap_or_default();
    match output {
        Output::Text => print_table(headers, rows().iter().map(row).collect()),
        Output::Csv => print_csv(headers, rows().iter().map(row).collect()),
        Output::Json | Output::Yaml => print_json(v),
    }
}

/// Prints rows as CSV under a header line (fields with a comma, quote or newline quoted).
pub fn print_csv(headers: &[&str], rows: Vec<Vec<String>>) {
    let field =
        |v: &str| if v.contains([',', '"', '\n']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v.to_string() };
    out!("{}", headers.iter().map(|h| field(&h.to_lowercase())).collect::<Vec<_>>().join(","));
    for r in rows {
        out!("{}", r.iter().map(|c| field(c)).collect::<Vec<_>>().join(","));
    }
}

/// What a list answer holds, for [`resolve`]: where the items are and which fields name them.
pub struct Listing<'a> {
    /// The list route.
    pub path: &'a str,
    /// The key of the items in its answer.
    pub items: &'a str,
    /// The id field of an item.
    pub id: &'a str,
    /// Fields that name an item (name, userName, applicationId, ...).
    pub names: &'a [&'a str],
    /// What the items are, for messages (`budget policy`).
    pub what: &'a str,
}

/// The id of the item whose id or name is `given`, so every command that takes an id also takes
/// a name. A name two items share is refused, naming their ids; what matches nothing is passed on
/// as it is, for the server to say it does not exist.
pub async fn resolve(client: &Client, l: &Listing<'_>, given: &str) -> Result<String, CliError> {
    Ok(find(client, l, given).await?.unwrap_or_else(|| given.to_string()))
}

/// [`resolve`], `None` when nothing has that id or name.
pub async fn find(client: &Client, l: &Listing<'_>, given: &str) -> Result<Option<String>, CliError> {
    let v = client.json(Method::GET, l.path, None).await?;
    let items = at(&v, &format!("/{}", l.items)).as_array().cloned().unwrap_or_default();
    let id_of = |item: &Value| s(at(item, &format!("/{}", l.id)));
    if items.iter().any(|i| id_of(i) == given) {
        return Ok(Some(given.to_string()));
    }
    let named: Vec<String> = items
        .iter()
        .filter(|i| l.names.iter().any(|n| at(i, &format!("/{n}")).as_str() == Some(given)))
        .map(id_of)
        .collect();
    match named.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        many => Err(CliError::Usage(format!(
            "{} {}s are named '{given}' (ids {}); give the id",
            many.len(),
            l.what,
            many.join(", ")
        ))),
    }
}

/// The value at a JSON pointer (`/state/ready`), or null.
pub fn at<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer).unwrap_or(&Value::Null)
}

/// Sets `key` on a JSON object (the bodies the commands build are objects).
pub fn set(body: &mut Value, key: &str, value: Value) {
    if let Some(o) = body.as_object_mut() {
        o.insert(key.into(), value);
    }
}

pub fn s(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_metrics_summary(v: &Value) {
    let ms = |x: &Value| x.as_f64().map_or_else(|| "-".to_string(), |m| format!("{m:.1} ms"));
    let rows = at(v, "/windows")
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            vec![
                s(at(w, "/window")),
                format!("{:.3}/s ({})", at(w, "/requests_per_second").as_f64().unwrap_or(0.0), at(w, "/requests")),
                format!("{:.2} %", at(w, "/error_rate").as_f64().unwrap_or(0.0) * 100.0),
                ms(at(w, "/latency_ms/p50")),
                ms(at(w, "/latency_ms/p95")),
                ms(at(w, "/latency_ms/p99")),
                format!("{} / {}", at(w, "/input_tokens"), at(w, "/output_tokens")),
                format!("${:.4}", at(w, "/cost_usd").as_f64().unwrap_or(0.0)),
            ]
        })
        .collect();
    out!("{}", s(at(v, "/endpoint")));
    print_table(&["WINDOW", "REQUESTS", "ERRORS", "P50", "P95", "P99", "TOKENS IN / OUT", "COST"], rows);
}

fn ms_to_time(v: &Value) -> String {
    v.as_i64()
        .filter(|ms| *ms > 0)
        .map(|ms| {
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms as u64)).to_string()
        })
        .unwrap_or_default()
}

/// Polls until the endpoint is no longer updating. A failed update prints the build log of the
/// failed version and is an error.
pub async fn wait_not_updating(client: &Client, name: &str, timeout: Duration) -> Result<Value, CliError> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(200);
    let mut progress = Progress::new(format!("waiting for '{name}' to finish updating"));
    loop {
        let e = client.json(Method::GET, &format!("{SE}/{name}"), None).await?;
        let version = at(&e, "/pending_config/config_version").as_i64();
        match at(&e, "/state/config_update").as_str() {
            Some("IN_PROGRESS") => {}
            Some("UPDATE_FAILED") | Some("UPDATE_CANCELED") => {
                progress.done("update failed");
                let versions = client.json(Method::GET, &format!("{SE}/{name}/config-versions"), None).await?;
                if let Some(log) = at(&versions, "/config_versions").get(0).and_then(|v| at(v, "/build_logs").as_str())
                {
                    eprint!("{log}");
                }
                return Err(CliError::Api {
                    code: "UPDATE_FAILED".into(),
                    message: format!("the config update of '{name}' failed; the build log is above"),
                });
            }
            _ => {
                progress.done("ready");
                return Ok(e);
            }
        }
        if started.elapsed() >= timeout {
            progress.done("still deploying");
            let v = version.map(|v| format!(" (config version {v})")).unwrap_or_default();
            return Err(CliError::Usage(format!(
                "stopped waiting after {}: endpoint '{name}' exists and is still deploying{v}; \
                 wait again with `modelgate serving-endpoints wait {name}`",
                humantime::format_duration(timeout)
            )));
        }
        progress.tick(started.elapsed());
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// What a wait longer than a second shows on standard error: a line redrawn in place on a
/// terminal, a plain line every ten seconds otherwise (logs of a CI job).
struct Progress {
    what: String,
    terminal: bool,
    shown: bool,
    last_line: Option<Duration>,
}

impl Progress {
    fn new(what: String) -> Self {
        Progress { what, terminal: std::io::IsTerminal::is_terminal(&std::io::stderr()), shown: false, last_line: None }
    }

    fn tick(&mut self, elapsed: Duration) {
        if elapsed < Duration::from_secs(1) {
            return;
        }
        let secs = elapsed.as_secs();
        if self.terminal {
            const SPINNER: [char; 4] = ['|', '/', '-', '\\'];
            let frame = SPINNER.get((elapsed.as_millis() / 250) as usize % SPINNER.len()).copied().unwrap_or('|');
            eprint!("\r{frame} {} ({secs}s)", self.what);
            self.shown = true;
        } else if self.last_line.is_none_or(|t| elapsed >= t + Duration::from_secs(10)) {
            eprintln!("{} ({secs}s)", self.what);
            self.last_line = Some(elapsed);
        }
    }

    fn done(&mut self, outcome: &str) {
        if self.terminal && self.shown {
            eprintln!("\r{}: {outcome}{}", self.what, " ".repeat(8));
        }
    }
}

async fn maybe_wait(client: &Client, created: Value, wait: &WaitArgs) -> Result<(), CliError> {
    if wait.no_wait {
        print_json(&created);
        return Ok(());
    }
    let name = at(&created, "/name").as_str().unwrap_or_default().to_string();
    print_json(&wait_not_updating(client, &name, wait.timeout).await?);
    Ok(())
}

/// A config body for `PUT .../config` from what the user gave: a config as is, or the output of
/// `serving-endpoints get` (its `config`, without the fields only the server writes), so that
/// `get` output can be edited and applied back.
pub fn as_config_input(body: Value) -> Value {
    let mut config = match body.get("config") {
        Some(c) if c.is_object() && body.get("served_entities").is_none() => c.clone(),
        _ => body,
    };
    if let Some(o) = config.as_object_mut() {
        o.remove("config_version");
    }
    for key in ["served_entities", "served_models"] {
        for entity in config.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(o) = entity.as_object_mut() {
                for output_only in ["state", "creator", "creation_timestamp", "foundation_model"] {
                    o.remove(output_only);
                }
            }
        }
    }
    let routes = config.pointer_mut("/traffic_config/routes").and_then(Value::as_array_mut);
    for route in routes.into_iter().flatten() {
        if let Some(o) = route.as_object_mut()
            && o.contains_key("served_entity_name")
        {
            o.remove("served_model_name");
        }
    }
    config
}

/// Runs a `serving-endpoints` command.
pub async fn endpoints(client: &Client, cmd: EndpointsCmd, output: Output) -> Result<(), CliError> {
    use EndpointsCmd::*;
    match cmd {
        List => {
            let v = client.json(Method::GET, SE, None).await?;
            let headers = ["Name", "State", "Update", "Task", "Provider/model", "Owner", "Tags"];
            print_list(&v, output, "endpoints", &headers, |e| {
                let state = if at(e, "/stopped").as_bool() == Some(true) {
                    "STOPPED".to_string()
                } else {
                    s(at(e, "/state/ready"))
                };
                let entities = at(e, "/config/served_entities").as_array().cloned().unwrap_or_default();
                let model = entities.first().map(|m| {
                    let provider = s(at(m, "/external_model/provider"));
                    let name = s(at(m, "/external_model/name"));
                    let first =
                        if provider.is_empty() { s(at(m, "/entity_name")) } else { format!("{provider}/{name}") };
                    if entities.len() > 1 { format!("{first} +{}", entities.len() - 1) } else { first }
                });
                let tags: Vec<String> = at(e, "/tags")
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| format!("{}={}", s(at(t, "/key")), s(at(t, "/value"))))
                    .collect();
                let update = s(at(e, "/state/config_update"));
                vec![
                    s(at(e, "/name")),
                    state,
                    if update == "NOT_UPDATING" { String::new() } else { update },
                    s(at(e, "/task")),
                    model.unwrap_or_default(),
                    s(at(e, "/creator")),
                    tags.join(","),
                ]
            });
        }
        Get { name } => print_json(&client.json(Method::GET, &format!("{SE}/{name}"), None).await?),
        Wait { name, timeout } => print_json(&wait_not_updating(client, &name, timeout).await?),
        History { name } => {
            let v = client.json(Method::GET, &format!("{SE}/{name}/config-versions"), None).await?;
            let mut versions: Vec<Value> = at(&v, "/config_versions")
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| matches!(at(c, "/status").as_str(), Some("ACTIVE" | "SUPERSEDED")))
                .cloned()
                .collect();
            versions.sort_by_key(|c| at(c, "/config_version").as_i64());
            let rows: Vec<Vec<String>> = versions
                .iter()
                .map(|c| {
                    let share: BTreeMap<String, String> = at(c, "/config/traffic_config/routes")
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|r| (s(at(r, "/served_entity_name")), format!("{}%", s(at(r, "/traffic_percentage")))))
                        .collect();
                    let models: Vec<String> = at(c, "/config/served_entities")
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|e| {
                            let entity = s(at(e, "/name"));
                            let model = match at(e, "/external_model/name").as_str() {
                                Some(m) => format!("{}/{m}", s(at(e, "/external_model/provider"))),
                                None => format!("{} v{}", s(at(e, "/entity_name")), s(at(e, "/entity_version"))),
                            };
                            format!("{entity}={model} {}", share.get(&entity).cloned().unwrap_or_default())
                                .trim_end()
                                .to_string()
                        })
                        .collect();
                    vec![
                        s(at(c, "/config_version")),
                        ms_to_time(at(c, "/creation_timestamp")),
                        s(at(c, "/status")),
                        s(at(c, "/creator")),
                        models.join(", "),
                    ]
                })
                .collect();
            if output == Output::Text {
                print_table(&["Version", "From", "Status", "By", "Served"], rows);
            } else if output == Output::Csv {
                print_csv(&["Version", "From", "Status", "By", "Served"], rows);
            } else {
                print_json(&json!({"config_versions": versions}));
            }
        }
        Query { name, json } => {
            let body = read_json(&json, true)?;
            client
                .post_streaming(&format!("/serving-endpoints/{name}/invocations"), &body, |payload| {
                    match serde_json::from_str::<Value>(payload) {
                        Ok(v)
                            if payload.trim_start().starts_with('{')
                                && !body.get("stream").is_some_and(|s| s == true) =>
                        {
                            print_json(&v)
                        }
                        _ => out!("{payload}"),
                    }
                })
                .await?;
        }
        SettingsHistory { name } => {
            let v = client.json(Method::GET, &format!("{SE}/{name}/settings-history"), None).await?;
            let short = |v: &Value| {
                let text = if v.is_null() { "-".to_string() } else { v.to_string() };
                if text.chars().count() > 60 {
                    format!("{}…", text.chars().take(60).collect::<String>())
                } else {
                    text
                }
            };
            print_list(&v, output, "changes", &["Change", "Field", "By", "When", "Before", "After"], |c| {
                vec![
                    s(at(c, "/change_id")),
                    s(at(c, "/field")),
                    s(at(c, "/changed_by")),
                    ms_to_time(at(c, "/changed_at")),
                    short(at(c, "/before")),
                    short(at(c, "/after")),
                ]
            });
        }
        RestoreSettings { name, change_id } => {
            let body = json!({"change_id": change_id});
            print_json(&client.json(Method::POST, &format!("{SE}/{name}/settings:restore"), Some(&body)).await?);
        }
        Test { name } => {
            let v = client.json(Method::POST, &format!("{SE}/{name}/test"), Some(&json!({}))).await?;
            let yes_no = |v: &Value| match v.as_bool() {
                Some(true) => "yes".to_string(),
                Some(false) => "NO".to_string(),
                None => "?".to_string(),
            };
            let headers = ["Entity", "Provider", "Model", "Host", "Reachable", "Auth", "Model found", "ms", "Problem"];
            print_list(&v, output, "served_entities", &headers, |e| {
                vec![
                    s(at(e, "/name")),
                    s(at(e, "/provider")),
                    s(at(e, "/model")),
                    s(at(e, "/host")),
                    yes_no(at(e, "/reachable")),
                    yes_no(at(e, "/authenticated")),
                    yes_no(at(e, "/model_exists")),
                    format!("{:.0}", at(e, "/latency_ms").as_f64().unwrap_or(0.0)),
                    s(at(e, "/message")),
                ]
            });
            if at(&v, "/ok").as_bool() != Some(true) {
                return Err(CliError::Usage(format!("endpoint '{name}': not every served entity answered")));
            }
        }
        Create { name, json, description, wait } => {
            let mut body = read_json(&json, name.is_none())?;
            // A config alone (what update-config takes) is accepted too: it becomes the `config`.
            if body.get("config").is_none()
                && (body.get("served_entities").is_some() || body.get("served_models").is_some())
            {
                body = json!({"config": body});
            }
            if let Some(n) = name {
                set(&mut body, "name", json!(n));
            }
            if let Some(d) = description {
                set(&mut body, "description", json!(d));
            }
            let created = client.json(Method::POST, SE, Some(&body)).await?;
            maybe_wait(client, created, &wait).await?;
        }
        UpdateConfig { name, json, wait } => {
            let body = as_config_input(read_json(&json, true)?);
            let updated = client.json(Method::PUT, &format!("{SE}/{name}/config"), Some(&body)).await?;
            maybe_wait(client, updated, &wait).await?;
        }
        Delete { name } => print_json(&client.json(Method::DELETE, &format!("{SE}/{name}"), None).await?),
        GetMetrics { name } => {
            let v = client.json(Method::GET, &format!("{SE}/{name}/metrics-summary"), None).await?;
            if output != Output::Text {
                print_json(&v);
            } else {
                print_metrics_summary(&v);
            }
        }
        GetOpenApi { name } => out!("{}", client.text(Method::GET, &format!("{SE}/{name}/openapi")).await?),
        BuildLogs { name, served_model_name } => {
            let v = client
                .json(Method::GET, &format!("{SE}/{name}/served-models/{served_model_name}/build-logs"), None)
                .await?;
            print_logs(&v, output);
        }
        Logs { name, served_model_name } => {
            let v =
                client.json(Method::GET, &format!("{SE}/{name}/served-models/{served_model_name}/logs"), None).await?;
            print_logs(&v, output);
        }
        Put { name, json } => {
            let body = read_json(&json, true)?;
            print_json(&client.json(Method::PUT, &format!("{SE}/{name}/rate-limits"), Some(&body)).await?);
        }
        PutAiGateway { name, json } => {
            let body = read_json(&json, true)?;
            print_json(&client.json(Method::PUT, &format!("{SE}/{name}/ai-gateway"), Some(&body)).await?);
        }
        Patch { name, json } => {
            let body = read_json(&json, true)?;
            print_json(&client.json(Method::PATCH, &format!("{SE}/{name}/tags"), Some(&body)).await?);
        }
        Stop { name } => print_json(&client.json(Method::POST, &format!("{SE}/{name}/config:stop"), None).await?),
        Start { name } => print_json(&client.json(Method::POST, &format!("{SE}/{name}/config:start"), None).await?),
        ConfigVersions { name } => {
            let v = client.json(Method::GET, &format!("{SE}/{name}/config-versions"), None).await?;
            let headers = ["Version", "Status", "Creator", "Created", "Served entities"];
            print_list(&v, output, "config_versions", &headers, |c| {
                let entities: Vec<String> = at(c, "/config/served_entities")
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| s(at(e, "/name")))
                    .collect();
                vec![
                    s(at(c, "/config_version")),
                    s(at(c, "/status")),
                    s(at(c, "/creator")),
                    ms_to_time(at(c, "/creation_timestamp")),
                    entities.join(", "),
                ]
            });
        }
        Rollback { name, config_version, wait } => {
            let body = json!({"config_version": config_version});
            let v = client.json(Method::POST, &format!("{SE}/{name}/config:rollback"), Some(&body)).await?;
            maybe_wait(client, v, &wait).await?;
        }
    }
    Ok(())
}

fn print_logs(v: &Value, output: Output) {
    if output != Output::Text {
        print_json(v);
    } else {
        print!("{}", at(v, "/logs").as_str().unwrap_or_default());
    }
}

/// Runs a `secrets` command.
pub async fn secrets(client: &Client, cmd: SecretsCmd, output: Output) -> Result<(), CliError> {
    use SecretsCmd::*;
    let ok = json!({});
    match cmd {
        CreateScope { scope, initial_manage_principal } => {
            let mut body = json!({"scope": scope});
            if let Some(p) = initial_manage_principal {
                set(&mut body, "initial_manage_principal", json!(p));
            }
            client.json(Method::POST, "/api/2.0/secrets/scopes/create", Some(&body)).await?;
        }
        ListScopes => {
            let v = client.json(Method::GET, "/api/2.0/secrets/scopes/list", None).await?;
            print_list(&v, output, "scopes", &["Scope", "Backend"], |x| {
                vec![s(at(x, "/name")), s(at(x, "/backend_type"))]
            });
            return Ok(());
        }
        DeleteScope { scope } => {
            client.json(Method::POST, "/api/2.0/secrets/scopes/delete", Some(&json!({"scope": scope}))).await?;
        }
        PutSecret { scope, key, string_value, bytes_value } => {
            let mut body = json!({"scope": scope, "key": key});
            match (string_value, bytes_value) {
                (Some(v), _) => set(&mut body, "string_value", json!(v)),
                (None, Some(b)) => set(&mut body, "bytes_value", json!(B64.encode(b.as_bytes()))),
                (None, None) => {
                    if std::io::stdin().is_terminal() {
                        eprintln!("Reading the secret value from standard input; end with Ctrl-D.");
                    }
                    let mut buf = Vec::new();
                    std::io::stdin()
                        .read_to_end(&mut buf)
                        .map_err(|e| CliError::Usage(format!("reading stdin: {e}")))?;
                    if buf.ends_with(b"\r\n") {
                        buf.truncate(buf.len() - 2);
                    } else if buf.ends_with(b"\n") {
                        buf.pop();
                    }
                    set(&mut body, "bytes_value", json!(B64.encode(&buf)));
                }
            }
            let answer = client.json(Method::POST, "/api/2.0/secrets/put", Some(&body)).await?;
            for w in at(&answer, "/warnings").as_array().into_iter().flatten().filter_map(Value::as_str) {
                eprintln!("warning: {w}");
            }
        }
        GetSecret { scope, key } => {
            let v = client
                .json_query(Method::GET, "/api/2.0/secrets/get", &[("scope", &scope), ("key", &key)], None)
                .await?;
            if output != Output::Text {
                print_json(&v);
            } else {
                let bytes = B64.decode(at(&v, "/value").as_str().unwrap_or_default()).unwrap_or_default();
                out!("{}", String::from_utf8_lossy(&bytes));
            }
            return Ok(());
        }
        ListSecrets { scope } => {
            let v = client.json_query(Method::GET, "/api/2.0/secrets/list", &[("scope", &scope)], None).await?;
            print_list(&v, output, "secrets", &["Key", "Last updated"], |x| {
                vec![s(at(x, "/key")), ms_to_time(at(x, "/last_updated_timestamp"))]
            });
            return Ok(());
        }
        PutAcl { scope, principal, permission } => {
            let body = json!({"scope": scope, "principal": principal, "permission": permission});
            client.json(Method::POST, "/api/2.0/secrets/acls/put", Some(&body)).await?;
        }
        GetAcl { scope, principal } => {
            let q = [("scope", scope.as_str()), ("principal", principal.as_str())];
            print_json(&client.json_query(Method::GET, "/api/2.0/secrets/acls/get", &q, None).await?);
            return Ok(());
        }
        ListAcls { scope } => {
            let v = client.json_query(Method::GET, "/api/2.0/secrets/acls/list", &[("scope", &scope)], None).await?;
            print_list(&v, output, "items", &["Principal", "Permission"], |a| {
                vec![s(at(a, "/principal")), s(at(a, "/permission"))]
            });
            return Ok(());
        }
        DeleteAcl { scope, principal } => {
            client
                .json(
                    Method::POST,
                    "/api/2.0/secrets/acls/delete",
                    Some(&json!({"scope": scope, "principal": principal})),
                )
                .await?;
        }
        DeleteSecret { scope, key } => {
            client.json(Method::POST, "/api/2.0/secrets/delete", Some(&json!({"scope": scope, "key": key}))).await?;
        }
    }
    if output != Output::Text {
        print_json(&ok);
    }
    Ok(())
}

/// Runs a `tokens` command.
pub async fn tokens(client: &Client, cmd: TokensCmd, output: Output) -> Result<(), CliError> {
    match cmd {
        TokensCmd::Create { for_application_id, for_user, lifetime_seconds, comment, limits } => {
            let mut body = json!({});
            let limits = limits.to_json();
            if limits.as_object().is_some_and(|l| !l.is_empty()) {
                set(&mut body, "limits", limits);
            }
            if let Some(l) = lifetime_seconds {
                set(&mut body, "lifetime_seconds", json!(l));
            }
            if let Some(c) = comment {
                set(&mut body, "comment", json!(c));
            }
            let path = match (for_application_id, for_user) {
                (Some(a), _) => {
                    set(&mut body, "application_id", json!(a));
                    "/api/2.0/token-management/on-behalf-of/tokens"
                }
                (None, Some(u)) => {
                    set(&mut body, "user_name", json!(u));
                    "/api/2.0/token-management/on-behalf-of/tokens"
                }
                (None, None) => "/api/2.0/token/create",
            };
            print_json(&client.json(Method::POST, path, Some(&body)).await?);
        }
        TokensCmd::SetLimits { token_id, limits } => {
            let path = format!("/api/2.0/token-management/tokens/{token_id}");
            print_json(&client.json(Method::PATCH, &path, Some(&json!({"limits": limits.to_json()}))).await?);
        }
        TokensCmd::List { all } => {
            let path = if all { "/api/2.0/token-management/tokens" } else { "/api/2.0/token/list" };
            let v = client.json(Method::GET, path, None).await?;
            let headers = ["Token id", "Owner", "Created", "Expires", "Comment", "Limits"];
            print_list(&v, output, "token_infos", &headers, |t| {
                let expiry = if at(t, "/expiry_time").as_i64() == Some(-1) {
                    "never".into()
                } else {
                    ms_to_time(at(t, "/expiry_time"))
                };
                vec![
                    s(at(t, "/token_id")),
                    s(at(t, "/owner")),
                    ms_to_time(at(t, "/creation_time")),
                    expiry,
                    s(at(t, "/comment")),
                    limits_summary(t),
                ]
            });
        }
        TokensCmd::Revoke { token_id, any_owner: true } => {
            print_json(
                &client.json(Method::DELETE, &format!("/api/2.0/token-management/tokens/{token_id}"), None).await?,
            );
        }
        TokensCmd::Revoke { token_id, any_owner: false } => {
            print_json(
                &client.json(Method::POST, "/api/2.0/token/delete", Some(&json!({"token_id": token_id}))).await?,
            );
        }
    }
    Ok(())
}

/// A token's limits in a few words: `endpoints a,b; 10 calls/min; $5.00/month BLOCK ($1.20 spent)`.
fn limits_summary(t: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(eps) = at(t, "/limits/allowed_endpoints").as_array() {
        parts.push(format!("endpoints {}", eps.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")));
    }
    for r in at(t, "/limits/rate_limits").as_array().into_iter().flatten() {
        for k in ["calls", "tokens"] {
            if let Some(n) = r.get(k).and_then(Value::as_i64) {
                parts.push(format!("{n} {k}/min"));
            }
        }
    }
    if let Some(usd) = at(t, "/limits/budget/amount_usd").as_f64() {
        let spent = at(t, "/budget_spent_usd").as_f64().map(|s| format!(" (${s:.2} spent)")).unwrap_or_default();
        let (period, action) = (s(at(t, "/limits/budget/period")), s(at(t, "/limits/budget/action")));
        parts.push(format!("${usd:.2}/{period} {action}{spent}"));
    }
    parts.join("; ")
}

/// `modelgate audit-log`: who changed what, and what was refused.
#[derive(Args)]
pub struct AuditArgs {
    /// Only records newer than this (e.g. 1h, 7d).
    #[arg(long, value_parser = humantime::parse_duration)]
    since: Option<Duration>,
    /// Only this principal (user name or application id).
    #[arg(long)]
    principal: Option<String>,
    /// Only this object, e.g. serving-endpoint:chat, secret-scope:llm.
    #[arg(long)]
    object: Option<String>,
    /// Only this action (HTTP method: POST, PUT, PATCH, DELETE, GET for refused reads).
    #[arg(long)]
    action: Option<String>,
    /// Most records, newest first.
    #[arg(long, default_value_t = 1000)]
    limit: i64,
    /// Print JSON Lines (one record per line), for export.
    #[arg(long)]
    jsonl: bool,
}

/// Runs `audit-log`.
pub async fn audit_log(client: &Client, args: AuditArgs, output: Output) -> Result<(), CliError> {
    let since = args.since.map(|d| (modelgate_core::now_ms() - d.as_millis() as i64).to_string());
    let limit = args.limit.to_string();
    let mut q: Vec<(&str, &str)> = vec![("limit", &limit)];
    for (k, v) in [
        ("since", since.as_deref()),
        ("principal", args.principal.as_deref()),
        ("object", args.object.as_deref()),
        ("action", args.action.as_deref()),
    ] {
        if let Some(v) = v {
            q.push((k, v));
        }
    }
    let v = client.json_query(Method::GET, "/api/2.0/audit-log", &q, None).await?;
    if args.jsonl {
        for e in at(&v, "/entries").as_array().into_iter().flatten() {
            out!("{e}");
        }
        return Ok(());
    }
    print_list(&v, output, "entries", &["Time", "Principal", "Action", "Object", "Status", "Error", "Address"], |e| {
        vec![
            ms_to_time(at(e, "/timestamp")),
            s(at(e, "/principal")),
            s(at(e, "/action")),
            s(at(e, "/object")),
            s(at(e, "/status")),
            s(at(e, "/error_code")),
            s(at(e, "/address")),
        ]
    });
    Ok(())
}
