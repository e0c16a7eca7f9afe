//! Metrics: the counters agree with the requests made, per endpoint and served entity; breaker
//! state and upstream errors show; the per-endpoint view holds only that endpoint; access rules.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::*;
use reqwest::StatusCode;
use serde_json::json;

/// The value of the sample `name{labels}` (labels in exposition order), or `None`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.parse().ok()))
}

async fn metrics(t: &TestServer, path: &str) -> String {
    let r = t.http.get(format!("{}{path}", t.base)).bearer_auth(&t.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    r.text().await.unwrap()
}

#[tokio::test]
async fn counters_agree_with_the_requests_made() {
    let (a, a_url) = mock().await;
    let (_b, b_url) = mock().await;
    let t = TestServer::start_with(|c| {
        c.breaker.failures = 2;
        c.breaker.cooldown = Duration::from_secs(60);
    })
    .await;
    t.secret("llm", "k", "sk-metrics").await;
    create_ready(
        &t,
        json!({"name": "pool", "config": {"served_entities": [
            mock_entity("east", &a_url, json!({"priority": 1})), mock_entity("west", &b_url, json!({"priority": 2}))]}}),
    )
    .await;
    create_ready(&t, json!({"name": "other", "config": {"served_entities": [mock_entity("solo", &b_url, json!({}))]}}))
        .await;
    let (s, b) = t
        .put(
            "/api/2.0/serving-endpoints/other/ai-gateway",
            json!({"rate_limits": [{"key": "endpoint", "calls": 2, "renewal_period": "minute"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let chat = |model: &str, stream: bool| json!({"model": model, "messages": [{"role": "user", "content": "hello there"}], "stream": stream});
    for _ in 0..5 {
        let (s, b) = t.post("/v1/chat/completions", chat("pool", false)).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (s, _) = t.post("/v1/chat/completions", chat("pool", true)).await;
    assert_eq!(s, StatusCode::OK);
    // Two 500s from east trip its breaker; both requests fail over to west.
    a.force_status.store(500, Ordering::SeqCst);
    for _ in 0..2 {
        let (s, _) = t.post("/v1/chat/completions", chat("pool", false)).await;
        assert_eq!(s, StatusCode::OK);
    }
    let mut limited = 0;
    for _ in 0..4 {
        if t.post("/v1/chat/completions", chat("other", false)).await.0 == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
        }
    }
    assert!(limited >= 2, "{limited}");
    let (s, _) = t.post("/v1/chat/completions", chat("nope", false)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let text = metrics(&t, "/metrics").await;
    let east = r#"{endpoint_name="pool",served_entity="east"}"#;
    let west = r#"{endpoint_name="pool",served_entity="west"}"#;
    assert_eq!(sample(&text, &format!("request_count_total{east}")), Some(6.0), "{text}");
    assert_eq!(sample(&text, &format!("request_count_total{west}")), Some(2.0));
    assert_eq!(sample(&text, &format!("request_5xx_count_total{west}")), Some(0.0), "failed-over requests succeeded");
    assert_eq!(sample(&text, &format!("request_latency_ms_count{east}")), Some(6.0));
    // The mock reports 5 input and 3 output tokens per answer, the stream included: the gateway
    // asks OpenAI for its usage chunk even though the client did not.
    assert_eq!(sample(&text, &format!("input_tokens_total{west}")), Some(10.0));
    assert_eq!(sample(&text, &format!("output_tokens_total{west}")), Some(6.0));
    assert_eq!(sample(&text, &format!("output_tokens_total{east}")), Some(6.0 * 3.0));
    assert_eq!(sample(&text, &format!("time_to_first_token_ms_count{east}")), Some(1.0));
    assert_eq!(
        sample(
            &text,
            r#"upstream_error_count_total{endpoint_name="pool",served_entity="east",provider="openai",reason="http_500"}"#
        ),
        Some(2.0)
    );
    assert_eq!(sample(&text, &format!("circuit_breaker_open{east}")), Some(1.0));
    assert_eq!(sample(&text, &format!("circuit_breaker_open{west}")), Some(0.0));
    assert_eq!(sample(&text, r#"rate_limited_count_total{endpoint_name="other"}"#), Some(limited as f64));
    assert_eq!(
        sample(&text, r#"request_4xx_count_total{endpoint_name="other",served_entity=""}"#),
        Some(limited as f64),
        "refused before any entity"
    );
    assert!(!text.contains("nope"), "unknown endpoints make no series");
    assert!(text.trim_end().ends_with("# EOF"));

    // The counters agree with the usage records, series by series.
    let (_, report) = t.get("/api/2.0/usage?group_by=endpoint,served_entity").await;
    for row in report["rows"].as_array().unwrap() {
        if row["endpoint"] == "nope" {
            // In the request log, not in the metrics.
            assert_eq!(row["errors"], row["requests"], "{row}");
            continue;
        }
        let labels = format!(
            r#"{{endpoint_name="{}",served_entity="{}"}}"#,
            row["endpoint"].as_str().unwrap(),
            row["served_entity"].as_str().unwrap()
        );
        assert_eq!(sample(&text, &format!("request_count_total{labels}")), row["requests"].as_f64(), "{labels}");
        let tokens = |name: &str| sample(&text, &format!("{name}_total{labels}")).unwrap_or(0.0);
        assert_eq!(tokens("input_tokens"), row["input_tokens"].as_f64().unwrap(), "{labels}");
        assert_eq!(tokens("output_tokens"), row["output_tokens"].as_f64().unwrap(), "{labels}");
        assert!((tokens("cost_usd") - row["cost_usd"].as_f64().unwrap()).abs() < 1e-12, "{labels}");
    }

    let one = metrics(&t, "/api/2.0/serving-endpoints/other/metrics").await;
    assert!(one.contains(r#"request_count_total{endpoint_name="other",served_entity="solo"} 2"#), "{one}");
    assert!(!one.contains("pool"), "only the endpoint's own series: {one}");
    assert!(one.contains("# TYPE request_latency_ms histogram"));
}

#[tokio::test]
async fn metrics_need_admin_or_view_permission() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-metrics").await;
    create_ready(&t, json!({"name": "ep", "config": {"served_entities": [mock_entity("a", &url, json!({}))]}})).await;
    create_principal(&t, "Users", json!({"userName": "viewer@example.com"})).await;
    let token = token_for(&t, json!({"user_name": "viewer@example.com"})).await;
    let get = |path: &'static str| t.call_as(Some(&token), reqwest::Method::GET, path, None);
    assert_error(&get("/metrics").await, StatusCode::FORBIDDEN, "PERMISSION_DENIED", "admin");
    assert_eq!(get("/api/2.0/serving-endpoints/ep/metrics").await.0, StatusCode::NOT_FOUND, "not even visible");
    let id = t.get("/api/2.0/serving-endpoints/ep").await.1["id"].as_str().unwrap().to_string();
    let (s, _) = t
        .call(
            reqwest::Method::PATCH,
            &format!("/api/2.0/permissions/serving-endpoints/{id}"),
            Some(json!({"access_control_list": [{"user_name": "viewer@example.com", "permission_level": "CAN_VIEW"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(get("/api/2.0/serving-endpoints/ep/metrics").await.0, StatusCode::OK);
    assert_eq!(t.call_as(None, reqwest::Method::GET, "/metrics", None).await.0, StatusCode::UNAUTHORIZED);
}
