//! `modelgate budgets ...`: budget policies and their spend.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::Client;
use crate::commands::{JsonArg, Listing, SE, at, print_json, print_list, read_json, resolve, s};
use crate::{CliError, Output};

const BP: &str = "/api/2.0/budget-policies";
const POLICIES: Listing<'static> =
    Listing { path: BP, items: "policies", id: "policy_id", names: &["name"], what: "budget policy" };

/// `modelgate budgets ...`
#[derive(Subcommand)]
pub enum BudgetsCmd {
    /// Create a policy: --json '{"name": "ml-monthly", "period": "month", "amount_usd": 500,
    /// "scope": {"tag": {"key": "team", "value": "ml"}}, "action": "BLOCK"}'
    Create {
        #[command(flatten)]
        json: JsonArg,
    },
    /// Every policy with this period's spend.
    List,
    /// One policy.
    Get {
        /// Policy id or name.
        id: String,
    },
    /// Replace a policy's settings (same body as create).
    Update {
        /// Policy id or name.
        id: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Delete a policy no endpoint names.
    Delete {
        /// Policy id or name.
        id: String,
    },
    /// Attach a policy to an endpoint (`--none` detaches).
    Attach {
        /// Endpoint name.
        endpoint: String,
        /// Policy id or name.
        #[arg(required_unless_present = "none")]
        id: Option<String>,
        /// Detach the endpoint's policy.
        #[arg(long, conflicts_with = "id")]
        none: bool,
    },
}

fn scope(p: &Value) -> String {
    let sc = at(p, "/scope");
    let mut parts: Vec<String> = Vec::new();
    if let Some(e) = at(sc, "/endpoint").as_str() {
        parts.push(format!("endpoint {e}"));
    }
    for k in ["tag", "usage_context"] {
        if let Some(kv) = sc.get(k).filter(|v| v.is_object()) {
            parts.push(format!("{k} {}={}", s(at(kv, "/key")), s(at(kv, "/value"))));
        }
    }
    let eps: Vec<String> = at(p, "/endpoints").as_array().into_iter().flatten().map(s).collect();
    if !eps.is_empty() {
        parts.push(format!("endpoints {}", eps.join(",")));
    }
    parts.join("; ")
}

/// Runs `modelgate budgets ...`.
pub async fn run(client: &Client, cmd: BudgetsCmd, output: Output) -> Result<(), CliError> {
    match cmd {
        BudgetsCmd::Create { json } => {
            print_json(&client.json(Method::POST, BP, Some(&read_json(&json, true)?)).await?)
        }
        BudgetsCmd::List => {
            let v = client.json(Method::GET, BP, None).await?;
            print_list(
                &v,
                output,
                "policies",
                &["ID", "NAME", "SCOPE", "PERIOD", "SPENT", "AMOUNT", "%", "ACTION"],
                |p| {
                    vec![
                        s(at(p, "/policy_id")),
                        s(at(p, "/name")),
                        scope(p),
                        s(at(p, "/period")),
                        format!("${:.4}", at(p, "/spend/spent_usd").as_f64().unwrap_or(0.0)),
                        format!("${:.2}", at(p, "/amount_usd").as_f64().unwrap_or(0.0)),
                        format!("{:.1}", at(p, "/spend/percent").as_f64().unwrap_or(0.0)),
                        at(p, "/action").as_str().unwrap_or("ALERT").to_string(),
                    ]
                },
            );
        }
        BudgetsCmd::Get { id } => {
            let id = resolve(client, &POLICIES, &id).await?;
            print_json(&client.json(Method::GET, &format!("{BP}/{id}"), None).await?)
        }
        BudgetsCmd::Update { id, json } => {
            let id = resolve(client, &POLICIES, &id).await?;
            print_json(&client.json(Method::PUT, &format!("{BP}/{id}"), Some(&read_json(&json, true)?)).await?)
        }
        BudgetsCmd::Delete { id } => {
            let id = resolve(client, &POLICIES, &id).await?;
            print_json(&client.json(Method::DELETE, &format!("{BP}/{id}"), None).await?)
        }
        BudgetsCmd::Attach { endpoint, id, none } => {
            let id = match (id, none) {
                (Some(id), false) => Some(resolve(client, &POLICIES, &id).await?),
                _ => None,
            };
            let body = json!({"budget_policy_id": id});
            print_json(&client.json(Method::PUT, &format!("{SE}/{endpoint}/budget-policy"), Some(&body)).await?);
        }
    }
    Ok(())
}
