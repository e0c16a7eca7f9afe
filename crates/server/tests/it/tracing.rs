//! OpenTelemetry traces: a local OTLP/HTTP receiver gets one span per query with the GenAI
//! attributes, children for admission, each upstream attempt and the stream, all linked to the
//! client's `traceparent`, which each attempt forwards upstream as its own; no conversation text
//! unless asked for; failures marked; sampling followed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::dataplane::rig_with;
use axum::body::Bytes;
use modelgate_mock_upstream::Options;
use modelgate_server::{OtlpProtocol, TraceSettings};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// What the collector received: decoded spans, and the raw bodies with their content types.
#[derive(Default)]
struct Received {
    spans: Vec<Span>,
    bodies: Vec<(String, Bytes)>,
}

/// A local OTLP/HTTP collector; its base URL.
async fn collector() -> (Arc<Mutex<Received>>, String) {
    let got = Arc::new(Mutex::new(Received::default()));
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: Bytes| {
            let keep = keep.clone();
            async move {
                let kind = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                let mut got = keep.lock().unwrap();
                if kind == "application/x-protobuf" {
                    let req = ExportTraceServiceRequest::decode(body.clone()).expect("an OTLP protobuf export");
                    for rs in req.resource_spans {
                        for ss in rs.scope_spans {
                            got.spans.extend(ss.spans);
                        }
                    }
                }
                got.bodies.push((kind, body));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (got, url)
}

fn settings(url: &str) -> TraceSettings {
    TraceSettings { endpoint: Some(url.to_string()), export_interval: Duration::from_millis(100), ..Default::default() }
}

fn attr<'a>(s: &'a Span, key: &str) -> Option<&'a Any> {
    s.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.as_ref())
}

fn text<'a>(s: &'a Span, key: &str) -> Option<&'a str> {
    match attr(s, key) {
        Some(Any::StringValue(v)) => Some(v.as_str()),
        _ => None,
    }
}

