//! Tools, vision, structured output and image generation across every provider: the mock speaks
//! each provider's real wire format and records what modelgate sent, so these tests check both
//! directions of each translation.

use modelgate_mock_upstream::{MOCK_PNG_BASE64, TEST_AWS_ACCESS_KEY_ID, TEST_AWS_SECRET_ACCESS_KEY};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;
use crate::dataplane::{Rig, key_file, rig};

/// A rig with the credentials of every provider stored.
async fn providers() -> Rig {
    let r = rig().await;
    r.t.secret("aws", "id", TEST_AWS_ACCESS_KEY_ID).await;
    r.t.secret("aws", "secret", TEST_AWS_SECRET_ACCESS_KEY).await;
    r.t.secret("gcp", "sa", &key_file(modelgate_mock_upstream::TEST_SERVICE_ACCOUNT_PRIVATE_KEY)).await;
    r
}

fn azure(r: &Rig, deployment: &str, task: &str) -> Value {
    json!({"external_model": {"provider": "openai", "name": deployment, "task": task, "openai_config": {
        "openai_api_type": "azure", "openai_api_key": "{{secrets/llm/openai}}", "openai_api_base": r.mock_url,
        "openai_deployment_name": deployment, "openai_api_version": "2025-04-01-preview"}}})
}

fn bedrock(family: &str, model: &str, task: &str) -> Value {
    json!({"external_model": {"provider": "amazon-bedrock", "name": model, "task": task,
        "amazon_bedrock_config": {"aws_region": "us-east-1", "bedrock_provider": family,
            "aws_access_key_id": "{{secrets/aws/id}}", "aws_secret_access_key": "{{secrets/aws/secret}}"}}})
}

fn vertex(model: &str, task: &str) -> Value {
    json!({"external_model": {"provider": "google-cloud-vertex-ai", "name": model, "task": task,
        "google_cloud_vertex_ai_config": {"project_id": "proj", "region": "us-central1", "private_key": "{{secrets/gcp/sa}}"}}})
}

fn cohere() -> Value {
    json!({"external_model": {"provider": "cohere", "name": "command-r-plus", "task": "llm/v1/chat",
        "cohere_config": {"cohere_api_key": "{{secrets/llm/openai}}"}}})
}

/// One chat endpoint per provider (and per wire format): name, the path suffix of its upstream
/// call.
async fn chat_endpoints(r: &Rig) -> Vec<(&'static str, &'static str)> {
    let all = [
        ("openai", r.openai("gpt-4o", "llm/v1/chat"), "/v1/chat/completions"),
        ("azure", azure(r, "gpt-4o-deploy", "llm/v1/chat"), "/gpt-4o-deploy/chat/completions"),
        ("anthropic", r.anthropic("claude-sonnet-4"), "/v1/messages"),
        ("bedrock", bedrock("anthropic", "anthropic.claude-3-haiku-20240307-v1:0", "llm/v1/chat"), "/converse"),
        ("gemini", vertex("gemini-2.0-flash", "llm/v1/chat"), ":generateContent"),
        ("vertex-claude", vertex("claude-sonnet-4@20250514", "llm/v1/chat"), ":rawPredict"),
        ("cohere", cohere(), "/v2/chat"),
    ];
    let mut out = Vec::new();
    for (name, entity, path) in all {
        r.endpoint(name, vec![entity]).await;
        out.push((name, path));
    }
    out
}

fn lookup_tool() -> Value {
    json!([{"type": "function", "function": {"name": "lookup", "description": "Looks a thing up.",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}}])
}

/// The tool definition as each provider's wire format names it.
fn sent_tool_name<'a>(endpoint: &str, body: &'a Value) -> &'a Value {
    match endpoint {
        "anthropic" | "vertex-claude" => &body["tools"][0]["name"],
        "bedrock" => &body["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "gemini" => &body["tools"][0]["functionDeclarations"][0]["name"],
        _ => &body["tools"][0]["function"]["name"],
    }
}

