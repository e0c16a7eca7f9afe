//! Anthropic Messages in: the same endpoints, answered in Anthropic's shapes, whatever provider
//! is behind them (the mock speaks OpenAI's and Anthropic's real wire formats).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

async fn rig() -> (TestServer, String) {
    // The mock is served on a task of its own, for as long as the test runs.
    let (_, url) = mock().await;
    let anthropic = url.clone();
    let t = TestServer::start_with(move |c| {
        c.retries.retries = 0;
        c.providers.base_urls.insert("anthropic".into(), anthropic);
    })
    .await;
    t.secret("llm", "k", "sk-test").await;
    create_ready(&t, create_body("gpt", vec![mock_entity("o", &url, json!({}))])).await;
    let claude = json!({"name": "a", "external_model": {"provider": "anthropic", "name": "claude-sonnet-4", "task": "llm/v1/chat",
        "anthropic_config": {"anthropic_api_key": "{{secrets/llm/k}}"}}});
    create_ready(&t, create_body("claude", vec![claude])).await;
    (t, url)
}

async fn messages(t: &TestServer, path: &str, body: Value) -> reqwest::Response {
    // The Anthropic SDK's way: x-api-key, anthropic-version.
    t.http
        .post(format!("{}{path}", t.base))
        .header("x-api-key", &t.token)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn messages_are_answered_as_anthropic_messages_by_any_provider() {
    let (t, _) = rig().await;
    for (path, endpoint) in [("/v1/messages", "gpt"), ("/anthropic/v1/messages", "claude")] {
        let body = json!({"model": endpoint, "max_tokens": 50, "system": "Be brief.",
                          "messages": [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}]});
        let r = messages(&t, path, body).await;
        assert_eq!(r.status(), StatusCode::OK);
        let m: Value = r.json().await.unwrap();
        assert_eq!(
            (m["type"].as_str(), m["role"].as_str(), m["model"].as_str()),
            (Some("message"), Some("assistant"), Some(endpoint))
        );
        assert_eq!(m["content"][0]["type"], "text");
        assert!(m["content"][0]["text"].as_str().unwrap().contains("hello there"), "{m}");
        assert_eq!(m["stop_reason"], "end_turn", "{m}");
        assert!(m["usage"]["output_tokens"].as_u64().unwrap() > 0, "{m}");
    }
    // It is a query like any other: in the request log, with its tokens.
    let (_, log) = t.get("/api/2.0/requests?endpoint=gpt").await;
    assert_eq!(log["requests"][0]["status_code"], 200, "{log}");
}

#[tokio::test]
async fn streams_follow_anthropics_event_sequence() {
    let (t, _) = rig().await;
    for endpoint in ["gpt", "claude"] {
        let body = json!({"model": endpoint, "max_tokens": 50, "stream": true,
                          "messages": [{"role": "user", "content": "stream this"}]});
        let r = messages(&t, "/v1/messages", body).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let text = r.text().await.unwrap();
        let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
        assert_eq!(events.first(), Some(&"message_start"), "{text}");
        assert_eq!(&events[events.len() - 2..], ["message_delta", "message_stop"], "{text}");
        assert!(events.contains(&"content_block_delta") && !events.contains(&"error"), "{text}");
        let said: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|v| v["delta"]["text"].as_str().map(str::to_string))
            .collect();
        assert!(said.contains("stream this"), "{said}");
    }
    // A stream that breaks midway ends with an error event, not message_stop.
    let body =
        json!({"model": "gpt", "max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "__cut__"}]});
    let text = messages(&t, "/v1/messages", body).await.text().await.unwrap();
    assert!(text.contains("event: error") && !text.contains("event: message_stop"), "{text}");
}

#[tokio::test]
async fn errors_and_token_counts_come_in_anthropics_shapes() {
    let (t, _) = rig().await;
    let r = messages(
        &t,
        "/v1/messages",
        json!({"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let e: Value = r.json().await.unwrap();
    assert_eq!((e["type"].as_str(), e["error"]["type"].as_str()), (Some("error"), Some("not_found_error")), "{e}");
    let r = messages(&t, "/v1/messages", json!({"model": "gpt", "messages": "not a list"})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "invalid_request_error");
    let bad_key = t
        .http
        .post(format!("{}/v1/messages", t.base))
        .header("x-api-key", "mgt_wrong")
        .json(&json!({"model": "gpt", "max_tokens": 5, "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), StatusCode::UNAUTHORIZED);

    let count = |text: &str| json!({"model": "gpt", "messages": [{"role": "user", "content": text}]});
    let short: Value = messages(&t, "/v1/messages/count_tokens", count("hi")).await.json().await.unwrap();
    let long: Value =
        messages(&t, "/v1/messages/count_tokens", count(&"many words here ".repeat(50))).await.json().await.unwrap();
    let (short, long) = (short["input_tokens"].as_u64().unwrap(), long["input_tokens"].as_u64().unwrap());
    assert!(short >= 1 && long > short + 100, "{short} {long}");
    let hidden = messages(&t, "/v1/messages/count_tokens", json!({"model": "nope", "messages": []})).await;
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
}
