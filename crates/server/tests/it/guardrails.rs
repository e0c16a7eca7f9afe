//! Guardrails end to end: PII blocked and masked on input and output (streamed output included,
//! with findings split across chunks), blocked keywords, and the judge for safety and topics.

use std::sync::Arc;

use crate::common::*;
use modelgate_mock_upstream::Mock;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SE: &str = "/api/2.0/serving-endpoints";
const CARD: &str = "4111 1111 1111 1111";
const IBAN: &str = "DE89 3704 0044 0532 0130 00";

async fn rig(guardrails: Value, judge: bool) -> (TestServer, Arc<Mock>) {
    let (m, url) = mock().await;
    let t = TestServer::start_with(|c| c.judge_endpoint = judge.then(|| "judge".to_string())).await;
    t.secret("llm", "k", "sk-guard").await;
    if judge {
        create_ready(&t, json!({"name": "judge", "config": {"served_entities": [mock_entity("j", &url, json!({}))]}}))
            .await;
    }
    create_ready(
        &t,
        json!({"name": "ep", "config": {"served_entities": [mock_entity("a", &url, json!({}))]},
               "ai_gateway": {"guardrails": guardrails}}),
    )
    .await;
    (t, m)
}

async fn chat(t: &TestServer, text: &str) -> (StatusCode, Value) {
    t.post("/serving-endpoints/ep/invocations", json!({"messages": [{"role": "user", "content": text}]})).await
}

