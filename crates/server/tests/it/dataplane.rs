//! The data plane against a local fake of the providers' wire formats.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::*;
use modelgate_mock_upstream::{Mock, Options};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SE: &str = "/api/2.0/serving-endpoints";

pub(crate) struct Rig {
    pub(crate) t: TestServer,
    pub(crate) mock: Arc<Mock>,
    pub(crate) mock_url: String,
}

pub(crate) async fn rig_with(options: Options, tweak: impl FnOnce(&mut modelgate_server::ServerConfig)) -> Rig {
    let mock = Mock::new(options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mock_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(modelgate_mock_upstream::serve(listener, mock.clone()));
    let url = mock_url.clone();
    let t = TestServer::start_with(move |c| {
        // These tests check one attempt's mapping; resilience tests set their own policy.
        c.retries.retries = 0;
        c.breaker.failures = usize::MAX;
        c.providers.base_urls.insert("anthropic".into(), url.clone());
        c.providers.base_urls.insert("microsoft-entra".into(), url.clone());
        c.providers.base_urls.insert("cohere".into(), url.clone());
        c.providers.base_urls.insert("ai21labs".into(), format!("{url}/v1"));
        c.providers.base_urls.insert("google-cloud-vertex-ai".into(), url.clone());
        c.providers.base_urls.insert("google-oauth".into(), format!("{url}/token"));
        c.providers.base_urls.insert("amazon-bedrock".into(), url.clone());
        tweak(c);
    })
    .await;
    t.secret("llm", "openai", "sk-openai-test-key").await;
    t.secret("llm", "anthropic", "sk-ant-test-key").await;
    Rig { t, mock, mock_url }
}

pub(crate) async fn rig() -> Rig {
    rig_with(Options::default(), |_| {}).await
}

impl Rig {
    pub(crate) async fn endpoint(&self, name: &str, entities: Vec<Value>) {
        let (s, b) = self.t.post(SE, create_body(name, entities)).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let e = self.t.wait_settled(name).await;
        assert_eq!(e["state"]["ready"], "READY", "{e}");
    }

    pub(crate) fn openai(&self, model: &str, task: &str) -> Value {
        json!({"external_model": {"provider": "openai", "name": model, "task": task,
               "openai_config": {"openai_api_key": "{{secrets/llm/openai}}", "openai_api_base": format!("{}/v1", self.mock_url)}}})
    }

    pub(crate) fn anthropic(&self, model: &str) -> Value {
        json!({"external_model": {"provider": "anthropic", "name": model, "task": "llm/v1/chat",
               "anthropic_config": {"anthropic_api_key": "{{secrets/llm/anthropic}}"}}})
    }

    async fn raw(&self, path: &str, body: Value) -> reqwest::Response {
        self.t.http.post(format!("{}{path}", self.t.base)).bearer_auth(&self.t.token).json(&body).send().await.unwrap()
    }
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn openai_chat_translation_and_headers() {
    let r = rig().await;
    r.endpoint("chat", vec![r.openai("gpt-4o", "llm/v1/chat")]).await;
    let resp = r
        .raw(
            "/serving-endpoints/chat/invocations",
            json!({
                "messages": [{"role": "user", "content": "hi there"}], "max_tokens": 20, "temperature": 0.2,
                "extra_params": {"seed": 7}, "client_request_id": "req-1", "usage_context": {"team": "ml"},
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
            }),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "served-model-name"), Some("gpt-4o"));
    let body: Value = resp.json().await.unwrap();
    // Offered a tool, the mock calls it with the user's text.
    let call = &body["choices"][0]["message"]["tool_calls"][0]["function"];
    assert_eq!(
        (call["name"].as_str(), call["arguments"].as_str()),
        (Some("f"), Some(r#"{"text":"hi there"}"#)),
        "{body}"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(body["usage"]["total_tokens"], 8);

    let sent = r.mock.last("/v1/chat/completions").unwrap();
    assert_eq!(sent.body["model"], "gpt-4o", "the provider model replaces the endpoint name");
    assert_eq!(sent.body["seed"], 7, "extra_params pass through");
    assert_eq!(sent.body["max_tokens"], 20);
    assert!(sent.body.get("client_request_id").is_none() && sent.body.get("usage_context").is_none());
    assert_eq!(sent.body["tools"][0]["function"]["name"], "f");
    let auth = sent.headers.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.as_str());
    assert_eq!(auth, Some("Bearer sk-openai-test-key"));

    // The OpenAI-compatible routes, by model name.
    for path in ["/serving-endpoints/chat/completions", "/v1/chat/completions"] {
        let resp = r.raw(path, json!({"model": "chat", "messages": [{"role": "user", "content": "x"}]})).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&resp, "served-model-name"), Some("gpt-4o"));
    }
    let (_, models) = r.t.get("/v1/models").await;
    assert_eq!(models["data"][0]["id"], "chat");
}

#[tokio::test]
async fn queries_that_cannot_be_served_get_clear_4xx() {
    let r = rig().await;
    r.endpoint("chat", vec![r.openai("gpt-4o", "llm/v1/chat")]).await;
    let chat = json!({"messages": [{"role": "user", "content": "x"}]});
    let got = r.t.post("/serving-endpoints/nope/invocations", chat.clone()).await;
    assert_error(&got, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", "'nope' does not exist");
    let got = r.t.post("/serving-endpoints/embeddings", json!({"model": "chat", "input": "x"})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "serves llm/v1/chat, not llm/v1/embeddings");
    let got = r.t.post("/serving-endpoints/chat/invocations", json!({"prompt": "x"})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "messages: is required");
    let got = r.t.post("/serving-endpoints/chat/invocations", json!({"dataframe_records": []})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "custom models");
    let got = r.t.post("/serving-endpoints/chat/completions", chat.clone()).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "model: is required");

    r.t.post(&format!("{SE}/chat/config:stop"), json!({})).await;
    let got = r.t.post("/serving-endpoints/chat/invocations", chat.clone()).await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "BAD_REQUEST",
        "is stopped; start it with `modelgate serving-endpoints start",
    );
    r.t.post(&format!("{SE}/chat/config:start"), json!({})).await;
    assert_eq!(r.t.post("/serving-endpoints/chat/invocations", chat.clone()).await.0, StatusCode::OK);

    r.t.post(SE, create_body("broken", vec![openai_entity("m", "{{secrets/llm/missing}}")])).await;
    r.t.wait_settled("broken").await;
    let got = r.t.post("/serving-endpoints/broken/invocations", chat).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "BAD_REQUEST", "is not ready");
}

