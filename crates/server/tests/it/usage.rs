//! Usage records and reports: exact counts, tokens and cost under concurrency; cached and
//! reasoning tokens priced as billed; grouping by tag, usage_context and time; re-pricing; who
//! may read what.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SE: &str = "/api/2.0/serving-endpoints";

/// gpt-4o: $2.50 input, $1.25 cached input, $10 output per million tokens.
fn gpt4o_cost(input: u64, cached: u64, output: u64) -> f64 {
    ((input - cached) as f64 * 2.5 + cached as f64 * 1.25 + output as f64 * 10.0) / 1e6
}

async fn report(t: &TestServer, query: &str) -> Value {
    let (s, b) = t.get(&format!("/api/2.0/usage?{query}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[tokio::test]
async fn records_match_the_requests_under_concurrency() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-usage").await;
    create_ready(
        &t,
        json!({"name": "ml-chat", "config": {"served_entities": [mock_entity("a", &url, json!({}))]},
               "tags": [{"key": "team", "value": "ml"}]}),
    )
    .await;
    create_ready(
        &t,
        json!({"name": "fin-chat", "config": {"served_entities": [mock_entity("b", &url, json!({}))]},
               "tags": [{"key": "team", "value": "finance"}]}),
    )
    .await;
    let send = |i: usize| {
        let model = if i.is_multiple_of(4) { "fin-chat" } else { "ml-chat" };
        let project = if i.is_multiple_of(2) { "alpha" } else { "beta" };
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi __usage_7__"}],
                          "usage_context": {"project": project}, "stream": i.is_multiple_of(10),
                          "stream_options": {"include_usage": true}});
        t.http.post(format!("{}/v1/chat/completions", t.base)).bearer_auth(&t.token).json(&body).send()
    };
    let responses = futures::future::join_all((0..200).map(send)).await;
    assert!(responses.iter().all(|r| r.as_ref().unwrap().status() == StatusCode::OK));
    for r in responses {
        r.unwrap().bytes().await.unwrap();
    }

    let by_endpoint = report(&t, "group_by=endpoint").await;
    let rows = by_endpoint["rows"].as_array().unwrap();
    let row = |name: &str| rows.iter().find(|r| r["endpoint"] == name).unwrap().clone();
    let (fin, ml) = (row("fin-chat"), row("ml-chat"));
    assert_eq!(fin["requests"], 50);
    assert_eq!(ml["requests"], 150);
    assert_eq!(ml["input_tokens"], 150 * 5);
    assert_eq!(ml["output_tokens"], 150 * 7);
    assert_eq!(fin["errors"], 0);
    assert!(close(ml["cost_usd"].as_f64().unwrap(), 150.0 * gpt4o_cost(5, 0, 7)), "{ml}");

    let by_tag = report(&t, "group_by=tag.team,usage_context.project").await;
    let got: Vec<(String, String, i64)> = by_tag["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["tag.team"].as_str().unwrap().into(),
                r["usage_context.project"].as_str().unwrap().into(),
                r["requests"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("finance".into(), "alpha".into(), 50), ("ml".into(), "alpha".into(), 50), ("ml".into(), "beta".into(), 100)]
    );

    let hourly = report(&t, "bucket=hour&group_by=requester").await;
    let rows = hourly["rows"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["bucket"].as_str().unwrap().ends_with(":00:00Z") && r["requester"] == "admin"));
    assert_eq!(rows.iter().map(|r| r["requests"].as_i64().unwrap()).sum::<i64>(), 200);
    let (s, summary) = t.get(&format!("{SE}/ml-chat/metrics-summary")).await;
    assert_eq!(s, StatusCode::OK, "{summary}");
    let five = &summary["windows"][0];
    assert_eq!(
        (five["window"].as_str(), five["requests"].as_i64(), five["errors"].as_i64()),
        (Some("5m"), Some(150), Some(0))
    );
    let (p50, p99) = (five["latency_ms"]["p50"].as_f64().unwrap(), five["latency_ms"]["p99"].as_f64().unwrap());
    assert!(p50 > 0.0 && p50 <= p99, "{five}");
    assert_eq!(five["output_tokens"], 150 * 7);
    let daily = report(&t, "bucket=day").await;
    assert_eq!(daily["rows"][0]["requests"], 200);
    assert_eq!(daily["rows"][0]["bucket"].as_str().unwrap().len(), 10, "YYYY-MM-DD");
}

