//! `modelgate`: the server (`modelgate serve`) and the client commands, in one binary.

/// `println!` that survives a closed pipe: see [`write_out`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_out(format_args!($($arg)*))
    };
}

mod alerts;
mod backends;
mod budgets;
mod bundle;
mod client;
mod commands;
mod identity;
mod inference;
mod inventory;
mod models;
mod policy;
mod profile;
mod requests;
mod usage;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

// The request path allocates small, short-lived buffers on one thread and frees some of them on
// another (the batched writers); mimalloc is markedly cheaper than glibc's malloc at that and
// keeps the resident set from fragmenting under sustained load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Failures of a client command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server answered with an error body.
    #[error("{code}: {message}")]
    Api {
        /// `error_code` from the server.
        code: String,
        /// `message` from the server.
        message: String,
    },
    /// The server could not be reached or sent garbage.
    #[error("cannot reach {0}")]
    Connect(String),
    /// Bad arguments or local files.
    #[error("{0}")]
    Usage(String),
}

#[derive(Parser)]
#[command(
    name = "modelgate",
    version,
    about = "Self-hosted model serving platform and AI gateway",
    long_about = "Self-hosted model serving platform and AI gateway.\n\n\
        `modelgate serve` runs the server. The other commands are clients of a running server; \
        they find it through --host/--token, MODELGATE_HOST/MODELGATE_TOKEN, a profile written by \
        `modelgate configure`, or DATABRICKS_HOST/DATABRICKS_TOKEN."
)]
struct Cli {
    /// Server URL [default: http://127.0.0.1:8080].
    #[arg(long, global = true, env = "MODELGATE_HOST")]
    host: Option<String>,
    /// Bearer token.
    #[arg(long, global = true, env = "MODELGATE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Profile from the profiles file (see `modelgate configure`).
    #[arg(long, short = 'p', global = true, env = "MODELGATE_PROFILE")]
    profile: Option<String>,
    /// Output format; lists default to a table, everything else to JSON.
    #[arg(long, short = 'o', global = true, value_enum)]
    output: Option<Output>,
    #[command(subcommand)]
    command: Command,
}

/// Output format of client commands.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Tables for lists, JSON otherwise.
    Text,
    /// Always JSON.
    Json,
    /// Always YAML (the same document as JSON).
    Yaml,
    /// Lists and reports as CSV (a header line, then one line per row); other documents as JSON.
    Csv,
}

/// The output format chosen on the command line, for the printers.
static OUTPUT: std::sync::OnceLock<Output> = std::sync::OnceLock::new();