#[tokio::test]
async fn streaming_is_reframed_and_ends_with_done() {
    let r = rig().await;
    r.endpoint("chat", vec![r.openai("gpt-4o", "llm/v1/chat")]).await;
    let resp = r
        .raw(
            "/serving-endpoints/chat/invocations",
            json!({
            "messages": [{"role": "user", "content": "one two three"}], "stream": true,
            "stream_options": {"include_usage": true}}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-type"), Some("text/event-stream"));
    assert_eq!(header(&resp, "served-model-name"), Some("gpt-4o"));
    let payloads = sse_payloads(&resp.text().await.unwrap());
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = payloads[..payloads.len() - 1].iter().map(|p| serde_json::from_str(p).unwrap()).collect();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "echo: one two three");
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 8, "include_usage gives a final usage chunk");
}

#[tokio::test]
async fn broken_or_stalled_streams_end_with_an_error_event() {
    let r = rig_with(Options::default(), |c| c.timeouts.idle = Duration::from_millis(400)).await;
    r.endpoint("chat", vec![r.openai("gpt-4o", "llm/v1/chat")]).await;
    for (marker, reason) in [("__cut__", "stream broke"), ("__stall__", "sent nothing for")] {
        let resp = r
            .raw(
                "/serving-endpoints/chat/invocations",
                json!({"messages": [{"role": "user", "content": format!("a {marker} b")}], "stream": true}),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let payloads = sse_payloads(&resp.text().await.unwrap());
        assert!(!payloads.contains(&"[DONE]".to_string()), "{marker}: a broken stream must not end cleanly");
        let last: Value = serde_json::from_str(payloads.last().unwrap()).unwrap();
        let msg = last["error"]["message"].as_str().unwrap();
        assert!(msg.contains(reason) && msg.contains("incomplete"), "{marker}: {msg}");
    }
}

#[tokio::test]
async fn a_client_that_hangs_up_cancels_the_upstream_stream() {
    let r = rig_with(Options { chunk_interval: Duration::from_millis(200), ..Default::default() }, |_| {}).await;
    r.endpoint("chat", vec![r.openai("gpt-4o", "llm/v1/chat")]).await;
    let long = "w ".repeat(50);
    let mut resp = r
        .raw(
            "/serving-endpoints/chat/invocations",
            json!({"messages": [{"role": "user", "content": long}], "stream": true}),
        )
        .await;
    let first = resp.chunk().await.unwrap();
    assert!(first.is_some());
    assert_eq!(r.mock.open_streams.load(Ordering::SeqCst), 1);
    drop(resp);
    for _ in 0..50 {
        if r.mock.open_streams.load(Ordering::SeqCst) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the upstream stream was still open 1 s after the client left (it would run 10 s)");
}

#[tokio::test]
async fn upstream_errors_keep_their_class_and_hide_credentials() {
    let r = rig_with(Options::default(), |c| c.timeouts.first_byte = Duration::from_secs(5)).await;
    r.endpoint("chat", vec![r.openai("gpt-4o", "llm/v1/chat")]).await;
    let ask = |text: &str| json!({"messages": [{"role": "user", "content": text}]});

    let resp = r.raw("/serving-endpoints/chat/invocations", ask("__status_429__")).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&resp, "retry-after"), Some("7"));
    assert_eq!(header(&resp, "served-model-name"), Some("gpt-4o"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error_code"], "REQUEST_LIMIT_EXCEEDED");
    assert!(body["message"].as_str().unwrap().contains("Rate limit reached"), "{body}");

    let got = r.t.post("/serving-endpoints/chat/invocations", ask("__status_500__")).await;
    assert_error(&got, StatusCode::BAD_GATEWAY, "BAD_GATEWAY", "answered HTTP 500");

    let got = r.t.post("/serving-endpoints/chat/invocations", ask("__status_401__")).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "BAD_REQUEST", "Incorrect API key provided: ***");
    assert!(!got.1.to_string().contains("sk-openai-test-key"));

    let got = r.t.post("/serving-endpoints/chat/invocations", ask("__malformed__")).await;
    assert_error(&got, StatusCode::BAD_GATEWAY, "BAD_GATEWAY", "not valid JSON");

    let mut dead = r.openai("gpt-4o", "llm/v1/chat");
    dead["external_model"]["openai_config"]["openai_api_base"] = json!("http://127.0.0.1:9/v1");
    r.endpoint("dead", vec![dead]).await;
    let got = r.t.post("/serving-endpoints/dead/invocations", ask("x")).await;
    assert_error(
        &got,
        StatusCode::BAD_GATEWAY,
        "BAD_GATEWAY",
        "Served entity 'gpt-4o' (openai at 127.0.0.1:9) could not be reached: connection refused",
    );
}

#[tokio::test]
async fn a_slow_upstream_times_out_with_504() {
    let r = rig_with(Options { delay: Duration::from_secs(3), ..Default::default() }, |c| {
        c.timeouts.first_byte = Duration::from_millis(300)
    })
    .await;
    r.endpoint("chat", vec![r.openai("gpt-4o", "llm/v1/chat")]).await;
    let got =
        r.t.post("/serving-endpoints/chat/invocations", json!({"messages": [{"role": "user", "content": "x"}]})).await;
    assert_error(&got, StatusCode::GATEWAY_TIMEOUT, "DEADLINE_EXCEEDED", "timed out");
}

#[tokio::test]
async fn anthropic_chat_and_stream() {
    let r = rig().await;
    r.endpoint("claude", vec![r.anthropic("claude-3-5-sonnet")]).await;
    let got =
        r.t.post(
            "/serving-endpoints/claude/invocations",
            json!({"messages": [
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}], "stop": ["X"]}),
        )
        .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1["object"], "chat.completion");
    assert_eq!(got.1["choices"][0]["message"]["content"], "echo: hello");
    assert_eq!(got.1["choices"][0]["finish_reason"], "stop");
    assert_eq!(got.1["usage"], json!({"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}));
    let sent = r.mock.last("/v1/messages").unwrap();
    assert_eq!(sent.body["system"], "Be brief.");
    assert_eq!(sent.body["max_tokens"], 4096);
    assert_eq!(sent.body["stop_sequences"], json!(["X"]));
    assert_eq!(sent.body["model"], "claude-3-5-sonnet");
    let h = |k: &str| sent.headers.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    assert_eq!(h("x-api-key").as_deref(), Some("sk-ant-test-key"));
    assert_eq!(h("anthropic-version").as_deref(), Some("2023-06-01"));

    let resp = r
        .raw(
            "/serving-endpoints/claude/invocations",
            json!({"messages": [{"role": "user", "content": "a b"}], "stream": true}),
        )
        .await;
    let payloads = sse_payloads(&resp.text().await.unwrap());
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
    let text: String = payloads[..payloads.len() - 1]
        .iter()
        .map(|p| serde_json::from_str::<Value>(p).unwrap())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, "echo: a b");

    let got = r
        .t
        .post("/serving-endpoints/claude/invocations", json!({"messages": [{"role": "user", "content": "x"}], "n": 3}))
        .await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
        "n > 1 is not supported by provider 'anthropic'",
    );
    let got =
        r.t.post(
            "/serving-endpoints/claude/invocations",
            json!({"messages": [{"role": "user", "content": "__status_429__"}]}),
        )
        .await;
    assert_error(&got, StatusCode::TOO_MANY_REQUESTS, "REQUEST_LIMIT_EXCEEDED", "Rate limit");

    let resp = r
        .raw(
            "/serving-endpoints/claude/invocations",
            json!({"messages": [{"role": "user", "content": "a __cut__ b"}], "stream": true}),
        )
        .await;
    let payloads = sse_payloads(&resp.text().await.unwrap());
    assert!(payloads.last().unwrap().contains("\"error\""), "{payloads:?}");
}

