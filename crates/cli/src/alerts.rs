//! `modelgate alerts ...`: what is firing; alert rules and webhook destinations.

use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use crate::client::Client;
use crate::commands::{JsonArg, at, print_json, print_list, read_json, s};
use crate::{CliError, Output};

/// `modelgate alerts ...`
#[derive(Subcommand)]
pub enum AlertsCmd {
    /// What is firing now, and what resolved lately.
    List,
    /// Every alert rule.
    Rules,
    /// Add a rule: --json '{"name": "chat-errors", "kind": "error_rate", "endpoint": "chat",
    /// "threshold": 0.02, "window": "10m"}'
    CreateRule {
        #[command(flatten)]
        json: JsonArg,
    },
    /// Replace a rule (e.g. to disable a default one: "enabled": false).
    UpdateRule {
        /// Rule id.
        id: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Delete a rule.
    DeleteRule {
        /// Rule id.
        id: String,
    },
    /// Every webhook destination.
    Destinations,
    /// Add a webhook: --json '{"name": "oncall", "url": "https://hooks.slack.com/...", "format": "slack"}'
    CreateDestination {
        #[command(flatten)]
        json: JsonArg,
    },
    /// Delete a webhook.
    DeleteDestination {
        /// Destination id.
        id: String,
    },
}

fn time(v: &Value) -> String {
    v.as_i64().map_or_else(String::new, |ms| {
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64))
            .to_string()
    })
}

/// Runs `modelgate alerts ...`.
pub async fn run(client: &Client, cmd: AlertsCmd, output: Output) -> Result<(), CliError> {
    match cmd {
        AlertsCmd::List => {
            let v = client.json(Method::GET, "/api/2.0/alerts", None).await?;
            if output != Output::Text {
                print_json(&v);
                return Ok(());
            }
            let row = |a: &Value| {
                vec![
                    s(at(a, "/state")),
                    time(at(a, "/fired_at")),
                    s(at(a, "/rule_name")),
                    s(at(a, "/endpoint")),
                    s(at(a, "/message")),
                ]
            };
            let firing: Vec<Vec<String>> = at(&v, "/firing").as_array().into_iter().flatten().map(row).collect();
            if firing.is_empty() {
                out!("nothing is firing");
            } else {
                crate::commands::print_table(&["STATE", "SINCE", "RULE", "ENDPOINT", "MESSAGE"], firing);
            }
        }
        AlertsCmd::Rules => {
            let v = client.json(Method::GET, "/api/2.0/alert-rules", None).await?;
            print_list(
                &v,
                output,
                "rules",
                &["ID", "NAME", "KIND", "ENDPOINT", "THRESHOLD", "WINDOW", "ENABLED"],
                |r| {
                    vec![
                        s(at(r, "/rule_id")),
                        s(at(r, "/name")),
                        s(at(r, "/kind")),
                        at(r, "/endpoint").as_str().unwrap_or("(all)").to_string(),
                        s(at(r, "/threshold")),
                        s(at(r, "/window")),
                        (at(r, "/enabled") != false).to_string(),
                    ]
                },
            );
        }
        AlertsCmd::CreateRule { json } => {
            print_json(&client.json(Method::POST, "/api/2.0/alert-rules", Some(&read_json(&json, true)?)).await?)
        }
        AlertsCmd::UpdateRule { id, json } => print_json(
            &client.json(Method::PUT, &format!("/api/2.0/alert-rules/{id}"), Some(&read_json(&json, true)?)).await?,
        ),
        AlertsCmd::DeleteRule { id } => {
            print_json(&client.json(Method::DELETE, &format!("/api/2.0/alert-rules/{id}"), None).await?)
        }
        AlertsCmd::Destinations => {
            let v = client.json(Method::GET, "/api/2.0/alert-destinations", None).await?;
            print_list(&v, output, "destinations", &["ID", "NAME", "FORMAT", "URL"], |d| {
                vec![
                    s(at(d, "/destination_id")),
                    s(at(d, "/name")),
                    at(d, "/format").as_str().unwrap_or("json").into(),
                    s(at(d, "/url")),
                ]
            });
        }
        AlertsCmd::CreateDestination { json } => {
            print_json(&client.json(Method::POST, "/api/2.0/alert-destinations", Some(&read_json(&json, true)?)).await?)
        }
        AlertsCmd::DeleteDestination { id } => {
            print_json(&client.json(Method::DELETE, &format!("/api/2.0/alert-destinations/{id}"), None).await?)
        }
    }
    Ok(())
}