/// The output format chosen on the command line.
pub fn output() -> Output {
    OUTPUT.get().copied().unwrap_or(Output::Text)
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Move a single-node install from its SQLite files to PostgreSQL, every row of every table,
    /// so replicas can share it (docs/scale-out.md). Stop the server first: the command takes its
    /// data directory's lock. The target databases must be empty; they are migrated here.
    MigrateStore(MigrateStoreArgs),
    /// Save --host and a token (read from standard input) as a profile.
    Configure,
    /// Print a shell completion script: modelgate completion bash > /etc/bash_completion.d/modelgate
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Manage serving endpoints.
    #[command(subcommand)]
    ServingEndpoints(commands::EndpointsCmd),
    /// Endpoints as code: validate, plan, deploy, destroy and summarize a bundle of endpoint files.
    #[command(subcommand)]
    Bundle(bundle::BundleCmd),
    /// Manage secret scopes and secrets.
    #[command(subcommand)]
    Secrets(commands::SecretsCmd),
    /// Manage access tokens.
    #[command(subcommand)]
    Tokens(commands::TokensCmd),
    /// Manage users.
    #[command(subcommand)]
    Users(identity::UsersCmd),
    /// Manage groups and their members.
    #[command(subcommand)]
    Groups(identity::GroupsCmd),
    /// Manage service principals (application identities).
    #[command(subcommand)]
    ServicePrincipals(identity::ServicePrincipalsCmd),
    /// Manage permissions on serving endpoints.
    #[command(subcommand)]
    Permissions(identity::PermissionsCmd),
    /// Read the audit log (admins).
    AuditLog(commands::AuditArgs),
    /// Create endpoints from backend definitions (one endpoint per model, pooling its backends).
    #[command(subcommand)]
    Backends(backends::BackendsCmd),
    /// Usage and cost reports; re-pricing.
    #[command(subcommand)]
    Usage(usage::UsageCmd),
    /// Every endpoint with owner, state, use and cost, flagging duplicates, unused endpoints and
    /// forgotten experiments: modelgate inventory --export registry.json
    Inventory(inventory::InventoryArgs),
    /// The workspace's standards: naming, required tags, allowed providers and models per
    /// environment, default rate limits; and which endpoints break them.
    #[command(subcommand)]
    Policy(policy::PolicyCmd),
    /// The request log: every query with its status and, for a failure, why.
    #[command(subcommand)]
    Requests(requests::RequestsCmd),
    /// Logged request and response payloads of an endpoint.
    #[command(subcommand)]
    InferenceTable(inference::InferenceCmd),
    /// Budget policies: spend per period, alerts, blocking.
    #[command(subcommand)]
    Budgets(budgets::BudgetsCmd),
    /// Firing alerts, alert rules and webhook destinations.
    #[command(subcommand)]
    Alerts(alerts::AlertsCmd),
    /// The model registry: registered models and their versions, which hosted endpoints serve.
    #[command(subcommand)]
    Models(models::ModelsCmd),
    /// The built-in foundation models and whether their files are installed.
    #[command(subcommand)]
    FoundationModels(models::FoundationModelsCmd),
}