#[tokio::test]
async fn embeddings_and_completions() {
    let r = rig().await;
    r.endpoint("embed", vec![r.openai("text-embedding-3-small", "llm/v1/embeddings")]).await;
    r.endpoint("complete", vec![r.openai("gpt-3.5-turbo-instruct", "llm/v1/completions")]).await;
    let got = r.t.post("/serving-endpoints/embeddings", json!({"model": "embed", "input": ["ab", "cde"]})).await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1["data"][1]["embedding"], json!([3.0, 0.5, -0.25]));
    let got =
        r.t.post("/serving-endpoints/embed/invocations", json!({"input": "ab", "encoding_format": "base64"})).await;
    assert!(got.1["data"][0]["embedding"].is_string(), "base64 passes through: {}", got.1);
    let got = r.t.post("/serving-endpoints/embed/invocations", json!({"input": "ab", "stream": true})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "cannot be streamed");
    let got = r.t.post("/v1/completions", json!({"model": "complete", "prompt": "say"})).await;
    assert_eq!(got.1["choices"][0]["text"], "echo: say");
    assert_eq!(r.mock.last("/v1/completions").unwrap().body["model"], "gpt-3.5-turbo-instruct");
}

#[tokio::test]
async fn azure_api_key_and_entra_id() {
    let r = rig().await;
    let azure_at = |version: &str, auth: Value| {
        let mut cfg = json!({"openai_api_type": "azure", "openai_api_base": r.mock_url, "openai_deployment_name": "dep1",
                             "openai_api_version": version});
        cfg.as_object_mut().unwrap().extend(auth.as_object().unwrap().clone());
        json!({"external_model": {"provider": "openai", "name": "gpt-4o", "task": "llm/v1/chat", "openai_config": cfg}})
    };
    let azure = |auth: Value| azure_at("2024-06-01", auth);
    r.endpoint("az", vec![azure(json!({"openai_api_key": "{{secrets/llm/openai}}"}))]).await;
    let ask = json!({"messages": [{"role": "user", "content": "x"}]});
    assert_eq!(r.t.post("/serving-endpoints/az/invocations", ask.clone()).await.0, StatusCode::OK);
    let sent = r.mock.last("/openai/deployments/dep1/chat/completions").unwrap();
    assert_eq!(sent.query.as_deref(), Some("api-version=2024-06-01"));
    assert!(sent.headers.iter().any(|(k, v)| k == "api-key" && v == "sk-openai-test-key"));
    assert!(sent.body.get("model").is_none(), "Azure names the model by its deployment");

    // Streams ask for a usage chunk only from API versions that accept `stream_options`.
    let stream = json!({"messages": [{"role": "user", "content": "x"}], "stream": true});
    r.endpoint("az-new", vec![azure_at("2024-10-21", json!({"openai_api_key": "{{secrets/llm/openai}}"}))]).await;
    for (endpoint, asks) in [("az", false), ("az-new", true)] {
        let resp = r.raw(&format!("/serving-endpoints/{endpoint}/invocations"), stream.clone()).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.text().await.unwrap().ends_with("data: [DONE]\n\n"));
        let sent = r.mock.last("/openai/deployments/dep1/chat/completions").unwrap();
        assert_eq!(sent.body["stream_options"]["include_usage"] == true, asks, "{endpoint}: {}", sent.body);
    }

    let entra = json!({"microsoft_entra_client_id": "app-1", "microsoft_entra_tenant_id": "tenant-1",
                       "microsoft_entra_client_secret_plaintext": "entra-secret"});
    r.endpoint("az-entra", vec![azure(entra)]).await;
    for _ in 0..3 {
        let got = r.t.post("/serving-endpoints/az-entra/invocations", ask.clone()).await;
        assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    }
    assert_eq!(r.mock.tokens_issued.lock().unwrap().len(), 1, "the token is cached across requests");
    let sent = r.mock.last("/openai/deployments/dep1/chat/completions").unwrap();
    assert!(sent.headers.iter().any(|(k, v)| k == "authorization" && v == "Bearer entra-app-1-0"));
    let token_req = r.mock.last("/tenant-1/oauth2/v2.0/token").unwrap();
    assert!(token_req.body.as_str().unwrap().contains("grant_type=client_credentials"));
    // Control-plane writes rebuild every adapter; the token survives them.
    create_principal(&r.t, "Users", json!({"userName": "rebuild@example.com"})).await;
    r.t.post("/api/2.0/secrets/put", json!({"scope": "llm", "key": "other", "string_value": "x"})).await;
    let got = r.t.post("/serving-endpoints/az-entra/invocations", ask.clone()).await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(r.mock.tokens_issued.lock().unwrap().len(), 1, "the token is cached across snapshot rebuilds");

    let bad = json!({"microsoft_entra_client_id": "app-2", "microsoft_entra_tenant_id": "tenant-1",
                     "microsoft_entra_client_secret_plaintext": "wrong-secret"});
    r.endpoint("az-bad", vec![azure(bad)]).await;
    let got = r.t.post("/serving-endpoints/az-bad/invocations", ask).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "BAD_REQUEST", "Microsoft Entra ID refused the client credentials");
    assert!(!got.1.to_string().contains("wrong-secret"));
}

