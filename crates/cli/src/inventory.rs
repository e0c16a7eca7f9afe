//! `modelgate inventory`: every endpoint with its owner, state, use and cost, and what deserves
//! a look (duplicates, unused endpoints, forgotten experiments).

use std::path::PathBuf;

use clap::Args;
use reqwest::Method;
use serde_json::Value;

use crate::client::Client;
use crate::commands::{at, print_csv, print_json, print_table, s};
use crate::{CliError, Output};

/// `modelgate inventory`
#[derive(Args)]
pub struct InventoryArgs {
    /// An endpoint with no query for this many days is flagged unused.
    #[arg(long, default_value_t = 30)]
    unused_days: u32,
    /// A proof of concept (tag `poc`, or a name with poc, test, tmp, demo, sandbox, experiment)
    /// untouched for this many days is flagged.
    #[arg(long, default_value_t = 30)]
    poc_days: u32,
    /// Also write the whole inventory, as JSON, to this file (a registry to keep in git).
    #[arg(long, value_name = "FILE")]
    export: Option<PathBuf>,
}

fn when(v: &Value) -> String {
    v.as_i64()
        .map(|ms| {
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64))
                .to_string()
        })
        .map(|t| t.get(..10).unwrap_or(&t).to_string())
        .unwrap_or_else(|| "never".into())
}

/// Runs `modelgate inventory`.
pub async fn run(client: &Client, a: InventoryArgs, output: Output) -> Result<(), CliError> {
    let unused = a.unused_days.to_string();
    let poc = a.poc_days.to_string();
    let v = client
        .json_query(Method::GET, "/api/2.0/inventory", &[("unused_days", &unused), ("poc_days", &poc)], None)
        .await?;
    if let Some(path) = &a.export {
        let text = serde_json::to_string_pretty(&v).unwrap_or_default();
        std::fs::write(path, text + "\n").map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
        eprintln!("wrote {}", path.display());
    }
    let headers = [
        "Name",
        "Type",
        "Provider/model",
        "Env",
        "Owner",
        "Team",
        "State",
        "Queries 30d",
        "Cost 30d",
        "Last query",
        "Flags",
    ];
    let rows: Vec<Vec<String>> = at(&v, "/endpoints")
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let flags: Vec<String> = at(e, "/flags")
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| format!("{}: {}", s(at(f, "/flag")), s(at(f, "/reason"))))
                .collect();
            vec![
                s(at(e, "/name")),
                s(at(e, "/type")),
                format!("{}/{}", s(at(e, "/provider")), s(at(e, "/model"))),
                s(at(e, "/environment")),
                s(at(e, "/owner")),
                s(at(e, "/team")),
                s(at(e, "/state")),
                s(at(e, "/queries_30d")),
                format!("${:.4}", at(e, "/cost_30d_usd").as_f64().unwrap_or(0.0)),
                when(at(e, "/last_query")),
                flags.join("; "),
            ]
        })
        .collect();
    match output {
        Output::Text => print_table(&headers, rows),
        Output::Csv => print_csv(&headers, rows),
        Output::Json | Output::Yaml => print_json(&v),
    }
    Ok(())
}
