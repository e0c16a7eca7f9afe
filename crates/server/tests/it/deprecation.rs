//! Deprecation: headers from the notice date, 410 (or forwarding) from the sunset date, and the
//! workspace's minimum notice.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SE: &str = "/api/2.0/serving-endpoints";

async fn ask(t: &TestServer, name: &str) -> reqwest::Response {
    t.http
        .post(format!("{}/serving-endpoints/{name}/invocations", t.base))
        .bearer_auth(&t.token)
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers().get(name).map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn deprecated_endpoints_announce_their_sunset_then_retire_or_forward() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-deprecation").await;
    create_ready(
        &t,
        json!({"name": "new", "config": {"served_entities": [mock_entity("successor", &url, json!({}))]}}),
    )
    .await;
    let notice = json!({"notice_date": "2026-01-01", "sunset_date": "2099-12-31", "replacement": "new", "message": "Move to new."});
    create_ready(&t, json!({"name": "old", "config": {"served_entities": [mock_entity("legacy", &url, json!({}))]}, "deprecation": notice})).await;

    let r = ask(&t, "old").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "deprecation").as_deref(), Some("@1767225600"), "2026-01-01T00:00:00Z");
    assert_eq!(header(&r, "sunset").as_deref(), Some("Thu, 31 Dec 2099 00:00:00 GMT"));
    assert_eq!(header(&r, "link").as_deref(), Some("</serving-endpoints/new/invocations>; rel=\"successor-version\""));
    assert!(header(&ask(&t, "new").await, "deprecation").is_none(), "the replacement is not deprecated");
    let (_, e) = t.get(&format!("{SE}/old")).await;
    assert_eq!(e["deprecation"]["replacement"], "new", "{e}");

    // The minimum notice, real dates, and a replacement that is another endpoint.
    for (body, field) in [
        (json!({"notice_date": "2027-01-01", "sunset_date": "2027-01-15"}), "sunset_date"),
        (json!({"notice_date": "2027-02-30", "sunset_date": "2027-06-01"}), "notice_date"),
        (json!({"notice_date": "2027-01-01", "sunset_date": "2027-06-01", "replacement": "old"}), "replacement"),
        (json!({"notice_date": "2027-01-01", "sunset_date": "2027-06-01", "forward": true}), "forward"),
    ] {
        let got = t.put(&format!("{SE}/old/deprecation"), body).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", field);
    }
    let (_, e) = t.get(&format!("{SE}/old")).await;
    assert_eq!(e["deprecation"]["sunset_date"], "2099-12-31", "a refused change leaves the notice as it was: {e}");

    // Past the sunset: gone, with the replacement named, and in the request log.
    let (s, b) = t
        .put(
            &format!("{SE}/old/deprecation"),
            json!({"notice_date": "2020-01-01", "sunset_date": "2020-03-01", "replacement": "new"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let r = ask(&t, "old").await;
    assert_eq!(r.status(), StatusCode::GONE);
    assert!(header(&r, "sunset").is_some());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_code"], "ENDPOINT_RETIRED");
    assert!(body["message"].as_str().unwrap().contains("retired on 2020-03-01; use 'new'"), "{body}");
    let (_, log) = t.get("/api/2.0/requests?endpoint=old&status=410").await;
    assert_eq!(log["requests"].as_array().unwrap().len(), 1, "{log}");

    // With forward, the replacement answers.
    let (s, _) = t
        .put(
            &format!("{SE}/old/deprecation"),
            json!({"notice_date": "2020-01-01", "sunset_date": "2020-03-01", "replacement": "new", "forward": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let r = ask(&t, "old").await;
    assert_eq!((r.status(), header(&r, "served-model-name").as_deref()), (StatusCode::OK, Some("successor")));
    assert!(header(&r, "deprecation").is_some());

    // A notice not yet due adds nothing; a withdrawn one neither.
    let (s, _) = t
        .put(&format!("{SE}/old/deprecation"), json!({"notice_date": "2099-01-01", "sunset_date": "2099-12-31"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(header(&ask(&t, "old").await, "deprecation").is_none());
    let (s, _) = t.call(reqwest::Method::DELETE, &format!("{SE}/old/deprecation"), None).await;
    assert_eq!(s, StatusCode::OK);
    let (_, e) = t.get(&format!("{SE}/old")).await;
    assert!(e.get("deprecation").is_none(), "{e}");
    let (_, history) = t.get(&format!("{SE}/old/settings-history")).await;
    assert!(history["changes"].as_array().unwrap().iter().all(|c| c["field"] == "deprecation"), "{history}");
}

#[tokio::test]
async fn owners_are_told_at_the_notice_and_a_week_before_the_sunset() {
    let (_m, url) = mock().await;
    let t = TestServer::start_with(|c| c.alert_interval = std::time::Duration::from_millis(100)).await;
    t.secret("llm", "k", "sk-deprecation-alerts").await;
    let day = |offset_days: i64| {
        let ms = modelgate_core::now_ms() + offset_days * 86_400_000;
        let t =
            humantime::format_rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64)).to_string();
        t[..10].to_string()
    };
    let soon = json!({"notice_date": day(-40), "sunset_date": day(3), "replacement": "next"});
    let later = json!({"notice_date": day(-1), "sunset_date": day(60)});
    create_ready(&t, json!({"name": "soon", "config": {"served_entities": [mock_entity("a", &url, json!({}))]}, "deprecation": soon})).await;
    create_ready(&t, json!({"name": "later", "config": {"served_entities": [mock_entity("a", &url, json!({}))]}, "deprecation": later})).await;
    let started = std::time::Instant::now();
    let firing = loop {
        let (_, alerts) = t.get("/api/2.0/alerts").await;
        let firing: Vec<(String, String)> = alerts["firing"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == "deprecation")
            .map(|a| (a["endpoint"].as_str().unwrap().to_string(), a["subject"].as_str().unwrap().to_string()))
            .collect();
        if firing.len() >= 3 || started.elapsed() > std::time::Duration::from_secs(10) {
            break firing;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let mut firing = firing;
    firing.sort();
    let expected: Vec<(String, String)> = [("later", "notice"), ("soon", "notice"), ("soon", "sunset")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(firing, expected);
}