#[tokio::test]
async fn custom_and_databricks_providers() {
    let r = rig().await;
    let custom = json!({"external_model": {"provider": "custom", "name": "llama-3", "task": "llm/v1/chat",
        "custom_provider_config": {"custom_provider_url": format!("{}/v1", r.mock_url),
                                   "api_key_auth": {"key": "X-Custom-Key", "value": "{{secrets/llm/openai}}"}}}});
    r.endpoint("custom", vec![custom]).await;
    let ask = json!({"messages": [{"role": "user", "content": "x"}], "client_request_id": "abc"});
    assert_eq!(r.t.post("/serving-endpoints/custom/invocations", ask.clone()).await.0, StatusCode::OK);
    let sent = r.mock.last("/v1/chat/completions").unwrap();
    assert!(sent.headers.iter().any(|(k, v)| k == "x-custom-key" && v == "sk-openai-test-key"));
    assert_eq!(sent.body["model"], "llama-3");

    let dbx = json!({"external_model": {"provider": "databricks-model-serving", "name": "remote-chat", "task": "llm/v1/chat",
        "databricks_model_serving_config": {"databricks_workspace_url": r.mock_url, "databricks_api_token": "{{secrets/llm/openai}}"}}});
    r.endpoint("dbx", vec![dbx]).await;
    assert_eq!(r.t.post("/serving-endpoints/dbx/invocations", ask).await.0, StatusCode::OK);
    let sent = r.mock.last("/serving-endpoints/remote-chat/invocations").unwrap();
    assert_eq!(
        sent.body["client_request_id"], "abc",
        "another Databricks-compatible server gets the Databricks fields"
    );
    assert!(sent.headers.iter().any(|(k, v)| k == "authorization" && v == "Bearer sk-openai-test-key"));
}

#[tokio::test]
async fn traffic_split_follows_percentages() {
    let r = rig().await;
    let cfg = json!({"name": "split", "config": {
        "served_entities": [r.openai("model-a", "llm/v1/chat"), r.openai("model-b", "llm/v1/chat"), r.openai("model-c", "llm/v1/chat")],
        "traffic_config": {"routes": [{"served_entity_name": "model-a", "traffic_percentage": 50},
                                      {"served_entity_name": "model-b", "traffic_percentage": 50},
                                      {"served_entity_name": "model-c", "traffic_percentage": 0}]}}});
    assert_eq!(r.t.post(SE, cfg).await.0, StatusCode::OK);
    r.t.wait_settled("split").await;
    let mut seen = std::collections::HashMap::new();
    for _ in 0..60 {
        let resp = r
            .raw("/serving-endpoints/split/invocations", json!({"messages": [{"role": "user", "content": "x"}]}))
            .await;
        *seen.entry(header(&resp, "served-model-name").unwrap().to_string()).or_insert(0) += 1;
    }
    assert!(
        seen.get("model-a").copied().unwrap_or(0) > 10 && seen.get("model-b").copied().unwrap_or(0) > 10,
        "{seen:?}"
    );
    assert!(!seen.contains_key("model-c"), "0% gets no traffic: {seen:?}");
}

