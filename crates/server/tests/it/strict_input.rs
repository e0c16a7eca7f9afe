//! Strict input: malformed or ambiguous requests get a clear 4xx naming the problem, and nothing
//! already stored is lost or changed.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SE: &str = "/api/2.0/serving-endpoints";

async fn raw(t: &TestServer, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
    let resp = t
        .http
        .request(method, format!("{}{path}", t.base))
        .bearer_auth(&t.token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// An endpoint with a guardrail and a rate limit, queryable by a user.
async fn guarded(t: &TestServer, url: &str) {
    t.secret("llm", "k", "sk-strict-0123").await;
    create_ready(
        t,
        json!({"name": "guarded", "config": {"served_entities": [mock_entity("a", url, json!({}))]},
               "ai_gateway": {"guardrails": {"input": {"invalid_keywords": ["falcon"]}},
                              "rate_limits": [{"key": "user", "calls": 10, "renewal_period": "minute"}]}}),
    )
    .await;
    create_principal(t, "Users", json!({"userName": "ann@example.com"})).await;
    let (s, b) = t
        .call(
            Method::PATCH,
            "/api/2.0/permissions/serving-endpoints/guarded",
            Some(json!({"access_control_list": [{"user_name": "ann@example.com", "permission_level": "CAN_QUERY"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test]
async fn json_is_one_object_and_arrays_never_erase_what_is_stored() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    guarded(&t, &url).await;
    let before = t.get(&format!("{SE}/guarded")).await.1;
    let grants_before = t.get("/api/2.0/permissions/serving-endpoints/guarded").await.1;

    let got = raw(&t, Method::POST, "/api/2.0/secrets/scopes/create", r#"{"scope": "late"} junk"#).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "BAD_REQUEST", "trailing characters");
    let got = raw(&t, Method::POST, "/api/2.0/secrets/scopes/create", r#"{"scope": "late"} {"scope": "x"}"#).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "BAD_REQUEST", "trailing characters");
    let scopes = t.get("/api/2.0/secrets/scopes/list").await.1;
    assert!(!scopes.to_string().contains("late"), "nothing was created: {scopes}");

    let got = raw(&t, Method::PUT, &format!("{SE}/guarded/ai-gateway"), "[]").await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "must be a JSON object, not an array");
    let got = raw(&t, Method::PUT, &format!("{SE}/guarded/ai-gateway"), r#"{"guardrails": []}"#).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "guardrails: expected a JSON object");
    let got = raw(&t, Method::PUT, "/api/2.0/permissions/serving-endpoints/guarded", "[]").await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "must be a JSON object");
    let got = raw(&t, Method::POST, "/api/2.0/secrets/put", r#"["llm", "k", "sk-array-secret-value"]"#).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "must be a JSON object");

    assert_eq!(t.get(&format!("{SE}/guarded")).await.1["ai_gateway"], before["ai_gateway"], "gateway config kept");
    assert_eq!(t.get("/api/2.0/permissions/serving-endpoints/guarded").await.1, grants_before, "grants kept");
    let audit = t.get("/api/2.0/audit-log?limit=50").await.1.to_string();
    assert!(!audit.contains("sk-array-secret-value"), "{audit}");
    assert!(!audit.contains("sk-strict-0123"), "{audit}");
}

#[tokio::test]
async fn token_lifetimes_must_be_positive() {
    let t = TestServer::start().await;
    for bad in [0, -1, -86400, 400_000_000] {
        let got = t.post("/api/2.0/token/create", json!({"lifetime_seconds": bad})).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "lifetime_seconds: must be between 1");
    }
    let (s, b) = t.post("/api/2.0/token/create", json!({"comment": "no expiry"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["token_info"]["expiry_time"], -1);
    let (s, b) = t.post("/api/2.0/token/create", json!({"lifetime_seconds": 60})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let got = t.post("/api/2.0/token/create", json!({"comment": "line\u{7}bell"})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "comment: contains a control character");
}

#[tokio::test]
async fn names_refuse_controls_bidi_overrides_and_absurd_lengths() {
    let t = TestServer::start().await;
    let long = "a".repeat(300);
    for (kind, body, field) in [
        ("Users", json!({"userName": "ann\u{7}@example.com"}), "userName"),
        ("Users", json!({"userName": "admin\u{202E}nimda"}), "userName"),
        ("Users", json!({"userName": long}), "userName"),
        ("Users", json!({"userName": "ok@example.com", "displayName": "Ann\nDoe"}), "displayName"),
        ("Groups", json!({"displayName": "ops\u{2066}team"}), "displayName"),
        ("ServicePrincipals", json!({"applicationId": "app\u{0}1"}), "applicationId"),
    ] {
        let got = t.post(&format!("/api/2.0/preview/scim/v2/{kind}"), body.clone()).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", field);
        assert!(!got.1["message"].as_str().unwrap().contains("nimda"), "the bad name is not echoed");
    }
    let users = t.get("/api/2.0/preview/scim/v2/Users").await.1;
    assert_eq!(users["totalResults"], 1, "only the admin: {users}");

    let id = create_principal(&t, "Users", json!({"userName": "bob@example.com", "displayName": "Bob"})).await;
    let patch = json!({"Operations": [{"op": "replace", "path": "displayName", "value": "B\u{202E}ob"}]});
    let got = t.call(Method::PATCH, &format!("/api/2.0/preview/scim/v2/Users/{id}"), Some(patch)).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "invisible formatting character");
    assert_eq!(t.get(&format!("/api/2.0/preview/scim/v2/Users/{id}")).await.1["displayName"], "Bob");

    t.secret("llm", "k", "sk-strict-0123").await;
    let mut body = create_body("tagged", vec![openai_entity("gpt-4o", "{{secrets/llm/k}}")]);
    body["tags"] = json!([{"key": "team", "value": "a\u{1b}[31mred"}]);
    let got = t.post(SE, body).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "tags[0].value");
    let got = t.post("/api/2.0/secrets/scopes/create", json!({"scope": ".."})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "'..'");
}

#[tokio::test]
async fn references_urls_routes_and_lists_are_checked_exactly() {
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-strict-0123").await;
    let refused = |body: Value, field: &'static str, says: &'static str| {
        let t = &t;
        async move {
            let got = t.post(SE, body).await;
            assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", says);
            assert!(got.1["message"].as_str().unwrap().contains(field), "{}", got.1);
        }
    };
    refused(
        create_body("a", vec![openai_entity("gpt-4o", "{{ secrets/llm/k }}")]),
        "openai_api_key",
        "secret reference",
    )
    .await;
    refused(create_body("a", vec![openai_entity("gpt-4o", "{{secrets/../k}}")]), "openai_api_key", "'..'").await;
    let mut e = openai_entity("gpt-4o", "{{secrets/llm/k}}");
    e["environment_vars"] = json!({"TOKEN": "{{secrets/llm/k }}"});
    refused(create_body("a", vec![e]), "environment_vars.TOKEN", "secret").await;

    let mut e = openai_entity("gpt-4o", "{{secrets/llm/k}}");
    e["external_model"]["openai_config"]["openai_api_base"] = json!("https://user:hunter2-pass@api.example.com/v1");
    let got = t.post(SE, create_body("a", vec![e])).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "user name or password");
    assert!(!got.1.to_string().contains("hunter2"), "the password is not echoed: {}", got.1);

    let mut body = create_body("a", vec![openai_entity("gpt-4o", "{{secrets/llm/k}}")]);
    body["config"]["traffic_config"] = json!({"routes": []});
    refused(body, "traffic_config.routes", "must not be empty").await;

    let keywords: Vec<String> = (0..201).map(|i| format!("word{i}")).collect();
    let mut body = create_body("a", vec![openai_entity("gpt-4o", "{{secrets/llm/k}}")]);
    body["ai_gateway"] = json!({"guardrails": {"input": {"invalid_keywords": keywords}}});
    refused(body, "invalid_keywords", "at most 200").await;

    let custom = json!({"external_model": {"provider": "custom", "name": "m", "task": "llm/v1/chat",
        "custom_provider_config": {"custom_provider_url": "https://api.example.com/v1",
            "api_key_auth": {"key": "Host", "value": "{{secrets/llm/k}}"}}}});
    refused(create_body("a", vec![custom]), "api_key_auth.key", "set by the gateway").await;

    let bedrock = json!({"external_model": {"provider": "amazon-bedrock", "name": "m", "task": "llm/v1/chat",
        "amazon_bedrock_config": {"aws_region": "us-east-1.evil.example/x", "bedrock_provider": "anthropic",
            "aws_access_key_id": "{{secrets/llm/k}}", "aws_secret_access_key": "{{secrets/llm/k}}"}}});
    refused(create_body("a", vec![bedrock]), "aws_region", "must not contain '/'").await;

    let (_, list) = t.get(SE).await;
    assert_eq!(list, json!({"endpoints": []}), "nothing was created");
}

#[tokio::test]
async fn scim_filters_that_cannot_be_read_are_errors() {
    let t = TestServer::start().await;
    for (filter, says) in [
        ("emails.value eq \"a@b.c\"", "cannot be filtered on"),
        ("userName eq \"unclosed", "not closed"),
        ("userName eq", "expected attribute op"),
    ] {
        let got = t
            .http
            .get(format!("{}/api/2.0/preview/scim/v2/Users", t.base))
            .query(&[("filter", filter)])
            .bearer_auth(&t.token)
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), StatusCode::BAD_REQUEST, "{filter}");
        let v: Value = got.json().await.unwrap();
        assert!(v["message"].as_str().unwrap().contains(says), "{filter}: {v}");
    }
}

#[tokio::test]
async fn errors_are_json_everywhere_and_the_bearer_scheme_ignores_case() {
    let t = TestServer::start().await;
    let resp =
        t.http.get(format!("{}/api/2.0/serving-endpoints/%FF%FE", t.base)).bearer_auth(&t.token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v: Value = resp.json().await.expect("a JSON error body");
    assert_eq!(v["error_code"], "BAD_REQUEST", "{v}");

    let resp = t.http.post(format!("{}/healthz", t.base)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let v: Value = resp.json().await.expect("a JSON error body");
    assert_eq!(v["error_code"], "BAD_REQUEST", "{v}");

    for scheme in ["bearer", "BEARER", "Bearer"] {
        let resp = t
            .http
            .get(format!("{}/api/2.0/serving-endpoints", t.base))
            .header("authorization", format!("{scheme} {ADMIN_TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{scheme}");
    }
}

#[tokio::test]
async fn a_secret_with_a_trailing_newline_is_pointed_out_at_put_deploy_and_query_time() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    t.post("/api/2.0/secrets/scopes/create", json!({"scope": "llm"})).await;
    let (s, b) =
        t.post("/api/2.0/secrets/put", json!({"scope": "llm", "key": "bad", "string_value": "sk-echoed-key\n"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["warnings"][0].as_str().unwrap().contains("ends with whitespace"), "{b}");
    let (_, b) = t.post("/api/2.0/secrets/put", json!({"scope": "llm", "key": "k", "string_value": "sk-good"})).await;
    assert_eq!(b, json!({}), "no warning for a clean value");

    // Deploying a config that uses it fails, saying why.
    let mut e = mock_entity("a", &url, json!({}));
    e["external_model"]["openai_config"]["openai_api_key"] = json!("{{secrets/llm/bad}}");
    let (s, b) = t.post(SE, json!({"name": "nl", "config": {"served_entities": [e]}})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let e = t.wait_settled("nl").await;
    assert_eq!(e["state"]["config_update"], "UPDATE_FAILED", "{e}");
    let logs = t.get(&format!("{SE}/nl/served-models/a/build-logs")).await.1;
    let logs = logs["logs"].as_str().unwrap();
    assert!(logs.contains("{{secrets/llm/bad}}") && logs.contains("ends with whitespace"), "{logs}");
    assert!(!logs.contains("sk-echoed-key"), "{logs}");

    // A key rotated to a bad value under a running endpoint fails queries with a clear message.
    create_ready(&t, json!({"name": "ok", "config": {"served_entities": [mock_entity("a", &url, json!({}))]}})).await;
    t.post("/api/2.0/secrets/put", json!({"scope": "llm", "key": "k", "string_value": "sk-rotated\n"})).await;
    let (s, b) =
        t.post("/serving-endpoints/ok/invocations", json!({"messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{b}");
    assert!(b["message"].as_str().unwrap().contains("newline"), "{b}");
    assert!(!b.to_string().contains("sk-rotated"), "{b}");
}

/// The fields the gateway itself reads from a query are typed: one of the wrong type is a 400
/// naming it, and the provider is never called.
#[tokio::test]
async fn query_fields_of_the_wrong_type_are_named() {
    let (m, url) = mock().await;
    let t = TestServer::start().await;
    guarded(&t, &url).await;
    let sent_before = m.requests.lock().unwrap().len();
    for (field, value) in [
        ("stream", json!("yes")),
        ("stream_options", json!({"include_usage": "please"})),
        ("encoding_format", json!("int8")),
        ("usage_context", json!("team-a")),
        ("client_request_id", json!(42)),
    ] {
        let mut body = json!({"messages": [{"role": "user", "content": "hi"}]});
        body[field] = value;
        let (s, b) = raw(&t, Method::POST, "/serving-endpoints/guarded/invocations", &body.to_string()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{field}: {b}");
        assert_eq!(b["error_code"], "INVALID_PARAMETER_VALUE", "{field}: {b}");
        assert!(b["message"].as_str().unwrap().starts_with(field), "{field}: {b}");
    }
    assert_eq!(m.requests.lock().unwrap().len(), sent_before, "no malformed query reached the provider");
}
