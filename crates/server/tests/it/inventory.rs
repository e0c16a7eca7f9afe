//! The inventory: every endpoint with its owner, state, use and cost, and flags computed from
//! real usage records and configs.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn entry<'a>(inv: &'a Value, name: &str) -> &'a Value {
    inv["endpoints"].as_array().unwrap().iter().find(|e| e["name"] == name).unwrap_or_else(|| panic!("{name} in {inv}"))
}

fn flags(e: &Value) -> Vec<String> {
    e["flags"].as_array().unwrap().iter().map(|f| f["flag"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn the_inventory_flags_duplicates_unused_endpoints_and_forgotten_experiments() {
    let (_m, url) = mock().await;
    let (_other, other_url) = mock().await;
    let mut t = TestServer::start().await;
    t.secret("llm", "k", "sk-inventory").await;
    let tags = json!([{"key": "team", "value": "ml"}, {"key": "environment", "value": "prod"}]);
    for (name, base) in
        [("chat-a", &url), ("chat-b", &url), ("chat-c", &other_url), ("idle", &other_url), ("demo-poc", &other_url)]
    {
        let mut body =
            json!({"name": name, "config": {"served_entities": [mock_entity("main", base, json!({}))]}, "tags": tags});
        if name == "idle" || name == "demo-poc" {
            // Another model, so these are not duplicates of chat-c.
            body["config"]["served_entities"][0]["external_model"]["name"] = json!(format!("gpt-4o-{name}"));
        }
        create_ready(&t, body).await;
    }
    for name in ["chat-a", "chat-b", "chat-c"] {
        let (s, b) = t
            .post(
                &format!("/serving-endpoints/{name}/invocations"),
                json!({"messages": [{"role": "user", "content": "hi"}]}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    // Forty days ago, for the two that nobody used since.
    let old = modelgate_core::now_ms() - 40 * 24 * 3600 * 1000;
    let sql = format!("UPDATE endpoints SET created_at = {old}, updated_at = {old} WHERE name IN ('idle', 'demo-poc')");
    tamper(&mut t, &sql, |_| {}).await;

    let (s, inv) = t.get("/api/2.0/inventory").await;
    assert_eq!(s, StatusCode::OK, "{inv}");
    let a = entry(&inv, "chat-a");
    assert_eq!(flags(a), vec!["duplicate"], "{a}");
    assert!(a["flags"][0]["reason"].as_str().unwrap().contains("chat-b"), "{a}");
    assert_eq!(flags(entry(&inv, "chat-b")), vec!["duplicate"]);
    assert_eq!(flags(entry(&inv, "chat-c")), Vec::<String>::new(), "another backend: no duplicate");
    let idle = entry(&inv, "idle");
    assert_eq!(flags(idle), vec!["unused"], "{idle}");
    assert!(idle["flags"][0]["reason"].as_str().unwrap().contains("never queried"), "{idle}");
    let poc = entry(&inv, "demo-poc");
    assert_eq!(flags(poc), vec!["unused", "poc"], "{poc}");

    assert_eq!(
        (a["type"].as_str(), a["provider"].as_str(), a["model"].as_str()),
        (Some("external"), Some("openai"), Some("gpt-4o"))
    );
    assert_eq!(
        (a["team"].as_str(), a["environment"].as_str(), a["owner"].as_str()),
        (Some("ml"), Some("prod"), Some("admin"))
    );
    assert_eq!(a["state"], "Ready");
    assert_eq!(a["queries_30d"], 1);
    assert!(a["cost_30d_usd"].as_f64().unwrap() > 0.0 && a["spend_this_month_usd"].as_f64().unwrap() > 0.0, "{a}");
    assert!(a["last_query"].as_i64().is_some());

    // A deprecation notice that is due is a flag too.
    let (s, b) = t
        .put(
            "/api/2.0/serving-endpoints/chat-c/deprecation",
            json!({"notice_date": "2026-01-01", "sunset_date": "2099-12-31", "replacement": "chat-a"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, inv) = t.get("/api/2.0/inventory").await;
    let c = entry(&inv, "chat-c");
    assert_eq!(flags(c), vec!["deprecated"], "{c}");
    assert_eq!(c["flags"][0]["reason"], "sunset on 2099-12-31; use chat-a");
    assert_eq!(c["deprecation"]["sunset_date"], "2099-12-31");

    // Thresholds are the caller's; bad ones are named.
    let (_, strict) = t.get("/api/2.0/inventory?unused_days=50").await;
    assert!(!flags(entry(&strict, "idle")).contains(&"unused".to_string()));
    let got = t.get("/api/2.0/inventory?unused_days=0").await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "unused_days");

    // A caller sees only the endpoints it may view.
    create_principal(&t, "Users", json!({"userName": "dev@example.com"})).await;
    let dev = token_for(&t, json!({"user_name": "dev@example.com"})).await;
    let (_, mine) = t.call_as(Some(&dev), reqwest::Method::GET, "/api/2.0/inventory", None).await;
    assert_eq!(mine["endpoints"], json!([]), "{mine}");
}