#[tokio::test]
async fn rotated_secret_is_used_on_the_next_request() {
    let r = rig().await;
    r.endpoint("chat", vec![r.openai("gpt-4o", "llm/v1/chat")]).await;
    r.t.secret("llm", "openai", "sk-rotated").await;
    r.t.post("/serving-endpoints/chat/invocations", json!({"messages": [{"role": "user", "content": "x"}]})).await;
    let sent = r.mock.last("/v1/chat/completions").unwrap();
    assert!(sent.headers.iter().any(|(k, v)| k == "authorization" && v == "Bearer sk-rotated"));
}

#[tokio::test]
async fn cohere_chat_stream_and_embed() {
    let r = rig().await;
    let cohere = |task: &str| {
        json!({"external_model": {"provider": "cohere", "name": "command-r-plus", "task": task,
        "cohere_config": {"cohere_api_key": "{{secrets/llm/openai}}"}}})
    };
    r.endpoint("co", vec![cohere("llm/v1/chat")]).await;
    let got =
        r.t.post(
            "/serving-endpoints/co/invocations",
            json!({"messages": [{"role": "user", "content": "hey"}], "top_p": 0.5, "stop": ["Z"]}),
        )
        .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1["choices"][0]["message"]["content"], "echo: hey");
    assert_eq!(got.1["usage"], json!({"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}), "billed units");
    let sent = r.mock.last("/v2/chat").unwrap();
    assert_eq!((sent.body["p"].clone(), sent.body["stop_sequences"].clone()), (json!(0.5), json!(["Z"])));
    assert!(sent.headers.iter().any(|(k, v)| k == "authorization" && v == "Bearer sk-openai-test-key"));

    let resp = r
        .raw(
            "/serving-endpoints/co/invocations",
            json!({"messages": [{"role": "user", "content": "a b"}], "stream": true,
        "stream_options": {"include_usage": true}}),
        )
        .await;
    let payloads = sse_payloads(&resp.text().await.unwrap());
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = payloads[..payloads.len() - 1].iter().map(|p| serde_json::from_str(p).unwrap()).collect();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "echo: a b");
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 8);

    r.endpoint("co-embed", vec![cohere("llm/v1/embeddings")]).await;
    let got = r.t.post("/serving-endpoints/embeddings", json!({"model": "co-embed", "input": ["abcd"]})).await;
    assert_eq!(got.1["data"][0]["embedding"], json!([4.0, 0.5, -0.25]), "{}", got.1);
    let got = r
        .t
        .post("/serving-endpoints/embeddings", json!({"model": "co-embed", "input": "ab", "encoding_format": "base64"}))
        .await;
    assert!(got.1["data"][0]["embedding"].is_string(), "{}", got.1);
    assert_eq!(r.mock.last("/v2/embed").unwrap().body["input_type"], "search_document");

    let got = r
        .t
        .post("/serving-endpoints/co/invocations", json!({"messages": [{"role": "user", "content": "__status_429__"}]}))
        .await;
    assert_error(&got, StatusCode::TOO_MANY_REQUESTS, "REQUEST_LIMIT_EXCEEDED", "Rate limit");
}

#[tokio::test]
async fn ai21_speaks_openai() {
    let r = rig().await;
    r.endpoint(
        "jamba",
        vec![json!({"external_model": {"provider": "ai21labs", "name": "jamba-1.5-large", "task": "llm/v1/chat",
        "ai21labs_config": {"ai21labs_api_key": "{{secrets/llm/anthropic}}"}}})],
    )
    .await;
    let got =
        r.t.post("/serving-endpoints/jamba/invocations", json!({"messages": [{"role": "user", "content": "q"}]})).await;
    assert_eq!(got.1["choices"][0]["message"]["content"], "echo: q");
    let sent = r.mock.last("/v1/chat/completions").unwrap();
    assert_eq!(sent.body["model"], "jamba-1.5-large");
    assert!(sent.headers.iter().any(|(k, v)| k == "authorization" && v == "Bearer sk-ant-test-key"));
}

pub(crate) fn key_file(pem: &str) -> String {
    json!({"type": "service_account", "project_id": "proj", "private_key_id": "k1", "private_key": pem,
           "client_email": "svc@proj.iam.gserviceaccount.com", "token_uri": "https://oauth2.googleapis.com/token"})
    .to_string()
}