#[tokio::test]
async fn cached_and_reasoning_tokens_are_priced_as_billed() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-usage").await;
    create_ready(&t, json!({"name": "ep", "config": {"served_entities": [mock_entity("a", &url, json!({}))]}})).await;
    // 5 + 1000 prompt tokens of which 1000 cached; 3 + 200 completion tokens of which 200 reasoning.
    let (s, b) = t
        .post(
            "/serving-endpoints/ep/invocations",
            json!({"messages": [{"role": "user", "content": "x __cached_1000__ __reasoning_200__"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let r = report(&t, "group_by=model").await;
    let row = &r["rows"][0];
    assert_eq!(row["model"], "gpt-4o");
    assert_eq!(row["input_tokens"], 1005);
    assert_eq!(row["output_tokens"], 203);
    let expected = gpt4o_cost(1005, 1000, 203);
    assert!(close(row["cost_usd"].as_f64().unwrap(), expected), "{row} vs {expected}");
    assert!(expected < gpt4o_cost(1005, 0, 203), "the cache discount applies");
}

#[tokio::test]
async fn errors_refusals_and_unknown_prices_are_recorded() {
    let (m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-usage").await;
    let custom = json!({"name": "own", "external_model": {"provider": "custom", "name": "llama-3-70b", "task": "llm/v1/chat",
        "custom_provider_config": {"custom_provider_url": format!("{url}/v1"), "bearer_token_auth": {"token": "{{secrets/llm/k}}"}}}});
    create_ready(&t, json!({"name": "ep", "config": {"served_entities": [custom]}})).await;
    let (s, _) = t
        .put(
            &format!("{SE}/ep/ai-gateway"),
            json!({"rate_limits": [{"key": "endpoint", "calls": 2, "renewal_period": "minute"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    m.force_status.store(500, std::sync::atomic::Ordering::SeqCst);
    let ask = || t.post("/serving-endpoints/ep/invocations", json!({"messages": [{"role": "user", "content": "hi"}]}));
    let statuses = [ask().await.0, ask().await.0, ask().await.0];
    assert_eq!(statuses[2], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    let r = report(&t, "group_by=served_entity").await;
    let rows = r["rows"].as_array().unwrap();
    let total: i64 = rows.iter().map(|r| r["requests"].as_i64().unwrap()).sum();
    let errors: i64 = rows.iter().map(|r| r["errors"].as_i64().unwrap()).sum();
    assert_eq!((total, errors), (3, 3), "{rows:?}");
    assert!(rows.iter().any(|r| r["served_entity"] == ""), "the rate-limited request reached no entity: {rows:?}");
    assert_eq!(rows.iter().map(|r| r["cost_usd"].as_f64().unwrap()).sum::<f64>(), 0.0, "self-hosted: no list price");
}

#[tokio::test]
async fn recompute_applies_a_corrected_price_table() {
    let (_m, url) = mock().await;
    let mut t = TestServer::start().await;
    t.secret("llm", "k", "sk-usage").await;
    create_ready(&t, json!({"name": "ep", "config": {"served_entities": [mock_entity("a", &url, json!({}))]}})).await;
    for _ in 0..4 {
        let (s, _) =
            t.post("/serving-endpoints/ep/invocations", json!({"messages": [{"role": "user", "content": "hi"}]})).await;
        assert_eq!(s, StatusCode::OK);
    }
    let before = report(&t, "").await;
    assert!(close(before["rows"][0]["cost_usd"].as_f64().unwrap(), 4.0 * gpt4o_cost(5, 0, 3)));
    assert!(before["price_version"].as_str().unwrap().starts_with("builtin-"));

    let file = t.dir.path().join("prices.json");
    std::fs::write(
        &file,
        r#"{"version": "negotiated-2026-11", "prices": [{"provider": "openai", "model": "gpt-4o", "input": 2.0, "output": 8.0}]}"#,
    )
    .unwrap();
    t.restart_with(|c| c.price_table = Some(file.clone())).await;
    let (s, b) = t.post("/api/2.0/usage/recompute", json!({"since": "0"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["records"], 4);
    assert!(b["price_version"].as_str().unwrap().ends_with("+negotiated-2026-11"));
    let after = report(&t, "start=0").await;
    let expected = 4.0 * (5.0 * 2.0 + 3.0 * 8.0) / 1e6;
    assert!(close(after["rows"][0]["cost_usd"].as_f64().unwrap(), expected), "{after}");

    let bad = t.dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"version": "x", "prices": [{"provider": "openai", "model": "gpt-4o", "input": -2, "output": 8}]}"#,
    )
    .unwrap();
    let mut cfg = t.config();
    cfg.price_table = Some(bad);
    t.server.take().unwrap().shutdown().await.unwrap();
    let err = modelgate_server::Server::start(cfg).await.err().expect("a bad price file refuses to start");
    assert!(err.to_string().contains("prices[0]"), "{err}");
}

#[tokio::test]
async fn reports_validate_input_and_show_only_managed_endpoints() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-usage").await;
    create_ready(&t, json!({"name": "ep", "config": {"served_entities": [mock_entity("a", &url, json!({}))]}})).await;
    let (s, _) =
        t.post("/serving-endpoints/ep/invocations", json!({"messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(s, StatusCode::OK);
    for (q, field) in [
        ("group_by=colour", "group_by"),
        ("bucket=year", "bucket"),
        ("start=yesterday", "start"),
        ("group_by=tag.a\"b", "group_by"),
    ] {
        let got = t.get(&format!("/api/2.0/usage?{q}")).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", field);
    }
    create_principal(&t, "Users", json!({"userName": "dev@example.com"})).await;
    let dev = token_for(&t, json!({"user_name": "dev@example.com"})).await;
    let (s, b) = t.call_as(Some(&dev), reqwest::Method::GET, "/api/2.0/usage?group_by=endpoint", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["rows"], json!([]), "a user without CAN_MANAGE sees nothing");
    let got =
        t.call_as(Some(&dev), reqwest::Method::POST, "/api/2.0/usage/recompute", Some(json!({"since": "0"}))).await;
    assert_error(&got, StatusCode::FORBIDDEN, "PERMISSION_DENIED", "admins");
}

#[tokio::test]
async fn streams_count_the_providers_usage_even_when_the_client_did_not_ask_for_it() {
    let (m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-usage").await;
    create_ready(&t, json!({"name": "ep", "config": {"served_entities": [mock_entity("a", &url, json!({}))]}})).await;
    // The mock reports 5 prompt and 41 completion tokens; a tokenizer count of the short echo
    // would be nowhere near 41.
    let ask = |stream_options: Value| {
        let mut body = json!({"messages": [{"role": "user", "content": "count __usage_41__"}], "stream": true});
        if !stream_options.is_null() {
            body["stream_options"] = stream_options;
        }
        t.http.post(format!("{}/serving-endpoints/ep/invocations", t.base)).bearer_auth(&t.token).json(&body).send()
    };

    let text = ask(Value::Null).await.unwrap().text().await.unwrap();
    let upstream = m.last("/chat/completions").unwrap().body;
    assert_eq!(upstream["stream_options"]["include_usage"], true, "the gateway asks the provider for usage");
    let payloads = sse_payloads(&text);
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
    assert!(
        payloads.iter().all(|p| !p.contains("\"usage\":{")),
        "the client did not ask for the usage chunk and does not get it: {text}"
    );
    let row = report(&t, "").await["rows"][0].clone();
    assert_eq!((row["input_tokens"].as_i64(), row["output_tokens"].as_i64()), (Some(5), Some(41)), "{row}");

    // A client that asked gets the chunk, as before.
    let text = ask(json!({"include_usage": true})).await.unwrap().text().await.unwrap();
    assert!(text.contains("\"completion_tokens\":41"), "{text}");
    let row = report(&t, "").await["rows"][0].clone();
    assert_eq!(row["output_tokens"], 82, "{row}");
    assert!(close(row["cost_usd"].as_f64().unwrap(), 2.0 * gpt4o_cost(5, 0, 41)), "{row}");
}

#[tokio::test]
async fn anyone_reads_their_own_usage_and_spend_and_nobody_elses() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-usage").await;
    create_principal(&t, "Users", json!({"userName": "dev@example.com"})).await;
    for name in ["chat-a", "chat-b"] {
        create_ready(&t, json!({"name": name, "config": {"served_entities": [mock_entity("a", &url, json!({}))]}}))
            .await;
        let (_, ep) = t.get(&format!("{SE}/{name}")).await;
        let acl = json!({"access_control_list": [{"user_name": "dev@example.com", "permission_level": "CAN_QUERY"}]});
        let perms = format!("/api/2.0/permissions/serving-endpoints/{}", ep["id"].as_str().unwrap());
        assert_eq!(t.put(&perms, acl).await.0, StatusCode::OK);
    }
    let dev = token_for(&t, json!({"user_name": "dev@example.com"})).await;
    let second = token_for(&t, json!({"user_name": "dev@example.com"})).await;
    let ask = json!({"messages": [{"role": "user", "content": "hi"}]});
    let queries = [(Some(&dev), "chat-a", 2), (Some(&second), "chat-b", 1), (None, "chat-a", 3)];
    for (who, name, times) in queries {
        for _ in 0..times {
            let path = format!("/serving-endpoints/{name}/invocations");
            let (s, b) = match who {
                Some(token) => t.call_as(Some(token), reqwest::Method::POST, &path, Some(ask.clone())).await,
                None => t.post(&path, ask.clone()).await,
            };
            assert_eq!(s, StatusCode::OK, "{b}");
        }
    }
    let as_dev = |q: &'static str| t.call_as(Some(&dev), reqwest::Method::GET, q, None);
    let (s, mine) = as_dev("/api/2.0/usage?mine=true&group_by=endpoint").await;
    assert_eq!(s, StatusCode::OK, "{mine}");
    let rows: Vec<(String, i64)> = mine["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["endpoint"].as_str().unwrap().to_string(), r["requests"].as_i64().unwrap()))
        .collect();
    assert_eq!(rows, [("chat-a".into(), 2), ("chat-b".into(), 1)], "only dev's own queries: {mine}");
    assert!(mine["rows"][0]["cost_usd"].as_f64().unwrap() > 0.0, "with their spend: {mine}");
    // By token: each of dev's two tokens has its own row.
    let (_, by_token) = as_dev("/api/2.0/usage?mine=true&group_by=token").await;
    let mut counts: Vec<i64> =
        by_token["rows"].as_array().unwrap().iter().map(|r| r["requests"].as_i64().unwrap()).collect();
    counts.sort();
    assert_eq!(counts, [1, 2], "{by_token}");
    assert!(by_token["rows"].as_array().unwrap().iter().all(|r| r["token"].as_str().is_some_and(|t| !t.is_empty())));
    assert!(!by_token.to_string().contains(&dev), "token values never appear");
    let (_, without) = as_dev("/api/2.0/usage?group_by=endpoint").await;
    assert_eq!(without["rows"], json!([]), "without mine, only managed endpoints (none)");
    // The admin's own view counts only the admin's queries.
    let all = report(&t, "mine=true&group_by=endpoint").await;
    assert_eq!(all["rows"][0]["requests"], 3, "{all}");
}
