//! `modelgate requests list|get`: the request log, to find out why queries failed.

use std::time::Duration;

use clap::Subcommand;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde_json::Value;

use crate::client::Client;
use crate::commands::{at, print_json, print_list, s};
use crate::{CliError, Output};

/// `modelgate requests ...`
#[derive(Subcommand)]
pub enum RequestsCmd {
    /// Recent requests, newest first, with why each failed:
    /// modelgate requests list --endpoint chat --status error --since 1h
    List {
        /// Only this endpoint.
        #[arg(long)]
        endpoint: Option<String>,
        /// 2xx, 4xx, 5xx, error (any failure) or a status such as 429.
        #[arg(long)]
        status: Option<String>,
        /// Only this caller (user name or application id).
        #[arg(long)]
        requester: Option<String>,
        /// Only this error code, e.g. BAD_GATEWAY.
        #[arg(long)]
        error_code: Option<String>,
        /// How far back, e.g. 15m, 1h, 7d.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "24h")]
        since: Duration,
        /// Most requests shown (1 to 1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Continue after a previous page (its `next_page_token`).
        #[arg(long)]
        page_token: Option<String>,
    },
    /// One request in full, by its request id or the client's client_request_id:
    /// modelgate requests get 0193a6c2-...
    Get {
        /// Request id (`x-request-id` / `databricks_request_id`) or client_request_id.
        id: String,
    },
}

/// Status and, for a failure, its code and upstream status: `502 BAD_GATEWAY (upstream 500)`.
fn outcome(r: &Value) -> String {
    let mut out = s(at(r, "/status_code"));
    if let Some(code) = at(r, "/error_code").as_str() {
        out.push(' ');
        out.push_str(code);
    }
    if let Some(up) = at(r, "/upstream_status").as_i64() {
        out.push_str(&format!(" (upstream {up})"));
    }
    out
}

/// At most `n` characters of `text`, with an ellipsis when cut.
fn clip(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(n).collect::<String>())
    }
}

/// Runs `modelgate requests ...`.
pub async fn run(client: &Client, cmd: RequestsCmd, output: Output) -> Result<(), CliError> {
    match cmd {
        RequestsCmd::List { endpoint, status, requester, error_code, since, limit, page_token } => {
            let start = (modelgate_core::now_ms() - since.as_millis() as i64).to_string();
            let limit = limit.to_string();
            let mut q: Vec<(&str, &str)> = vec![("start", &start), ("limit", &limit)];
            for (key, value) in [
                ("endpoint", &endpoint),
                ("status", &status),
                ("requester", &requester),
                ("error_code", &error_code),
                ("page_token", &page_token),
            ] {
                if let Some(v) = value {
                    q.push((key, v));
                }
            }
            let v = client.json_query(Method::GET, "/api/2.0/requests", &q, None).await?;
            let headers = ["TIME", "ENDPOINT", "ENTITY", "REQUESTER", "STATUS", "TRIES", "MS", "TOKENS", "ERROR"];
            print_list(&v, output, "requests", &headers, |r| {
                let time = s(at(r, "/time"));
                vec![
                    time.get(11..23).unwrap_or(&time).to_string(),
                    s(at(r, "/endpoint")),
                    s(at(r, "/served_entity")),
                    s(at(r, "/requester")),
                    outcome(r),
                    s(at(r, "/attempts")),
                    format!("{:.0}", at(r, "/latency_ms").as_f64().unwrap_or(0.0)),
                    format!("{}/{}", s(at(r, "/input_tokens")), s(at(r, "/output_tokens"))),
                    clip(at(r, "/error_message").as_str().unwrap_or(""), 60),
                ]
            });
            if output == Output::Text
                && let Some(next) = at(&v, "/next_page_token").as_str()
            {
                out!("more: --page-token {next}");
            }
        }
        RequestsCmd::Get { id } => {
            let v = client
                .json(Method::GET, &format!("/api/2.0/requests/{}", utf8_percent_encode(&id, NON_ALPHANUMERIC)), None)
                .await?;
            print_json(&v);
        }
    }
    Ok(())
}