#[tokio::test]
async fn vertex_gemini_with_a_signed_service_account_assertion() {
    let r = rig().await;
    r.t.secret("gcp", "sa", &key_file(modelgate_mock_upstream::TEST_SERVICE_ACCOUNT_PRIVATE_KEY)).await;
    let vertex = |task: &str, key: &str| {
        json!({"external_model": {"provider": "google-cloud-vertex-ai", "name": "gemini-2.0-flash", "task": task,
        "google_cloud_vertex_ai_config": {"project_id": "proj", "region": "us-central1", "private_key": key}}})
    };
    r.endpoint("gem", vec![vertex("llm/v1/chat", "{{secrets/gcp/sa}}")]).await;
    for _ in 0..2 {
        let got =
            r.t.post(
                "/serving-endpoints/gem/invocations",
                json!({"messages": [
            {"role": "system", "content": "s"}, {"role": "user", "content": "hola"}], "max_tokens": 9}),
            )
            .await;
        assert_eq!(got.0, StatusCode::OK, "{}", got.1);
        assert_eq!(got.1["choices"][0]["message"]["content"], "echo: hola");
        assert_eq!(got.1["usage"]["total_tokens"], 8);
    }
    let token_requests = r.mock.requests.lock().unwrap().iter().filter(|q| q.path == "/token").count();
    assert_eq!(token_requests, 1, "the access token is cached");
    let sent = r.mock.last(":generateContent").unwrap();
    assert!(
        sent.path.ends_with(
            "/projects/proj/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent"
        ),
        "{}",
        sent.path
    );
    assert_eq!(sent.body["generationConfig"]["maxOutputTokens"], 9);
    assert_eq!(sent.body["systemInstruction"]["parts"][0]["text"], "s");
    // Control-plane writes rebuild every adapter; the token survives them.
    create_principal(&r.t, "Users", json!({"userName": "rebuild@example.com"})).await;
    let again = json!({"messages": [{"role": "user", "content": "again"}]});
    let got = r.t.post("/serving-endpoints/gem/invocations", again).await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    let token_requests = r.mock.requests.lock().unwrap().iter().filter(|q| q.path == "/token").count();
    assert_eq!(token_requests, 1, "the access token is cached across snapshot rebuilds");

    let resp = r
        .raw(
            "/serving-endpoints/gem/invocations",
            json!({"messages": [{"role": "user", "content": "a b c"}], "stream": true,
        "stream_options": {"include_usage": true}}),
        )
        .await;
    let payloads = sse_payloads(&resp.text().await.unwrap());
    assert_eq!(
        payloads.last().map(String::as_str),
        Some("[DONE]"),
        "a Gemini stream that closes after its finish reason is complete"
    );
    let chunks: Vec<Value> = payloads[..payloads.len() - 1].iter().map(|p| serde_json::from_str(p).unwrap()).collect();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "echo: a b c");
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 8);
    assert_eq!(r.mock.last(":streamGenerateContent").unwrap().query.as_deref(), Some("alt=sse"));

    r.endpoint("gem-embed", vec![vertex("llm/v1/embeddings", "{{secrets/gcp/sa}}")]).await;
    let got = r.t.post("/serving-endpoints/embeddings", json!({"model": "gem-embed", "input": ["abc", "de"]})).await;
    assert_eq!(got.1["data"][1]["embedding"], json!([2.0, 0.5, -0.25]), "{}", got.1);

    // A key that is not a service-account key file fails the deployment, saying why.
    r.t.secret("gcp", "pem-only", "not a key file").await;
    r.t.post(SE, create_body("gem-pem", vec![vertex("llm/v1/chat", "{{secrets/gcp/pem-only}}")])).await;
    assert_eq!(r.t.wait_settled("gem-pem").await["state"]["config_update"], "UPDATE_FAILED");
    let (_, logs) = r.t.get(&format!("{SE}/gem-pem/served-models/gemini-2-0-flash/build-logs")).await;
    assert!(logs["logs"].as_str().unwrap().contains("must be the service account's JSON key file"), "{logs}");

    // A key the token endpoint does not trust: the signature check fails there.
    let untrusted = include_str!("../../../mock-upstream/testdata/untrusted-service-account.pem");
    r.t.secret("gcp", "other", &key_file(untrusted)).await;
    r.endpoint("gem-bad", vec![vertex("llm/v1/chat", "{{secrets/gcp/other}}")]).await;
    let got =
        r.t.post("/serving-endpoints/gem-bad/invocations", json!({"messages": [{"role": "user", "content": "x"}]}))
            .await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "BAD_REQUEST",
        "Google refused the service-account credentials: invalid JWT signature",
    );
    assert!(!got.1.to_string().contains("PRIVATE KEY"));
}

