//! The response cache (`ai_gateway.cache_config`): repeated queries answered without the
//! provider, hits visible in the headers, request log, inference table and metrics; a caller who
//! may not query never gets a cached answer; `Cache-Control` honoured; sampled chat answers left
//! alone; streams served from a cached whole answer; a new config version starts afresh;
//! replicas share answers through Redis.

use std::sync::atomic::Ordering;

use crate::common::*;
use crate::shared_limits::{copy_dir, start_at};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SE: &str = "/api/2.0/serving-endpoints";

fn calls(m: &modelgate_mock_upstream::Mock, suffix: &str) -> usize {
    m.requests.lock().unwrap().iter().filter(|r| r.path.ends_with(suffix)).count()
}

fn embedder(url: &str) -> Value {
    json!({"name": "emb", "external_model": {"provider": "openai", "name": "text-embedding-3-small",
        "task": "llm/v1/embeddings",
        "openai_config": {"openai_api_key": "{{secrets/llm/k}}", "openai_api_base": format!("{url}/v1")}}})
}

/// A query as `token` with extra headers: status, `x-modelgate-cache`, `age`, body text.
async fn ask(
    t: &TestServer,
    token: &str,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> (StatusCode, Option<String>, Option<String>, String) {
    let mut req = t.http.post(format!("{}{path}", t.base)).bearer_auth(token).json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let h = |n: &str| r.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (cache, age) = (h("x-modelgate-cache"), h("age"));
    (r.status(), cache, age, r.text().await.unwrap())
}

#[tokio::test]
async fn a_repeated_embeddings_query_is_answered_from_the_cache() {
    let (m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-cache").await;
    create_ready(
        &t,
        json!({"name": "emb", "config": {"served_entities": [embedder(&url)]},
               "ai_gateway": {"cache_config": {"enabled": true, "ttl_seconds": 120},
                              "inference_table_config": {"enabled": true, "catalog_name": "c", "schema_name": "s"}}}),
    )
    .await;
    let path = "/serving-endpoints/emb/invocations";
    let q = json!({"input": ["the same words", "twice"], "client_request_id": "first"});
    let (s, cache, _, first) = ask(&t, &t.token, path, q, &[]).await;
    assert_eq!((s, cache.as_deref()), (StatusCode::OK, Some("miss")), "{first}");
    // The same query by another route, fields in another order, another client_request_id.
    let again = json!({"model": "emb", "client_request_id": "second", "input": ["the same words", "twice"]});
    let (s, cache, age, second) = ask(&t, &t.token, "/v1/embeddings", again, &[]).await;
    assert_eq!((s, cache.as_deref()), (StatusCode::OK, Some("hit")), "{second}");
    assert_eq!(first, second, "the cached answer is the answer");
    assert!(age.is_some_and(|a| a.parse::<u64>().is_ok_and(|a| a < 120)));
    assert_eq!(calls(&m, "/embeddings"), 1, "the provider saw one call");

    // The client can ask for a fresh answer (stored again) or for no caching at all.
    let q = json!({"input": ["the same words", "twice"]});
    for (header, value) in [("cache-control", "no-cache"), ("cache-control", "no-store"), ("pragma", "no-cache")] {
        let (s, cache, _, _) = ask(&t, &t.token, path, q.clone(), &[(header, value)]).await;
        assert_eq!((s, cache.as_deref()), (StatusCode::OK, Some("bypass")), "{header}: {value}");
    }
    assert_eq!(calls(&m, "/embeddings"), 4);
    let (_, cache, _, _) = ask(&t, &t.token, path, json!({"input": "other words"}), &[]).await;
    assert_eq!(cache.as_deref(), Some("miss"));
    let (_, cache, _, _) = ask(&t, &t.token, path, q, &[]).await;
    assert_eq!(cache.as_deref(), Some("hit"));
    assert_eq!(calls(&m, "/embeddings"), 5);

    // Hits are in the request log, billed nothing, with the entity that gave the answer.
    let (_, log) = t.get("/api/2.0/requests?endpoint=emb").await;
    let rows = log["requests"].as_array().unwrap();
    assert_eq!(rows.len(), 7, "{log}");
    let (hits, paid): (Vec<&Value>, Vec<&Value>) = rows.iter().partition(|r| r["billing"] == "cache");
    assert_eq!(hits.len(), 2, "{log}");
    for h in &hits {
        assert_eq!((h["cost_usd"].as_f64(), h["input_tokens"].as_i64()), (Some(0.0), Some(0)), "{h}");
        assert_eq!((h["served_entity"].as_str(), h["attempts"].as_i64()), (Some("emb"), Some(0)), "{h}");
        assert_eq!(h["model"], "text-embedding-3-small");
    }
    assert!(paid.iter().all(|r| r["cost_usd"].as_f64().unwrap() > 0.0), "{log}");
    // ... and marked in the inference table.
    let (_, table) = t.get(&format!("{SE}/emb/inference-table")).await;
    let marks: Vec<bool> = table["records"].as_array().unwrap().iter().map(|r| r["cache_hit"] == true).collect();
    assert_eq!((marks.len(), marks.iter().filter(|h| **h).count()), (7, 2), "{table}");
    // ... and counted in the metrics.
    let metrics = t.http.get(format!("{}/metrics", t.base)).bearer_auth(&t.token).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    for (result, n) in [("hit", 2), ("miss", 2), ("bypass", 3)] {
        let line = format!("cache_lookup_count_total{{endpoint_name=\"emb\",result=\"{result}\"}} {n}");
        assert!(text.contains(&line), "{line} in {text}");
    }
    assert!(text.lines().any(|l| l.starts_with("response_cache_entries ") && !l.ends_with(" 0")), "{text}");
}

#[tokio::test]
async fn a_caller_never_gets_an_answer_it_could_not_have_received() {
    let (m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-cache").await;
    create_principal(&t, "Users", json!({"userName": "a@example.com"})).await;
    create_principal(&t, "Users", json!({"userName": "b@example.com"})).await;
    create_principal(&t, "Users", json!({"userName": "outsider@example.com"})).await;
    for (name, scope) in [("shared", "endpoint"), ("own", "caller")] {
        create_ready(
            &t,
            json!({"name": name, "config": {"served_entities": [embedder(&url)]},
                   "ai_gateway": {"cache_config": {"enabled": true, "scope": scope}}}),
        )
        .await;
        let (_, ep) = t.get(&format!("{SE}/{name}")).await;
        let acl = json!({"access_control_list": [
            {"user_name": "a@example.com", "permission_level": "CAN_QUERY"},
            {"user_name": "b@example.com", "permission_level": "CAN_QUERY"}]});
        let perms = format!("/api/2.0/permissions/serving-endpoints/{}", ep["id"].as_str().unwrap());
        assert_eq!(t.put(&perms, acl).await.0, StatusCode::OK);
    }
    let a = token_for(&t, json!({"user_name": "a@example.com"})).await;
    let b = token_for(&t, json!({"user_name": "b@example.com"})).await;
    let outsider = token_for(&t, json!({"user_name": "outsider@example.com"})).await;
    let q = json!({"input": "private question"});
    let path = |n: &str| format!("/serving-endpoints/{n}/invocations");

    let (s, cache, _, _) = ask(&t, &a, &path("shared"), q.clone(), &[]).await;
    assert_eq!((s, cache.as_deref()), (StatusCode::OK, Some("miss")));
    // Without CAN_QUERY: refused as always, the cached answer never shown.
    let (s, cache, _, body) = ask(&t, &outsider, &path("shared"), q.clone(), &[]).await;
    assert!([StatusCode::FORBIDDEN, StatusCode::NOT_FOUND].contains(&s), "{s}: {body}");
    assert!(cache.is_none() && !body.contains("embedding"), "{body}");
    // Anyone who may query the endpoint shares its answers (scope endpoint) ...
    let (_, cache, _, _) = ask(&t, &b, &path("shared"), q.clone(), &[]).await;
    assert_eq!(cache.as_deref(), Some("hit"));
    // ... unless answers are kept per caller.
    for (who, expected) in [(&a, "miss"), (&b, "miss"), (&a, "hit"), (&b, "hit")] {
        let (_, cache, _, _) = ask(&t, who, &path("own"), q.clone(), &[]).await;
        assert_eq!(cache.as_deref(), Some(expected));
    }
    assert_eq!(calls(&m, "/embeddings"), 3);
}

#[tokio::test]
async fn chat_answers_are_cached_only_when_deterministic_and_stream_from_the_cache() {
    let (m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-cache").await;
    create_ready(
        &t,
        json!({"name": "chat", "config": {"served_entities": [mock_entity("a", &url, json!({}))]},
               "ai_gateway": {"cache_config": {"enabled": true}}}),
    )
    .await;
    let path = "/serving-endpoints/chat/invocations";
    let exact = json!({"messages": [{"role": "user", "content": "what is two and two"}], "temperature": 0});
    // A failure is not stored.
    m.force_status.store(400, Ordering::SeqCst);
    let (s, cache, _, _) = ask(&t, &t.token, path, exact.clone(), &[]).await;
    assert_eq!((s, cache.as_deref()), (StatusCode::BAD_REQUEST, Some("miss")));
    m.force_status.store(0, Ordering::SeqCst);
    let (s, cache, _, whole) = ask(&t, &t.token, path, exact.clone(), &[]).await;
    assert_eq!((s, cache.as_deref()), (StatusCode::OK, Some("miss")), "{whole}");
    let whole: Value = serde_json::from_str(&whole).unwrap();

    // A streamed query is served from the cached whole answer, as a stream.
    let mut streamed = exact.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (s, cache, _, text) = ask(&t, &t.token, path, streamed, &[]).await;
    assert_eq!((s, cache.as_deref()), (StatusCode::OK, Some("hit")), "{text}");
    let events = sse_payloads(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    let chunks: Vec<Value> =
        events.iter().filter(|e| *e != "[DONE]").map(|e| serde_json::from_str(e).unwrap()).collect();
    let content: String =
        chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect::<Vec<_>>().concat();
    assert_eq!(content, whole["choices"][0]["message"]["content"].as_str().unwrap(), "{text}");
    assert!(chunks.iter().any(|c| c["usage"]["total_tokens"] == whole["usage"]["total_tokens"]), "{text}");
    // So is the same question through Anthropic's Messages API.
    let messages = json!({"model": "chat", "max_tokens": 100, "temperature": 0,
                          "messages": [{"role": "user", "content": "what is two and two"}]});
    let (s, cache, _, _) = ask(&t, &t.token, "/v1/messages", messages, &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(cache.is_some(), "the cache header survives translation");

    // A streamed answer is stored as the whole answer it carried: whole queries then hit it.
    let question = json!({"messages": [{"role": "user", "content": "name the primes under ten"}], "temperature": 0,
                          "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]});
    let mut streamed = question.clone();
    streamed["stream"] = json!(true);
    let (s, cache, _, text) = ask(&t, &t.token, path, streamed, &[]).await;
    assert_eq!((s, cache.as_deref()), (StatusCode::OK, Some("miss")), "{text}");
    assert!(text.contains("[DONE]"));
    let (s, cache, _, whole) = ask(&t, &t.token, path, question, &[]).await;
    assert_eq!((s, cache.as_deref()), (StatusCode::OK, Some("hit")), "{whole}");
    let whole: Value = serde_json::from_str(&whole).unwrap();
    let call = &whole["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "lookup", "the streamed tool call, put back together: {whole}");
    assert_eq!(call["function"]["arguments"], r#"{"text":"name the primes under ten"}"#, "{whole}");
    assert_eq!(whole["choices"][0]["finish_reason"], "tool_calls");
    let before = calls(&m, "/chat/completions");

    // Sampled answers are left alone: each query goes to the provider.
    let sampled = json!({"messages": [{"role": "user", "content": "write a poem"}], "temperature": 0.9});
    for _ in 0..2 {
        let (s, cache, _, _) = ask(&t, &t.token, path, sampled.clone(), &[]).await;
        assert_eq!((s, cache.as_deref()), (StatusCode::OK, Some("bypass")));
    }
    assert_eq!(calls(&m, "/chat/completions"), before + 2);

    // A new config version never serves the old version's answers.
    let config = json!({"served_entities": [mock_entity("b", &url, json!({}))]});
    let (s, b) = t.put(&format!("{SE}/chat/config"), config).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ep = t.wait_settled("chat").await;
    assert_eq!(ep["config"]["config_version"], 2, "{ep}");
    let (_, cache, _, _) = ask(&t, &t.token, path, exact, &[]).await;
    assert_eq!(cache.as_deref(), Some("miss"));
}

#[tokio::test]
async fn bad_cache_configs_are_refused_and_nothing_is_lost() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-cache").await;
    create_ready(
        &t,
        json!({"name": "emb", "config": {"served_entities": [embedder(&url)]},
               "ai_gateway": {"cache_config": {"enabled": true, "ttl_seconds": 60}}}),
    )
    .await;
    for (bad, field) in [
        (json!({"enabled": true, "ttl_seconds": 0}), "cache_config.ttl_seconds"),
        (json!({"enabled": true, "ttl_seconds": 90_000}), "cache_config.ttl_seconds"),
        (json!({"enabled": true, "scope": "team"}), "cache_config.scope"),
        (json!({"enabled": true, "max_entries": 5}), "max_entries"),
    ] {
        let (s, b) = t.put(&format!("{SE}/emb/ai-gateway"), json!({"cache_config": bad})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert!(b["message"].as_str().unwrap().contains(field), "{field}: {b}");
    }
    let (_, ep) = t.get(&format!("{SE}/emb")).await;
    assert_eq!(ep["ai_gateway"]["cache_config"], json!({"enabled": true, "ttl_seconds": 60}), "{ep}");
}

#[tokio::test]
async fn replicas_share_cached_answers_through_redis() {
    let (m, url) = mock().await;
    let mut t = TestServer::start_with(|c| c.redis_url = Some("redis://127.0.0.1:6379/0".into())).await;
    t.secret("llm", "k", "sk-cache").await;
    create_ready(
        &t,
        json!({"name": "emb", "config": {"served_entities": [embedder(&url)]},
               "ai_gateway": {"cache_config": {"enabled": true}}}),
    )
    .await;
    t.server.take().unwrap().shutdown().await.unwrap();
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&t.data_dir(), &copy.path().join("data"));
    let database = t.config().database_url;
    let (a, base_a) = start_at(t.data_dir(), "127.0.0.1:6379", database.clone()).await;
    let (b, base_b) = start_at(copy.path().join("data"), "127.0.0.1:6379", database).await;
    let http = reqwest::Client::new();
    let q = json!({"input": format!("shared between replicas {}", uuid_like())});
    let post = |base: &str| {
        http.post(format!("{base}/serving-endpoints/emb/invocations")).bearer_auth(ADMIN_TOKEN).json(&q).send()
    };
    let first = post(&base_a).await.unwrap();
    assert_eq!(first.headers()["x-modelgate-cache"], "miss");
    let first = first.text().await.unwrap();
    // The other replica finds it (stored in Redis in the background: allow it a moment).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let second = post(&base_b).await.unwrap();
    assert_eq!(second.headers()["x-modelgate-cache"], "hit", "replica b answers from the shared cache");
    assert_eq!(second.text().await.unwrap(), first);
    assert_eq!(calls(&m, "/embeddings"), 1, "the provider saw one call for both replicas");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// A value unique to this run, so entries other runs left in Redis never answer.
fn uuid_like() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}