#[tokio::test]
async fn a_tool_calling_conversation_goes_through_every_chat_provider() {
    let r = providers().await;
    for (ep, upstream_path) in chat_endpoints(&r).await {
        let question = json!({"role": "user", "content": "weather in Paris"});
        let ask = json!({"model": ep, "messages": [question], "tools": lookup_tool(), "tool_choice": "auto", "max_tokens": 50});
        let (s, first) = r.t.post("/v1/chat/completions", ask).await;
        assert_eq!(s, StatusCode::OK, "{ep}: {first}");
        let choice = &first["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls", "{ep}: {first}");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "lookup", "{ep}: {first}");
        let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"text": "weather in Paris"}), "{ep}");
        let sent = r.mock.last(upstream_path).unwrap_or_else(|| panic!("{ep}: nothing sent to {upstream_path}"));
        assert_eq!(
            sent_tool_name(ep, &sent.body),
            "lookup",
            "{ep}: the tool reaches the provider in its terms: {}",
            sent.body
        );

        // The result goes back in the provider's own shape; the mock echoes it only if it finds it there.
        let answer_turn = json!({"model": ep, "tools": lookup_tool(), "max_tokens": 50, "messages": [
            question, choice["message"].clone(),
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 21 C"}]});
        let (s, second) = r.t.post("/v1/chat/completions", answer_turn).await;
        assert_eq!(s, StatusCode::OK, "{ep}: {second}");
        assert_eq!(second["choices"][0]["message"]["content"], "echo: sunny, 21 C", "{ep}: {second}");

        // Streamed: the call arrives as tool-call deltas that add up to the same call.
        let streamed =
            json!({"model": ep, "messages": [question], "tools": lookup_tool(), "stream": true, "max_tokens": 50});
        let resp =
            r.t.http
                .post(format!("{}/v1/chat/completions", r.t.base))
                .bearer_auth(&r.t.token)
                .json(&streamed)
                .send()
                .await
                .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{ep}");
        let payloads = sse_payloads(&resp.text().await.unwrap());
        assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"), "{ep}: {payloads:?}");
        let (mut name, mut arguments, mut finish) = (String::new(), String::new(), String::new());
        for p in &payloads[..payloads.len() - 1] {
            let c: Value = serde_json::from_str(p).unwrap();
            for d in c["choices"][0]["delta"]["tool_calls"].as_array().into_iter().flatten() {
                assert_eq!(d["index"], 0, "{ep}: one call, index 0: {p}");
                name.push_str(d["function"]["name"].as_str().unwrap_or_default());
                arguments.push_str(d["function"]["arguments"].as_str().unwrap_or_default());
            }
            if let Some(f) = c["choices"][0]["finish_reason"].as_str() {
                finish = f.to_string();
            }
        }
        assert_eq!((name.as_str(), finish.as_str()), ("lookup", "tool_calls"), "{ep}: {payloads:?}");
        assert_eq!(serde_json::from_str::<Value>(&arguments).unwrap(), json!({"text": "weather in Paris"}), "{ep}");
    }
}

#[tokio::test]
async fn images_and_structured_output_reach_each_provider_in_its_own_terms() {
    let r = providers().await;
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    for (ep, upstream_path) in chat_endpoints(&r).await {
        let body = json!({"model": ep, "max_tokens": 50, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "where is this"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{MOCK_PNG_BASE64}")}}]}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "place", "schema": schema}}});
        let (s, got) = r.t.post("/v1/chat/completions", body).await;
        assert_eq!(s, StatusCode::OK, "{ep}: {got}");
        let sent = r.mock.last(upstream_path).unwrap().body;
        let content = match ep {
            "anthropic" | "vertex-claude" | "bedrock" => &sent["messages"][0]["content"],
            "gemini" => &sent["contents"][0]["parts"],
            _ => &sent["messages"][0]["content"],
        };
        let (image, format) = match ep {
            "anthropic" | "vertex-claude" => (
                json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": MOCK_PNG_BASE64}}),
                sent["output_config"]["format"].clone(),
            ),
            "bedrock" => (
                json!({"image": {"format": "png", "source": {"bytes": MOCK_PNG_BASE64}}}),
                sent["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"].clone(),
            ),
            "gemini" => (
                json!({"inlineData": {"mimeType": "image/png", "data": MOCK_PNG_BASE64}}),
                sent["generationConfig"]["responseSchema"].clone(),
            ),
            "cohere" => (
                json!({"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{MOCK_PNG_BASE64}")}}),
                sent["response_format"].clone(),
            ),
            _ => (
                json!({"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{MOCK_PNG_BASE64}")}}),
                sent["response_format"]["json_schema"]["schema"].clone(),
            ),
        };
        assert_eq!(content[1], image, "{ep}: the image as the provider takes it: {sent}");
        let expected = match ep {
            "anthropic" | "vertex-claude" => json!({"type": "json_schema", "schema": schema}),
            "bedrock" => json!(schema.to_string()),
            "cohere" => json!({"type": "json_object", "json_schema": schema}),
            _ => schema.clone(),
        };
        assert_eq!(format, expected, "{ep}: the schema as the provider takes it: {sent}");
    }
    let claude = r.mock.last(":rawPredict").unwrap();
    assert!(claude.path.contains("/publishers/anthropic/models/claude-sonnet-4@20250514"), "{}", claude.path);
    assert_eq!(claude.body["anthropic_version"], "vertex-2023-10-16");
    assert!(claude.body.get("model").is_none(), "Vertex names the model by its URL");
}