/// The streamed text, and the error event that ended the stream if one did.
async fn stream(t: &TestServer, text: &str) -> (String, Option<Value>, bool) {
    let resp = t
        .http
        .post(format!("{}/serving-endpoints/ep/invocations", t.base))
        .bearer_auth(&t.token)
        .json(&json!({"messages": [{"role": "user", "content": text}], "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.text().await.unwrap();
    let (mut content, mut error, mut done) = (String::new(), None, false);
    for p in sse_payloads(&body) {
        if p == "[DONE]" {
            done = true;
            continue;
        }
        let v: Value = serde_json::from_str(&p).unwrap();
        if v.get("error").is_some() {
            error = Some(v["error"].clone());
            continue;
        }
        content.push_str(v["choices"][0]["delta"]["content"].as_str().unwrap_or_default());
    }
    (content, error, done)
}

fn upstream_texts(m: &Mock) -> Vec<String> {
    m.requests.lock().unwrap().iter().map(|r| r.body["messages"].to_string()).collect()
}

#[tokio::test]
async fn input_pii_block_refuses_before_the_provider_and_passes_clean_text() {
    let (t, m) = rig(json!({"input": {"pii": {"behavior": "BLOCK"}}}), false).await;
    for (text, what) in [
        (format!("my card is {CARD}"), "a payment card number"),
        ("mail me at jane@example.com".to_string(), "an e-mail address"),
        (format!("iban {IBAN}"), "an IBAN"),
        ("ssn 123-45-6789".to_string(), "a US social security number"),
        ("call +1 (415) 555-2671".to_string(), "a phone number"),
        ("server 10.1.2.3".to_string(), "an IP address"),
    ] {
        let got = chat(&t, &text).await;
        assert_error(
            &got,
            StatusCode::BAD_REQUEST,
            "INPUT_GUARDRAIL_TRIGGERED",
            &format!("the request contains {what}"),
        );
        assert!(got.1["message"].as_str().unwrap().contains("'pii' guardrail of endpoint 'ep'"));
        assert!(!got.1.to_string().contains(&text[text.len() - 6..]), "the message does not repeat the data");
    }
    assert!(upstream_texts(&m).is_empty(), "nothing blocked reached the provider");
    let (s, b) = chat(&t, "card 4111 1111 1111 1112 fails Luhn, order 123456").await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test]
async fn input_pii_mask_rewrites_what_the_provider_sees() {
    let (t, m) = rig(json!({"input": {"pii": {"behavior": "MASK"}}}), false).await;
    let (s, b) = chat(&t, &format!("I am jane@example.com, card {CARD}, from 192.168.0.7")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let seen = upstream_texts(&m).pop().unwrap();
    assert!(seen.contains("I am [EMAIL_ADDRESS], card [CREDIT_CARD], from [IP_ADDRESS]"), "{seen}");
    assert!(!seen.contains("jane@") && !seen.contains("4111"), "{seen}");
    assert_eq!(
        b["choices"][0]["message"]["content"],
        "echo: I am [EMAIL_ADDRESS], card [CREDIT_CARD], from [IP_ADDRESS]"
    );
}

#[tokio::test]
async fn pii_is_found_in_every_field_that_reaches_the_provider_however_it_is_typed() {
    let (t, m) = rig(json!({"input": {"pii": {"behavior": "MASK"}}}), false).await;
    let body = json!({
        "user": "jane@example.com",
        "messages": [
            {"role": "system", "content": "card 4111\u{00A0}1111\u{00A0}1111\u{00A0}1111"},
            {"role": "user", "name": "jane@example.com", "content": "card ４１１１ １１１１ １１１１ １１１１ or 4111.1111.1111.1111"},
            {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "pay", "arguments": "{\"card\": \"4111111111111111\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "paid"}
        ],
        "tools": [{"type": "function", "function": {"name": "pay", "description": "pays for jane@example.com",
            "parameters": {"type": "object", "properties": {"card": {"type": "string"}}}}}]
    });
    let (s, b) = t.post("/serving-endpoints/ep/invocations", body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let seen = m.requests.lock().unwrap().last().unwrap().body.to_string();
    for leaked in ["jane@example.com", "4111", "４１１１"] {
        assert!(!seen.contains(leaked), "{leaked} reached the provider: {seen}");
    }
    assert!(seen.contains("[CREDIT_CARD]") && seen.contains("[EMAIL_ADDRESS]"), "{seen}");
    assert!(seen.contains("\"tool_call_id\":\"call_1\""), "protocol fields are untouched: {seen}");
}

#[tokio::test]
async fn output_pii_mask_holds_findings_split_across_stream_chunks() {
    let (t, _m) = rig(json!({"output": {"pii": {"behavior": "MASK"}}}), false).await;
    // The mock streams word by word: the card and IBAN arrive in four and six chunks.
    let text = format!("pay {CARD} or {IBAN} and write bob@example.org today");
    let (content, error, done) = stream(&t, &text).await;
    assert!(error.is_none() && done, "{error:?}");
    assert_eq!(content, "echo: pay [CREDIT_CARD] or [IBAN_CODE] and write [EMAIL_ADDRESS] today");

    let (s, b) = chat(&t, &text).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["choices"][0]["message"]["content"], content, "streamed and whole answers mask alike");
    let (content, _, done) = stream(&t, "nothing personal in 2024, version 1.2.3").await;
    assert!(done);
    assert_eq!(content, "echo: nothing personal in 2024, version 1.2.3");
}

#[tokio::test]
async fn output_pii_block_ends_the_stream_before_the_data_is_sent() {
    let (t, _m) = rig(json!({"output": {"pii": {"behavior": "BLOCK"}}}), false).await;
    let (content, error, done) = stream(&t, &format!("here it is {CARD} done")).await;
    let error = error.expect("an error event");
    assert_eq!(error["code"], "OUTPUT_GUARDRAIL_TRIGGERED");
    assert!(error["message"].as_str().unwrap().contains("the answer contains a payment card number"), "{error}");
    assert!(!done, "no [DONE] after a refusal");
    assert!(!content.contains("4111"), "not a digit of the card was sent: {content:?}");
    assert!(content.starts_with("echo: here it is"), "text before the finding was streamed: {content:?}");

    let got = chat(&t, &format!("here it is {CARD}")).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "OUTPUT_GUARDRAIL_TRIGGERED", "'pii' guardrail");
}

#[tokio::test]
async fn invalid_keywords_on_input_and_split_across_streamed_output() {
    let (t, m) = rig(
        json!({"input": {"invalid_keywords": ["Project Falcon"]}, "output": {"invalid_keywords": ["falconry"]}}),
        false,
    )
    .await;
    let got = chat(&t, "tell me about project FALCON please").await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INPUT_GUARDRAIL_TRIGGERED", "the keyword 'project FALCON'");
    assert!(upstream_texts(&m).is_empty());
    let (s, _) = chat(&t, "tell me about project falcons").await;
    assert_eq!(s, StatusCode::OK, "whole words only");

    let (content, error, done) = stream(&t, "I enjoy falconry a lot").await;
    assert_eq!(error.expect("refused")["code"], "OUTPUT_GUARDRAIL_TRIGGERED");
    assert!(!done && !content.contains("falconry"), "{content:?}");
}

#[tokio::test]
async fn the_judge_decides_safety_and_topics() {
    let (t, m) = rig(
        json!({"input": {"safety": true, "valid_topics": ["billing", "refunds"]}, "output": {"safety": true}}),
        true,
    )
    .await;
    let got = chat(&t, "__unsafe__ help me with billing").await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INPUT_GUARDRAIL_TRIGGERED", "'safety' guardrail");
    let got = chat(&t, "what is the weather").await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "INPUT_GUARDRAIL_TRIGGERED",
        "not about an allowed topic (billing, refunds)",
    );
    let (s, b) = chat(&t, "a question about my refunds").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let judged = upstream_texts(&m).iter().filter(|x| x.contains("guardrail judge")).count();
    assert!(judged >= 4, "the judge saw the input of each request and the answer: {judged}");

    // Output judged: the whole answer is held until the judge has seen it.
    let (t, _m) = rig(json!({"output": {"safety": true}}), true).await;
    let (content, error, done) = stream(&t, "please repeat __unsafe__ words").await;
    assert_eq!(error.expect("refused")["code"], "OUTPUT_GUARDRAIL_TRIGGERED");
    assert!(content.is_empty() && !done, "nothing of an unsafe answer was sent: {content:?}");
    let (content, error, done) = stream(&t, "a safe answer").await;
    assert!(error.is_none() && done);
    assert_eq!(content, "echo: a safe answer");
}

#[tokio::test]
async fn judge_guardrails_without_a_judge_are_refused_when_set() {
    let (m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-guard").await;
    // Refused when set, not found at deployment or query time.
    let got = t
        .post(
            SE,
            json!({"name": "ep", "config": {"served_entities": [mock_entity("a", &url, json!({}))]},
                   "ai_gateway": {"guardrails": {"input": {"safety": true}}}}),
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "--guardrail-judge-endpoint");
    assert!(got.1["message"].as_str().unwrap().contains("guardrails.input.safety"), "{}", got.1);
    let (s, _) = t.get(&format!("{SE}/ep")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "nothing created");

    let (s, b) =
        t.post(SE, json!({"name": "ok", "config": {"served_entities": [mock_entity("a", &url, json!({}))]}})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    t.wait_settled("ok").await;
    let got = t.put(&format!("{SE}/ok/ai-gateway"), json!({"guardrails": {"output": {"valid_topics": ["x"]}}})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "guardrails.output.valid_topics");
    let (_, e) = t.get(&format!("{SE}/ok")).await;
    assert!(e.get("ai_gateway").is_none_or(|g| g.get("guardrails").is_none()), "nothing stored: {e}");
    drop(m);
}

#[tokio::test]
async fn a_judge_endpoint_that_does_not_exist_is_named_when_guardrails_are_set() {
    let (_m, url) = mock().await;
    let t = TestServer::start_with(|c| c.judge_endpoint = Some("judge".into())).await;
    t.secret("llm", "k", "sk-guard").await;
    let body = json!({"name": "ep", "config": {"served_entities": [mock_entity("a", &url, json!({}))]},
                      "ai_gateway": {"guardrails": {"output": {"safety": true}}}});
    let got = t.post(SE, body.clone()).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "judge endpoint 'judge'");
    create_ready(&t, json!({"name": "judge", "config": {"served_entities": [mock_entity("j", &url, json!({}))]}}))
        .await;
    let (s, b) = t.post(SE, body).await;
    assert_eq!(s, StatusCode::OK, "once the judge exists: {b}");
}
