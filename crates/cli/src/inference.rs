//! `modelgate inference-table query|export`: an endpoint's logged payloads, on screen or to a
//! JSON Lines or Parquet file.

use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use reqwest::Method;
use serde_json::Value;

use crate::client::Client;
use crate::commands::{SE, at, print_json, s};
use crate::{CliError, Output};

/// Filters shared by `query` and `export`.
#[derive(Args)]
pub struct Filters {
    /// The serving endpoint.
    endpoint: String,
    /// How far back, e.g. 15m, 1h, 7d.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1h")]
    since: Duration,
    /// Only this status class or code: 2xx, 4xx, 5xx, 429...
    #[arg(long)]
    status: Option<String>,
    /// Only this requester (user name or application id).
    #[arg(long)]
    requester: Option<String>,
    /// Most records, newest first.
    #[arg(long, default_value_t = 100)]
    limit: i64,
}

/// Export file format.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet, with the payload table's column types.
    Parquet,
}

/// `modelgate inference-table ...`
#[derive(Subcommand)]
pub enum InferenceCmd {
    /// Show logged payloads: modelgate inference-table query chat --since 1h --status 5xx
    Query(Filters),
    /// Write logged payloads to a file:
    /// modelgate inference-table export chat --since 1d --format parquet --out chat.parquet
    Export {
        #[command(flatten)]
        filters: Filters,
        /// File format.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Where to write.
        #[arg(long, value_name = "FILE")]
        out: String,
    },
}

async fn fetch(client: &Client, f: &Filters) -> Result<Vec<Value>, CliError> {
    let since = (modelgate_core::now_ms() - f.since.as_millis() as i64).to_string();
    let limit = f.limit.to_string();
    let mut q: Vec<(&str, &str)> = vec![("since", &since), ("limit", &limit)];
    if let Some(st) = f.status.as_deref() {
        q.push(("status", st));
    }
    if let Some(r) = f.requester.as_deref() {
        q.push(("requester", r));
    }
    let v = client.json_query(Method::GET, &format!("{SE}/{}/inference-table", f.endpoint), &q, None).await?;
    Ok(at(&v, "/records").as_array().cloned().unwrap_or_default())
}

fn excerpt(v: &Value, n: usize) -> String {
    let text = s(v);
    if text.chars().count() <= n { text } else { format!("{}…", text.chars().take(n).collect::<String>()) }
}

/// Runs `modelgate inference-table ...`.
pub async fn run(client: &Client, cmd: InferenceCmd, output: Output) -> Result<(), CliError> {
    match cmd {
        InferenceCmd::Query(f) => {
            let records = fetch(client, &f).await?;
            if output != Output::Text {
                print_json(&serde_json::json!({"records": records}));
                return Ok(());
            }
            let mut rows = Vec::new();
            for r in &records {
                let time = at(r, "/request_time").as_i64().map_or_else(String::new, |ms| {
                    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms as u64))
                        .to_string()
                });
                let errors: Vec<String> =
                    at(r, "/logging_error_codes").as_array().into_iter().flatten().map(s).collect();
                rows.push(vec![
                    time,
                    s(at(r, "/status_code")),
                    s(at(r, "/requester")),
                    s(at(r, "/served_entity_id")),
                    s(at(r, "/execution_duration_ms")),
                    excerpt(at(r, "/request"), 60),
                    excerpt(at(r, "/response"), 60),
                    errors.join(" "),
                ]);
            }
            let headers = ["Time", "Status", "Requester", "Entity", "ms", "Request", "Response", "Logging errors"];
            crate::commands::print_table(&headers, rows);
        }
        InferenceCmd::Export { filters, format, out: path } => {
            let records = fetch(client, &filters).await?;
            match format {
                ExportFormat::Jsonl => write_jsonl(&path, &records),
                ExportFormat::Parquet => write_parquet(&path, &records),
            }
            .map_err(|e| CliError::Usage(format!("{path}: {e}")))?;
            eprintln!("wrote {} records to {path}", records.len());
        }
    }
    Ok(())
}

fn write_jsonl(path: &str, records: &[Value]) -> Result<(), String> {
    let mut f = std::io::BufWriter::new(File::create(path).map_err(|e| e.to_string())?);
    for r in records {
        writeln!(f, "{r}").map_err(|e| e.to_string())?;
    }
    f.flush().map_err(|e| e.to_string())
}

/// The Parquet schema of an inference (payload) table.
const SCHEMA: &str = "message payload {
    REQUIRED BYTE_ARRAY databricks_request_id (UTF8);
    REQUIRED INT32 request_date (DATE);
    OPTIONAL BYTE_ARRAY client_request_id (UTF8);
    REQUIRED INT64 request_time (TIMESTAMP(MILLIS, true));
    REQUIRED INT32 status_code;
    REQUIRED DOUBLE sampling_fraction;
    REQUIRED INT64 execution_duration_ms;
    OPTIONAL BYTE_ARRAY request (UTF8);
    OPTIONAL BYTE_ARRAY response (UTF8);
    REQUIRED GROUP logging_error_codes (LIST) { REPEATED GROUP list { REQUIRED BYTE_ARRAY element (UTF8); } }
    OPTIONAL BYTE_ARRAY served_entity_id (UTF8);
    OPTIONAL BYTE_ARRAY requester (UTF8);
    REQUIRED BOOLEAN cache_hit;
}";

