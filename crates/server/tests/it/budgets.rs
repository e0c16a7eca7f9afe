//! Budget policies: blocking at the limit, scopes (endpoint reference, tag, usage_context),
//! spend consistent under concurrency and across restarts, validation.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SE: &str = "/api/2.0/serving-endpoints";
const BP: &str = "/api/2.0/budget-policies";
/// One answer of the mock on gpt-4o: 5 input and 3 output tokens at $2.50 / $10 per million.
const COST: f64 = (5.0 * 2.5 + 3.0 * 10.0) / 1e6;

async fn policy(t: &TestServer, body: Value) -> String {
    let (s, b) = t.post(BP, body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["policy_id"].as_str().unwrap().to_string()
}

async fn spent(t: &TestServer, id: &str) -> f64 {
    let (s, b) = t.get(&format!("{BP}/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["spend"]["spent_usd"].as_f64().unwrap()
}

async fn ask(t: &TestServer, model: &str, context: Value) -> (StatusCode, Value) {
    t.post(
        "/v1/chat/completions",
        json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "usage_context": context}),
    )
    .await
}

#[tokio::test]
async fn a_block_policy_stops_spending_at_the_limit() {
    let (_m, url) = mock().await;
    let mut t = TestServer::start().await;
    t.secret("llm", "k", "sk-budget").await;
    let id =
        policy(&t, json!({"name": "chat-monthly", "period": "month", "amount_usd": 3.5 * COST, "action": "BLOCK"}))
            .await;
    create_ready(
        &t,
        json!({"name": "chat", "budget_policy_id": id, "config": {"served_entities": [mock_entity("a", &url, json!({}))]}}),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(ask(&t, "chat", json!({})).await);
    }
    let ok = statuses.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(ok, 4, "three answers leave money, the fourth crosses the limit, then nothing: {statuses:?}");
    let (s, body) = &statuses[4];
    assert_eq!(*s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error_code"], "REQUEST_LIMIT_EXCEEDED");
    assert!(body["message"].as_str().unwrap().contains("Budget policy 'chat-monthly' is exhausted"), "{body}");
    let total = spent(&t, &id).await;
    assert!(
        (total - 4.0 * COST).abs() < 1e-12 && total <= 3.5 * COST + COST,
        "at most one query past the limit: {total}"
    );

    let (_, listed) = t.get(BP).await;
    assert_eq!(listed["policies"][0]["endpoints"], json!(["chat"]));
    assert!(listed["policies"][0]["spend"]["percent"].as_f64().unwrap() > 100.0);

    // The spend is read back from the usage records after a restart: still blocked.
    t.restart_with(|_| {}).await;
    assert!((spent(&t, &id).await - total).abs() < 1e-12);
    assert_eq!(ask(&t, "chat", json!({})).await.0, StatusCode::TOO_MANY_REQUESTS);

    // Raising the amount lets queries through again.
    let (s, b) = t
        .put(
            &format!("{BP}/{id}"),
            json!({"name": "chat-monthly", "period": "month", "amount_usd": 100.0, "action": "BLOCK"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(ask(&t, "chat", json!({})).await.0, StatusCode::OK);
}

#[tokio::test]
async fn spend_is_consistent_under_concurrency_and_scopes_select_what_counts() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-budget").await;
    let finance = policy(
        &t,
        json!({"name": "finance-team", "period": "day", "amount_usd": 1.0,
               "scope": {"usage_context": {"key": "team", "value": "finance"}}}),
    )
    .await;
    let ml = policy(&t, json!({"name": "ml-tag", "period": "week", "amount_usd": 1.0, "scope": {"tag": {"key": "team", "value": "ml"}}})).await;
    create_ready(
        &t,
        json!({"name": "ml-chat", "tags": [{"key": "team", "value": "ml"}],
               "config": {"served_entities": [mock_entity("a", &url, json!({}))]}}),
    )
    .await;
    create_ready(&t, json!({"name": "plain", "config": {"served_entities": [mock_entity("b", &url, json!({}))]}}))
        .await;

    let send = |i: usize| {
        let model = if i.is_multiple_of(2) { "ml-chat" } else { "plain" };
        let team = if i.is_multiple_of(3) { "finance" } else { "other" };
        t.http
            .post(format!("{}/v1/chat/completions", t.base))
            .bearer_auth(&t.token)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "usage_context": {"team": team}}))
            .send()
    };
    let results = futures::future::join_all((0..120).map(send)).await;
    assert!(results.iter().all(|r| r.as_ref().unwrap().status() == StatusCode::OK));
    // ml-chat: i even (60 queries); finance: i multiple of 3 (40 queries).
    assert!((spent(&t, &ml).await - 60.0 * COST).abs() < 1e-12, "every concurrent addition counted");
    assert!((spent(&t, &finance).await - 40.0 * COST).abs() < 1e-12);

    // A usage_context BLOCK policy refuses only the queries that carry its value.
    let (s, b) = t
        .put(
            &format!("{BP}/{finance}"),
            json!({"name": "finance-team", "period": "day", "amount_usd": 10.0 * COST, "action": "BLOCK",
                   "scope": {"usage_context": {"key": "team", "value": "finance"}}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(ask(&t, "plain", json!({"team": "finance"})).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(ask(&t, "plain", json!({"team": "other"})).await.0, StatusCode::OK);
}

#[tokio::test]
async fn policies_are_validated_and_protected() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-budget").await;
    for (body, field) in [
        (json!({"name": "a", "period": "year", "amount_usd": 1}), "period"),
        (json!({"name": "a", "period": "day", "amount_usd": -1}), "amount_usd"),
        (json!({"name": "a", "period": "day", "amount_usd": 1, "action": "PANIC"}), "action"),
        (json!({"name": "a", "period": "day", "amount_usd": 1, "alert_thresholds": [0]}), "alert_thresholds[0]"),
        (
            json!({"name": "a", "period": "day", "amount_usd": 1, "scope": {"endpoint": "x", "tag": {"key": "k", "value": "v"}}}),
            "scope",
        ),
    ] {
        assert_error(&t.post(BP, body).await, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", field);
    }
    let id = policy(&t, json!({"name": "p", "period": "day", "amount_usd": 1})).await;
    assert_error(
        &t.post(BP, json!({"name": "p", "period": "day", "amount_usd": 2})).await,
        StatusCode::CONFLICT,
        "RESOURCE_ALREADY_EXISTS",
        "'p'",
    );
    let bad = t
        .post(SE, json!({"name": "x", "budget_policy_id": "nope", "config": {"served_entities": [mock_entity("a", &url, json!({}))]}}))
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "budget_policy_id");
    create_ready(&t, json!({"name": "ep", "config": {"served_entities": [mock_entity("a", &url, json!({}))]}})).await;
    let (s, b) = t.put(&format!("{SE}/ep/budget-policy"), json!({"budget_policy_id": id})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(t.get(&format!("{SE}/ep")).await.1["budget_policy_id"], id.as_str());
    assert_error(
        &t.call(reqwest::Method::DELETE, &format!("{BP}/{id}"), None).await,
        StatusCode::BAD_REQUEST,
        "INVALID_STATE",
        "ep",
    );
    let (s, _) = t.put(&format!("{SE}/ep/budget-policy"), json!({"budget_policy_id": null})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(t.call(reqwest::Method::DELETE, &format!("{BP}/{id}"), None).await.0, StatusCode::OK);
    assert_error(
        &t.get(&format!("{BP}/{id}")).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_DOES_NOT_EXIST",
        "does not exist",
    );

    create_principal(&t, "Users", json!({"userName": "u@example.com"})).await;
    let token = token_for(&t, json!({"user_name": "u@example.com"})).await;
    let got = t.call_as(Some(&token), reqwest::Method::GET, BP, None).await;
    assert_error(&got, StatusCode::FORBIDDEN, "PERMISSION_DENIED", "admins");
}
