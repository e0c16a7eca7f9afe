//! Failover, circuit breakers, retries and traffic splits against fault-injecting fake upstreams.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::*;
use modelgate_mock_upstream::Mock;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SE: &str = "/api/2.0/serving-endpoints";

async fn server(tweak: impl FnOnce(&mut modelgate_server::ServerConfig)) -> TestServer {
    let t = TestServer::start_with(tweak).await;
    t.secret("llm", "k", "sk-res").await;
    t
}

async fn ask(t: &TestServer, name: &str) -> (StatusCode, Option<String>, Value) {
    let resp = t
        .http
        .post(format!("{}/serving-endpoints/{name}/invocations", t.base))
        .bearer_auth(&t.token)
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let served = resp.headers().get("served-model-name").and_then(|v| v.to_str().ok()).map(str::to_string);
    (resp.status(), served, resp.json().await.unwrap_or(Value::Null))
}

fn chat_requests(m: &Mock) -> usize {
    m.requests.lock().unwrap().iter().filter(|r| r.path == "/v1/chat/completions").count()
}

#[tokio::test]
async fn a_429_storm_trips_the_breaker_traffic_moves_and_returns_after_the_cooldown() {
    let (a, a_url) = mock().await;
    let (b, b_url) = mock().await;
    let t = server(|c| {
        c.breaker.failures = 3;
        c.breaker.cooldown = Duration::from_millis(800);
    })
    .await;
    create_ready(
        &t,
        json!({"name": "pool", "config": {"served_entities": [
        mock_entity("east", &a_url, json!({"priority": 1})), mock_entity("west", &b_url, json!({"priority": 2}))]}}),
    )
    .await;
    assert_eq!(ask(&t, "pool").await.1.as_deref(), Some("east"), "the first tier serves while healthy");

    a.force_status.store(429, Ordering::SeqCst);
    let before = chat_requests(&a);
    for i in 0..10 {
        let (s, served, body) = ask(&t, "pool").await;
        assert_eq!((s, served.as_deref()), (StatusCode::OK, Some("west")), "request {i}: {body}");
    }
    assert_eq!(chat_requests(&a) - before, 3, "east got exactly the 3 failures that opened its breaker");
    let (_, e) = t.get(&format!("{SE}/pool")).await;
    let east = e["config"]["served_entities"].as_array().unwrap().iter().find(|s| s["name"] == "east").unwrap().clone();
    assert!(east["state"]["deployment_state_message"].as_str().unwrap().contains("Circuit breaker open"), "{east}");

    a.force_status.store(0, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(ask(&t, "pool").await.1.as_deref(), Some("east"), "the half-open probe succeeds and east is back");
    assert_eq!(ask(&t, "pool").await.1.as_deref(), Some("east"));
    let _ = b;
}

#[tokio::test]
async fn server_errors_fail_over_only_when_fallback_is_enabled() {
    let (a, a_url) = mock().await;
    let (_b, b_url) = mock().await;
    let t = server(|c| {
        c.retries.retries = 2;
        c.retries.backoff = Duration::from_millis(10);
        c.breaker.failures = 1000;
    })
    .await;
    let routes = json!({"routes": [{"served_entity_name": "primary", "traffic_percentage": 100},
                                   {"served_entity_name": "backup", "traffic_percentage": 0}]});
    create_ready(&t, json!({"name": "fb", "ai_gateway": {"fallback_config": {"enabled": true}}, "config": {
        "served_entities": [mock_entity("primary", &a_url, json!({})), mock_entity("backup", &b_url, json!({}))], "traffic_config": routes.clone()}})).await;
    create_ready(&t, json!({"name": "nofb", "config": {
        "served_entities": [mock_entity("primary", &a_url, json!({})), mock_entity("backup", &b_url, json!({}))], "traffic_config": routes}})).await;
    a.force_status.store(500, Ordering::SeqCst);

    let (s, served, _) = ask(&t, "fb").await;
    assert_eq!((s, served.as_deref()), (StatusCode::OK, Some("backup")), "a 500 fails over to the next entity");

    let before = chat_requests(&a);
    let (s, served, body) = ask(&t, "nofb").await;
    assert_eq!((s, served.as_deref()), (StatusCode::BAD_GATEWAY, Some("primary")), "{body}");
    assert_eq!(chat_requests(&a) - before, 3, "without fallback: the first attempt and 2 retries, same entity");

    // A Retry-After beyond the cap is not waited for: the client gets it at once.
    a.force_status.store(429, Ordering::SeqCst);
    a.retry_after.store(60, Ordering::SeqCst);
    let before = chat_requests(&a);
    let started = std::time::Instant::now();
    let resp = t
        .http
        .post(format!("{}/serving-endpoints/nofb/invocations", t.base))
        .bearer_auth(&t.token)
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers().get("retry-after").unwrap(), "60");
    assert_eq!(chat_requests(&a) - before, 1);
    assert!(started.elapsed() < Duration::from_secs(5));
}

