//! Tokens that carry their own limits (allowed endpoints, rate limits, a budget) on top of their
//! owner's permissions, and budget policies scoped to a user, group or service principal.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SE: &str = "/api/2.0/serving-endpoints";
const OBO: &str = "/api/2.0/token-management/on-behalf-of/tokens";

/// A server with two chat endpoints `a` and `b` on the mock, and user dev@example.com allowed to
/// query both.
async fn setup() -> TestServer {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-token-limits").await;
    create_principal(&t, "Users", json!({"userName": "dev@example.com"})).await;
    for name in ["a", "b"] {
        create_ready(&t, json!({"name": name, "config": {"served_entities": [mock_entity("m", &url, json!({}))]}}))
            .await;
        let (_, ep) = t.get(&format!("{SE}/{name}")).await;
        let acl = json!({"access_control_list": [{"user_name": "dev@example.com", "permission_level": "CAN_QUERY"}]});
        let perms = format!("/api/2.0/permissions/serving-endpoints/{}", ep["id"].as_str().unwrap());
        assert_eq!(t.put(&perms, acl).await.0, StatusCode::OK);
    }
    t
}

async fn dev_token(t: &TestServer, limits: Value) -> (String, String) {
    let (s, b) = t.post(OBO, json!({"user_name": "dev@example.com", "limits": limits})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    (b["token_value"].as_str().unwrap().to_string(), b["token_info"]["token_id"].as_str().unwrap().to_string())
}

async fn ask(t: &TestServer, token: &str, endpoint: &str) -> (StatusCode, Value) {
    let body = json!({"messages": [{"role": "user", "content": "hello"}]});
    t.call_as(Some(token), Method::POST, &format!("/serving-endpoints/{endpoint}/invocations"), Some(body)).await
}

#[tokio::test]
async fn a_token_limited_to_one_endpoint_gets_403_on_another() {
    let t = setup().await;
    let (limited, _) = dev_token(&t, json!({"allowed_endpoints": ["a"]})).await;
    let (free, _) = dev_token(&t, json!({})).await;
    assert_eq!(ask(&t, &limited, "a").await.0, StatusCode::OK);
    let refused = ask(&t, &limited, "b").await;
    assert_error(&refused, StatusCode::FORBIDDEN, "PERMISSION_DENIED", "may query only 'a'");
    // The owner's other token is not limited; the owner's permissions still hold for both.
    assert_eq!(ask(&t, &free, "b").await.0, StatusCode::OK);
    // The token lists only what it may query.
    let (_, models) = t.call_as(Some(&limited), Method::GET, "/v1/models", None).await;
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a"]);
    // The limits show in the token's facts, never its value.
    let (_, list) = t.get("/api/2.0/token-management/tokens").await;
    let info =
        list["token_infos"].as_array().unwrap().iter().find(|i| i["limits"]["allowed_endpoints"] == json!(["a"]));
    assert!(info.is_some(), "{list}");
    assert!(!list.to_string().contains(&limited));
}

#[tokio::test]
async fn a_tokens_block_budget_stops_that_token_and_not_the_owners_other_tokens() {
    let t = setup().await;
    let budget = json!({"budget": {"amount_usd": 0.000001, "period": "day", "action": "BLOCK"}});
    let (capped, capped_id) = dev_token(&t, budget).await;
    let (other, _) = dev_token(&t, json!({})).await;
    // The first query is admitted (nothing spent yet) and spends more than the budget.
    assert_eq!(ask(&t, &capped, "a").await.0, StatusCode::OK);
    let refused = ask(&t, &capped, "b").await;
    assert_error(
        &refused,
        StatusCode::TOO_MANY_REQUESTS,
        "REQUEST_LIMIT_EXCEEDED",
        &format!("budget of token {capped_id}"),
    );
    assert_eq!(ask(&t, &other, "a").await.0, StatusCode::OK, "the owner's other token goes on");
    let (_, info) = t.get(&format!("/api/2.0/token-management/tokens/{capped_id}")).await;
    assert!(info["token_info"]["budget_spent_usd"].as_f64().unwrap() > 0.000001, "{info}");
    // Budget policies do not list token budgets.
    let (_, policies) = t.get("/api/2.0/budget-policies").await;
    assert!(!policies.to_string().contains(&capped_id), "{policies}");
    // An admin lifts the cap: the token queries again.
    let (s, b) = t
        .call(Method::PATCH, &format!("/api/2.0/token-management/tokens/{capped_id}"), Some(json!({"limits": {}})))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["token_info"].get("limits").is_none(), "{b}");
    assert_eq!(ask(&t, &capped, "a").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_tokens_rate_limit_counts_across_endpoints() {
    let t = setup().await;
    let (limited, _) = dev_token(&t, json!({"rate_limits": [{"calls": 2, "renewal_period": "minute"}]})).await;
    // Far from the end of a minute, so the window does not turn during the test.
    while std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() % 60 > 50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(ask(&t, &limited, "a").await.0, StatusCode::OK);
    assert_eq!(ask(&t, &limited, "b").await.0, StatusCode::OK);
    let refused = ask(&t, &limited, "a").await;
    assert_error(&refused, StatusCode::TOO_MANY_REQUESTS, "REQUEST_LIMIT_EXCEEDED", "for this token");
}

#[tokio::test]
async fn bad_limits_are_refused_and_only_the_creator_or_an_admin_changes_them() {
    let t = setup().await;
    for (limits, field) in [
        (json!({"allowed_endpoints": []}), "limits.allowed_endpoints"),
        (json!({"allowed_endpoints": ["no spaces allowed"]}), "limits.allowed_endpoints[0]"),
        (json!({"rate_limits": [{"calls": 1, "renewal_period": "hour"}]}), "limits.rate_limits[0].renewal_period"),
        (json!({"rate_limits": [{"renewal_period": "minute"}]}), "limits.rate_limits[0].calls"),
        (json!({"budget": {"amount_usd": -1, "period": "day"}}), "limits.budget.amount_usd"),
        (json!({"budget": {"amount_usd": 1, "period": "year"}}), "limits.budget.period"),
        (json!({"budget": {"amount_usd": 1, "period": "day", "action": "WARN"}}), "limits.budget.action"),
        (json!({"max_spend": 5}), "max_spend"),
    ] {
        let (s, b) = t.post(OBO, json!({"user_name": "dev@example.com", "limits": limits})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert!(b["message"].as_str().unwrap().contains(field), "{field}: {b}");
    }
    let (_, list) = t.get("/api/2.0/token-management/tokens").await;
    let before = list["token_infos"].as_array().unwrap().len();
    let (limited, limited_id) = dev_token(&t, json!({"allowed_endpoints": ["a"]})).await;
    // dev cannot lift what an admin put on a token made for them ...
    let path = format!("/api/2.0/token-management/tokens/{limited_id}");
    let lift = json!({"limits": {}});
    let (s, b) = t.call_as(Some(&limited), Method::PATCH, &path, Some(lift.clone())).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    // ... and a bad update changes nothing.
    let (s, _) = t.call(Method::PATCH, &path, Some(json!({"limits": {"allowed_endpoints": []}}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(ask(&t, &limited, "b").await.0, StatusCode::FORBIDDEN);
    let (_, list) = t.get("/api/2.0/token-management/tokens").await;
    assert_eq!(list["token_infos"].as_array().unwrap().len(), before + 1);
    // Tokens a user makes for themselves, they may limit and change.
    let (s, own) = t
        .call_as(
            Some(&limited),
            Method::POST,
            "/api/2.0/token/create",
            Some(json!({"limits": {"allowed_endpoints": ["b"]}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{own}");
    let own_token = own["token_value"].as_str().unwrap().to_string();
    let own_path = format!("/api/2.0/token-management/tokens/{}", own["token_info"]["token_id"].as_str().unwrap());
    assert_eq!(ask(&t, &own_token, "a").await.0, StatusCode::FORBIDDEN);
    let (s, b) = t.call_as(Some(&own_token), Method::PATCH, &own_path, Some(lift)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(ask(&t, &own_token, "a").await.0, StatusCode::OK);
}

#[tokio::test]
async fn budget_policies_scoped_to_a_group_or_a_user_hold_their_members() {
    let t = setup().await;
    let group = create_principal(&t, "Groups", json!({"displayName": "interns"})).await;
    create_principal(&t, "Users", json!({"userName": "intern@example.com", "groups": [{"value": group}]})).await;
    for name in ["a", "b"] {
        let (_, ep) = t.get(&format!("{SE}/{name}")).await;
        let acl =
            json!({"access_control_list": [{"user_name": "intern@example.com", "permission_level": "CAN_QUERY"}]});
        let perms = format!("/api/2.0/permissions/serving-endpoints/{}", ep["id"].as_str().unwrap());
        assert_eq!(t.call(Method::PATCH, &perms, Some(acl)).await.0, StatusCode::OK);
    }
    let intern = token_for(&t, json!({"user_name": "intern@example.com"})).await;
    let (dev, _) = dev_token(&t, json!({})).await;
    let policy = |name: &str, scope: Value| json!({"name": name, "scope": scope, "period": "month", "amount_usd": 0.000001, "action": "BLOCK"});
    let (s, b) = t.post("/api/2.0/budget-policies", policy("interns", json!({"group": "interns"}))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(ask(&t, &intern, "a").await.0, StatusCode::OK);
    assert_error(&ask(&t, &intern, "b").await, StatusCode::TOO_MANY_REQUESTS, "REQUEST_LIMIT_EXCEEDED", "'interns'");
    assert_eq!(ask(&t, &dev, "a").await.0, StatusCode::OK, "not a member");
    let (s, b) = t.post("/api/2.0/budget-policies", policy("dev-cap", json!({"user": "dev@example.com"}))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // The policy counted dev's query made before it existed: over the cap at once.
    assert_error(&ask(&t, &dev, "a").await, StatusCode::TOO_MANY_REQUESTS, "REQUEST_LIMIT_EXCEEDED", "'dev-cap'");
    assert_eq!(ask(&t, &t.token, "a").await.0, StatusCode::OK, "the admin is not dev");
    let bad = policy("two", json!({"user": "dev@example.com", "group": "interns"}));
    let (s, b) = t.post("/api/2.0/budget-policies", bad).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["message"].as_str().unwrap().contains("at most one"), "{b}");
}