#[derive(Args)]
struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "MODELGATE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory holding the database and the master key file.
    #[arg(long, env = "MODELGATE_DATA_DIR", default_value = "modelgate-data")]
    data_dir: PathBuf,
    /// Log format.
    #[arg(long, env = "MODELGATE_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log level or filter (e.g. `debug`, `info,modelgate_server=debug`).
    #[arg(long, env = "MODELGATE_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Hold each config deployment back this long, to watch the IN_PROGRESS state (demos, tests).
    #[arg(long, env = "MODELGATE_DEPLOY_DELAY", value_parser = humantime::parse_duration, default_value = "0s")]
    deploy_delay: Duration,
    /// Base URL for a provider, as PROVIDER=URL (repeatable; comma-separated in the environment),
    /// e.g. anthropic=http://proxy.internal:8443. For air-gapped proxies and tests.
    #[arg(long = "provider-base-url", env = "MODELGATE_PROVIDER_BASE_URLS", value_delimiter = ',', value_parser = parse_base_url)]
    provider_base_urls: Vec<(String, String)>,
    /// Time limit to connect to a provider.
    #[arg(long, env = "MODELGATE_UPSTREAM_CONNECT_TIMEOUT", value_parser = humantime::parse_duration, default_value = "10s")]
    upstream_connect_timeout: Duration,
    /// Time limit from sending a request to a provider's response headers.
    #[arg(long, env = "MODELGATE_UPSTREAM_FIRST_BYTE_TIMEOUT", value_parser = humantime::parse_duration, default_value = "120s")]
    upstream_first_byte_timeout: Duration,
    /// Longest silence allowed between two events of a streamed answer.
    #[arg(long, env = "MODELGATE_UPSTREAM_IDLE_TIMEOUT", value_parser = humantime::parse_duration, default_value = "60s")]
    upstream_idle_timeout: Duration,
    /// Time limit for a whole provider call, streamed answers included.
    #[arg(long, env = "MODELGATE_UPSTREAM_TIMEOUT", value_parser = humantime::parse_duration, default_value = "600s")]
    upstream_timeout: Duration,
    /// Failures (429, 5xx, timeouts, connection errors) within the window that open a served
    /// entity's circuit breaker.
    #[arg(long, env = "MODELGATE_BREAKER_FAILURES", default_value_t = 3)]
    breaker_failures: usize,
    /// The breaker's sliding window.
    #[arg(long, env = "MODELGATE_BREAKER_WINDOW", value_parser = humantime::parse_duration, default_value = "10s")]
    breaker_window: Duration,
    /// How long an open breaker sends the entity no traffic (or the upstream's Retry-After, if longer).
    #[arg(long, env = "MODELGATE_BREAKER_COOLDOWN", value_parser = humantime::parse_duration, default_value = "10s")]
    breaker_cooldown: Duration,
    /// Extra attempts on the same entity when an endpoint has nowhere to fail over to.
    #[arg(long, env = "MODELGATE_UPSTREAM_RETRIES", default_value_t = 2)]
    upstream_retries: u32,
    /// First retry back-off (doubles per attempt, with jitter).
    #[arg(long, env = "MODELGATE_RETRY_BACKOFF", value_parser = humantime::parse_duration, default_value = "200ms")]
    retry_backoff: Duration,
    /// Longest upstream Retry-After waited for before retrying; longer ones go to the client.
    #[arg(long, env = "MODELGATE_RETRY_AFTER_CAP", value_parser = humantime::parse_duration, default_value = "5s")]
    retry_after_cap: Duration,
    /// Chat serving endpoint that judges the `safety` and `valid_topics` guardrails. Without one,
    /// configs that enable them fail to deploy.
    #[arg(long, env = "MODELGATE_GUARDRAIL_JUDGE_ENDPOINT", value_name = "ENDPOINT")]
    guardrail_judge_endpoint: Option<String>,
    /// How often alert rules are evaluated.
    #[arg(long, env = "MODELGATE_ALERT_INTERVAL", value_parser = humantime::parse_duration, default_value = "30s")]
    alert_interval: Duration,
    /// JSON price file replacing or adding entries of the built-in price table (see docs/usage.md).
    #[arg(long, env = "MODELGATE_PRICE_TABLE", value_name = "FILE")]
    price_table: Option<PathBuf>,
    /// A base URL anyone may point an endpoint at, besides the providers' own hosts: `scheme://host[:port][/path]`,
    /// the host may start with `*.`, the port may be `*` (repeatable; comma-separated in the environment),
    /// e.g. http://127.0.0.1:* or https://*.models.internal. Admins and members of the
    /// `custom-base-urls` group may use any URL; link-local and metadata addresses are never allowed.
    #[arg(long = "outbound-allow", env = "MODELGATE_OUTBOUND_ALLOW", value_delimiter = ',', value_name = "URL")]
    outbound_allow: Vec<modelgate_core::outbound::AllowEntry>,
    /// Most open client connections; more are answered 503 and closed.
    #[arg(long, env = "MODELGATE_MAX_CONNECTIONS", default_value_t = 4096)]
    max_connections: usize,
    /// Most requests handled (or streaming their answer) at once; more are answered 503 at once.
    #[arg(long, env = "MODELGATE_MAX_IN_FLIGHT", default_value_t = 1024)]
    max_in_flight: usize,
    /// Longest the server may run late on ready work, measured every 10 ms under load: past it (two
    /// measurements in a row) new requests are answered 503 at once and fewer are admitted at once
    /// until it catches up; 0 turns it off.
    #[arg(long, env = "MODELGATE_MAX_QUEUE_DELAY", value_parser = humantime::parse_duration, default_value = "100ms")]
    max_queue_delay: Duration,
    /// Time for a client to send a request's headers; also the longest idle keep-alive.
    #[arg(long, env = "MODELGATE_HEADER_READ_TIMEOUT", value_parser = humantime::parse_duration, default_value = "30s")]
    header_read_timeout: Duration,
    /// Time for a client to send a whole request body; slower clients get a 408.
    #[arg(long, env = "MODELGATE_BODY_READ_TIMEOUT", value_parser = humantime::parse_duration, default_value = "30s")]
    body_read_timeout: Duration,
    /// Largest request body (bytes, or with a KiB/MiB/GiB suffix); larger ones get a 413.
    #[arg(long, env = "MODELGATE_MAX_REQUEST_BODY", value_parser = parse_bytes, default_value = "4MiB")]
    max_request_body: usize,
    /// Largest non-streamed answer read from a provider; a larger one fails the query with a 502.
    #[arg(long, env = "MODELGATE_MAX_UPSTREAM_BODY", value_parser = parse_bytes, default_value = "32MiB")]
    max_upstream_body: usize,
    /// Largest single event of a provider's stream; a larger one ends the stream with an error event.
    #[arg(long, env = "MODELGATE_MAX_STREAM_EVENT", value_parser = parse_bytes, default_value = "1MiB")]
    max_stream_event: usize,
    /// On shutdown, how long open requests may finish before their connections are closed.
    #[arg(long, env = "MODELGATE_DRAIN_TIMEOUT", value_parser = humantime::parse_duration, default_value = "30s")]
    drain_timeout: Duration,
    /// Most memory the response cache of endpoints with `ai_gateway.cache_config` may hold
    /// (bytes, or with a KiB/MiB/GiB suffix); the least recently used answers go first. With
    /// --redis-url, answers are shared through Redis too.
    #[arg(long, env = "MODELGATE_RESPONSE_CACHE_SIZE", value_parser = parse_bytes, default_value = "256MiB")]
    response_cache_size: usize,
    /// How long audit records are kept.
    #[arg(long, env = "MODELGATE_AUDIT_RETENTION", value_parser = humantime::parse_duration, default_value = "365days")]
    audit_retention: Duration,
    /// How long usage records are kept: the request log (`modelgate requests`), usage reports and
    /// budget spend read them, so keep at least your longest budget period.
    #[arg(long, env = "MODELGATE_USAGE_RETENTION", value_parser = humantime::parse_duration, default_value = "400days")]
    usage_retention: Duration,
    /// The shortest time allowed between an endpoint's deprecation notice and its sunset.
    #[arg(long, env = "MODELGATE_MIN_DEPRECATION_NOTICE", value_parser = humantime::parse_duration, default_value = "30days")]
    min_deprecation_notice: Duration,
    /// Start even if the master key file can be read by other users (logs a warning instead).
    #[arg(long, env = "MODELGATE_ALLOW_INSECURE_KEY_FILE")]
    allow_insecure_key_file: bool,
    /// Let users sign in to the web console with a user name and password, for users whose
    /// password an admin set (`modelgate users set-password`). Tokens always work.
    #[arg(long, env = "MODELGATE_CONSOLE_PASSWORD_SIGN_IN")]
    console_password_sign_in: bool,
    /// Hosted models: how long an entity with scale_to_zero_enabled keeps its replicas without a query.
    #[arg(long, env = "MODELGATE_SCALE_TO_ZERO_AFTER", value_parser = humantime::parse_duration, default_value = "30m")]
    scale_to_zero_after: Duration,
    /// Hosted models: how long a replica above its entity's minimum may go unused before it stops.
    #[arg(long, env = "MODELGATE_SCALE_DOWN_AFTER", value_parser = humantime::parse_duration, default_value = "5m")]
    scale_down_after: Duration,
    /// Hosted models: how long a query or a deployment waits for a replica to start answering.
    #[arg(long, env = "MODELGATE_COLD_START_TIMEOUT", value_parser = humantime::parse_duration, default_value = "120s")]
    cold_start_timeout: Duration,
    /// Hosted models: the address space each replica may use (prlimit), e.g. 8GiB.
    #[arg(long, env = "MODELGATE_REPLICA_MEMORY", value_parser = parse_bytes, default_value = "8GiB")]
    replica_memory: usize,
    /// Hosted models: the open files each replica may have.
    #[arg(long, env = "MODELGATE_REPLICA_OPEN_FILES", default_value_t = 4096)]
    replica_open_files: u64,
    /// Where the foundation models' files are installed (default: DATA_DIR/foundation-models).
    /// A `catalog.toml` there adds models to the catalog (docs/foundation-models.md).
    #[arg(long, env = "MODELGATE_FOUNDATION_MODELS_DIR")]
    foundation_models_dir: Option<PathBuf>,
    /// Foundation models with provisioned throughput: how often their band-time is billed as a
    /// usage record.
    #[arg(long, env = "MODELGATE_BAND_BILLING_INTERVAL", value_parser = humantime::parse_duration, default_value = "60s")]
    band_billing_interval: Duration,
    /// Redis shared by every replica of a scaled-out install: rate limits then count across
    /// replicas (docs/scale-out.md), e.g. redis://127.0.0.1:6379/0.
    #[arg(long, env = "MODELGATE_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// OpenTelemetry: send a trace of every query (GenAI semantic conventions) to this OTLP/HTTP
    /// collector, e.g. http://127.0.0.1:4318 (`/v1/traces` is added). Off when not set.
    #[arg(long, env = "MODELGATE_OTLP_ENDPOINT", value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// OTLP/HTTP encoding: http/protobuf or http/json.
    #[arg(long, env = "MODELGATE_OTLP_PROTOCOL", default_value = "http/protobuf", value_parser = ["http/protobuf", "http/json"])]
    otlp_protocol: String,
    /// A header sent with every trace export, as NAME=VALUE (repeatable; comma-separated in the
    /// environment), e.g. a collector's API key.
    #[arg(long = "otlp-header", env = "MODELGATE_OTLP_HEADERS", value_delimiter = ',', value_parser = parse_header, hide_env_values = true)]
    otlp_headers: Vec<(String, String)>,
    /// Share of traces started here that are recorded, 0 to 1; a client's sampled traceparent is
    /// always followed.
    #[arg(long, env = "MODELGATE_TRACE_SAMPLE_RATIO", default_value_t = 1.0)]
    trace_sample_ratio: f64,
    /// Record prompts and answers in spans (gen_ai.input.messages, gen_ai.output.messages). Off:
    /// spans hold no text of the conversation.
    #[arg(long, env = "MODELGATE_TRACE_CONTENT")]
    trace_content: bool,
    /// How often finished spans are sent to the collector.
    #[arg(long, env = "MODELGATE_TRACE_EXPORT_INTERVAL", value_parser = humantime::parse_duration, default_value = "2s")]
    trace_export_interval: Duration,
    /// PostgreSQL for the control plane, shared by every replica of a scaled-out install, instead
    /// of DATA_DIR/modelgate.db (docs/scale-out.md), e.g.
    /// postgres://modelgate:PASSWORD@db.internal:5432/modelgate?sslmode=require. Also holds the
    /// usage and inference tables unless --log-database-url is given.
    #[arg(long, env = "MODELGATE_DATABASE_URL", value_name = "URL", hide_env_values = true)]
    database_url: Option<String>,
    /// PostgreSQL for the usage records and inference-table payloads only (they are large and
    /// written all the time), instead of the control plane's database or DATA_DIR's files.
    #[arg(long, env = "MODELGATE_LOG_DATABASE_URL", value_name = "URL", hide_env_values = true)]
    log_database_url: Option<String>,
}