fn breaker_note(e: &Value, entity: &str) -> String {
    e["config"]["served_entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == entity)
        .and_then(|s| s["state"]["deployment_state_message"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn all_breakers_open_answers_503_at_once_with_retry_after() {
    let (a, a_url) = mock().await;
    let (b, b_url) = mock().await;
    let t = server(|c| {
        c.breaker.failures = 2;
        c.breaker.cooldown = Duration::from_secs(30);
        c.retries.retries = 0;
    })
    .await;
    create_ready(
        &t,
        json!({"name": "pair", "ai_gateway": {"fallback_config": {"enabled": true}}, "config": {
        "served_entities": [mock_entity("a", &a_url, json!({})), mock_entity("b", &b_url, json!({}))]}}),
    )
    .await;
    a.force_status.store(503, Ordering::SeqCst);
    b.force_status.store(503, Ordering::SeqCst);
    ask(&t, "pair").await;
    ask(&t, "pair").await;
    let before = chat_requests(&a) + chat_requests(&b);
    let started = std::time::Instant::now();
    let (s, _, body) = ask(&t, "pair").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["message"].as_str().unwrap().contains("circuit breakers are open"));
    assert_eq!(chat_requests(&a) + chat_requests(&b), before, "open breakers send the upstreams nothing");
    assert!(started.elapsed() < Duration::from_millis(500), "no wait: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_single_entity_is_never_cut_off_by_its_breaker() {
    let (a, a_url) = mock().await;
    let t = server(|c| {
        c.breaker.failures = 2;
        c.breaker.cooldown = Duration::from_secs(30);
        c.retries.retries = 0;
    })
    .await;
    create_ready(&t, json!({"name": "solo", "config": {"served_entities": [mock_entity("only", &a_url, json!({}))]}}))
        .await;
    a.force_status.store(503, Ordering::SeqCst);
    ask(&t, "solo").await;
    ask(&t, "solo").await;
    let (_, e) = t.get(&format!("{SE}/solo")).await;
    assert!(breaker_note(&e, "only").contains("Circuit breaker open"), "{e}");

    // The upstream recovers: the next query still reaches it (there is nowhere else to send it)
    // and its success closes the breaker.
    a.force_status.store(0, Ordering::SeqCst);
    let before = chat_requests(&a);
    let (s, served, body) = ask(&t, "solo").await;
    assert_eq!((s, served.as_deref()), (StatusCode::OK, Some("only")), "{body}");
    assert_eq!(chat_requests(&a) - before, 1);
    let (_, e) = t.get(&format!("{SE}/solo")).await;
    assert!(!breaker_note(&e, "only").contains("Circuit breaker"), "{e}");
}

#[tokio::test]
async fn the_retries_of_one_query_count_as_one_failure() {
    let (a, a_url) = mock().await;
    let (_b, b_url) = mock().await;
    let t = server(|c| {
        c.breaker.failures = 2;
        c.breaker.cooldown = Duration::from_secs(30);
        c.retries.retries = 2;
        c.retries.backoff = Duration::from_millis(5);
    })
    .await;
    let routes = json!({"routes": [{"served_entity_name": "a", "traffic_percentage": 100},
                                   {"served_entity_name": "b", "traffic_percentage": 0}]});
    create_ready(&t, json!({"name": "split", "config": {
        "served_entities": [mock_entity("a", &a_url, json!({})), mock_entity("b", &b_url, json!({}))], "traffic_config": routes}}))
    .await;
    a.force_status.store(500, Ordering::SeqCst);
    let before = chat_requests(&a);
    let (s, _, _) = ask(&t, "split").await;
    assert_eq!(s, StatusCode::BAD_GATEWAY);
    assert_eq!(chat_requests(&a) - before, 3, "the first attempt and two retries");
    let (_, e) = t.get(&format!("{SE}/split")).await;
    assert!(!breaker_note(&e, "a").contains("Circuit breaker"), "three failed calls of one query are one failure: {e}");
}

#[tokio::test]
async fn an_open_breaker_moves_the_split_to_the_other_entities_and_a_new_config_resets_it() {
    let (a, a_url) = mock().await;
    let (b, b_url) = mock().await;
    let t = server(|c| {
        c.breaker.failures = 1;
        c.breaker.cooldown = Duration::from_secs(30);
        c.retries.retries = 0;
    })
    .await;
    let routes = json!({"routes": [{"served_entity_name": "a", "traffic_percentage": 50},
                                   {"served_entity_name": "b", "traffic_percentage": 50}]});
    create_ready(&t, json!({"name": "half", "config": {
        "served_entities": [mock_entity("a", &a_url, json!({})), mock_entity("b", &b_url, json!({}))], "traffic_config": routes.clone()}}))
    .await;
    a.force_status.store(500, Ordering::SeqCst);
    // Until the split first picks a, which fails and opens a's breaker.
    let mut opened = false;
    for _ in 0..50 {
        if ask(&t, "half").await.0 != StatusCode::OK {
            opened = true;
            break;
        }
    }
    assert!(opened, "the split never picked a");
    let before = chat_requests(&a);
    for i in 0..20 {
        let (s, served, body) = ask(&t, "half").await;
        assert_eq!((s, served.as_deref()), (StatusCode::OK, Some("b")), "query {i}: {body}");
    }
    assert_eq!(chat_requests(&a), before, "a gets nothing while its breaker is open");
    let _ = b;

    // A new config for a (another backend) starts with a closed breaker.
    let (fixed, fixed_url) = mock().await;
    let (s, body) = t
        .put(
            &format!("{SE}/half/config"),
            json!({"served_entities": [mock_entity("a", &fixed_url, json!({})), mock_entity("b", &b_url, json!({}))],
                   "traffic_config": routes}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let e = t.wait_settled("half").await;
    assert!(!breaker_note(&e, "a").contains("Circuit breaker"), "{e}");
    let mut reached = false;
    for _ in 0..50 {
        if ask(&t, "half").await.1.as_deref() == Some("a") {
            reached = true;
            break;
        }
    }
    assert!(reached && chat_requests(&fixed) > 0, "the replaced entity takes traffic again");
}

#[tokio::test]
async fn traffic_splits_and_pool_weights_hold_their_shares() {
    let (_a, a_url) = mock().await;
    let t = server(|_| {}).await;
    create_ready(
        &t,
        json!({"name": "split", "config": {
        "served_entities": [mock_entity("seventy", &a_url, json!({})), mock_entity("thirty", &a_url, json!({}))],
        "traffic_config": {"routes": [{"served_entity_name": "seventy", "traffic_percentage": 70},
                                      {"served_entity_name": "thirty", "traffic_percentage": 30}]}}}),
    )
    .await;
    create_ready(&t, json!({"name": "weighted", "config": {"served_entities": [
        mock_entity("heavy", &a_url, json!({"priority": 1, "weight": 3})), mock_entity("light", &a_url, json!({"priority": 1, "weight": 1})),
        mock_entity("standby", &a_url, json!({"priority": 2}))]}})).await;
    for (name, n, expect, tolerance) in
        [("split", 2000, ("seventy", 0.70), 0.04), ("weighted", 1200, ("heavy", 0.75), 0.05)]
    {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for _ in 0..n {
            *seen.entry(ask(&t, name).await.1.unwrap()).or_default() += 1;
        }
        let share = seen.get(expect.0).copied().unwrap_or(0) as f64 / n as f64;
        assert!((share - expect.1).abs() < tolerance, "{name}: {seen:?}");
        assert!(!seen.contains_key("standby"), "the second tier only serves when the first fails: {seen:?}");
    }
}
