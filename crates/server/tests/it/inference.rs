//! Inference tables: what is logged, sampling, size caps, PII masking, filters, retention and
//! access.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SE: &str = "/api/2.0/serving-endpoints";

async fn rig(table: Value) -> (TestServer, std::sync::Arc<modelgate_mock_upstream::Mock>) {
    let (m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-inference").await;
    let mut config = json!({"catalog_name": "main", "schema_name": "logs", "enabled": true});
    config.as_object_mut().unwrap().extend(table.as_object().unwrap().clone());
    create_ready(
        &t,
        json!({"name": "ep", "config": {"served_entities": [mock_entity("a", &url, json!({}))]},
               "ai_gateway": {"inference_table_config": config}}),
    )
    .await;
    (t, m)
}

async fn chat(t: &TestServer, text: &str, stream: bool) -> StatusCode {
    let r = t
        .http
        .post(format!("{}/serving-endpoints/ep/invocations", t.base))
        .bearer_auth(&t.token)
        .json(&json!({"messages": [{"role": "user", "content": text}], "stream": stream, "client_request_id": "c-1"}))
        .send()
        .await
        .unwrap();
    let s = r.status();
    r.bytes().await.unwrap();
    s
}

async fn table(t: &TestServer, query: &str) -> Vec<Value> {
    let (s, b) = t.get(&format!("{SE}/ep/inference-table?{query}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["records"].as_array().unwrap().clone()
}

#[tokio::test]
async fn queries_are_logged_with_request_response_and_status() {
    let (t, m) = rig(json!({})).await;
    assert_eq!(chat(&t, "first", false).await, StatusCode::OK);
    assert_eq!(chat(&t, "second one", true).await, StatusCode::OK);
    m.force_status.store(503, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(chat(&t, "third", false).await, StatusCode::SERVICE_UNAVAILABLE);

    let all = table(&t, "").await;
    assert_eq!(all.len(), 3, "{all:?}");
    let plain = all.iter().find(|r| r["request"].as_str().unwrap().contains("first")).unwrap();
    assert_eq!(plain["status_code"], 200);
    assert_eq!(plain["client_request_id"], "c-1");
    assert_eq!(plain["requester"], "admin");
    assert_eq!(plain["served_entity_id"], "a");
    assert_eq!(plain["sampling_fraction"], 1.0);
    assert_eq!(plain["logging_error_codes"], json!([]));
    assert_eq!(plain["request_date"].as_str().unwrap().len(), 10);
    let response: Value = serde_json::from_str(plain["response"].as_str().unwrap()).unwrap();
    assert_eq!(response["choices"][0]["message"]["content"], "echo: first");

    let streamed = all.iter().find(|r| r["request"].as_str().unwrap().contains("second")).unwrap();
    let response: Value = serde_json::from_str(streamed["response"].as_str().unwrap()).unwrap();
    assert_eq!(response["choices"][0]["message"]["content"], "echo: second one", "the stream, assembled");
    assert_eq!(response["streamed"], true);
    assert_eq!(response["choices"][0]["finish_reason"], "stop", "{response}");
    let usage = (response["usage"]["prompt_tokens"].as_i64(), response["usage"]["completion_tokens"].as_i64());
    assert_eq!(usage, (Some(5), Some(3)), "the provider's counts, not an estimate: {response}");

    let failed = table(&t, "status=5xx").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["status_code"], 503);
    assert!(failed[0]["response"].as_str().unwrap().contains("TEMPORARILY_UNAVAILABLE"));
    assert_eq!(table(&t, "status=200").await.len(), 2);
    assert_eq!(table(&t, "requester=someone-else").await.len(), 0);
    assert_eq!(table(&t, "limit=1").await.len(), 1);

    let r = t
        .http
        .get(format!("{}{SE}/ep/inference-table?format=jsonl", t.base))
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    let lines: Vec<Value> = r.text().await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    let bad = t.get(&format!("{SE}/ep/inference-table?status=9xx")).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "status");
}

#[tokio::test]
async fn sampling_size_caps_and_masking() {
    let (t, _m) = rig(json!({"sampling_fraction": 0.25})).await;
    for _ in 0..400 {
        assert_eq!(chat(&t, "hi", false).await, StatusCode::OK);
    }
    let n = table(&t, "limit=1000").await.len();
    // Binomial(400, 0.25): mean 100, standard deviation 8.7; ±4 sd.
    assert!((65..=135).contains(&n), "{n} of 400 logged at 25 %");

    let (t, _m) = rig(json!({"max_payload_bytes": 300, "mask_pii": true})).await;
    assert_eq!(chat(&t, "mail bob@example.com or call +1 (415) 555-2671", false).await, StatusCode::OK);
    assert_eq!(chat(&t, &"long ".repeat(100), false).await, StatusCode::OK);
    let records = table(&t, "").await;
    let masked = records.iter().find(|r| r["request"].as_str().is_some_and(|q| q.contains("mail"))).unwrap();
    let (req, resp) = (masked["request"].as_str().unwrap(), masked["response"].as_str().unwrap());
    assert!(req.contains("[EMAIL_ADDRESS]") && req.contains("[PHONE_NUMBER]") && !req.contains("bob@"), "{req}");
    assert!(resp.contains("echo: mail [EMAIL_ADDRESS]") && !resp.contains("555-2671"), "{resp}");
    let big = records.iter().find(|r| r["request"].is_null()).expect("the oversized request is null");
    assert_eq!(big["logging_error_codes"], json!(["MAX_REQUEST_SIZE_EXCEEDED", "MAX_RESPONSE_SIZE_EXCEEDED"]));
    assert!(big["response"].is_null());
}

#[tokio::test]
async fn nothing_is_logged_when_disabled_and_payloads_need_manage() {
    let (t, _m) = rig(json!({"enabled": false})).await;
    assert_eq!(chat(&t, "hi", false).await, StatusCode::OK);
    assert!(table(&t, "").await.is_empty());
    create_principal(&t, "Users", json!({"userName": "q@example.com"})).await;
    let token = token_for(&t, json!({"user_name": "q@example.com"})).await;
    let id = t.get(&format!("{SE}/ep")).await.1["id"].as_str().unwrap().to_string();
    let (s, _) = t
        .call(
            reqwest::Method::PATCH,
            &format!("/api/2.0/permissions/serving-endpoints/{id}"),
            Some(json!({"access_control_list": [{"user_name": "q@example.com", "permission_level": "CAN_QUERY"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let got = t.call_as(Some(&token), reqwest::Method::GET, &format!("{SE}/ep/inference-table"), None).await;
    assert_error(&got, StatusCode::FORBIDDEN, "PERMISSION_DENIED", "CAN_MANAGE");
    let bad = t
        .put(
            &format!("{SE}/ep/ai-gateway"),
            json!({"inference_table_config": {"enabled": true, "catalog_name": "c", "schema_name": "s", "sampling_fraction": 0}}),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "inference_table_config.sampling_fraction");
}

#[tokio::test]
async fn payloads_past_retention_are_deleted() {
    let (mut t, _m) = rig(json!({"retention_days": 7})).await;
    assert_eq!(chat(&t, "recent", false).await, StatusCode::OK);
    assert_eq!(table(&t, "").await.len(), 1);
    t.server.take().unwrap().shutdown().await.unwrap();

    // Two old payloads written while the server is down: one past this endpoint's 7 days, one
    // of a deleted endpoint within the default 30.
    let db = t.logs("inference.db").open_inference().await.unwrap();
    let day = 24 * 3600 * 1000;
    let now = modelgate_core::now_ms();
    let old = |id: &str, ep: &str, age_days: i64| modelgate_store::PayloadRecord {
        databricks_request_id: id.into(),
        endpoint_name: ep.into(),
        request_date: "2026-01-01".into(),
        request_time: now - age_days * day,
        status_code: 200,
        sampling_fraction: 1.0,
        ..Default::default()
    };
    db.insert(&[old("old-ep", "ep", 8), old("gone", "deleted-endpoint", 10), old("ancient", "deleted-endpoint", 40)])
        .await
        .unwrap();
    db.close().await;

    t.restart_with(|_| {}).await;
    // The retention pass runs as the server starts.
    let mut left = Vec::new();
    for _ in 0..50 {
        let db = t.logs("inference.db").open_inference().await.unwrap();
        let mut ids = Vec::new();
        for ep in ["ep", "deleted-endpoint"] {
            let q = modelgate_store::PayloadQuery {
                endpoint: ep.into(),
                since: 0,
                until: now + 1,
                limit: 100,
                ..Default::default()
            };
            ids.extend(db.query(&q).await.unwrap().into_iter().map(|r| r.databricks_request_id));
        }
        db.close().await;
        left = ids;
        if left.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(left.contains(&"gone".to_string()) && !left.contains(&"old-ep".to_string()), "{left:?}");
    assert!(!left.contains(&"ancient".to_string()));
}