#[derive(clap::Args)]
struct MigrateStoreArgs {
    /// The install to move: `sqlite:DATA_DIR` (its modelgate.db, usage.db and inference.db).
    #[arg(long, value_name = "sqlite:DATA_DIR")]
    from: String,
    /// The PostgreSQL database for the control plane (and, without --to-logs, everything), e.g.
    /// postgres://modelgate:PASSWORD@db.internal:5432/modelgate.
    #[arg(long, value_name = "URL", env = "MODELGATE_DATABASE_URL", hide_env_values = true)]
    to: String,
    /// A PostgreSQL database for the usage records and inference payloads only.
    #[arg(long, value_name = "URL", env = "MODELGATE_LOG_DATABASE_URL", hide_env_values = true)]
    to_logs: Option<String>,
}

async fn migrate_store(args: MigrateStoreArgs) -> ExitCode {
    let Some(dir) = args.from.strip_prefix("sqlite:") else {
        eprintln!("Error: --from must be sqlite:DATA_DIR, e.g. --from sqlite:./modelgate-data (got '{}')", args.from);
        return ExitCode::from(2);
    };
    let dir = std::path::Path::new(dir);
    let moved = modelgate_server::migrate_store(dir, &args.to, args.to_logs.as_deref(), |table, rows| {
        println!("{table:<28} {rows:>10} rows");
    })
    .await;
    match moved {
        Ok(copied) => {
            let rows: u64 = copied.tables.iter().map(|(_, n)| n).sum();
            println!("Moved {rows} rows from {} to {}.", dir.display(), modelgate_server::redacted_url(&args.to));
            println!(
                "Start every replica with --database-url and the master key of this install: \
                 MODELGATE_MASTER_KEY=\"$(cat {})\"",
                dir.join("master.key").display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A size in bytes: a number, optionally with a K, KB, KiB, M, MB, MiB, G, GB or GiB suffix
/// (all powers of 1024).
fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits.parse().map_err(|_| format!("'{s}' is not a size such as 4MiB"))?;
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("'{other}' is not a size unit (use KiB, MiB or GiB)")),
    };
    n.checked_mul(factor).filter(|n| *n > 0).ok_or_else(|| format!("'{s}' is not a positive size"))
}

fn parse_base_url(s: &str) -> Result<(String, String), String> {
    let (p, u) = s.split_once('=').ok_or_else(|| format!("'{s}' is not PROVIDER=URL"))?;
    if !(u.starts_with("http://") || u.starts_with("https://")) {
        return Err(format!("'{u}' is not an http:// or https:// URL"));
    }
    Ok((p.trim().to_string(), u.trim().to_string()))
}

/// `NAME=VALUE` of `--otlp-header`; the value is never echoed in errors (it may be a key).
fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s.split_once('=').ok_or_else(|| "an --otlp-header is NAME=VALUE".to_string())?;
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(format!("'{name}' is not a header name"));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// Writes one line to standard output. A closed pipe (`modelgate ... | head -2`) ends the program
/// quietly, as it ends a Unix tool, instead of panicking as `println!` would.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let output = cli.output.unwrap_or(Output::Text);
    let _ = OUTPUT.set(output);
    let result = match cli.command {
        Command::Serve(args) => return serve(*args).await,
        Command::MigrateStore(args) => return migrate_store(args).await,
        Command::Configure => configure(cli.host, cli.profile.as_deref()),
        Command::Bundle(cmd) => {
            // The server is found once the bundle is read: a databricks.yml target may name it;
            // validate needs none.
            let conn = bundle::Connection { host: cli.host, token: cli.token, profile: cli.profile };
            return match bundle::run(conn, cmd, output).await {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("Error: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Completion { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "modelgate", &mut script);
            out!("{}", String::from_utf8_lossy(&script).trim_end());
            Ok(())
        }
        command => {
            let client = profile::resolve(cli.host, cli.token, cli.profile.as_deref())
                .and_then(|(host, token)| client::Client::new(host, token));
            match client {
                Err(e) => Err(e),
                Ok(client) => match command {
                    Command::ServingEndpoints(c) => commands::endpoints(&client, c, output).await,
                    Command::Secrets(c) => commands::secrets(&client, c, output).await,
                    Command::Tokens(c) => commands::tokens(&client, c, output).await,
                    Command::Users(c) => identity::users(&client, c, output).await,
                    Command::Groups(c) => identity::groups(&client, c, output).await,
                    Command::ServicePrincipals(c) => identity::service_principals(&client, c, output).await,
                    Command::Permissions(c) => identity::permissions(&client, c, output).await,
                    Command::AuditLog(a) => commands::audit_log(&client, a, output).await,
                    Command::Backends(c) => backends::run(&client, c, output).await,
                    Command::Usage(c) => usage::run(&client, c, output).await,
                    Command::Requests(c) => requests::run(&client, c, output).await,
                    Command::Inventory(a) => inventory::run(&client, a, output).await,
                    Command::Policy(c) => policy::run(&client, c, output).await,
                    Command::InferenceTable(c) => inference::run(&client, c, output).await,
                    Command::Budgets(c) => budgets::run(&client, c, output).await,
                    Command::Alerts(c) => alerts::run(&client, c, output).await,
                    Command::Models(c) => models::run(&client, c, output).await,
                    Command::FoundationModels(c) => models::foundation(&client, c, output).await,
                    Command::Serve(_)
                    | Command::MigrateStore(_)
                    | Command::Configure
                    | Command::Completion { .. }
                    | Command::Bundle(_) => {
                        unreachable!("handled above")
                    }
                },
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            if let Some(hint) = hint(&e) {
                eprintln!("Hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The command that helps after a common error, so the next step is on the screen.
fn hint(e: &CliError) -> Option<&'static str> {
    let CliError::Api { code, message } = e else { return None };
    match code.as_str() {
        "UNAUTHENTICATED" => Some("give a valid token: --token, MODELGATE_TOKEN, or `modelgate configure`"),
        "PERMISSION_DENIED" => Some("`modelgate permissions get ENDPOINT_ID` shows who holds which level"),
        "RESOURCE_DOES_NOT_EXIST" if message.starts_with("Endpoint") => {
            Some("`modelgate serving-endpoints list` shows the endpoints you can see")
        }
        "RESOURCE_CONFLICT" if message.contains("in progress") => {
            Some("`modelgate serving-endpoints wait NAME` waits for the update in progress")
        }
        _ => None,
    }
}

fn configure(host: Option<String>, profile_name: Option<&str>) -> Result<(), CliError> {
    use std::io::{BufRead, IsTerminal, Write};
    let name = profile_name.unwrap_or("default").to_string();
    let mut file = profile::load()?;
    let host = host.unwrap_or_else(|| profile::DEFAULT_HOST.to_string());
    if std::io::stdin().is_terminal() {
        eprint!("Token for {host}: ");
        let _ = std::io::stderr().flush();
    }
    let mut token = String::new();
    std::io::stdin().lock().read_line(&mut token).map_err(|e| CliError::Usage(format!("reading the token: {e}")))?;
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(CliError::Usage("no token given on standard input".into()));
    }
    file.profiles.insert(name.clone(), profile::Profile { host: Some(host), token: Some(token) });
    let path = profile::save(&file)?;
    eprintln!("Saved profile '{name}' to {}", path.display());
    Ok(())
}

fn init_logging(format: LogFormat, level: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(level).map_err(|e| format!("--log-level '{level}': {e}"))?;
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(|e| e.to_string())
}

async fn serve(args: ServeArgs) -> ExitCode {
    if let Err(e) = init_logging(args.log_format, &args.log_level) {
        eprintln!("Error: {e}");
        return ExitCode::from(2);
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let config = modelgate_server::ServerConfig {
        listen: args.listen,
        data_dir: args.data_dir,
        master_key: env("MODELGATE_MASTER_KEY"),
        admin_token: env("MODELGATE_ADMIN_TOKEN"),
        deploy_delay: args.deploy_delay,
        providers: modelgate_providers::Settings {
            base_urls: args.provider_base_urls.into_iter().collect(),
            ..Default::default()
        },
        timeouts: modelgate_server::UpstreamTimeouts {
            connect: args.upstream_connect_timeout,
            first_byte: args.upstream_first_byte_timeout,
            idle: args.upstream_idle_timeout,
            total: args.upstream_timeout,
        },
        breaker: modelgate_server::BreakerSettings {
            failures: args.breaker_failures.max(1),
            window: args.breaker_window,
            cooldown: args.breaker_cooldown,
            // A probe still unanswered after the longest a request may take was abandoned.
            probe_timeout: args.upstream_timeout,
        },
        retries: modelgate_server::RetrySettings {
            retries: args.upstream_retries,
            backoff: args.retry_backoff,
            retry_after_cap: args.retry_after_cap,
        },
        judge_endpoint: args.guardrail_judge_endpoint,
        price_table: args.price_table,
        alert_interval: args.alert_interval,
        limits: modelgate_server::Limits {
            max_connections: args.max_connections.max(1),
            max_in_flight: args.max_in_flight.max(1),
            max_queue_delay: args.max_queue_delay,
            header_read_timeout: args.header_read_timeout,
            body_read_timeout: args.body_read_timeout,
            max_request_body: args.max_request_body,
            max_upstream_body: args.max_upstream_body,
            max_stream_event: args.max_stream_event,
            drain_timeout: args.drain_timeout,
            response_cache_size: args.response_cache_size,
            ..Default::default()
        },
        outbound: modelgate_core::outbound::OutboundPolicy::with(args.outbound_allow),
        audit_retention: args.audit_retention,
        usage_retention: args.usage_retention,
        min_deprecation_notice: args.min_deprecation_notice,
        allow_insecure_key_file: args.allow_insecure_key_file,
        console_password_sign_in: args.console_password_sign_in,
        hosting: modelgate_server::HostingSettings {
            idle_to_zero: args.scale_to_zero_after,
            scale_down_after: args.scale_down_after,
            cold_start_timeout: args.cold_start_timeout,
            replica_memory: args.replica_memory as u64,
            replica_open_files: args.replica_open_files,
            foundation_models_dir: args.foundation_models_dir.clone(),
            billing_interval: args.band_billing_interval.max(Duration::from_secs(1)),
        },
        redis_url: args.redis_url.clone(),
        traces: modelgate_server::TraceSettings {
            endpoint: args.otlp_endpoint.clone(),
            protocol: if args.otlp_protocol == "http/json" {
                modelgate_server::OtlpProtocol::Json
            } else {
                modelgate_server::OtlpProtocol::Protobuf
            },
            headers: args.otlp_headers.clone(),
            sample_ratio: args.trace_sample_ratio,
            content: args.trace_content,
            export_interval: args.trace_export_interval,
        },
        database_url: args.database_url.clone(),
        log_database_url: args.log_database_url.clone(),
    };
    let server = match modelgate_server::Server::start(config).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "modelgate could not start");
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let host = format!("http://{}", server.addr);
    if let Some(token) = &server.new_admin_token {
        // Printed straight to the terminal, not through the log, and only once: the start after
        // a start that never got here replaces it with a new one.
        out!(
            "\nCreated the admin user. Its token is shown this once; store it now:\n\n    \
             export MODELGATE_HOST={host}\n    export MODELGATE_TOKEN={token}\n\n\
             Lost it? See \"Recovering the admin token\" in docs/server.md.\n"
        );
        if let Err(e) = server.admin_token_shown().await {
            tracing::warn!(error = %e, "could not record that the admin token was shown; the next start shows a new one");
        }
    }
    out!("modelgate listening on {host}");
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    match server.shutdown().await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "shutdown failed");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    #[test]
    fn sizes() {
        use super::parse_bytes;
        assert_eq!(parse_bytes("4MiB"), Ok(4 << 20));
        assert_eq!(parse_bytes("512"), Ok(512));
        assert_eq!(parse_bytes("64 KiB"), Ok(64 << 10));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("4 parsecs").is_err());
        assert!(parse_bytes("-1").is_err());
    }
}
