//! Alerts: each default rule fires and resolves against a local webhook receiver, with exactly one
//! message per transition and destination, in the JSON, Slack and Teams formats.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use axum::extract::{Path, State};
use modelgate_mock_upstream::Options;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SE: &str = "/api/2.0/serving-endpoints";

type Inbox = Arc<Mutex<Vec<(String, Value)>>>;

/// A webhook receiver on loopback: every POST to `/{format}` is kept.
async fn receiver() -> (String, Inbox) {
    let inbox: Inbox = Arc::default();
    let app = axum::Router::new()
        .route(
            "/{format}",
            axum::routing::post(
                |State(inbox): State<Inbox>, Path(f): Path<String>, axum::Json(v): axum::Json<Value>| async move {
                    inbox.lock().unwrap().push((f, v));
                    StatusCode::OK
                },
            ),
        )
        .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, inbox)
}

/// JSON-format messages as (alert_id, state, kind, endpoint).
fn json_messages(inbox: &Inbox) -> Vec<(String, String, String, String)> {
    inbox
        .lock()
        .unwrap()
        .iter()
        .filter(|(f, _)| f == "json")
        .map(|(_, v)| {
            let a = &v["alert"];
            (
                a["alert_id"].as_str().unwrap().to_string(),
                v["status"].as_str().unwrap().to_string(),
                a["kind"].as_str().unwrap().to_string(),
                a["endpoint"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

async fn wait_for(inbox: &Inbox, kind: &str, endpoint: &str, state: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if json_messages(inbox).iter().any(|(_, s, k, e)| s == state && k == kind && e == endpoint) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {state} {kind} alert for '{endpoint}': {:?}", json_messages(inbox));
}

async fn tune(t: &TestServer, name: &str, change: Value) {
    let (_, rules) = t.get("/api/2.0/alert-rules").await;
    let rule = rules["rules"].as_array().unwrap().iter().find(|r| r["name"] == name).unwrap().clone();
    let mut body = rule.clone();
    let o = body.as_object_mut().unwrap();
    o.remove("rule_id");
    o.extend(change.as_object().unwrap().clone());
    let (s, b) = t.put(&format!("/api/2.0/alert-rules/{}", rule["rule_id"].as_str().unwrap()), body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

async fn ask(t: &TestServer, model: &str) -> StatusCode {
    t.post("/v1/chat/completions", json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})).await.0
}

#[tokio::test]
async fn each_default_alert_fires_and_resolves_once() {
    let (hook, inbox) = receiver().await;
    let (flaky, flaky_url) = mock().await;
    let (_slow, slow_url) = mock_with(Options { delay: Duration::from_millis(250), ..Default::default() }).await;
    let (storm, storm_url) = mock().await;
    let t = TestServer::start_with(|c| {
        c.alert_interval = Duration::from_millis(100);
        c.breaker.failures = 3;
        c.breaker.cooldown = Duration::from_millis(800);
        c.retries.retries = 0;
    })
    .await;
    t.secret("llm", "k", "sk-alerts").await;
    let (_, rules) = t.get("/api/2.0/alert-rules").await;
    let names: Vec<&str> = rules["rules"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "breaker-open",
            "budget-threshold",
            "deprecation",
            "error-rate",
            "latency-p95",
            "not-ready",
            "rate-limit-usage"
        ]
    );
    for format in ["json", "slack", "teams"] {
        let (s, b) = t
            .post(
                "/api/2.0/alert-destinations",
                json!({"name": format, "url": format!("{hook}/{format}"), "format": format}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    for (name, url) in [
        ("flaky", &flaky_url),
        ("slow", &slow_url),
        ("storm", &storm_url),
        ("spendy", &flaky_url),
        ("limited", &flaky_url),
    ] {
        create_ready(&t, json!({"name": name, "config": {"served_entities": [mock_entity("a", url, json!({}))]}}))
            .await;
    }
    tune(&t, "error-rate", json!({"window": "2s", "min_requests": 3})).await;
    tune(&t, "latency-p95", json!({"window": "2s", "min_requests": 3, "threshold": 150.0})).await;
    tune(&t, "not-ready", json!({"window": "0s"})).await;

    // error rate: upstream 400s (no retries, no breaker), then quiet.
    flaky.force_status.store(400, Ordering::SeqCst);
    for _ in 0..4 {
        assert_eq!(ask(&t, "flaky").await, StatusCode::BAD_REQUEST);
    }
    flaky.force_status.store(0, Ordering::SeqCst);
    wait_for(&inbox, "error_rate", "flaky", "FIRING").await;
    let (_, firing) = t.get("/api/2.0/alerts").await;
    assert!(firing["firing"].as_array().unwrap().iter().any(|a| a["kind"] == "error_rate"), "{firing}");
    wait_for(&inbox, "error_rate", "flaky", "RESOLVED").await;

    // p95 latency: a 250 ms upstream against a 150 ms threshold.
    for _ in 0..3 {
        assert_eq!(ask(&t, "slow").await, StatusCode::OK);
    }
    wait_for(&inbox, "latency_p95", "slow", "FIRING").await;
    wait_for(&inbox, "latency_p95", "slow", "RESOLVED").await;

    // not ready: a config whose secret is missing fails to deploy; deleting the endpoint resolves.
    let mut entity = mock_entity("a", &flaky_url, json!({}));
    entity["external_model"]["openai_config"]["openai_api_key"] = json!("{{secrets/llm/missing}}");
    let (s, b) = t.post(SE, json!({"name": "broken", "config": {"served_entities": [entity]}})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    wait_for(&inbox, "not_ready", "broken", "FIRING").await;
    assert_eq!(t.call(reqwest::Method::DELETE, &format!("{SE}/broken"), None).await.0, StatusCode::OK);
    wait_for(&inbox, "not_ready", "broken", "RESOLVED").await;

    // breaker open: a 429 storm; after the cool-down a successful probe closes it.
    storm.force_status.store(429, Ordering::SeqCst);
    for _ in 0..3 {
        ask(&t, "storm").await;
    }
    wait_for(&inbox, "breaker_open", "storm", "FIRING").await;
    storm.force_status.store(0, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(ask(&t, "storm").await, StatusCode::OK);
    wait_for(&inbox, "breaker_open", "storm", "RESOLVED").await;

    // budget: half of a tiny budget spent by one query; raising the amount resolves.
    let (s, p) = t
        .post(
            "/api/2.0/budget-policies",
            json!({"name": "tiny", "period": "day", "amount_usd": 0.00005,
                                                  "alert_thresholds": [50], "scope": {"endpoint": "spendy"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(ask(&t, "spendy").await, StatusCode::OK);
    wait_for(&inbox, "budget", "", "FIRING").await;
    let (s, _) = t
        .put(&format!("/api/2.0/budget-policies/{}", p["policy_id"].as_str().unwrap()),
             json!({"name": "tiny", "period": "day", "amount_usd": 100, "alert_thresholds": [50], "scope": {"endpoint": "spendy"}}))
        .await;
    assert_eq!(s, StatusCode::OK);
    wait_for(&inbox, "budget", "", "RESOLVED").await;

    // A token's own ALERT budget alerts too (its queries go on).
    let (s, tok) = t
        .post(
            "/api/2.0/token/create",
            json!({"limits": {"budget": {"amount_usd": 0.000001, "period": "day", "action": "ALERT"}}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{tok}");
    let (token, token_id) = (tok["token_value"].as_str().unwrap(), tok["token_info"]["token_id"].as_str().unwrap());
    let body = json!({"model": "spendy", "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..2 {
        let (s, _) = t.call_as(Some(token), reqwest::Method::POST, "/v1/chat/completions", Some(body.clone())).await;
        assert_eq!(s, StatusCode::OK, "ALERT does not block");
    }
    let start = Instant::now();
    loop {
        let (_, alerts) = t.get("/api/2.0/alerts").await;
        let found = alerts["firing"].as_array().unwrap().iter().any(|a| {
            a["kind"] == "budget" && a["message"].as_str().is_some_and(|m| m.contains(&format!("token {token_id}")))
        });
        if found {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no alert for the token's budget: {alerts}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Lifting the budget resolves it.
    let path = format!("/api/2.0/token-management/tokens/{token_id}");
    assert_eq!(t.call(reqwest::Method::PATCH, &path, Some(json!({"limits": {}}))).await.0, StatusCode::OK);

    // rate limit usage: 4 of 4 calls used; a higher limit resolves.
    let limit = |calls: u64| json!({"rate_limits": [{"key": "endpoint", "calls": calls, "renewal_period": "minute"}]});
    assert_eq!(t.put(&format!("{SE}/limited/ai-gateway"), limit(4)).await.0, StatusCode::OK);
    for _ in 0..4 {
        ask(&t, "limited").await;
    }
    wait_for(&inbox, "rate_limit_usage", "limited", "FIRING").await;
    assert_eq!(t.put(&format!("{SE}/limited/ai-gateway"), limit(10_000)).await.0, StatusCode::OK);
    wait_for(&inbox, "rate_limit_usage", "limited", "RESOLVED").await;

    // Everything has resolved; every alert sent exactly one FIRING and one RESOLVED, to each
    // destination, in its format.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let (_, a) = t.get("/api/2.0/alerts").await;
        if a["firing"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut per_alert: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, state, _, _) in json_messages(&inbox) {
        per_alert.entry(id).or_default().push(state);
    }
    for (id, states) in &per_alert {
        assert_eq!(states, &["FIRING", "RESOLVED"], "alert {id}");
    }
    let kinds: std::collections::BTreeSet<String> = json_messages(&inbox).into_iter().map(|m| m.2).collect();
    assert_eq!(kinds.len(), 6, "{kinds:?}");
    let all = inbox.lock().unwrap().clone();
    let count = |f: &str| all.iter().filter(|(x, _)| x == f).count();
    assert_eq!(
        (count("slack"), count("teams")),
        (count("json"), count("json")),
        "every destination gets every message"
    );
    let slack = all.iter().find(|(f, _)| f == "slack").unwrap();
    assert!(slack.1["text"].as_str().unwrap().contains("[FIRING]"), "{}", slack.1);
    let teams = all.iter().find(|(f, _)| f == "teams").unwrap();
    assert_eq!(teams.1["@type"], "MessageCard");
    assert!(
        teams.1["title"].as_str().unwrap().starts_with("[FIRING]")
            || teams.1["title"].as_str().unwrap().starts_with("[RESOLVED]")
    );
}

#[tokio::test]
async fn a_firing_alert_survives_a_restart_without_a_second_message() {
    let (hook, inbox) = receiver().await;
    let (flaky, url) = mock().await;
    let fast = |c: &mut modelgate_server::ServerConfig| {
        c.alert_interval = Duration::from_millis(100);
        c.retries.retries = 0;
    };
    let mut t = TestServer::start_with(fast).await;
    t.secret("llm", "k", "sk-alerts").await;
    let (s, b) = t.post("/api/2.0/alert-destinations", json!({"name": "json", "url": format!("{hook}/json")})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    create_ready(&t, json!({"name": "flaky", "config": {"served_entities": [mock_entity("a", &url, json!({}))]}}))
        .await;
    tune(&t, "error-rate", json!({"window": "2s", "min_requests": 3})).await;
    flaky.force_status.store(400, Ordering::SeqCst);
    for _ in 0..4 {
        assert_eq!(ask(&t, "flaky").await, StatusCode::BAD_REQUEST);
    }
    flaky.force_status.store(0, Ordering::SeqCst);
    wait_for(&inbox, "error_rate", "flaky", "FIRING").await;

    t.restart_with(fast).await;
    // The statistics start afresh, but the alert is not resolved on an incomplete window.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, a) = t.get("/api/2.0/alerts").await;
    assert!(a["firing"].as_array().unwrap().iter().any(|a| a["kind"] == "error_rate"), "{a}");
    wait_for(&inbox, "error_rate", "flaky", "RESOLVED").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let states: Vec<String> = json_messages(&inbox).into_iter().map(|m| m.1).collect();
    assert_eq!(states, ["FIRING", "RESOLVED"], "one message per transition across the restart");
}

#[tokio::test]
async fn rules_and_destinations_are_validated_and_admin_only() {
    let t = TestServer::start().await;
    for (body, field) in [
        (json!({"name": "r", "kind": "vibes"}), "kind"),
        (json!({"name": "r", "kind": "error_rate", "window": "soon"}), "window"),
        (json!({"name": "r", "kind": "error_rate", "threshold": -1}), "threshold"),
    ] {
        assert_error(
            &t.post("/api/2.0/alert-rules", body).await,
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
            field,
        );
    }
    assert_error(
        &t.post("/api/2.0/alert-destinations", json!({"name": "d", "url": "ftp://x", "format": "json"})).await,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
        "url",
    );
    assert_error(
        &t.post("/api/2.0/alert-rules", json!({"name": "error-rate", "kind": "error_rate"})).await,
        StatusCode::CONFLICT,
        "RESOURCE_ALREADY_EXISTS",
        "error-rate",
    );
    create_principal(&t, "Users", json!({"userName": "u@example.com"})).await;
    let token = token_for(&t, json!({"user_name": "u@example.com"})).await;
    let got = t.call_as(Some(&token), reqwest::Method::GET, "/api/2.0/alerts", None).await;
    assert_error(&got, StatusCode::FORBIDDEN, "PERMISSION_DENIED", "admins");
}
