//! `modelgate policy get | set | check`: the workspace's standards (naming, required tags,
//! allowed providers and models per environment, default rate limits, minimum deprecation notice).

use clap::Subcommand;
use reqwest::Method;

use crate::client::Client;
use crate::commands::{JsonArg, at, print_json, print_list, read_json, s};
use crate::{CliError, Output};

const PATH: &str = "/api/2.0/workspace-policy";

/// `modelgate policy ...`
#[derive(Subcommand)]
pub enum PolicyCmd {
    /// Show the workspace policy.
    Get,
    /// Replace the workspace policy (admins); `--json '{}'` removes it:
    /// modelgate policy set --json @policy.json
    Set {
        #[command(flatten)]
        json: JsonArg,
    },
    /// List the existing endpoints that break the policy, and how (whatever its mode); exits 1
    /// if any does.
    Check,
}

/// Runs `modelgate policy ...`.
pub async fn run(client: &Client, cmd: PolicyCmd, output: Output) -> Result<(), CliError> {
    match cmd {
        PolicyCmd::Get => print_json(&client.json(Method::GET, PATH, None).await?),
        PolicyCmd::Set { json } => print_json(&client.json(Method::PUT, PATH, Some(&read_json(&json, true)?)).await?),
        PolicyCmd::Check => {
            let v = client.json(Method::GET, &format!("{PATH}/check"), None).await?;
            print_list(&v, output, "violations", &["Endpoint", "Rule", "Problem"], |x| {
                vec![s(at(x, "/endpoint")), s(at(x, "/rule")), s(at(x, "/message"))]
            });
            let n = at(&v, "/violations").as_array().map_or(0, Vec::len);
            if n > 0 {
                return Err(CliError::Usage(format!("{n} violation(s) of the workspace policy")));
            }
        }
    }
    Ok(())
}
