//! The request log: every data-plane request, refused and failed ones included, leaves a record
//! that says why, searchable by endpoint, status, requester, error code and time.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn query(t: &TestServer, token: &str, path: &str, body: Value) -> StatusCode {
    t.http.post(format!("{}{path}", t.base)).bearer_auth(token).json(&body).send().await.unwrap().status()
}

fn chat(extra: Value) -> Value {
    let mut b = json!({"messages": [{"role": "user", "content": "hi"}]});
    b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    b
}

async fn log(t: &TestServer, q: &str) -> Vec<Value> {
    let (s, b) = t.get(&format!("/api/2.0/requests?{q}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["requests"].as_array().unwrap().clone()
}

#[tokio::test]
async fn every_request_leaves_a_record_that_says_what_happened() {
    let (east, east_url) = mock().await;
    let (_west, west_url) = mock().await;
    let t = TestServer::start_with(|c| {
        c.retries.retries = 2;
        c.retries.backoff = Duration::from_millis(5);
        c.breaker.failures = 1000;
    })
    .await;
    t.secret("llm", "k", "sk-requests-test-key").await;
    create_ready(&t, json!({"name": "pool", "config": {"served_entities": [
        mock_entity("east", &east_url, json!({"priority": 1})), mock_entity("west", &west_url, json!({"priority": 2}))]}}))
    .await;
    create_ready(
        &t,
        json!({"name": "solo", "config": {"served_entities": [mock_entity("east", &east_url, json!({}))]}}),
    )
    .await;
    let mut dead = mock_entity("gone", "http://127.0.0.1:9", json!({}));
    dead["name"] = json!("gone");
    create_ready(&t, json!({"name": "dead", "config": {"served_entities": [dead]}})).await;
    let admin = t.token.clone();

    // East fails: the pool fails over to west; the single-entity endpoint retries east twice.
    east.force_status.store(500, Ordering::SeqCst);
    assert_eq!(
        query(&t, &admin, "/serving-endpoints/pool/invocations", chat(json!({"client_request_id": "order-7"}))).await,
        StatusCode::OK
    );
    assert_eq!(
        query(&t, &admin, "/serving-endpoints/solo/invocations", chat(json!({}))).await,
        StatusCode::BAD_GATEWAY
    );
    east.force_status.store(0, Ordering::SeqCst);
    assert_eq!(
        query(&t, &admin, "/serving-endpoints/dead/invocations", chat(json!({}))).await,
        StatusCode::BAD_GATEWAY
    );
    // Refused before any endpoint: a name that does not exist, a body that is not JSON.
    assert_eq!(query(&t, &admin, "/serving-endpoints/nope/invocations", chat(json!({}))).await, StatusCode::NOT_FOUND);
    let resp = t
        .http
        .post(format!("{}/serving-endpoints/pool/invocations", t.base))
        .bearer_auth(&admin)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    let all = log(&t, "").await;
    assert_eq!(all.len(), 5, "{all:#?}");
    let times: Vec<i64> = all.iter().map(|r| r["request_time"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");

    let failed_over = all.iter().find(|r| r["endpoint"] == "pool" && r["status_code"] == 200).unwrap();
    assert_eq!(failed_over["served_entity"], "west", "{failed_over}");
    assert_eq!(failed_over["entities_tried"], json!(["east", "west"]), "{failed_over}");
    assert_eq!(failed_over["attempts"], 2);
    assert_eq!(failed_over["client_request_id"], "order-7");
    assert!(failed_over["input_tokens"].as_i64().unwrap() > 0, "{failed_over}");

    let retried = all.iter().find(|r| r["endpoint"] == "solo").unwrap();
    assert_eq!(
        (retried["status_code"].as_i64(), retried["upstream_status"].as_i64()),
        (Some(502), Some(500)),
        "{retried}"
    );
    assert_eq!(retried["attempts"], 3, "the first call and two retries: {retried}");
    assert_eq!(retried["entities_tried"], json!(["east"]));
    let msg = retried["error_message"].as_str().unwrap();
    assert!(msg.contains("Served entity 'east'") && msg.contains("answered HTTP 500"), "{msg}");

    let unreachable = all.iter().find(|r| r["endpoint"] == "dead").unwrap();
    let msg = unreachable["error_message"].as_str().unwrap();
    assert!(msg.contains("127.0.0.1:9") && msg.contains("connection refused"), "{msg}");
    assert_eq!(unreachable["error_code"], "BAD_GATEWAY");
    assert!(unreachable.get("upstream_status").is_none(), "nothing answered: {unreachable}");

    let unknown = all.iter().find(|r| r["endpoint"] == "nope").unwrap();
    assert_eq!((unknown["status_code"].as_i64(), unknown["attempts"].as_i64()), (Some(404), Some(0)));
    let bad = all.iter().find(|r| r["status_code"] == 400).unwrap();
    assert!(bad["error_message"].as_str().unwrap().contains("JSON"), "{bad}");
    assert!(!serde_json::to_string(&all).unwrap().contains("sk-requests-test-key"), "no credential in the log");

    // Filters.
    let statuses = |rows: Vec<Value>| rows.iter().map(|r| r["status_code"].as_i64().unwrap()).collect::<Vec<_>>();
    assert_eq!(statuses(log(&t, "status=5xx").await), vec![502, 502]);
    assert_eq!(statuses(log(&t, "status=404").await), vec![404]);
    assert_eq!(log(&t, "status=error").await.len(), 4);
    assert_eq!(log(&t, "endpoint=pool&status=2xx").await.len(), 1);
    assert_eq!(log(&t, "error_code=BAD_GATEWAY").await.len(), 2);
    assert_eq!(log(&t, "requester=admin").await.len(), 5);
    assert_eq!(log(&t, "requester=someone-else").await.len(), 0);
    let future = modelgate_core::now_ms() + 60_000;
    assert_eq!(log(&t, &format!("start={future}&end={}", future + 1)).await.len(), 0);

    // Pages, newest first.
    let (_, page) = t.get("/api/2.0/requests?limit=2").await;
    let token = page["next_page_token"].as_str().unwrap().to_string();
    let (_, rest) = t.get(&format!("/api/2.0/requests?limit=10&page_token={token}")).await;
    assert!(rest.get("next_page_token").is_none(), "{rest}");
    let mut ids: Vec<Value> = page["requests"].as_array().unwrap().iter().map(|r| r["request_id"].clone()).collect();
    ids.extend(rest["requests"].as_array().unwrap().iter().map(|r| r["request_id"].clone()));
    assert_eq!(ids, all.iter().map(|r| r["request_id"].clone()).collect::<Vec<_>>());

    // One request, by its id or the client's.
    let (s, one) = t.get(&format!("/api/2.0/requests/{}", failed_over["request_id"].as_str().unwrap())).await;
    assert_eq!((s, &one), (StatusCode::OK, failed_over));
    let (_, by_client) = t.get("/api/2.0/requests/order-7").await;
    assert_eq!(by_client["request_id"], failed_over["request_id"]);
    let got = t.get("/api/2.0/requests/no-such-request").await;
    assert_error(&got, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", "no-such-request");

    // Bad filters are named.
    for (q, field) in
        [("status=teapot", "status"), ("limit=0", "limit"), ("start=soon", "start"), ("colour=red", "colour")]
    {
        let got = t.get(&format!("/api/2.0/requests?{q}")).await;
        assert_eq!(got.0, StatusCode::BAD_REQUEST, "{q}: {}", got.1);
        assert!(got.1.to_string().contains(field), "{q}: {}", got.1);
    }
}

#[tokio::test]
async fn callers_see_their_own_requests_and_managers_their_endpoints() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-x").await;
    create_ready(&t, json!({"name": "shared", "config": {"served_entities": [mock_entity("a", &url, json!({}))]}}))
        .await;
    let (_, ep) = t.get("/api/2.0/serving-endpoints/shared").await;
    let id = ep["id"].as_str().unwrap().to_string();
    create_principal(&t, "Users", json!({"userName": "dev@example.com"})).await;
    create_principal(&t, "Users", json!({"userName": "ops@example.com"})).await;
    let acl = json!({"access_control_list": [
        {"user_name": "dev@example.com", "permission_level": "CAN_QUERY"},
        {"user_name": "ops@example.com", "permission_level": "CAN_MANAGE"}]});
    let (s, b) = t.put(&format!("/api/2.0/permissions/serving-endpoints/{id}"), acl).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let dev = token_for(&t, json!({"user_name": "dev@example.com"})).await;
    let ops = token_for(&t, json!({"user_name": "ops@example.com"})).await;

    assert_eq!(query(&t, &dev, "/serving-endpoints/shared/invocations", chat(json!({}))).await, StatusCode::OK);
    assert_eq!(query(&t, &t.token, "/serving-endpoints/shared/invocations", chat(json!({}))).await, StatusCode::OK);

    let seen = |token: String| {
        let t = &t;
        async move {
            let (s, b) = t.call_as(Some(&token), Method::GET, "/api/2.0/requests", None).await;
            assert_eq!(s, StatusCode::OK, "{b}");
            b["requests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["requester"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(seen(dev.clone()).await, vec!["dev@example.com"], "a caller sees only its own requests");
    assert_eq!(seen(ops).await.len(), 2, "a manager sees every request to its endpoint");
    let admins = log(&t, "requester=admin").await;
    let (s, _) = t
        .call_as(
            Some(&dev),
            Method::GET,
            &format!("/api/2.0/requests/{}", admins[0]["request_id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another caller's request is not shown");
}
