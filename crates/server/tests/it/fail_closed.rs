//! Stored policies that do not parse close their endpoint instead of vanishing, and an endpoint
//! with no entity to route to answers an error instead of panicking.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_policy_that_does_not_parse_closes_the_endpoint() {
    let (m, url) = mock().await;
    let mut t = TestServer::start().await;
    t.secret("llm", "k", "sk-closed-0123").await;
    create_ready(
        &t,
        json!({"name": "guarded", "config": {"served_entities": [mock_entity("a", &url, json!({}))]},
               "ai_gateway": {"guardrails": {"input": {"invalid_keywords": ["falcon"]}}}}),
    )
    .await;
    let ask = json!({"messages": [{"role": "user", "content": "tell me about falcon"}]});
    assert_eq!(t.post("/serving-endpoints/guarded/invocations", ask.clone()).await.0, StatusCode::BAD_REQUEST);

    tamper(&mut t, "UPDATE endpoints SET ai_gateway = '{\"guardrails\": 42}' WHERE name = 'guarded'", |_| {}).await;
    let got = t.post("/serving-endpoints/guarded/invocations", ask).await;
    assert_error(&got, StatusCode::SERVICE_UNAVAILABLE, "TEMPORARILY_UNAVAILABLE", "stored ai_gateway does not parse");
    assert!(m.requests.lock().unwrap().is_empty(), "nothing reached the provider without its guardrail");
    let (_, e) = t.get("/api/2.0/serving-endpoints/guarded").await;
    assert_eq!(e["state"]["ready"], "NOT_READY", "{e}");
    let message = e["config"]["served_entities"][0]["state"]["deployment_state_message"].as_str().unwrap();
    assert!(message.contains("ai_gateway does not parse"), "{message}");
    let (_, list) = t.get("/api/2.0/serving-endpoints").await;
    assert_eq!(list["endpoints"][0]["state"]["ready"], "NOT_READY");

    // Writing the field again fixes it.
    let (s, b) = t.put("/api/2.0/serving-endpoints/guarded/ai-gateway", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ok = t
        .post("/serving-endpoints/guarded/invocations", json!({"messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(ok.0, StatusCode::OK, "{}", ok.1);
}

#[tokio::test]
async fn a_judge_with_no_entity_is_an_error_not_a_panic() {
    let (_m, url) = mock().await;
    let mut t = TestServer::start_with(|c| c.judge_endpoint = Some("judge".into())).await;
    t.secret("llm", "k", "sk-closed-0123").await;
    create_ready(&t, json!({"name": "judge", "config": {"served_entities": [mock_entity("j", &url, json!({}))]}}))
        .await;
    create_ready(
        &t,
        json!({"name": "safe", "config": {"served_entities": [mock_entity("a", &url, json!({}))]},
               "ai_gateway": {"guardrails": {"input": {"safety": true}}}}),
    )
    .await;
    // The judge's active config holds no entity at all.
    tamper(
        &mut t,
        "UPDATE endpoint_configs SET config = '{}' WHERE endpoint_id = (SELECT id FROM endpoints WHERE name = 'judge')",
        |c| c.judge_endpoint = Some("judge".into()),
    )
    .await;
    let got =
        t.post("/serving-endpoints/safe/invocations", json!({"messages": [{"role": "user", "content": "hi"}]})).await;
    assert_error(&got, StatusCode::SERVICE_UNAVAILABLE, "TEMPORARILY_UNAVAILABLE", "has no served entity");
    assert!(got.1["message"].as_str().unwrap().contains("judge"), "{}", got.1);
}
