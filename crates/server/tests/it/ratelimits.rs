//! Rate limits: exact call counts under concurrency, the precedence rules between endpoint, user,
//! service-principal, group and default limits, and the bound on token limits.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SE: &str = "/api/2.0/serving-endpoints";

/// Limits count per calendar minute: start a test early enough in a minute that it ends in it.
async fn fresh_minute(needed: u64) {
    let second = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() % 60;
    if second + needed >= 60 {
        tokio::time::sleep(Duration::from_secs(60 - second)).await;
    }
}

async fn rig(limits: Value) -> (TestServer, std::sync::Arc<modelgate_mock_upstream::Mock>) {
    let (m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-limits").await;
    create_ready(
        &t,
        json!({"name": "ep", "config": {"served_entities": [mock_entity("a", &url, json!({}))]},
               "ai_gateway": {"rate_limits": limits}}),
    )
    .await;
    let (s, b) = t
        .call(
            reqwest::Method::PATCH,
            &format!(
                "/api/2.0/permissions/serving-endpoints/{}",
                t.get(&format!("{SE}/ep")).await.1["id"].as_str().unwrap()
            ),
            Some(json!({"access_control_list": [{"group_name": "users", "permission_level": "CAN_QUERY"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    (t, m)
}

async fn query(t: &TestServer, token: &str, body: Value) -> reqwest::Response {
    t.http
        .post(format!("{}/serving-endpoints/ep/invocations", t.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn hi() -> Value {
    json!({"messages": [{"role": "user", "content": "hi"}]})
}

/// How many of `n` sequential queries pass.
async fn passes(t: &TestServer, token: &str, n: usize) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        if query(t, token, hi()).await.status() == StatusCode::OK {
            ok += 1;
        }
    }
    ok
}

#[tokio::test]
async fn a_calls_limit_of_n_lets_exactly_n_of_200_concurrent_requests_through() {
    let (t, m) = rig(json!([{"key": "endpoint", "calls": 37, "renewal_period": "minute"}])).await;
    fresh_minute(20).await;
    let sends = (0..200).map(|_| query(&t, &t.token, hi()));
    let responses = futures::future::join_all(sends).await;
    let ok = responses.iter().filter(|r| r.status() == StatusCode::OK).count();
    assert_eq!(ok, 37, "exactly the limit passes");
    let chats = m.requests.lock().unwrap().iter().filter(|r| r.path == "/v1/chat/completions").count();
    assert_eq!(chats, 37, "refused requests never reach the provider");

    let refused = responses.into_iter().find(|r| r.status() == StatusCode::TOO_MANY_REQUESTS).unwrap();
    let h = |n: &str| refused.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let retry: u64 = h("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After is the rest of the minute: {retry}");
    assert_eq!(h("x-ratelimit-limit-requests").as_deref(), Some("37"));
    assert_eq!(h("x-ratelimit-remaining-requests").as_deref(), Some("0"));
    assert_eq!(h("x-ratelimit-reset-requests"), Some(format!("{retry}s")));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error_code"], "REQUEST_LIMIT_EXCEEDED");
    assert!(
        body["message"].as_str().unwrap().contains("on endpoint 'ep': 37 calls per minute for the whole endpoint"),
        "{body}"
    );
}

#[tokio::test]
async fn precedence_between_user_group_service_principal_and_default_limits() {
    let limits = json!([
        {"key": "endpoint", "calls": 40, "renewal_period": "minute"},
        {"key": "user", "calls": 2, "renewal_period": "minute"},
        {"key": "user", "principal": "alice@example.com", "calls": 5, "renewal_period": "minute"},
        {"key": "user_group", "principal": "team", "calls": 3, "renewal_period": "minute"},
        {"key": "user_group", "principal": "small", "calls": 1, "renewal_period": "minute"},
        {"key": "user_group", "principal": "big", "calls": 4, "renewal_period": "minute"},
        {"key": "service_principal", "principal": "app-7", "calls": 6, "renewal_period": "minute"},
    ]);
    let (t, _m) = rig(json!([])).await;
    let team = create_principal(&t, "Groups", json!({"displayName": "team"})).await;
    let small = create_principal(&t, "Groups", json!({"displayName": "small"})).await;
    let big = create_principal(&t, "Groups", json!({"displayName": "big"})).await;
    create_principal(&t, "Users", json!({"userName": "alice@example.com", "groups": [{"value": team}]})).await;
    create_principal(&t, "Users", json!({"userName": "bob@example.com", "groups": [{"value": team}]})).await;
    create_principal(&t, "Users", json!({"userName": "carol@example.com", "groups": [{"value": team}]})).await;
    create_principal(
        &t,
        "Users",
        json!({"userName": "dave@example.com", "groups": [{"value": small}, {"value": big}]}),
    )
    .await;
    create_principal(&t, "Users", json!({"userName": "erin@example.com"})).await;
    create_principal(&t, "ServicePrincipals", json!({"displayName": "app", "applicationId": "app-7"})).await;
    // Limits that name principals are set once the principals exist (a typo would be refused).
    let (s, b) = t.put(&format!("{SE}/ep/ai-gateway"), json!({"rate_limits": limits})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let tok = |who: &'static str| token_for(&t, json!({"user_name": who}));
    let (alice, bob, carol, dave, erin) = (
        tok("alice@example.com").await,
        tok("bob@example.com").await,
        tok("carol@example.com").await,
        tok("dave@example.com").await,
        tok("erin@example.com").await,
    );
    let app = token_for(&t, json!({"application_id": "app-7"})).await;
    fresh_minute(30).await;

    assert_eq!(passes(&t, &alice, 7).await, 5, "a user's own limit beats their group's");
    assert_eq!(passes(&t, &bob, 2).await, 2, "group members share the group's limit");
    assert_eq!(passes(&t, &carol, 3).await, 1, "... so carol gets what bob left of 3");
    assert_eq!(passes(&t, &dave, 6).await, 4, "the most permissive group applies");
    assert_eq!(passes(&t, &erin, 4).await, 2, "no specific or group limit: the default per-user limit");
    assert_eq!(passes(&t, &t.token, 4).await, 2, "the default applies to each user separately");
    assert_eq!(passes(&t, &app, 8).await, 6, "a service principal's own limit");
    // 5 + 2 + 1 + 4 + 2 + 2 + 6 = 22 calls so far; an endpoint ceiling of 24 leaves 2, for anyone.
    let limits = json!([{"key": "endpoint", "calls": 24, "renewal_period": "minute"},
                        {"key": "user", "principal": "erin@example.com", "calls": 100, "renewal_period": "minute"}]);
    let (s, b) = t.put(&format!("{SE}/ep/ai-gateway"), json!({"rate_limits": limits})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(passes(&t, &erin, 5).await, 2, "the endpoint ceiling holds whatever the user's own limit");
    let r = query(&t, &alice, hi()).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = r.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("for the whole endpoint"), "{body}");
}

#[tokio::test]
async fn the_stricter_of_calls_and_tokens_applies_and_legacy_limits_count() {
    let (t, _m) = rig(json!([{"key": "user", "calls": 100, "tokens": 300, "renewal_period": "minute"}])).await;
    fresh_minute(20).await;
    let ask = |max: u64| json!({"messages": [{"role": "user", "content": "hi __usage_20__"}], "max_tokens": max});
    // Each reservation is about 106 tokens (input estimate + max_tokens) and settles to the 25
    // reported; sequential requests pass while 25 per answer so far plus one reservation fit 300.
    let mut ok = 0;
    for _ in 0..20 {
        if query(&t, &t.token, ask(100)).await.status() == StatusCode::OK {
            ok += 1;
        }
    }
    assert!((7..=9).contains(&ok), "300 tokens at 25 per answer, while a reservation still fits: {ok}");
    let r = query(&t, &t.token, ask(100)).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["x-ratelimit-limit-tokens"], "300");
    let body: Value = r.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("300 tokens per minute per user"), "{body}");
    let huge = query(&t, &t.token, ask(100_000)).await;
    assert_eq!(huge.status(), StatusCode::TOO_MANY_REQUESTS, "a reservation larger than the limit never fits");

    let (s, b) = t
        .put(
            &format!("{SE}/ep/rate-limits"),
            json!({"rate_limits": [{"calls": 1, "renewal_period": "minute", "key": "endpoint"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = t.put(&format!("{SE}/ep/ai-gateway"), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    let statuses = [query(&t, &t.token, hi()).await.status(), query(&t, &t.token, hi()).await.status()];
    assert_eq!(statuses, [StatusCode::OK, StatusCode::TOO_MANY_REQUESTS], "the legacy limit alone");
}

#[tokio::test]
async fn token_limits_hold_their_bound_under_concurrency() {
    let (t, m) = rig(json!([{"key": "endpoint", "tokens": 2000, "renewal_period": "minute"}])).await;
    fresh_minute(20).await;
    // Each answer reports 5 + 60 = 65 tokens, under its reservation (input estimate + 100).
    let body = json!({"messages": [{"role": "user", "content": "count to ten __usage_60__"}], "max_tokens": 100});
    let sends = (0..100).map(|_| query(&t, &t.token, body.clone()));
    let statuses: Vec<StatusCode> = futures::future::join_all(sends).await.iter().map(|r| r.status()).collect();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert!(statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::TOO_MANY_REQUESTS));
    assert!(ok as u64 * 65 <= 2000, "the tokens used stay within the limit: {ok} answers of 65");
    assert!(ok >= 2000 / 115, "at least as many as fit at full reservation: {ok}");
    let chats = m.requests.lock().unwrap().iter().filter(|r| r.path == "/v1/chat/completions").count();
    assert_eq!(chats, ok);
}
