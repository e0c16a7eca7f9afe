//! The outbound policy: who may point an endpoint where, addresses nobody may reach, redirects.

use crate::common::*;
use modelgate_core::outbound::OutboundPolicy;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SE: &str = "/api/2.0/serving-endpoints";

/// A non-admin user who may read the scope `llm`, and a token for it.
async fn user(t: &TestServer) -> (String, String) {
    t.secret("llm", "k", "sk-outbound-0123").await;
    let id = create_principal(t, "Users", json!({"userName": "ann@example.com"})).await;
    let (s, b) = t
        .post(
            "/api/2.0/secrets/acls/put",
            json!({"scope": "llm", "principal": "ann@example.com", "permission": "READ"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    (id, token_for(t, json!({"user_name": "ann@example.com"})).await)
}

async fn create_as(t: &TestServer, token: &str, body: Value) -> (StatusCode, Value) {
    t.call_as(Some(token), Method::POST, SE, Some(body)).await
}

async fn group_id(t: &TestServer, name: &str) -> String {
    let (_, b) = t.get(&format!("/api/2.0/preview/scim/v2/Groups?filter=displayName%20eq%20%22{name}%22")).await;
    b["Resources"][0]["id"].as_str().unwrap().to_string()
}

async fn membership(t: &TestServer, group: &str, member: &str, op: &str) {
    let body = json!({"Operations": [{"op": op, "path": "members", "value": [{"value": member}]}]});
    let (s, b) = t.call(Method::PATCH, &format!("/api/2.0/preview/scim/v2/Groups/{group}"), Some(body)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test]
async fn only_trusted_principals_point_endpoints_at_private_urls() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    let (ann, token) = user(&t).await;
    let private = json!({"name": "mine", "config": {"served_entities": [mock_entity("a", &url, json!({}))]}});

    let got = create_as(&t, &token, private.clone()).await;
    assert_error(
        &got,
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
        "config.served_entities[0].external_model.openai_config.openai_api_base",
    );
    let msg = got.1["message"].as_str().unwrap();
    assert!(msg.contains(&url) && msg.contains("custom-base-urls") && msg.contains("--outbound-allow"), "{msg}");

    // The provider's own host is fine for anyone.
    let public = create_body("public", vec![openai_entity("gpt-4o", "{{secrets/llm/k}}")]);
    let (s, b) = create_as(&t, &token, public).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // An admin grants the right through the built-in group.
    let group = group_id(&t, "custom-base-urls").await;
    membership(&t, &group, &ann, "add").await;
    let (s, b) = create_as(&t, &token, private).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(t.wait_settled("mine").await["state"]["ready"], "READY");

    // Without the right, the URL the endpoint already uses stays usable; a new one is not.
    membership(&t, &group, &ann, "remove").await;
    let mut config = json!({"served_entities": [mock_entity("a", &url, json!({}))]});
    let (s, b) = t.call_as(Some(&token), Method::PUT, &format!("{SE}/mine/config"), Some(config.clone())).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    t.wait_settled("mine").await;
    config["served_entities"][0]["external_model"]["openai_config"]["openai_api_base"] =
        json!("http://10.1.2.3:8000/v1");
    let got = t.call_as(Some(&token), Method::PUT, &format!("{SE}/mine/config"), Some(config)).await;
    assert_error(&got, StatusCode::FORBIDDEN, "PERMISSION_DENIED", "http://10.1.2.3:8000");
}

#[tokio::test]
async fn metadata_and_link_local_addresses_are_refused_to_everyone() {
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-outbound-0123").await;
    for base in [
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00:ec2::254]/v1",
        "http://metadata.google.internal/computeMetadata/v1",
        "http://2852039166/v1",
        "http://[::ffff:169.254.169.254]/v1",
        "http://0.0.0.0:80/v1",
    ] {
        let got = t
            .post(SE, json!({"name": "meta", "config": {"served_entities": [mock_entity("a", base, json!({}))]}}))
            .await;
        assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "openai_api_base");
    }
    let got =
        t.post("/api/2.0/alert-destinations", json!({"name": "meta", "url": "http://169.254.169.254/hook"})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "never allowed");
    let (_, list) = t.get(SE).await;
    assert_eq!(list, json!({"endpoints": []}));
}

#[tokio::test]
async fn the_allow_list_opens_a_url_to_everyone() {
    let (_m, url) = mock().await;
    let t = TestServer::start_with(|c| {
        c.outbound = OutboundPolicy::with(vec!["http://127.0.0.1:*".parse().unwrap()]);
    })
    .await;
    let (_, token) = user(&t).await;
    let body = json!({"name": "mine", "config": {"served_entities": [mock_entity("a", &url, json!({}))]}});
    let (s, b) = create_as(&t, &token, body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let other =
        json!({"name": "other", "config": {"served_entities": [mock_entity("a", "http://127.0.0.2:9/v1", json!({}))]}});
    let got = create_as(&t, &token, other).await;
    assert_eq!(got.0, StatusCode::FORBIDDEN, "only 127.0.0.1 is on the list: {}", got.1);
}

#[tokio::test]
async fn redirects_to_another_host_are_not_followed() {
    let (_m, url) = mock().await;
    let (elsewhere, elsewhere_url) = mock().await;
    let port = elsewhere_url.rsplit(':').next().unwrap().to_string();
    let t = TestServer::start_with(|c| c.retries.retries = 0).await;
    t.secret("llm", "k", "sk-outbound-0123").await;
    create_ready(&t, json!({"name": "r", "config": {"served_entities": [mock_entity("a", &url, json!({}))]}})).await;
    let (s, b) = t
        .post(
            "/serving-endpoints/r/invocations",
            json!({"messages": [{"role": "user", "content": format!("__redirect_to_{port}__")}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{b}");
    assert!(b["message"].as_str().unwrap().contains("redirected to another host"), "{b}");
    assert!(elsewhere.requests.lock().unwrap().is_empty(), "the other host got nothing");
}