/// How each column of [`SCHEMA`] is filled, in order.
#[derive(Clone, Copy)]
enum Col {
    Text(&'static str),
    OptionalText(&'static str),
    Date,
    Int32(&'static str),
    Int64(&'static str),
    Double(&'static str),
    TextList(&'static str),
    Bool(&'static str),
}

const COLUMNS: [Col; 13] = [
    Col::Text("databricks_request_id"),
    Col::Date,
    Col::OptionalText("client_request_id"),
    Col::Int64("request_time"),
    Col::Int32("status_code"),
    Col::Double("sampling_fraction"),
    Col::Int64("execution_duration_ms"),
    Col::OptionalText("request"),
    Col::OptionalText("response"),
    Col::TextList("logging_error_codes"),
    Col::OptionalText("served_entity_id"),
    Col::OptionalText("requester"),
    Col::Bool("cache_hit"),
];

fn write_column(
    col: &mut parquet::file::writer::SerializedColumnWriter<'_>,
    spec: Col,
    records: &[Value],
) -> parquet::errors::Result<usize> {
    let int = |k: &str| records.iter().map(|r| r[k].as_i64().unwrap_or(0)).collect::<Vec<i64>>();
    match spec {
        Col::Text(k) => {
            let v: Vec<ByteArray> =
                records.iter().map(|r| ByteArray::from(r[k].as_str().unwrap_or_default())).collect();
            col.typed::<ByteArrayType>().write_batch(&v, None, None)
        }
        Col::OptionalText(k) => {
            // Nulls are a definition level of 0 and no value.
            let v: Vec<ByteArray> = records.iter().filter_map(|r| r[k].as_str()).map(ByteArray::from).collect();
            let defs: Vec<i16> = records.iter().map(|r| i16::from(r[k].is_string())).collect();
            col.typed::<ByteArrayType>().write_batch(&v, Some(&defs), None)
        }
        Col::Date => {
            let days: Vec<i32> = records
                .iter()
                .map(|r| at(r, "/request_time").as_i64().unwrap_or(0).div_euclid(86_400_000) as i32)
                .collect();
            col.typed::<Int32Type>().write_batch(&days, None, None)
        }
        Col::Int32(k) => {
            let v: Vec<i32> = int(k).into_iter().map(|x| x as i32).collect();
            col.typed::<Int32Type>().write_batch(&v, None, None)
        }
        Col::Int64(k) => col.typed::<Int64Type>().write_batch(&int(k), None, None),
        Col::Bool(k) => {
            let v: Vec<bool> = records.iter().map(|r| r[k].as_bool().unwrap_or(false)).collect();
            col.typed::<BoolType>().write_batch(&v, None, None)
        }
        Col::Double(k) => {
            let v: Vec<f64> = records.iter().map(|r| r[k].as_f64().unwrap_or(0.0)).collect();
            col.typed::<DoubleType>().write_batch(&v, None, None)
        }
        Col::TextList(k) => {
            // A list per row: an empty list is one entry at definition level 0; elements after
            // the first repeat at level 1.
            let (mut values, mut defs, mut reps) = (Vec::new(), Vec::new(), Vec::new());
            for r in records {
                let items: Vec<&str> = r[k].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                if items.is_empty() {
                    defs.push(0);
                    reps.push(0);
                }
                for (i, item) in items.into_iter().enumerate() {
                    values.push(ByteArray::from(item));
                    defs.push(1);
                    reps.push(i16::from(i > 0));
                }
            }
            col.typed::<ByteArrayType>().write_batch(&values, Some(&defs), Some(&reps))
        }
    }
}

fn write_parquet(path: &str, records: &[Value]) -> Result<(), String> {
    let e = |e: parquet::errors::ParquetError| e.to_string();
    let schema = Arc::new(parse_message_type(SCHEMA).map_err(e)?);
    let props = Arc::new(WriterProperties::builder().build());
    let file = File::create(path).map_err(|e| e.to_string())?;
    let mut writer = SerializedFileWriter::new(file, schema, props).map_err(e)?;
    let mut group = writer.next_row_group().map_err(e)?;
    for spec in COLUMNS {
        let mut col = group.next_column().map_err(e)?.ok_or("the schema has fewer columns than expected")?;
        write_column(&mut col, spec, records).map_err(e)?;
        col.close().map_err(e)?;
    }
    group.close().map_err(e)?;
    writer.close().map_err(e)?;
    Ok(())
}