fn int(s: &Span, key: &str) -> Option<i64> {
    match attr(s, key) {
        Some(Any::IntValue(v)) => Some(*v),
        _ => None,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Waits until spans of trace `trace_id` named as in `names` have all arrived; returns that trace.
async fn trace_of(got: &Arc<Mutex<Received>>, trace_id: &str, names: &[&str]) -> Vec<Span> {
    for _ in 0..100 {
        let spans: Vec<Span> =
            got.lock().unwrap().spans.iter().filter(|s| hex(&s.trace_id) == trace_id).cloned().collect();
        if names.iter().all(|n| spans.iter().any(|s| s.name == *n)) {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let names: Vec<String> = got.lock().unwrap().spans.iter().map(|s| s.name.clone()).collect();
    panic!("spans {names:?} arrived, not all of {names:?} of trace {trace_id}")
}

fn named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no span {name}"))
}

/// A query of endpoint `chat` sent with `traceparent`.
async fn traced(r: &crate::dataplane::Rig, traceparent: &str, body: Value) -> reqwest::Response {
    r.t.http
        .post(format!("{}/serving-endpoints/chat/invocations", r.t.base))
        .bearer_auth(&r.t.token)
        .header("traceparent", traceparent)
        .json(&body)
        .send()
        .await
        .unwrap()
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn spans_arrive_with_genai_attributes_and_parent_links() {
    let (got, url) = collector().await;
    let r = rig_with(Options::default(), |c| c.traces = settings(&url)).await;
    r.endpoint("chat", vec![r.openai("gpt-4o", "llm/v1/chat")]).await;
    let resp = traced(
        &r,
        &format!("00-{TRACE}-{CLIENT_SPAN}-01"),
        json!({"messages": [{"role": "user", "content": "hello secret plans"}], "max_tokens": 20, "temperature": 0.5}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let spans = trace_of(&got, TRACE, &["chat chat", "admission", "chat gpt-4o"]).await;
    let root = named(&spans, "chat chat");
    assert_eq!(hex(&root.parent_span_id), CLIENT_SPAN, "the client's trace is continued");
    assert_eq!(root.kind, SpanKind::Server as i32);
    assert_eq!(text(root, "gen_ai.operation.name"), Some("chat"));
    assert_eq!(text(root, "gen_ai.request.model"), Some("chat"));
    assert_eq!(text(root, "gen_ai.system"), Some("openai"));
    assert_eq!(text(root, "gen_ai.response.model"), Some("gpt-4o"));
    assert_eq!(int(root, "gen_ai.request.max_tokens"), Some(20));
    assert!(int(root, "gen_ai.usage.input_tokens").is_some_and(|n| n > 0), "{root:?}");
    assert!(int(root, "gen_ai.usage.output_tokens").is_some_and(|n| n > 0), "{root:?}");
    assert_eq!(int(root, "http.response.status_code"), Some(200));
    let admission = named(&spans, "admission");
    let attempt = named(&spans, "chat gpt-4o");
    for child in [admission, attempt] {
        assert_eq!(child.parent_span_id, root.span_id, "{} is a child of the query", child.name);
    }
    assert_eq!(attempt.kind, SpanKind::Client as i32);
    assert_eq!(text(attempt, "gen_ai.system"), Some("openai"));
    assert!(text(attempt, "server.address").is_some_and(|a| a.starts_with("127.0.0.1:")), "{attempt:?}");
    // The attempt's own context went upstream.
    let sent = r.mock.last("/v1/chat/completions").unwrap();
    let upstream = sent.headers.iter().find(|(k, _)| k == "traceparent").map(|(_, v)| v.clone()).unwrap();
    assert_eq!(upstream, format!("00-{TRACE}-{}-01", hex(&attempt.span_id)));
    // No conversation text without --trace-content.
    let all = format!("{spans:?}");
    assert!(!all.contains("secret plans"), "{all}");

    // A stream: its own span under the query's.
    let trace2 = "0af7651916cd43dd8448eb211c80319c";
    let resp = traced(
        &r,
        &format!("00-{trace2}-b7ad6b7169203331-01"),
        json!({"messages": [{"role": "user", "content": "stream it"}], "stream": true}),
    )
    .await;
    assert!(resp.text().await.unwrap().contains("[DONE]"));
    let spans = trace_of(&got, trace2, &["chat chat", "stream", "chat gpt-4o"]).await;
    let root = named(&spans, "chat chat");
    assert_eq!(named(&spans, "stream").parent_span_id, root.span_id);
    assert!(root.end_time_unix_nano >= named(&spans, "stream").end_time_unix_nano, "the query ends last");

    // A failure marks the query and the attempt.
    r.mock.force_status.store(503, std::sync::atomic::Ordering::SeqCst);
    let trace3 = "11111111111111111111111111111111";
    let resp = traced(
        &r,
        &format!("00-{trace3}-2222222222222222-01"),
        json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let spans = trace_of(&got, trace3, &["chat chat", "chat gpt-4o"]).await;
    let root = named(&spans, "chat chat");
    let status = |s: &Span| s.status.as_ref().map(|st| st.code).unwrap_or_default();
    assert_eq!(status(root), 2, "error status: {root:?}");
    assert!(text(root, "error.type").is_some());
    assert_eq!(text(named(&spans, "chat gpt-4o"), "error.type"), Some("http_503"));
}

#[tokio::test]
async fn content_only_when_asked_sampling_followed_and_json_encoding() {
    let (got, url) = collector().await;
    let r = rig_with(Options::default(), |c| {
        c.traces = TraceSettings { content: true, sample_ratio: 0.0, protocol: OtlpProtocol::Json, ..settings(&url) }
    })
    .await;
    r.endpoint("chat", vec![r.openai("gpt-4o", "llm/v1/chat")]).await;
    let ask = |traceparent: Option<String>| {
        let mut req =
            r.t.http
                .post(format!("{}/serving-endpoints/chat/invocations", r.t.base))
                .bearer_auth(&r.t.token)
                .json(&json!({"messages": [{"role": "user", "content": "the quarterly numbers"}]}));
        if let Some(tp) = traceparent {
            req = req.header("traceparent", tp);
        }
        req.send()
    };
    // Ratio 0: a trace started here is not recorded ...
    assert_eq!(ask(None).await.unwrap().status(), StatusCode::OK);
    // ... but a client's sampled trace is followed.
    assert_eq!(ask(Some(format!("00-{TRACE}-{CLIENT_SPAN}-01"))).await.unwrap().status(), StatusCode::OK);
    let mut bodies = Vec::new();
    for _ in 0..100 {
        bodies = got.lock().unwrap().bodies.clone();
        if bodies.iter().any(|(_, b)| String::from_utf8_lossy(b).contains("the quarterly numbers")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!bodies.is_empty(), "an export arrived");
    let mut traces = std::collections::BTreeSet::new();
    for (kind, body) in &bodies {
        assert_eq!(kind, "application/json");
        let v: Value = serde_json::from_slice(body).unwrap();
        for span in v["resourceSpans"][0]["scopeSpans"][0]["spans"].as_array().unwrap() {
            traces.insert(span["traceId"].as_str().unwrap().to_lowercase());
        }
    }
    assert_eq!(traces.into_iter().collect::<Vec<_>>(), [TRACE.to_string()], "only the client's sampled trace");
    let all: String = bodies.iter().map(|(_, b)| String::from_utf8_lossy(b).into_owned()).collect();
    assert!(all.contains("gen_ai.input.messages") && all.contains("the quarterly numbers"), "{all}");
    assert!(all.contains("gen_ai.output.messages"), "{all}");
}

#[tokio::test]
async fn a_bad_collector_url_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = crate::common::config(dir.path().to_path_buf());
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.traces.endpoint = Some("ftp://collector:4318".into());
    let err = modelgate_server::Server::start(cfg).await.err().expect("refused");
    assert!(err.to_string().contains("--otlp-endpoint"), "{err}");
}
