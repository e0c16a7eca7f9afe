//! `modelgate alerts ...`: what is firing; alert rules and webhook destinations.

use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use crate::client::Client;
use crate::commands::{JsonArg, Listing, at, print_json, print_list, read_json, resolve, s};
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
    /// Change a rule: only the fields given change (e.g. to disable a default one:
    /// modelgate alerts update-rule error-rate --json '{"enabled": false}').
    UpdateRule {
        /// Rule id or name.
        id: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Delete a rule.
    DeleteRule {
        /// Rule id or name.
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
        /// Destination id or name.
        id: String,
    },
}

fn time(v: &Value) -> String {
    v.as_i64().map_or_else(String::new, |ms| {
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64))
            .to_string()
    })
}

const RULES: Listing<'static> =
    Listing { path: "/api/2.0/alert-rules", items: "rules", id: "rule_id", names: &["name"], what: "alert rule" };
const DESTINATIONS: Listing<'static> = Listing {
    path: "/api/2.0/alert-destinations",
    items: "destinations",
    id: "destination_id",
    names: &["name"],
    what: "alert destination",
};

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
        AlertsCmd::UpdateRule { id, json } => {
            // Only the fields given change: the rest are taken from the rule as it is.
            let id = resolve(client, &RULES, &id).await?;
            let rules = client.json(Method::GET, RULES.path, None).await?;
            let current = at(&rules, "/rules")
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| s(at(r, "/rule_id")) == id)
                .cloned()
                .unwrap_or_default();
            let mut body = current;
            if let (Some(o), Value::Object(changes)) = (body.as_object_mut(), read_json(&json, true)?) {
                o.remove("rule_id");
                o.extend(changes);
            }
            print_json(&client.json(Method::PUT, &format!("{}/{id}", RULES.path), Some(&body)).await?)
        }
        AlertsCmd::DeleteRule { id } => {
            let id = resolve(client, &RULES, &id).await?;
            print_json(&client.json(Method::DELETE, &format!("{}/{id}", RULES.path), None).await?)
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
            let id = resolve(client, &DESTINATIONS, &id).await?;
            print_json(&client.json(Method::DELETE, &format!("{}/{id}", DESTINATIONS.path), None).await?)
        }
    }
    Ok(())
}
