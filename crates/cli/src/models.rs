//! `modelgate models ...`: the model registry (registered models and their versions).

use std::collections::BTreeMap;

use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use crate::client::Client;
use crate::commands::{at, print_json, print_list, s, set};
use crate::{CliError, Output};

const RM: &str = "/api/2.0/registered-models";

/// `modelgate models ...`
#[derive(Subcommand)]
pub enum ModelsCmd {
    /// Register a model: `team.models.churn` or a plain name. You manage it.
    Create {
        /// The model's name.
        name: String,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
    },
    /// Register a version from a directory the server can read, e.g.
    /// `modelgate models create-version churn --source ./churn --runtime process --command python3 serve.py --port '$PORT'`.
    /// The `process` runtime runs the command (admins and members of `model-runners` only);
    /// `embedded` runs a sentence-embedding model inside the server.
    CreateVersion {
        /// The model's name.
        name: String,
        /// The directory with the model's files (made absolute here; the server must be able to read it).
        #[arg(long)]
        source: String,
        /// `process` or `embedded`.
        #[arg(long)]
        runtime: String,
        /// What it serves: llm/v1/chat (default for process), llm/v1/completions,
        /// llm/v1/embeddings, llm/v1/images (an OpenAI-compatible image server), or mlflow/scoring
        /// (the MLflow scoring protocol).
        #[arg(long)]
        task: Option<String>,
        /// An environment variable of the process, `KEY=VALUE`; a value may be `{{secrets/scope/key}}`.
        #[arg(long = "env", value_parser = parse_env)]
        env: Vec<(String, String)>,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        /// The program and its arguments, last on the line (every word after it belongs to it).
        /// `$PORT` and `$MODEL_PATH` are replaced by the replica's port and the source directory;
        /// no shell is involved.
        #[arg(long, num_args = 1.., allow_hyphen_values = true, value_name = "ARG")]
        command: Vec<String>,
    },
    /// The models you may see.
    List,
    /// One model.
    Get {
        /// The model's name.
        name: String,
    },
    /// A model's versions, newest first.
    Versions {
        /// The model's name.
        name: String,
    },
    /// One version.
    GetVersion {
        /// The model's name.
        name: String,
        /// The version number.
        version: String,
    },
    /// Delete a version no endpoint serves.
    DeleteVersion {
        /// The model's name.
        name: String,
        /// The version number.
        version: String,
    },
    /// Delete a model no endpoint serves, with its versions.
    Delete {
        /// The model's name.
        name: String,
    },
}

/// `modelgate foundation-models ...`
#[derive(Subcommand)]
pub enum FoundationModelsCmd {
    /// The catalog: each model, its task, whether its files are installed and its price.
    List,
}

/// Runs `modelgate foundation-models ...`.
pub async fn foundation(client: &Client, cmd: FoundationModelsCmd, output: Output) -> Result<(), CliError> {
    match cmd {
        FoundationModelsCmd::List => {
            let v = client.json(Method::GET, "/api/2.0/foundation-models", None).await?;
            print_list(
                &v,
                output,
                "foundation_models",
                &["Name", "Task", "Available", "USD / 1M tokens", "Band tokens/s", "USD / band-hour", "Files"],
                |m| {
                    vec![
                        s(at(m, "/name")),
                        s(at(m, "/task")),
                        s(at(m, "/available")),
                        s(at(m, "/price_per_million_tokens/input")),
                        s(at(m, "/throughput_chunk_size")),
                        s(at(m, "/band_usd_per_hour")),
                        s(at(m, "/files")),
                    ]
                },
            );
        }
    }
    Ok(())
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("'{s}' is not KEY=VALUE"))?;
    Ok((k.to_string(), v.to_string()))
}

/// Runs `modelgate models ...`.
pub async fn run(client: &Client, cmd: ModelsCmd, output: Output) -> Result<(), CliError> {
    match cmd {
        ModelsCmd::Create { name, description } => {
            let body = json!({"name": name, "description": description});
            print_json(&client.json(Method::POST, RM, Some(&body)).await?)
        }
        ModelsCmd::CreateVersion { name, source, runtime, task, env, description, command } => {
            let source = std::path::absolute(&source)
                .map_err(|e| CliError::Usage(format!("{source}: {e}")))?
                .display()
                .to_string();
            let env: BTreeMap<String, String> = env.into_iter().collect();
            let mut body = json!({"source": source, "runtime": runtime, "task": task, "description": description});
            if !command.is_empty() {
                set(&mut body, "command", json!(command));
            }
            if !env.is_empty() {
                set(&mut body, "env", json!(env));
            }
            print_json(&client.json(Method::POST, &format!("{RM}/{name}/versions"), Some(&body)).await?)
        }
        ModelsCmd::List => {
            let v = client.json(Method::GET, RM, None).await?;
            print_list(&v, output, "registered_models", &["Name", "Latest version", "Creator", "Your level"], |m| {
                vec![
                    s(at(m, "/name")),
                    s(at(m, "/latest_version")),
                    s(at(m, "/creator")),
                    s(at(m, "/permission_level")),
                ]
            });
        }
        ModelsCmd::Get { name } => print_json(&client.json(Method::GET, &format!("{RM}/{name}"), None).await?),
        ModelsCmd::Versions { name } => {
            let v = client.json(Method::GET, &format!("{RM}/{name}/versions"), None).await?;
            print_list(
                &v,
                output,
                "model_versions",
                &["Version", "Runtime", "Source", "Content hash", "Creator"],
                |m| {
                    let hash = s(at(m, "/content_hash"));
                    let short = hash.get(..19).unwrap_or(&hash).to_string();
                    vec![s(at(m, "/version")), s(at(m, "/runtime")), s(at(m, "/source")), short, s(at(m, "/creator"))]
                },
            );
        }
        ModelsCmd::GetVersion { name, version } => {
            print_json(&client.json(Method::GET, &format!("{RM}/{name}/versions/{version}"), None).await?)
        }
        ModelsCmd::DeleteVersion { name, version } => {
            client.json(Method::DELETE, &format!("{RM}/{name}/versions/{version}"), None).await?;
        }
        ModelsCmd::Delete { name } => {
            client.json(Method::DELETE, &format!("{RM}/{name}"), None).await?;
        }
    }
    Ok(())
}
