//! Workspace standards: creates and updates that break the policy are refused with the rule
//! named (or warned about), existing endpoints are checked, and environments get default limits.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SE: &str = "/api/2.0/serving-endpoints";

fn endpoint(name: &str, url: &str, model: &str, tags: Value) -> Value {
    let mut e = mock_entity("main", url, json!({}));
    e["external_model"]["name"] = json!(model);
    json!({"name": name, "config": {"served_entities": [e]}, "tags": tags})
}

#[tokio::test]
async fn the_workspace_policy_holds_for_every_create_and_update() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-standards").await;
    // Made before the policy: it breaks it, and check says so.
    create_ready(&t, endpoint("legacy", &url, "gpt-4o", json!([]))).await;

    let policy = json!({
        "naming": {"template": "{provider}-{model}-{environment}-{purpose}"},
        "required_tags": ["team", "environment"],
        "environments": {
            "dev": {"allowed_models": ["gpt-4o-mini"], "default_rate_limits": [{"key": "user", "calls": 10, "renewal_period": "minute"}]},
            "prod": {"allowed_providers": ["openai"]}
        },
        "min_deprecation_notice_days": 60
    });
    let (s, b) = t.put("/api/2.0/workspace-policy", policy.clone()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let bad = t.put("/api/2.0/workspace-policy", json!({"naming": {"pattern": "("}})).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "naming.pattern");
    let bad = t
        .put(
            "/api/2.0/workspace-policy",
            json!({"environments": {"dev": {"default_rate_limits": [{"calls": 1, "renewal_period": "hour"}]}}}),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "environments.dev.default_rate_limits");

    let dev = json!([{"key": "team", "value": "ml"}, {"key": "environment", "value": "dev"}]);
    let got = t.post(SE, endpoint("chat", &url, "gpt-4o-mini", dev.clone())).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "workspace policy naming");
    let got = t.post(SE, endpoint("openai-gpt-4o-dev-bot", &url, "gpt-4o", dev.clone())).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "workspace policy allowed_models");
    let got = t
        .post(
            SE,
            endpoint(
                "openai-gpt-4o-mini-dev-bot",
                &url,
                "gpt-4o-mini",
                json!([{"key": "environment", "value": "dev"}]),
            ),
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "the tags team are required");
    let (s, _) = t.get(&format!("{SE}/chat")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "nothing was created");

    // Following the rules, with the environment's default rate limits.
    create_ready(&t, endpoint("openai-gpt-4o-mini-dev-bot", &url, "gpt-4o-mini", dev.clone())).await;
    let (_, e) = t.get(&format!("{SE}/openai-gpt-4o-mini-dev-bot")).await;
    assert_eq!(e["ai_gateway"]["rate_limits"][0]["calls"], 10, "{e}");
    // An update to a model dev does not allow is refused too.
    let mut cfg = endpoint("x", &url, "gpt-4o", json!([]))["config"].clone();
    let got = t.put(&format!("{SE}/openai-gpt-4o-mini-dev-bot/config"), cfg.clone()).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "allowed_models");
    cfg["served_entities"][0]["external_model"]["name"] = json!("gpt-4o-mini");
    let (s, b) = t.put(&format!("{SE}/openai-gpt-4o-mini-dev-bot/config"), cfg).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // The policy's minimum notice.
    let got = t
        .put(
            &format!("{SE}/openai-gpt-4o-mini-dev-bot/deprecation"),
            json!({"notice_date": "2027-01-01", "sunset_date": "2027-02-15"}),
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "at least 60 days");

    // Existing endpoints that break it.
    let (_, check) = t.get("/api/2.0/workspace-policy/check").await;
    let broken: Vec<(&str, &str)> = check["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["endpoint"].as_str().unwrap(), v["rule"].as_str().unwrap()))
        .collect();
    assert_eq!(broken, vec![("legacy", "naming"), ("legacy", "required_tags")], "{check}");
    let (_, inv) = t.get("/api/2.0/inventory").await;
    let legacy = inv["endpoints"].as_array().unwrap().iter().find(|e| e["name"] == "legacy").unwrap();
    assert!(legacy["flags"].as_array().unwrap().iter().any(|f| f["flag"] == "breaks_policy"), "{legacy}");

    // Warn mode: accepted, with the broken rule in a Warning header.
    let mut warn = policy;
    warn["mode"] = json!("warn");
    t.put("/api/2.0/workspace-policy", warn).await;
    let resp = t
        .http
        .post(format!("{}{SE}", t.base))
        .bearer_auth(&t.token)
        .json(&endpoint("chat", &url, "gpt-4o-mini", dev))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let warning = resp.headers().get("warning").unwrap().to_str().unwrap().to_string();
    assert!(warning.contains("workspace policy naming"), "{warning}");

    // Only admins set it.
    create_principal(&t, "Users", json!({"userName": "dev@example.com"})).await;
    let dev_token = token_for(&t, json!({"user_name": "dev@example.com"})).await;
    let got = t.call_as(Some(&dev_token), reqwest::Method::PUT, "/api/2.0/workspace-policy", Some(json!({}))).await;
    assert_error(&got, StatusCode::FORBIDDEN, "PERMISSION_DENIED", "workspace policy");
}

#[tokio::test]
async fn templates_give_their_settings_and_the_body_overrides_them() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-templates").await;
    let (_, list) = t.get("/api/2.0/endpoint-templates").await;
    let names: Vec<&str> = list["templates"].as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["chatbot", "document-analysis", "code-generation", "embeddings-search"]);

    let mut body = endpoint("support", &url, "gpt-4o", json!([{"key": "team", "value": "cx"}]));
    body["template"] = json!("chatbot");
    create_ready(&t, body.clone()).await;
    let (_, e) = t.get(&format!("{SE}/support")).await;
    assert_eq!(e["ai_gateway"]["rate_limits"][0]["calls"], 60, "{e}");
    assert_eq!(e["ai_gateway"]["guardrails"]["input"]["pii"]["behavior"], "MASK", "{e}");
    let tags: Vec<&str> = e["tags"].as_array().unwrap().iter().map(|x| x["key"].as_str().unwrap()).collect();
    assert!(tags.contains(&"use_case") && tags.contains(&"team"), "{e}");

    body["name"] = json!("support-2");
    body["ai_gateway"] = json!({"rate_limits": [{"key": "user", "calls": 5, "renewal_period": "minute"}]});
    create_ready(&t, body.clone()).await;
    let (_, e) = t.get(&format!("{SE}/support-2")).await;
    assert_eq!(e["ai_gateway"]["rate_limits"][0]["calls"], 5, "the body wins: {e}");
    assert_eq!(e["ai_gateway"]["guardrails"]["output"]["pii"]["behavior"], "MASK", "{e}");

    body["name"] = json!("nope");
    body["template"] = json!("haiku-writer");
    let got = t.post(SE, body.clone()).await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
        "template: 'haiku-writer' is not a template",
    );
    body["template"] = json!("embeddings-search");
    let got = t.post(SE, body).await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
        "config.served_entities[0].external_model.task",
    );
}