#[tokio::test]
async fn what_a_provider_cannot_express_is_refused_before_it_is_called() {
    let r = providers().await;
    chat_endpoints(&r).await;
    let user = json!([{"role": "user", "content": "x"}]);
    let cases = [
        ("bedrock", json!({"response_format": {"type": "json_object"}}), "json_object"),
        ("anthropic", json!({"response_format": {"type": "json_object"}}), "json_object"),
        ("bedrock", json!({"tools": lookup_tool(), "tool_choice": "none"}), "tool_choice none"),
        (
            "cohere",
            json!({"tools": lookup_tool(), "tool_choice": {"type": "function", "function": {"name": "lookup"}}}),
            "tool_choice naming a function",
        ),
        ("gemini", json!({"tools": lookup_tool(), "parallel_tool_calls": false}), "parallel_tool_calls"),
        ("cohere", json!({"tools": lookup_tool(), "parallel_tool_calls": false}), "parallel_tool_calls"),
        ("bedrock", json!({"tools": lookup_tool(), "parallel_tool_calls": false}), "parallel_tool_calls"),
        (
            "gemini",
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}),
            "base64 data URL",
        ),
        ("anthropic", json!({"logprobs": true}), "'logprobs'"),
    ];
    for (ep, extra, says) in cases {
        let before = r.mock.requests.lock().unwrap().len();
        let mut body = json!({"model": ep, "messages": user});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (s, got) = r.t.post("/v1/chat/completions", body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{ep} {extra}: {got}");
        let message = got["message"].as_str().or(got["error"]["message"].as_str()).unwrap_or_default().to_string();
        assert!(message.contains(says), "{ep}: {says} in {got}");
        let after = r.mock.requests.lock().unwrap().len();
        assert_eq!(before, after, "{ep} {extra}: a refused query is not sent");
    }
    // With parallel calls allowed (the default), the same providers take the tools.
    let (s, got) =
        r.t.post(
            "/v1/chat/completions",
            json!({"model": "gemini", "messages": user, "tools": lookup_tool(), "parallel_tool_calls": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{got}");
    // Anthropic keeps the model to one call per turn when asked.
    let (s, got) =
        r.t.post(
            "/v1/chat/completions",
            json!({"model": "anthropic", "messages": user, "tools": lookup_tool(), "parallel_tool_calls": false}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{got}");
    assert_eq!(
        r.mock.last("/v1/messages").unwrap().body["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
}

fn png(b64: &str) -> bool {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(b64).is_ok_and(|b| b.starts_with(b"\x89PNG"))
}

#[tokio::test]
async fn images_are_generated_through_openai_azure_titan_and_imagen_and_billed_per_image() {
    let r = providers().await;
    r.endpoint("dalle", vec![r.openai("dall-e-3", "llm/v1/images")]).await;
    r.endpoint("gpt-image", vec![r.openai("gpt-image-1", "llm/v1/images")]).await;
    r.endpoint("azure-image", vec![azure(&r, "dall-e-3", "llm/v1/images")]).await;
    r.endpoint("titan", vec![bedrock("amazon", "amazon.titan-image-generator-v2:0", "llm/v1/images")]).await;
    r.endpoint("imagen", vec![vertex("imagen-4.0-generate-001", "llm/v1/images")]).await;
    // name, path, expected cost (list prices per image, or GPT image tokens).
    let cases = [
        ("dalle", "/v1/images/generations", 2.0 * 0.04),
        ("azure-image", "/serving-endpoints/images/generations", 2.0 * 0.04),
        ("titan", "/v1/images/generations", 2.0 * 0.01),
        ("imagen", "/serving-endpoints/imagen/invocations", 2.0 * 0.04),
        // Three words of prompt at $5, 2 × 272 image tokens at $40 per million.
        ("gpt-image", "/v1/images/generations", (3.0 * 5.0 + 544.0 * 40.0) / 1e6),
    ];
    for (ep, path, cost) in cases {
        let body = json!({"model": ep, "prompt": "a red kite", "n": 2, "size": "1024x1024", "response_format": "b64_json",
                          "client_request_id": format!("img-{ep}")});
        let (s, got) = r.t.post(path, body).await;
        assert_eq!(s, StatusCode::OK, "{ep}: {got}");
        let data = got["data"].as_array().unwrap();
        assert_eq!(data.len(), 2, "{ep}: {got}");
        assert!(data.iter().all(|d| png(d["b64_json"].as_str().unwrap_or_default())), "{ep}: {got}");
        let (_, log) = r.t.get(&format!("/api/2.0/requests?endpoint={ep}")).await;
        let rec = &log["requests"][0];
        assert_eq!(rec["images"], 2, "{ep}: {rec}");
        assert!((rec["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-9, "{ep}: {cost} vs {rec}");
    }
    let titan = r.mock.last("/invoke").unwrap().body;
    assert_eq!(
        titan,
        json!({"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "a red kite"},
               "imageGenerationConfig": {"numberOfImages": 2, "width": 1024, "height": 1024, "quality": "standard"}})
    );
    let imagen = r.mock.last(":predict").unwrap();
    assert!(imagen.path.ends_with("/publishers/google/models/imagen-4.0-generate-001:predict"), "{}", imagen.path);
    assert_eq!(
        imagen.body,
        json!({"instances": [{"prompt": "a red kite"}], "parameters": {"sampleCount": 2, "aspectRatio": "1:1"}})
    );
    let azure = r.mock.last("/openai/deployments/dall-e-3/images/generations").unwrap();
    assert_eq!(azure.query.as_deref(), Some("api-version=2025-04-01-preview"));
    assert!(azure.body.get("model").is_none(), "Azure names the deployment in the URL");
    // A URL asked of OpenAI passes through as a URL.
    let (s, got) =
        r.t.post("/v1/images/generations", json!({"model": "dalle", "prompt": "kite", "response_format": "url"})).await;
    assert_eq!(s, StatusCode::OK, "{got}");
    assert!(got["data"][0]["url"].as_str().is_some_and(|u| u.starts_with("https://")), "{got}");
}

#[tokio::test]
async fn image_requests_are_checked_and_provider_refusals_are_named() {
    let r = providers().await;
    r.endpoint("titan", vec![bedrock("amazon", "amazon.titan-image-generator-v2:0", "llm/v1/images")]).await;
    r.endpoint("imagen", vec![vertex("imagen-4.0-generate-001", "llm/v1/images")]).await;
    r.endpoint("chat", vec![r.openai("gpt-4o", "llm/v1/chat")]).await;
    let cases = [
        (json!({"model": "titan", "prompt": "kite", "stream": true}), "stream"),
        (json!({"model": "titan"}), "prompt"),
        (json!({"model": "titan", "prompt": "  "}), "prompt"),
        (json!({"model": "titan", "prompt": "kite", "n": 11}), "n"),
        (json!({"model": "titan", "prompt": "kite", "style": "vivid"}), "'style'"),
        (json!({"model": "imagen", "prompt": "kite", "response_format": "url"}), "response_format 'url'"),
        (json!({"model": "imagen", "prompt": "kite", "size": "1000x300"}), "aspect ratios"),
        (json!({"model": "chat", "prompt": "kite"}), "serves llm/v1/chat, not llm/v1/images"),
    ];
    let before = r.mock.requests.lock().unwrap().len();
    for (body, says) in cases {
        let (s, got) = r.t.post("/v1/images/generations", body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {got}");
        assert!(got["message"].as_str().unwrap_or_default().contains(says), "{says}: {got}");
    }
    assert_eq!(r.mock.requests.lock().unwrap().len(), before, "nothing refused was sent");
    // The providers' content filters: Titan answers 400, Imagen drops every image.
    for ep in ["titan", "imagen"] {
        let (s, got) = r.t.post("/v1/images/generations", json!({"model": ep, "prompt": "__filtered__ kite"})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{ep}: {got}");
        let m = got["message"].as_str().unwrap_or_default().to_lowercase();
        assert!(m.contains("filter"), "{ep}: {got}");
    }
    // Endpoints that cannot draw are refused when created.
    for (name, entity, says) in [
        ("no-claude-images", r.anthropic("claude-sonnet-4"), "does not offer llm/v1/images"),
        (
            "no-bedrock-claude-images",
            bedrock("anthropic", "anthropic.claude-3-haiku-20240307-v1:0", "llm/v1/images"),
            "bedrock_provider amazon",
        ),
    ] {
        let mut entity = entity;
        entity["external_model"]["task"] = json!("llm/v1/images");
        let (s, got) = r.t.post("/api/2.0/serving-endpoints", create_body(name, vec![entity])).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{name}: {got}");
        assert!(got["message"].as_str().unwrap_or_default().contains(says), "{says}: {got}");
    }
}

#[tokio::test]
async fn an_image_endpoint_is_probed_without_drawing() {
    let r = providers().await;
    r.endpoint("titan", vec![bedrock("amazon", "amazon.titan-image-generator-v2:0", "llm/v1/images")]).await;
    let (s, got) = r.t.post("/api/2.0/serving-endpoints/titan/test", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{got}");
    let h = &got["served_entities"][0];
    assert_eq!((h["ok"].as_bool(), h["authenticated"].as_bool()), (Some(true), Some(true)), "{got}");
    assert!(h["message"].as_str().unwrap_or_default().contains("not checked"), "{got}");
    let sent = r.mock.last("/invoke").unwrap().body;
    assert_eq!(sent["textToImageParams"]["text"], "", "the probe's empty prompt draws nothing");
}
