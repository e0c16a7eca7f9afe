//! No leaks: keys echoed by an upstream never reach clients or the inference table, webhook URLs
//! are masked, hidden endpoints stay hidden by id; and queries whose clients hang up are billed.

use std::time::Duration;

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const KEY: &str = "sk-leak-canary-4242";

#[tokio::test]
async fn keys_echoed_by_an_upstream_are_redacted_everywhere() {
    let (_m, url) = mock().await;
    let t = TestServer::start_with(|c| c.retries.retries = 0).await;
    t.secret("llm", "k", KEY).await;
    create_ready(
        &t,
        json!({"name": "echo", "config": {"served_entities": [mock_entity("a", &url, json!({}))]},
               "ai_gateway": {"inference_table_config": {"enabled": true, "catalog_name": "c", "schema_name": "s"}}}),
    )
    .await;
    let ask = |content: &str, stream: bool| {
        t.http
            .post(format!("{}/v1/chat/completions", t.base))
            .bearer_auth(&t.token)
            .json(&json!({"model": "echo", "messages": [{"role": "user", "content": content}], "stream": stream}))
            .send()
    };

    // A 200 whose body is an error quoting the key: a 502, redacted.
    let resp = ask("__echo_key_error__", false).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let body = resp.text().await.unwrap();
    assert!(!body.contains(KEY) && body.contains("***") && body.contains("status 200 but is an error"), "{body}");

    // A mid-stream error event quoting it.
    let resp = ask("__echo_key_stream__", true).await.unwrap();
    let body = resp.text().await.unwrap();
    assert!(!body.contains(KEY) && body.contains("***") && !body.contains("[DONE]"), "{body}");

    // An error status quoting it (already redacted before; still is).
    let resp = ask("__status_401__", false).await.unwrap();
    let body = resp.text().await.unwrap();
    assert!(!body.contains(KEY), "{body}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, table) = t.get("/api/2.0/serving-endpoints/echo/inference-table?limit=100").await;
    assert_eq!(s, StatusCode::OK, "{table}");
    assert!(table.to_string().matches("databricks_request_id").count() >= 3, "{table}");
    assert!(!table.to_string().contains(KEY), "the inference table holds no key: {table}");
}

#[tokio::test]
async fn hidden_endpoints_stay_hidden_by_id() {
    let t = TestServer::start().await;
    t.secret("llm", "k", KEY).await;
    let (_, e) = t
        .post(
            "/api/2.0/serving-endpoints",
            create_body("project-x", vec![openai_entity("gpt-4o", "{{secrets/llm/k}}")]),
        )
        .await;
    let id = e["id"].as_str().unwrap().to_string();
    create_principal(&t, "Users", json!({"userName": "eve@example.com"})).await;
    let eve = token_for(&t, json!({"user_name": "eve@example.com"})).await;

    for (method, path, body) in [
        (Method::GET, format!("/api/2.0/permissions/serving-endpoints/{id}"), None),
        (Method::GET, format!("/api/2.0/permissions/serving-endpoints/{id}/permissionLevels"), None),
        (
            Method::PATCH,
            format!("/api/2.0/permissions/serving-endpoints/{id}"),
            Some(json!({"access_control_list": []})),
        ),
    ] {
        let got = t.call_as(Some(&eve), method, &path, body).await;
        assert_error(&got, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", &id);
        assert!(!got.1.to_string().contains("project-x"), "the name is not revealed: {}", got.1);
    }
    // Names are one namespace: a taken name is all a create reveals.
    let got = t
        .call_as(
            Some(&eve),
            Method::POST,
            "/api/2.0/serving-endpoints",
            Some(create_body("project-x", vec![openai_entity("gpt-4o", "{{secrets/llm/k}}")])),
        )
        .await;
    assert_eq!(got.0, StatusCode::CONFLICT, "{}", got.1);
    assert!(!got.1.to_string().contains(&id) && !got.1.to_string().contains("admin"), "{}", got.1);
}

#[tokio::test]
async fn webhook_urls_are_masked_and_may_live_in_secrets() {
    let t = TestServer::start().await;
    let (s, b) = t
        .post(
            "/api/2.0/alert-destinations",
            json!({"name": "slack", "url": "https://hooks.slack.com/services/T0/B0/sEcReT", "format": "slack"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["url"], "https://hooks.slack.com/***");
    t.secret("hooks", "teams", "https://example.webhook.office.com/webhookb2/sEcReT").await;
    let (s, b) =
        t.post("/api/2.0/alert-destinations", json!({"name": "teams", "url": "{{secrets/hooks/teams}}"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["url"], "{{secrets/hooks/teams}}");
    let (_, list) = t.get("/api/2.0/alert-destinations").await;
    assert!(!list.to_string().contains("sEcReT"), "{list}");
    let got = t.post("/api/2.0/alert-destinations", json!({"name": "bad", "url": "{{ secrets/hooks/teams }}"})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "url");
}

async fn report_row(t: &TestServer, endpoint: &str) -> Value {
    let (_, r) = t.get("/api/2.0/usage?group_by=endpoint").await;
    r["rows"].as_array().unwrap().iter().find(|row| row["endpoint"] == endpoint).cloned().unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_client_that_hangs_up_is_billed_and_cannot_dodge_a_budget() {
    let (_m, url) = mock_with(modelgate_mock_upstream::Options {
        chunk_interval: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let t = TestServer::start().await;
    t.secret("llm", "k", KEY).await;
    let (_, p) = t
        .post(
            "/api/2.0/budget-policies",
            json!({"name": "tiny", "period": "day", "amount_usd": 0.0001, "action": "BLOCK"}),
        )
        .await;
    let policy = p["policy_id"].as_str().unwrap().to_string();
    create_ready(
        &t,
        json!({"name": "hangup", "budget_policy_id": policy,
               "config": {"served_entities": [mock_entity("a", &url, json!({}))]},
               "ai_gateway": {"inference_table_config": {"enabled": true, "catalog_name": "c", "schema_name": "s"}}}),
    )
    .await;

    // Long prompts: each query is worth more than the whole budget.
    let prompt = "tell me about the weather in every city you know ".repeat(20);
    let body = json!({"model": "hangup", "messages": [{"role": "user", "content": prompt}], "stream": true});
    let resp = t.http.post(format!("{}/v1/chat/completions", t.base)).bearer_auth(&t.token).json(&body).send().await;
    assert_eq!(resp.as_ref().unwrap().status(), StatusCode::OK);
    drop(resp); // gone right after the headers

    let mut row = Value::Null;
    for _ in 0..100 {
        row = report_row(&t, "hangup").await;
        if row["requests"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(row["requests"], 1, "{row}");
    assert_eq!(row["errors"], 1, "a disconnected query is not a success: {row}");
    assert!(row["input_tokens"].as_i64().unwrap() > 100, "the prompt is billed: {row}");
    assert!(row["cost_usd"].as_f64().unwrap() > 0.0001, "{row}");

    let (_, table) = t.get("/api/2.0/serving-endpoints/hangup/inference-table?limit=10").await;
    let rec = &table["records"][0];
    assert_eq!(rec["status_code"], 499, "{table}");
    assert!(table.to_string().contains("CLIENT_DISCONNECTED"), "{table}");

    // The budget saw it: the next query is refused.
    let (s, b) = t
        .post("/v1/chat/completions", json!({"model": "hangup", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
    assert!(b["message"].as_str().unwrap().contains("Budget policy 'tiny'"), "{b}");
}