#[tokio::test]
async fn bedrock_converse_signed_with_sigv4() {
    use modelgate_mock_upstream::{TEST_AWS_ACCESS_KEY_ID, TEST_AWS_SECRET_ACCESS_KEY};
    let r = rig().await;
    r.t.secret("aws", "id", TEST_AWS_ACCESS_KEY_ID).await;
    r.t.secret("aws", "secret", TEST_AWS_SECRET_ACCESS_KEY).await;
    r.t.secret("aws", "wrong", "not-the-secret-key").await;
    let bedrock = |family: &str, model: &str, task: &str, secret: &str| {
        json!({"external_model": {"provider": "amazon-bedrock", "name": model, "task": task,
        "amazon_bedrock_config": {"aws_region": "us-east-1", "bedrock_provider": family,
            "aws_access_key_id": "{{secrets/aws/id}}", "aws_secret_access_key": format!("{{{{secrets/aws/{secret}}}}}")}}})
    };
    let model = "anthropic.claude-3-haiku-20240307-v1:0";
    r.endpoint("br", vec![bedrock("anthropic", model, "llm/v1/chat", "secret")]).await;
    let got =
        r.t.post(
            "/serving-endpoints/br/invocations",
            json!({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "yo"}],
        "max_tokens": 7, "extra_params": {"top_k": 2}}),
        )
        .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1["choices"][0]["message"]["content"], "echo: yo");
    assert_eq!(got.1["usage"]["total_tokens"], 8);
    let sent = r.mock.last("/converse").unwrap();
    assert_eq!(sent.path, format!("/model/{model}/converse"));
    assert_eq!(sent.body["inferenceConfig"]["maxTokens"], 7);
    assert_eq!(sent.body["additionalModelRequestFields"], json!({"top_k": 2}));
    let auth = sent.headers.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.clone()).unwrap();
    assert!(
        auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={TEST_AWS_ACCESS_KEY_ID}/"))
            && auth.contains("/us-east-1/bedrock/aws4_request"),
        "{auth}"
    );

    let resp = r
        .raw(
            "/serving-endpoints/br/invocations",
            json!({"messages": [{"role": "user", "content": "a b"}], "stream": true,
        "stream_options": {"include_usage": true}}),
        )
        .await;
    let payloads = sse_payloads(&resp.text().await.unwrap());
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"), "{payloads:?}");
    let chunks: Vec<Value> = payloads[..payloads.len() - 1].iter().map(|p| serde_json::from_str(p).unwrap()).collect();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "echo: a b");
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 8);

    let resp = r
        .raw(
            "/serving-endpoints/br/invocations",
            json!({"messages": [{"role": "user", "content": "x __throttle_mid_stream__ y"}], "stream": true}),
        )
        .await;
    let payloads = sse_payloads(&resp.text().await.unwrap());
    let last: Value = serde_json::from_str(payloads.last().unwrap()).unwrap();
    assert!(last["error"]["message"].as_str().unwrap().contains("throttlingException"), "{last}");

    r.endpoint("titan", vec![bedrock("amazon", "amazon.titan-embed-text-v2:0", "llm/v1/embeddings", "secret")]).await;
    let got = r.t.post("/serving-endpoints/embeddings", json!({"model": "titan", "input": "abcd"})).await;
    assert_eq!(got.1["data"][0]["embedding"], json!([4.0, 0.5, -0.25]), "{}", got.1);
    let got = r.t.post("/serving-endpoints/embeddings", json!({"model": "titan", "input": ["a", "b"]})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "more than one input");

    r.endpoint("br-cohere", vec![bedrock("cohere", "cohere.embed-english-v3", "llm/v1/embeddings", "secret")]).await;
    let got =
        r.t.post("/serving-endpoints/embeddings", json!({"model": "br-cohere", "input": ["hello world", "hello"]}))
            .await;
    assert_eq!(got.1["data"].as_array().map(Vec::len), Some(2), "{}", got.1);
    assert_eq!(got.1["usage"]["prompt_tokens"], 3, "no count from the provider: counted with a real tokenizer");

    r.endpoint("br-bad", vec![bedrock("anthropic", model, "llm/v1/chat", "wrong")]).await;
    let got =
        r.t.post("/serving-endpoints/br-bad/invocations", json!({"messages": [{"role": "user", "content": "x"}]}))
            .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "BAD_REQUEST", "signature we calculated does not match");
    assert!(!got.1.to_string().contains("not-the-secret-key"));
}

#[tokio::test]
async fn an_endpoint_seen_ready_can_be_queried_at_once() {
    let r = rig().await;
    for i in 0..25 {
        let name = format!("fresh-{i}");
        r.endpoint(&name, vec![r.openai("gpt-4o", "llm/v1/chat")]).await;
        let got =
            r.t.post(
                &format!("/serving-endpoints/{name}/invocations"),
                json!({"messages": [{"role": "user", "content": "x"}]}),
            )
            .await;
        assert_eq!(got.0, StatusCode::OK, "round {i}: GET said READY but the data plane disagreed: {}", got.1);
    }
}

#[tokio::test]
async fn every_provider_reports_upstream_failures_the_same_way() {
    use modelgate_mock_upstream::{
        TEST_AWS_ACCESS_KEY_ID, TEST_AWS_SECRET_ACCESS_KEY, TEST_SERVICE_ACCOUNT_PRIVATE_KEY,
    };
    let r = rig().await;
    r.t.secret("aws", "id", TEST_AWS_ACCESS_KEY_ID).await;
    r.t.secret("aws", "secret", TEST_AWS_SECRET_ACCESS_KEY).await;
    r.t.secret("gcp", "sa", &key_file(TEST_SERVICE_ACCOUNT_PRIVATE_KEY)).await;
    let entities = [
        ("p-openai", r.openai("gpt-4o", "llm/v1/chat")),
        ("p-anthropic", r.anthropic("claude-3-5-sonnet")),
        (
            "p-cohere",
            json!({"external_model": {"provider": "cohere", "name": "command-r", "task": "llm/v1/chat",
            "cohere_config": {"cohere_api_key": "{{secrets/llm/openai}}"}}}),
        ),
        (
            "p-vertex",
            json!({"external_model": {"provider": "google-cloud-vertex-ai", "name": "gemini-2.0-flash", "task": "llm/v1/chat",
            "google_cloud_vertex_ai_config": {"project_id": "proj", "region": "us-central1", "private_key": "{{secrets/gcp/sa}}"}}}),
        ),
        (
            "p-bedrock",
            json!({"external_model": {"provider": "amazon-bedrock", "name": "anthropic.claude-3-haiku-20240307-v1:0", "task": "llm/v1/chat",
            "amazon_bedrock_config": {"aws_region": "us-east-1", "bedrock_provider": "anthropic",
                "aws_access_key_id": "{{secrets/aws/id}}", "aws_secret_access_key": "{{secrets/aws/secret}}"}}}),
        ),
    ];
    for (name, entity) in entities {
        r.endpoint(name, vec![entity]).await;
        let path = format!("/serving-endpoints/{name}/invocations");
        let ask = |text: &str| json!({"messages": [{"role": "user", "content": text}]});

        let resp = r.raw(&path, ask("__status_429__")).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "{name}");
        assert_eq!(header(&resp, "retry-after"), Some("7"), "{name}: Retry-After passes through");

        let got = r.t.post(&path, ask("__status_500__")).await;
        assert_error(&got, StatusCode::BAD_GATEWAY, "BAD_GATEWAY", "answered HTTP 500");

        let got = r.t.post(&path, ask("__status_401__")).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "BAD_REQUEST", "answered HTTP 401");
        for secret in ["sk-openai-test-key", "sk-ant-test-key", TEST_AWS_ACCESS_KEY_ID, TEST_AWS_SECRET_ACCESS_KEY] {
            assert!(!got.1.to_string().contains(secret), "{name}: a credential leaked: {}", got.1);
        }

        let got = r.t.post(&path, ask("__malformed__")).await;
        assert_error(&got, StatusCode::BAD_GATEWAY, "BAD_GATEWAY", "invalid");

        let resp =
            r.raw(&path, json!({"messages": [{"role": "user", "content": "a __cut__ b"}], "stream": true})).await;
        let payloads = sse_payloads(&resp.text().await.unwrap());
        assert!(!payloads.contains(&"[DONE]".to_string()), "{name}: a cut stream must not end cleanly");
        let last: Value = serde_json::from_str(payloads.last().unwrap()).unwrap();
        assert!(last["error"]["message"].as_str().unwrap().contains("incomplete"), "{name}: {last}");
    }
}

