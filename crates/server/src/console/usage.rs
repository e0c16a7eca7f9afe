//! Cost and usage: spend and use by a dimension over the last days, from the usage report the
//! API gives (the same permissions), over time and in a table with a CSV download, and the budgets
//! with how much of each is used.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use modelgate_core::now_ms;
use serde::Deserialize;
use serde_json::{Value, json};

use super::charts::{Series, line_chart};
use super::{Viewer, api_error, console_page};
use crate::api;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;

/// `?by=endpoint|tag.team|usage_context.project|requester&days=7&format=csv` of the usage page.
#[derive(Deserialize, Default)]
pub struct UsageView {
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    days: Option<i64>,
    #[serde(default)]
    format: Option<String>,
}

/// `GET /console/usage`: spend and use by a dimension over the last days, from the usage report
/// the API gives (the same permissions), with budgets and how much of each is used; `format=csv`
/// downloads the table.
pub async fn page(State(app): State<AppState>, viewer: Viewer, Query(view): Query<UsageView>) -> Response {
    let by = view.by.clone().unwrap_or_else(|| "endpoint".into());
    let days = view.days.unwrap_or(7).clamp(1, 400);
    let start = (now_ms() - days * 86_400_000).to_string();
    let summary = report(&app, &viewer, json!({"group_by": by, "start": start})).await;
    let rows: Vec<Vec<String>> = match &summary {
        Ok(axum::Json(r)) => r
            .get("rows")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .map(|row| {
                let cell = |k: &str| {
                    row.get(k).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).unwrap_or_default()
                };
                vec![
                    cell(&by),
                    cell("requests"),
                    cell("errors"),
                    cell("input_tokens"),
                    cell("output_tokens"),
                    format!("{:.6}", row.get("cost_usd").and_then(|v| v.as_f64()).unwrap_or(0.0)),
                ]
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let headers_row = [by.as_str(), "requests", "errors", "input_tokens", "output_tokens", "cost_usd"];
    if view.format.as_deref() == Some("csv") {
        let field = |v: &str| {
            if v.contains([',', '"', '\n']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v.to_string() }
        };
        let mut csv = headers_row.join(",") + "\n";
        for r in &rows {
            csv.push_str(&r.iter().map(|c| field(c)).collect::<Vec<_>>().join(","));
            csv.push('\n');
        }
        return (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"usage.csv\""),
            ],
            csv,
        )
            .into_response();
    }
    let bucket = if days <= 2 { "hour" } else { "day" };
    let over_time = report(&app, &viewer, json!({"group_by": by, "start": start, "bucket": bucket})).await;
    let budgets = api::budgets::list(State(app.clone()), viewer.caller()).await;
    let content = html! {
        h1 { "Cost and usage" }
        form.filters method="get" action="/console/usage" {
            label { "By " select name="by" {
                @for d in ["endpoint", "served_entity", "requester", "model", "tag.team", "tag.project", "usage_context.project"] {
                    option value=(d) selected[d == by] { (d) }
                }
            } }
            " "
            label { "over the last " input type="number" name="days" min="1" max="400" value=(days) class="narrow"; " days " }
            button type="submit" { "Show" }
            " "
            a href=(format!("/console/usage?by={by}&days={days}&format=csv")) { "Download CSV" }
        }
        @match &summary {
            Err(e) => (api_error(e)),
            Ok(_) if rows.is_empty() => div.empty { p { "No queries in this window. Query an endpoint (the Playground is one way) and they show here." } },
            Ok(_) => {
                @if let Ok(axum::Json(r)) = &over_time { div.charts { (spend_chart(r, &by, bucket)) } }
                div.table-wrap { table {
                    thead { tr { @for h in headers_row { th { (h) } } } }
                    tbody { @for r in &rows { tr { @for c in r { td { (c) } } } } }
                } }
            },
        }
        h2 { "Budgets" }
        @match &budgets {
            Err(e) => p.muted { (e.to_string()) },
            Ok(axum::Json(b)) if b.policies.is_empty() => p.muted { "No budget policy. Create one with " code { "modelgate budgets create" } "." },
            Ok(axum::Json(b)) => div.table-wrap { table {
                thead { tr { th { "Policy" } th { "Period" } th { "Spent" } th { "Amount" } th { "Used" } th { "Action" } } }
                tbody { @for p in &b.policies { tr {
                    td { (p.input.name) }
                    td { (p.input.period) }
                    td { (p.spend.as_ref().map(|x| format!("${:.2}", x.spent_usd)).unwrap_or_default()) }
                    td { (format!("${:.2}", p.input.amount_usd)) }
                    td { (p.spend.as_ref().map(|x| format!("{:.1} %", x.percent)).unwrap_or_default()) }
                    td { (p.input.action.as_deref().unwrap_or("ALERT")) }
                } } }
            } },
        }
    };
    console_page(&viewer, "Cost and usage", "usage", content)
}

/// The API's usage report for `params`, as this viewer.
async fn report(app: &AppState, viewer: &Viewer, params: Value) -> Result<axum::Json<Value>, ApiError> {
    let params = serde_json::from_value(params).map_err(|e| ApiError::Internal(e.to_string()))?;
    api::usage::report(State(app.clone()), viewer.caller(), ApiQuery(params)).await
}

/// Colours of the lines of the spend chart, in order.
const PALETTE: [&str; 6] = ["#2457c5", "#b54708", "#067647", "#7a2ec2", "#b42318", "#5b6475"];

/// Spend per hour or day of the five groups that spent most, and of the rest together.
fn spend_chart(report: &Value, by: &str, bucket: &str) -> Markup {
    let rows = report.get("rows").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let text = |row: &Value, k: &str| row.get(k).and_then(Value::as_str).unwrap_or("(none)").to_string();
    let cost = |row: &Value| row.get("cost_usd").and_then(Value::as_f64).unwrap_or(0.0);
    let mut buckets: Vec<String> = rows.iter().map(|r| text(r, "bucket")).collect();
    buckets.sort();
    buckets.dedup();
    let mut totals: std::collections::BTreeMap<String, f64> = Default::default();
    for r in rows {
        *totals.entry(text(r, by)).or_default() += cost(r);
    }
    let mut top: Vec<(String, f64)> = totals.into_iter().collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let named: Vec<String> = top.iter().take(PALETTE.len() - 1).map(|(k, _)| k.clone()).collect();
    let mut lines: Vec<(String, Vec<f64>)> = named.iter().map(|n| (n.clone(), vec![0.0; buckets.len()])).collect();
    if top.len() > named.len() {
        lines.push(("others".into(), vec![0.0; buckets.len()]));
    }
    for r in rows {
        let (group, at) = (text(r, by), buckets.binary_search(&text(r, "bucket")).unwrap_or_default());
        let line = named.iter().position(|n| *n == group).unwrap_or(named.len());
        if let Some(v) = lines.get_mut(line).and_then(|(_, v)| v.get_mut(at)) {
            *v += cost(r);
        }
    }
    let series: Vec<Series<'_>> = lines
        .iter()
        .zip(PALETTE)
        .map(|((name, values), colour)| Series { name, values: values.iter().map(|v| Some(*v)).collect(), colour })
        .collect();
    line_chart(&format!("Spend per {bucket} by {by}"), "USD", &buckets, &series)
}
