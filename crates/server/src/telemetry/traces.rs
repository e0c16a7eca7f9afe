//! OpenTelemetry traces of the data plane (`serve --otlp-endpoint`): one span per query, with the
//! GenAI semantic conventions, and child spans for its admission, each upstream attempt and its
//! stream, exported over OTLP/HTTP (protobuf or JSON) in batches.
//!
//! A client's W3C `traceparent` (and `tracestate`) is continued: the query's span is its child,
//! and each upstream attempt forwards its own `traceparent`, so a provider (or a proxy in front of
//! it) that traces joins the same trace. Sampling follows the parent's decision, else the
//! configured ratio. Prompts and answers are recorded only with `--trace-content`.
//!
//! Off by default: without an endpoint nothing here runs.
//!
//! The SDK's batch processor exports from a thread of its own; the export's HTTP call runs on the
//! server's runtime with its client ([`OnRuntime`]), so no second HTTP stack is built.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderValue;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanBuilder, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider};

/// Where and how traces are exported.
#[derive(Debug, Clone)]
pub struct TraceSettings {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`; `/v1/traces` is added unless
    /// given); `None`: tracing is off.
    pub endpoint: Option<String>,
    /// OTLP/HTTP encoding.
    pub protocol: OtlpProtocol,
    /// Headers sent with every export (a collector's API key).
    pub headers: Vec<(String, String)>,
    /// Share of traces started here that are recorded, 0 to 1 (a client's sampled parent is
    /// always followed).
    pub sample_ratio: f64,
    /// Record prompts and answers in spans.
    pub content: bool,
    /// How often finished spans are sent.
    pub export_interval: Duration,
}

impl Default for TraceSettings {
    fn default() -> Self {
        TraceSettings {
            endpoint: None,
            protocol: OtlpProtocol::Protobuf,
            headers: Vec::new(),
            sample_ratio: 1.0,
            content: false,
            export_interval: Duration::from_secs(2),
        }
    }
}

/// OTLP/HTTP encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `http/protobuf`.
    Protobuf,
    /// `http/json`.
    Json,
}

/// The exporter's HTTP client: the server's own, its calls run on the server's runtime.
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OnRuntime {
    async fn send_bytes(
        &self,
        request: axum::http::Request<Bytes>,
    ) -> Result<axum::http::Response<Bytes>, opentelemetry_http::HttpError> {
        let request = reqwest::Request::try_from(request.map(reqwest::Body::from))?;
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let resp = client.execute(request).await?;
            let mut out = axum::http::Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                out = out.header(k, v);
            }
            let body = resp.bytes().await?;
            Ok::<_, opentelemetry_http::HttpError>(out.body(body)?)
        });
        sent.await?
    }
}

/// The server's tracer.
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    content: bool,
}

impl Traces {
    /// Starts exporting per `settings` with `client`; `None` when tracing is off. Fails on an
    /// endpoint or header that cannot be used.
    pub fn start(settings: &TraceSettings, client: reqwest::Client) -> Result<Option<Arc<Traces>>, String> {
        let Some(base) = settings.endpoint.as_deref() else { return Ok(None) };
        let url = if base.trim_end_matches('/').ends_with("/v1/traces") {
            base.to_string()
        } else {
            format!("{}/v1/traces", base.trim_end_matches('/'))
        };
        let parsed = url::Url::parse(&url).map_err(|e| format!("--otlp-endpoint '{base}': {e}"))?;
        if !["http", "https"].contains(&parsed.scheme()) {
            return Err(format!("--otlp-endpoint '{base}': use an http:// or https:// URL (OTLP over HTTP)"));
        }
        if !(0.0..=1.0).contains(&settings.sample_ratio) {
            return Err(format!("--trace-sample-ratio must be from 0 to 1, got {}", settings.sample_ratio));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| format!("tracing needs the runtime: {e}"))?;
        let protocol = match settings.protocol {
            OtlpProtocol::Protobuf => Protocol::HttpBinary,
            OtlpProtocol::Json => Protocol::HttpJson,
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(OnRuntime { client, runtime })
            .with_endpoint(url)
            .with_protocol(protocol)
            .with_timeout(Duration::from_secs(10))
            .with_headers(settings.headers.iter().cloned().collect())
            .build()
            .map_err(|e| format!("--otlp-endpoint: {e}"))?;
        let batches = BatchConfigBuilder::default()
            .with_scheduled_delay(settings.export_interval)
            .with_max_queue_size(8192)
            .build();
        let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batches).build();
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name("modelgate")
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sample_ratio))))
            .with_resource(resource)
            .build();
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "modelgate");
        Ok(Some(Arc::new(Traces { provider, tracer, content: settings.content })))
    }

    /// Sends what is left and stops (off the runtime's threads: the SDK blocks while it flushes).
    pub async fn shutdown(&self) {
        let provider = self.provider.clone();
        let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = done {
            tracing::warn!(error = %e, "the last traces could not be sent");
        }
    }

    /// The span of a query named `name`, child of the client's `traceparent` (and `tracestate`)
    /// if it sent one.
    pub fn query(
        &self,
        name: String,
        traceparent: Option<&HeaderValue>,
        tracestate: Option<&HeaderValue>,
        attributes: Vec<KeyValue>,
    ) -> QueryTrace {
        let parent_cx = match traceparent {
            Some(traceparent) => TraceContextPropagator::new().extract(&Incoming { traceparent, tracestate }),
            None => Context::new(),
        };
        let builder = SpanBuilder::from_name(name).with_kind(SpanKind::Server).with_attributes(attributes);
        let span = self.tracer.build_with_context(builder, &parent_cx);
        QueryTrace { cx: parent_cx.with_span(span), tracer: self.tracer.clone(), content: self.content }
    }
}

/// A client's trace headers, for the propagator.
struct Incoming<'a> {
    traceparent: &'a HeaderValue,
    tracestate: Option<&'a HeaderValue>,
}

impl Extractor for Incoming<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.traceparent.to_str().ok(),
            "tracestate" => self.tracestate.and_then(|v| v.to_str().ok()),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// The trace of one query: its span (in a context, so children attach to it). Cloning shares it.
#[derive(Clone)]
pub struct QueryTrace {
    cx: Context,
    tracer: SdkTracer,
    content: bool,
}

/// A child span; ends when dropped (or with [`ChildSpan::end`]).
pub struct ChildSpan(opentelemetry_sdk::trace::Span);

impl ChildSpan {
    /// Adds an attribute.
    pub fn set(&mut self, kv: KeyValue) {
        self.0.set_attribute(kv);
    }

    /// Marks it failed with `why`.
    pub fn fail(&mut self, error_type: String, why: String) {
        self.0.set_attribute(KeyValue::new("error.type", error_type));
        self.0.set_status(Status::error(why));
    }

    /// The W3C `traceparent` naming this span, for the request it stands for.
    pub fn traceparent(&self) -> Option<HeaderValue> {
        let sc = self.0.span_context();
        sc.is_valid().then(|| {
            let value = format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8());
            HeaderValue::from_str(&value).ok()
        })?
    }

    /// Ends it now.
    pub fn end(mut self) {
        self.0.end();
    }
}

impl QueryTrace {
    /// Whether prompts and answers go into spans.
    pub fn content(&self) -> bool {
        self.content
    }

    /// Whether this query's trace is recorded (sampled).
    pub fn recording(&self) -> bool {
        self.cx.span().is_recording()
    }

    /// Starts a child span.
    pub fn child(&self, name: String, kind: SpanKind, attributes: Vec<KeyValue>) -> ChildSpan {
        let builder = SpanBuilder::from_name(name).with_kind(kind).with_attributes(attributes);
        ChildSpan(self.tracer.build_with_context(builder, &self.cx))
    }

    /// Adds attributes to the query's span.
    pub fn set(&self, attributes: Vec<KeyValue>) {
        self.cx.span().set_attributes(attributes);
    }

    /// Ends the query's span, failed with `error` (its type and message) if it failed.
    pub fn end(&self, error: Option<(String, String)>) {
        let span = self.cx.span();
        if let Some((kind, why)) = error {
            span.set_attribute(KeyValue::new("error.type", kind));
            span.set_status(Status::error(why));
        }
        span.end();
    }
}

/// `gen_ai.operation.name` of a task.
pub fn operation(task: Option<modelgate_providers::Task>) -> &'static str {
    use modelgate_providers::Task;
    match task {
        Some(Task::Chat) | None => "chat",
        Some(Task::Completions) => "text_completion",
        Some(Task::Embeddings) => "embeddings",
        Some(Task::Images) => "image_generation",
        Some(Task::Scoring) => "predict",
    }
}

/// The request attributes of the GenAI conventions a body carries.
pub fn request_attributes(body: &serde_json::Map<String, serde_json::Value>) -> Vec<KeyValue> {
    let mut out = Vec::new();
    let max = body.get("max_tokens").or_else(|| body.get("max_completion_tokens")).and_then(|v| v.as_i64());
    if let Some(n) = max {
        out.push(KeyValue::new("gen_ai.request.max_tokens", n));
    }
    for (field, key) in [("temperature", "gen_ai.request.temperature"), ("top_p", "gen_ai.request.top_p")] {
        if let Some(v) = body.get(field).and_then(|v| v.as_f64()) {
            out.push(KeyValue::new(key, v));
        }
    }
    if let Some(n) = body.get("n").and_then(|v| v.as_i64()) {
        out.push(KeyValue::new("gen_ai.request.choice.count", n));
    }
    out
}
