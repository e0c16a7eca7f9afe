//! The audit log records every control-plane change and every denied request, never a secret.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn entries(t: &TestServer, query: &str) -> Vec<Value> {
    let (s, b) = t.get(&format!("/api/2.0/audit-log?{query}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["entries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn changes_and_denials_are_recorded_without_secrets() {
    let t = TestServer::start().await;
    let start = modelgate_core::now_ms();
    t.secret("audited", "key", "sk-audit-secret-value").await;
    t.post("/api/2.0/serving-endpoints", create_body("aud", vec![openai_entity("gpt-4o", "{{secrets/audited/key}}")]))
        .await;
    t.get("/api/2.0/serving-endpoints").await; // reads are not changes
    t.call_as(Some("mgt_not_a_token"), Method::DELETE, "/api/2.0/serving-endpoints/aud", None).await;

    let all = entries(&t, &format!("since={start}")).await;
    let text = serde_json::to_string(&all).unwrap();
    assert!(!text.contains("sk-audit-secret-value"), "a secret value reached the audit log");
    assert!(!text.contains(ADMIN_TOKEN), "a token reached the audit log");

    let put = all.iter().find(|e| e["object"] == "secret:audited/key").expect("the put is recorded");
    assert_eq!(put["action"], "POST");
    assert_eq!(put["path"], "/api/2.0/secrets/put");
    assert_eq!(put["principal"], "admin");
    assert_eq!(put["token_id"], "admin-env");
    assert_eq!(put["address"], "127.0.0.1");
    assert_eq!(put["status"], 200);
    assert_eq!(put["summary"]["string_value"], "***");

    let create = all.iter().find(|e| e["object"] == "serving-endpoint:aud" && e["action"] == "POST").unwrap();
    assert_eq!(create["summary"]["config"]["served_entities"][0]["external_model"]["name"], "gpt-4o");
    assert!(!all.iter().any(|e| e["action"] == "GET"), "plain reads are not recorded");

    let refused = all.iter().find(|e| e["status"] == 401).expect("the refused request is recorded");
    assert_eq!(
        (refused["principal"].clone(), refused["error_code"].clone()),
        (json!("anonymous"), json!("UNAUTHENTICATED"))
    );
    assert_eq!(refused["object"], "serving-endpoint:aud");
    assert_eq!(refused["summary"], Value::Null, "a denial keeps no body");

    // Filters.
    assert!(entries(&t, "action=delete").await.iter().all(|e| e["action"] == "DELETE"));
    assert!(entries(&t, "object=secret:audited/key").await.iter().all(|e| e["object"] == "secret:audited/key"));
    assert_eq!(entries(&t, "limit=1").await.len(), 1);
    assert!(entries(&t, &format!("until={start}")).await.iter().all(|e| e["timestamp"].as_i64().unwrap() < start));
}

#[tokio::test]
async fn forbidden_requests_are_recorded_and_only_admins_read_the_log() {
    let t = TestServer::start().await;
    t.post("/api/2.0/preview/scim/v2/Users", json!({"userName": "eve@example.com"})).await;
    let (_, tok) =
        t.post("/api/2.0/token-management/on-behalf-of/tokens", json!({"user_name": "eve@example.com"})).await;
    let eve = tok["token_value"].as_str().unwrap();
    let got = t
        .call_as(Some(eve), Method::POST, "/api/2.0/preview/scim/v2/Users", Some(json!({"userName": "x@example.com"})))
        .await;
    assert_eq!(got.0, StatusCode::FORBIDDEN);
    let got = t.call_as(Some(eve), Method::GET, "/api/2.0/audit-log", None).await;
    assert_error(&got, StatusCode::FORBIDDEN, "PERMISSION_DENIED", "read the audit log");

    let mine = entries(&t, "principal=eve@example.com").await;
    assert!(mine.len() >= 2, "{mine:?}");
    assert!(mine.iter().all(|e| e["error_code"] == "PERMISSION_DENIED" && e["status"] == 403));
    assert!(
        mine.iter().any(|e| e["action"] == "GET" && e["path"] == "/api/2.0/audit-log"),
        "denied reads are recorded too"
    );
}

#[tokio::test]
async fn every_mutation_route_leaves_a_record() {
    let t = TestServer::start().await;
    t.secret("m", "k", "v").await;
    let ep = create_body("mut", vec![openai_entity("gpt-4o", "{{secrets/m/k}}")]);
    let steps: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, "/api/2.0/serving-endpoints".into(), Some(ep)),
        (
            Method::PUT,
            "/api/2.0/serving-endpoints/mut/config".into(),
            Some(json!({"served_entities": [openai_entity("o3", "{{secrets/m/k}}")]})),
        ),
        (
            Method::PUT,
            "/api/2.0/serving-endpoints/mut/ai-gateway".into(),
            Some(json!({"usage_tracking_config": {"enabled": true}})),
        ),
        (Method::PUT, "/api/2.0/serving-endpoints/mut/rate-limits".into(), Some(json!({"rate_limits": []}))),
        (
            Method::PATCH,
            "/api/2.0/serving-endpoints/mut/tags".into(),
            Some(json!({"add_tags": [{"key": "a", "value": "b"}]})),
        ),
        (Method::PATCH, "/api/2.0/serving-endpoints/mut/notifications".into(), Some(json!({}))),
        (Method::POST, "/api/2.0/serving-endpoints/mut/config:stop".into(), None),
        (Method::POST, "/api/2.0/serving-endpoints/mut/config:start".into(), None),
        (Method::PATCH, "/api/2.0/permissions/serving-endpoints/mut".into(), Some(json!({"access_control_list": []}))),
        (
            Method::POST,
            "/api/2.0/secrets/acls/put".into(),
            Some(json!({"scope": "m", "principal": "users", "permission": "READ"})),
        ),
        (Method::POST, "/api/2.0/secrets/acls/delete".into(), Some(json!({"scope": "m", "principal": "users"}))),
        (Method::POST, "/api/2.0/preview/scim/v2/Groups".into(), Some(json!({"displayName": "g"}))),
        (Method::POST, "/api/2.0/token/create".into(), Some(json!({"comment": "c"}))),
        (Method::DELETE, "/api/2.0/serving-endpoints/mut".into(), None),
        (Method::POST, "/api/2.0/secrets/delete".into(), Some(json!({"scope": "m", "key": "k"}))),
        (Method::POST, "/api/2.0/secrets/scopes/delete".into(), Some(json!({"scope": "m"}))),
    ];
    for (method, path, body) in &steps {
        if path.ends_with("/config") {
            t.wait_settled("mut").await;
        }
        let got = t.call(method.clone(), path, body.clone()).await;
        assert!(got.0.is_success(), "{method} {path}: {}", got.1);
    }
    let log = entries(&t, "limit=1000").await;
    for (method, path, _) in &steps {
        assert!(
            log.iter()
                .any(|e| e["action"] == method.as_str() && e["path"] == path.as_str() && e["principal"] == "admin"),
            "no audit record for {method} {path}"
        );
    }
    let created = log.iter().find(|e| e["path"] == "/api/2.0/token/create").unwrap();
    assert_eq!(created["status"], 200);
}
