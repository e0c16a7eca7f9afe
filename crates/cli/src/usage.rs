//! `modelgate usage report|recompute`: usage and cost by any dimension over time.

use std::time::Duration;

use clap::{Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::Client;
use crate::commands::{at, print_csv, print_json, print_table, s};
use crate::{CliError, Output};

/// How `usage report` prints.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table.
    Table,
    /// The API's JSON.
    Json,
    /// CSV with a header line.
    Csv,
}

/// What `usage report --sort` orders by.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortBy {
    /// Cost in USD.
    Cost,
    /// Queries.
    Requests,
    /// Failed queries.
    Errors,
    /// Input plus output tokens.
    Tokens,
}

impl SortBy {
    fn key(self, row: &Value) -> f64 {
        let n = |k: &str| at(row, k).as_f64().unwrap_or(0.0);
        match self {
            SortBy::Cost => n("/cost_usd"),
            SortBy::Requests => n("/requests"),
            SortBy::Errors => n("/errors"),
            SortBy::Tokens => n("/input_tokens") + n("/output_tokens"),
        }
    }
}

/// `modelgate usage ...`
#[derive(Subcommand)]
pub enum UsageCmd {
    /// Requests, errors, tokens and cost, grouped:
    /// modelgate usage report --group-by endpoint,tag.team --bucket day --since 7d; anyone: modelgate usage report --mine --group-by endpoint
    Report {
        /// Comma-separated: endpoint, served_entity, requester, provider, model, token (the
        /// token id), tag.<key>, usage_context.<key>.
        #[arg(long, value_name = "DIMS")]
        group_by: Option<String>,
        /// Time bucket: hour, day, week or month (UTC).
        #[arg(long)]
        bucket: Option<String>,
        /// How far back, e.g. 1h, 7d, 30d.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "7d")]
        since: Duration,
        /// Deprecated: use -o (text, json, yaml or csv).
        #[arg(long, value_enum, hide = true)]
        format: Option<Format>,
        /// Order rows by this figure, largest first.
        #[arg(long, value_enum)]
        sort: Option<SortBy>,
        /// Only the first N rows (after --sort).
        #[arg(long, value_name = "N")]
        top: Option<usize>,
        /// Only your own queries, on every endpoint (no admin or manage rights needed).
        #[arg(long)]
        mine: bool,
    },
    /// Price past records again with the server's current price table (admins):
    /// modelgate usage recompute --since 30d
    Recompute {
        /// How far back, e.g. 30d.
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Duration,
    },
    /// For an endpoint serving a foundation model: what its traffic cost per token against what
    /// provisioned throughput for its busiest hour would have cost, and the volume at which each
    /// wins: modelgate usage break-even embed --days 30
    BreakEven {
        /// The endpoint.
        endpoint: String,
        /// Days of traffic to look at.
        #[arg(long, default_value_t = 30)]
        days: i64,
    },
}

fn ago(d: Duration) -> String {
    (modelgate_core::now_ms() - d.as_millis() as i64).to_string()
}

/// The columns of a report answer, in order.
fn columns(v: &Value) -> Vec<String> {
    let mut cols = Vec::new();
    if !at(v, "/bucket").is_null() {
        cols.push("bucket".to_string());
    }
    cols.extend(at(v, "/group_by").as_array().into_iter().flatten().map(s));
    cols.extend(["requests", "errors", "input_tokens", "output_tokens", "cost_usd"].map(String::from));
    cols
}

fn cell(row: &Value, col: &str) -> String {
    match &row[col] {
        Value::Number(n) if col == "cost_usd" => format!("{:.6}", n.as_f64().unwrap_or(0.0)),
        other => s(other),
    }
}

/// Runs `modelgate usage ...`.
pub async fn run(client: &Client, cmd: UsageCmd, output: Output) -> Result<(), CliError> {
    match cmd {
        UsageCmd::Report { group_by, bucket, since, format, sort, top, mine } => {
            let start = ago(since);
            let mut q: Vec<(&str, &str)> = vec![("start", start.as_str())];
            if mine {
                q.push(("mine", "true"));
            }
            if let Some(g) = group_by.as_deref() {
                q.push(("group_by", g));
            }
            if let Some(b) = bucket.as_deref() {
                q.push(("bucket", b));
            }
            let mut v = client.json_query(Method::GET, "/api/2.0/usage", &q, None).await?;
            if let Some(rows) = v.get_mut("rows").and_then(Value::as_array_mut) {
                if let Some(by) = sort {
                    rows.sort_by(|a, b| by.key(b).total_cmp(&by.key(a)));
                }
                if let Some(n) = top {
                    rows.truncate(n);
                }
            }
            let format = format.unwrap_or(match output {
                Output::Text => Format::Table,
                Output::Csv => Format::Csv,
                Output::Json | Output::Yaml => Format::Json,
            });
            let cols = columns(&v);
            let rows = at(&v, "/rows").as_array().cloned().unwrap_or_default();
            match format {
                Format::Json => print_json(&v),
                Format::Csv => {
                    let headers: Vec<&str> = cols.iter().map(String::as_str).collect();
                    print_csv(&headers, rows.iter().map(|r| cols.iter().map(|c| cell(r, c)).collect()).collect());
                }
                Format::Table => {
                    let headers: Vec<String> = cols.iter().map(|c| c.to_uppercase()).collect();
                    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
                    print_table(&headers, rows.iter().map(|r| cols.iter().map(|c| cell(r, c)).collect()).collect());
                    out!("price table {}", s(at(&v, "/price_version")));
                }
            }
        }
        UsageCmd::Recompute { since } => {
            let v = client.json(Method::POST, "/api/2.0/usage/recompute", Some(&json!({"since": ago(since)}))).await?;
            print_json(&v);
        }
        UsageCmd::BreakEven { endpoint, days } => {
            let path = format!("/api/2.0/usage/break-even?endpoint={endpoint}&days={days}");
            let v = client.json(Method::GET, &path, None).await?;
            if matches!(output, Output::Text) {
                let f = |k: &str| v.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
                println!(
                    "{} ({}) over {} days: {:.0} tokens, busiest hour {:.0} tokens",
                    endpoint,
                    s(at(&v, "/model")),
                    days,
                    f("tokens"),
                    f("peak_tokens_per_hour")
                );
                println!(
                    "  pay per token:   ${:.4} (at ${} per million)",
                    f("pay_per_token_usd"),
                    f("usd_per_million_tokens")
                );
                println!(
                    "  provisioned:     ${:.4} ({:.0} unit(s) of {:.0} tokens/s at ${}/hour)",
                    f("provisioned_usd"),
                    f("bands"),
                    f("band_tokens_per_second"),
                    f("band_usd_per_hour")
                );
                println!(
                    "  one unit wins above {:.0} tokens an hour; for this traffic: {}",
                    f("break_even_tokens_per_hour"),
                    s(at(&v, "/cheaper"))
                );
            } else {
                print_json(&v);
            }
        }
    }
    Ok(())
}
