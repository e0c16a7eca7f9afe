//! Health: `POST .../{name}/test` probes every served entity and says what is wrong with each;
//! active health checks show a failing entity in its state and feed its breaker.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SE: &str = "/api/2.0/serving-endpoints";

fn entity<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["served_entities"].as_array().unwrap().iter().find(|e| e["name"] == name).unwrap()
}

#[tokio::test]
async fn a_test_query_tells_reachable_authenticated_and_model_apart() {
    let (_good, good_url) = mock().await;
    let (denied, denied_url) = mock().await;
    let (missing, missing_url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-health-test-key").await;
    denied.force_status.store(401, Ordering::SeqCst);
    missing.force_status.store(404, Ordering::SeqCst);
    create_ready(
        &t,
        json!({"name": "mixed", "config": {"served_entities": [
        mock_entity("good", &good_url, json!({})),
        mock_entity("denied", &denied_url, json!({})),
        mock_entity("missing", &missing_url, json!({})),
        mock_entity("down", "http://127.0.0.1:9", json!({}))]}}),
    )
    .await;

    let (s, report) = t.post(&format!("{SE}/mixed/test"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(report["ok"], false);
    let good = entity(&report, "good");
    assert_eq!(
        (good["ok"].as_bool(), good["reachable"].as_bool(), good["authenticated"].as_bool()),
        (Some(true), Some(true), Some(true)),
        "{good}"
    );
    assert_eq!(good["model_exists"], true);
    assert!(good["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(good["host"].as_str().unwrap().starts_with("127.0.0.1:"), "{good}");

    let denied = entity(&report, "denied");
    assert_eq!(
        (denied["ok"].as_bool(), denied["reachable"].as_bool(), denied["authenticated"].as_bool()),
        (Some(false), Some(true), Some(false)),
        "{denied}"
    );
    assert_eq!(denied["upstream_status"], 401);
    assert!(denied["message"].as_str().unwrap().contains("Served entity 'denied'"), "{denied}");

    let missing = entity(&report, "missing");
    assert_eq!(
        (missing["authenticated"].as_bool(), missing["model_exists"].as_bool()),
        (Some(true), Some(false)),
        "{missing}"
    );

    let down = entity(&report, "down");
    assert_eq!(down["reachable"], false, "{down}");
    assert!(down.get("authenticated").is_none(), "unknown, not false: {down}");
    assert!(down["message"].as_str().unwrap().contains("connection refused"), "{down}");
    assert!(!report.to_string().contains("sk-health-test-key"));

    // The probes are not queries: nothing in the request log or the usage.
    let (_, log) = t.get("/api/2.0/requests").await;
    assert_eq!(log["requests"], json!([]), "{log}");
    let missing_ep = t.post(&format!("{SE}/nope/test"), json!({})).await;
    assert_error(&missing_ep, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", "nope");
}

#[tokio::test]
async fn active_health_checks_show_refused_credentials_instead_of_ready() {
    let (m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-x").await;
    let bad = t
        .post(
            SE,
            json!({"name": "w", "config": {"served_entities": [mock_entity("a", &url, json!({}))]},
            "ai_gateway": {"health_check_config": {"enabled": true, "interval_seconds": 5}}}),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "health_check_config.interval_seconds");
    create_ready(
        &t,
        json!({"name": "w", "config": {"served_entities": [mock_entity("a", &url, json!({}))]},
        "ai_gateway": {"health_check_config": {"enabled": true, "interval_seconds": 10}}}),
    )
    .await;
    m.force_status.store(401, Ordering::SeqCst);

    let started = Instant::now();
    let e = loop {
        let (_, e) = t.get(&format!("{SE}/w")).await;
        if e["state"]["ready"] == "NOT_READY" {
            break e;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no health check ran: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let message = e["config"]["served_entities"][0]["state"]["deployment_state_message"].as_str().unwrap();
    assert!(message.starts_with("Health check failed") && message.contains("HTTP 401"), "{message}");
    let (_, logs) = t.get(&format!("{SE}/w/served-models/a/logs")).await;
    assert!(logs["logs"].as_str().unwrap().contains("health check failed"), "{logs}");

    // A test query refreshes it at once when the upstream recovers.
    m.force_status.store(0, Ordering::SeqCst);
    let (_, report) = t.post(&format!("{SE}/w/test"), json!({})).await;
    assert_eq!(report["ok"], true, "{report}");
    let (_, e) = t.get(&format!("{SE}/w")).await;
    assert_eq!(e["state"]["ready"], "READY", "{e}");
}