/// A translated stream is billed with the provider's own usage report, whether or not the client
/// asked for the usage chunk: Anthropic reports 5 input and 3 output tokens, Cohere bills 5 and
/// 3 (its raw count is 60 input). Our tokenizer's estimate of these texts would differ.
#[tokio::test]
async fn streams_are_billed_as_each_provider_reports() {
    use modelgate_mock_upstream::{TEST_AWS_ACCESS_KEY_ID, TEST_AWS_SECRET_ACCESS_KEY};
    let r = rig().await;
    r.endpoint("claude", vec![r.anthropic("claude-3-5-sonnet")]).await;
    let cohere = json!({"external_model": {"provider": "cohere", "name": "command-r", "task": "llm/v1/chat",
                        "cohere_config": {"cohere_api_key": "{{secrets/llm/openai}}"}}});
    r.endpoint("co", vec![cohere]).await;
    r.t.secret("gcp", "sa", &key_file(modelgate_mock_upstream::TEST_SERVICE_ACCOUNT_PRIVATE_KEY)).await;
    let vertex = json!({"external_model": {"provider": "google-cloud-vertex-ai", "name": "gemini-2.0-flash",
        "task": "llm/v1/chat", "google_cloud_vertex_ai_config": {"project_id": "proj", "region": "us-central1",
        "private_key": "{{secrets/gcp/sa}}"}}});
    r.endpoint("gem", vec![vertex]).await;
    r.t.secret("aws", "id", TEST_AWS_ACCESS_KEY_ID).await;
    r.t.secret("aws", "secret", TEST_AWS_SECRET_ACCESS_KEY).await;
    let bedrock = json!({"external_model": {"provider": "amazon-bedrock", "name": "anthropic.claude-3-haiku-20240307-v1:0",
        "task": "llm/v1/chat", "amazon_bedrock_config": {"aws_region": "us-east-1", "bedrock_provider": "anthropic",
        "aws_access_key_id": "{{secrets/aws/id}}", "aws_secret_access_key": "{{secrets/aws/secret}}"}}});
    r.endpoint("br", vec![bedrock]).await;
    r.endpoint("gpt", vec![r.openai("gpt-4o", "llm/v1/chat")]).await;
    // Every fake provider reports 5 input and 3 output tokens per answer; a tokenizer's estimate
    // of these twelve words (and of the short echo) would be different.
    let words = "one two three four five six seven eight nine ten eleven twelve";
    let names = ["claude", "co", "gem", "br", "gpt"];
    for name in names {
        for include_usage in [false, true] {
            let body = json!({"messages": [{"role": "user", "content": words}], "stream": true,
                              "stream_options": {"include_usage": include_usage}});
            let text = r.raw(&format!("/serving-endpoints/{name}/invocations"), body).await.text().await.unwrap();
            let payloads = sse_payloads(&text);
            assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"), "{text}");
            let usage_chunks: Vec<Value> = payloads
                .iter()
                .filter_map(|p| serde_json::from_str::<Value>(p).ok())
                .filter(|c| c.get("usage").is_some())
                .collect();
            if include_usage {
                assert_eq!(usage_chunks.len(), 1, "{text}");
                assert_eq!(usage_chunks[0]["usage"]["total_tokens"], 8, "{text}");
                assert_eq!(usage_chunks[0]["choices"], json!([]), "{text}");
            } else {
                assert!(usage_chunks.is_empty(), "the client did not ask for usage: {text}");
            }
        }
    }
    let (s, report) = r.t.get("/api/2.0/usage?group_by=endpoint").await;
    assert_eq!(s, StatusCode::OK, "{report}");
    for name in names {
        let row = report["rows"].as_array().unwrap().iter().find(|row| row["endpoint"] == name).unwrap();
        assert_eq!((row["input_tokens"].as_i64(), row["output_tokens"].as_i64()), (Some(10), Some(6)), "{name}: {row}");
    }
}
