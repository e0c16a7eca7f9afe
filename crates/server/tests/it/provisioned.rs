//! Foundation models an operator adds to the catalog (a chat model on the process runtime, here
//! the repository's mock upstream), served with provisioned throughput: whole bands enforced as
//! capacity (a turn in a bounded queue, then 429 with Retry-After), grown to the ceiling under load
//! and given back when idle, queries not billed per token, band-time billed as usage records.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::hosting::{eventually, mock_binary};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A foundation-models directory whose catalog adds `system.ai.mock-chat`: the mock as a chat
/// model, 100 tokens/s a band at 36 USD a band-hour (a cent a second).
fn catalog(delay: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("mock-chat")).unwrap();
    let toml = format!(
        r#"
[[model]]
name = "system.ai.mock-chat"
task = "llm/v1/chat"
runtime = "process"
dir = "mock-chat"
description = "The mock upstream as a chat model"
command = ["{}", "--listen", "127.0.0.1:$PORT", "--delay", "{delay}"]
band_tokens_per_second = 100
band_usd_per_hour = 36.0
"#,
        mock_binary()
    );
    std::fs::write(dir.path().join("catalog.toml"), toml).unwrap();
    dir
}

fn entity(extra: Value) -> Value {
    let mut e = json!({"name": "chat", "entity_name": "system.ai.mock-chat"});
    e.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    json!({"served_entities": [e]})
}

/// `n` queries at once; their statuses, whether 429s carried Retry-After, and their messages.
async fn burst(t: &TestServer, endpoint: &str, n: usize) -> Vec<(StatusCode, bool, String)> {
    let queries: Vec<_> = (0..n)
        .map(|i| {
            let (http, url, token) =
                (t.http.clone(), format!("{}/serving-endpoints/{endpoint}/invocations", t.base), t.token.clone());
            tokio::spawn(async move {
                let body = json!({"messages": [{"role": "user", "content": format!("q{i}")}], "max_tokens": 40});
                let r = http.post(url).bearer_auth(token).json(&body).send().await.unwrap();
                let (status, retry) = (r.status(), r.headers().contains_key("retry-after"));
                (status, retry, r.text().await.unwrap())
            })
        })
        .collect();
    let mut out = Vec::new();
    for q in queries {
        out.push(q.await.unwrap());
    }
    out
}

fn state_message(e: &Value) -> String {
    e["config"]["served_entities"][0]["state"]["deployment_state_message"].as_str().unwrap_or_default().to_string()
}

async fn report(t: &TestServer, endpoint: &str) -> Value {
    let (s, r) = t.get("/api/2.0/usage?group_by=endpoint").await;
    assert_eq!(s, StatusCode::OK, "{r}");
    r["rows"].as_array().unwrap().iter().find(|row| row["endpoint"] == endpoint).cloned().unwrap_or(Value::Null)
}

#[tokio::test]
async fn provisioned_throughput_is_capacity_billed_by_the_band_hour() {
    let models = catalog("1500ms");
    let dir = models.path().to_path_buf();
    let t = TestServer::start_with(|c| {
        c.hosting.foundation_models_dir = Some(dir);
        c.hosting.billing_interval = Duration::from_millis(500);
        c.hosting.scale_down_after = Duration::from_secs(4);
    })
    .await;
    let (_, list) = t.get("/api/2.0/foundation-models").await;
    let chat = list["foundation_models"].as_array().unwrap().iter().find(|m| m["name"] == "system.ai.mock-chat");
    let chat = chat.expect("the operator's model is listed");
    assert_eq!((chat["available"].as_bool(), chat["throughput_chunk_size"].as_u64()), (Some(true), Some(100)));

    // What provisioned throughput may not be.
    for (extra, field, fragment) in [
        (json!({"max_provisioned_throughput": 150}), "max_provisioned_throughput", "not a multiple of"),
        (
            json!({"min_provisioned_throughput": 300, "max_provisioned_throughput": 100}),
            "min_provisioned_throughput",
            "larger than",
        ),
        (json!({"max_provisioned_throughput": 100, "workload_size": "Small"}), "workload_size", "drop workload_size"),
        (
            json!({"max_provisioned_throughput": 100, "provisioned_model_units": 1}),
            "provisioned_model_units",
            "not both",
        ),
    ] {
        let got = t.post("/api/2.0/serving-endpoints", json!({"name": "bad", "config": entity(extra)})).await;
        let field = format!("config.served_entities[0].{field}");
        assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", &field);
        assert!(got.1["message"].as_str().unwrap().contains(fragment), "{}", got.1);
    }
    let (mock, url) = mock().await;
    let external = mock_entity("ext", &url, json!({"max_provisioned_throughput": 100}));
    let got = t.post("/api/2.0/serving-endpoints", create_body("bad", vec![external])).await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
        "provisioned throughput is for foundation models",
    );
    assert_eq!(t.get("/api/2.0/serving-endpoints/bad").await.0, StatusCode::NOT_FOUND, "nothing was created");
    drop(mock);

    // One band: 100 tokens/s, a second of them at once, two seconds of queue.
    let budget = budget(&t, "pt-spend").await;
    let created = Instant::now();
    let one = entity(json!({"min_provisioned_throughput": 100, "max_provisioned_throughput": 100}));
    let body = json!({"name": "ptchat", "config": one, "budget_policy_id": budget});
    let (s, e) = t.post("/api/2.0/serving-endpoints", body).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let e = t.wait_settled("ptchat").await;
    assert_eq!(e["state"]["ready"], "READY", "{e}");
    assert!(state_message(&e).contains("Provisioned throughput: 1 band(s) held, 100 tokens/s"), "{e}");

    // Twelve queries of about 45 tokens each (input and max_tokens): about seven fit in the burst
    // and the queue, the rest are refused at once with the time until they would fit.
    let answers = burst(&t, "ptchat", 12).await;
    let ok = answers.iter().filter(|(s, _, _)| *s == StatusCode::OK).count();
    let busy: Vec<_> = answers.iter().filter(|(s, _, _)| *s == StatusCode::TOO_MANY_REQUESTS).collect();
    assert!((3..=8).contains(&ok) && ok + busy.len() == 12, "{answers:?}");
    for (_, retry_after, body) in &busy {
        assert!(retry_after, "a 429 says when to come back");
        assert!(body.contains("is at its provisioned throughput (100 tokens/s)"), "{body}");
    }

    // The answered queries cost nothing per token; the band-time is billed as it passes.
    let (_, log) = t.get("/api/2.0/requests?endpoint=ptchat&status=200").await;
    let served = log["requests"].as_array().unwrap();
    assert_eq!(served.len(), ok, "{log}");
    assert!(served.iter().all(|r| r["billing"] == "provisioned" && r["cost_usd"] == 0.0), "{log}");
    assert!(served.iter().all(|r| r["input_tokens"].as_i64() > Some(0)), "tokens are still counted: {log}");
    let (_, log) = t.get("/api/2.0/requests?endpoint=ptchat").await;
    assert_eq!(log["requests"].as_array().unwrap().len(), 12, "band charges are not requests: {log}");
    let mut billed = 0.0;
    eventually("band-time is billed", async || {
        billed = report(&t, "ptchat").await["cost_usd"].as_f64().unwrap_or(0.0);
        billed > 0.02
    })
    .await;
    let row = report(&t, "ptchat").await;
    let cost = row["cost_usd"].as_f64().unwrap();
    assert!(cost <= 0.01 * created.elapsed().as_secs_f64() + 1e-9, "at most a cent a second since creation: {row}");
    assert_eq!(row["requests"], 12, "{row}");
    assert!(spent(&t, &budget).await > 0.02, "band-time counts against the endpoint's budget; queries cost nothing");

    // Up to three bands: the same burst grows the throughput and every query fits.
    let three = entity(json!({"min_provisioned_throughput": 0, "max_provisioned_throughput": 300}));
    let (s, e) = t.put("/api/2.0/serving-endpoints/ptchat/config", three).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    t.wait_settled("ptchat").await;
    let answers = burst(&t, "ptchat", 12).await;
    assert!(answers.iter().all(|(s, _, _)| *s == StatusCode::OK), "{answers:?}");
    let (_, e) = t.get("/api/2.0/serving-endpoints/ptchat").await;
    assert!(state_message(&e).contains("3 band(s) held, 300 tokens/s"), "{e}");
    let metrics = t.http.get(format!("{}/metrics", t.base)).bearer_auth(&t.token).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("provisioned_throughput_tokens_per_second{")
            && l.contains("endpoint_name=\"ptchat\"")
            && l.ends_with(" 300")),
        "{metrics}"
    );
    // Idle, the bands go back to the floor of zero, and billing stops.
    eventually("the bands are given back", async || {
        state_message(&t.get("/api/2.0/serving-endpoints/ptchat").await.1).contains("0 band(s) held")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let settled = report(&t, "ptchat").await["cost_usd"].as_f64().unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let later = report(&t, "ptchat").await["cost_usd"].as_f64().unwrap();
    assert!((later - settled).abs() < 1e-9, "no band held, nothing billed: {settled} then {later}");
    assert!(settled > cost, "the second config's bands were billed too");
}

async fn budget(t: &TestServer, name: &str) -> String {
    let body = json!({"name": name, "period": "month", "amount_usd": 1000.0, "action": "ALERT"});
    let (s, b) = t.post("/api/2.0/budget-policies", body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["policy_id"].as_str().unwrap().to_string()
}

async fn spent(t: &TestServer, id: &str) -> f64 {
    let (s, b) = t.get(&format!("/api/2.0/budget-policies/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["spend"]["spent_usd"].as_f64().unwrap()
}

/// The PT routes; and band-time billed when a config change retires a throughput and at shutdown
/// (here the only charges: the billing interval is the default minute), counted in the budget.
#[tokio::test]
async fn the_provisioned_throughput_routes_of_the_databricks_api() {
    let models = catalog("0s");
    let dir = models.path().to_path_buf();
    let foundation = dir.clone();
    let mut t = TestServer::start_with(|c| c.hosting.foundation_models_dir = Some(dir)).await;
    let budget = budget(&t, "pt-routes").await;
    let units = |u: Value| {
        json!({"served_entities": [{"name": "chat", "entity_name": "system.ai.mock-chat",
        "provisioned_model_units": u}]})
    };
    let no_units = json!({"served_entities": [{"name": "chat", "entity_name": "system.ai.mock-chat"}]});
    let got = t.post("/api/2.0/serving-endpoints/pt", json!({"name": "pt1", "config": no_units.clone()})).await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
        "config.served_entities[0].provisioned_model_units",
    );
    let body = json!({"name": "pt1", "config": units(json!(1)), "budget_policy_id": budget});
    let (s, e) = t.post("/api/2.0/serving-endpoints/pt", body).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let e = t.wait_settled("pt1").await;
    let one_band_from = Instant::now();
    assert!(state_message(&e).contains("1 band(s) held, 100 tokens/s"), "{e}");
    let (s, a) =
        t.post("/serving-endpoints/pt1/invocations", json!({"messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!((s, a["choices"][0]["message"]["content"].as_str()), (StatusCode::OK, Some("echo: hi")), "{a}");
    let got = t.put("/api/2.0/serving-endpoints/pt/pt1/config", json!({"config": no_units})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "provisioned_model_units");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let one_band = one_band_from.elapsed().as_secs_f64();
    let (s, e) = t.put("/api/2.0/serving-endpoints/pt/pt1/config", json!({"config": units(json!(2))})).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let e = t.wait_settled("pt1").await;
    let two_bands_from = Instant::now();
    assert!(state_message(&e).contains("2 band(s) held, 200 tokens/s"), "{e}");
    // `pt` is a route, not an endpoint: other methods on it are still the endpoint's.
    assert_eq!(t.get("/api/2.0/serving-endpoints/pt").await.0, StatusCode::NOT_FOUND);
    let got = t.post("/api/2.0/serving-endpoints/pt1", json!({})).await;
    assert_eq!(got.0, StatusCode::NOT_FOUND, "{}", got.1);

    // Nothing billed yet; the retired band and the two held now are billed when the server stops.
    assert_eq!(report(&t, "pt1").await["cost_usd"].as_f64().unwrap_or(0.0), 0.0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let two_bands = two_bands_from.elapsed().as_secs_f64();
    t.restart_with(|c| c.hosting.foundation_models_dir = Some(foundation)).await;
    let cost = report(&t, "pt1").await["cost_usd"].as_f64().unwrap();
    // A cent a band-second: at least the first config's band while it surely served, plus two
    // bands for the second's; the first alone is more than the second's start-up could add.
    let least = 0.01 * one_band + 0.02 * two_bands;
    assert!(cost >= least - 1e-9 && cost < least + 0.1, "{cost} vs at least {least}");
    assert!((spent(&t, &budget).await - cost).abs() < 1e-9, "the budget counts the band-time");
}

#[tokio::test]
async fn a_catalog_file_that_is_wrong_stops_the_server_naming_the_problem() {
    let models = tempfile::tempdir().unwrap();
    std::fs::write(
        models.path().join("catalog.toml"),
        "[[model]]\nname = \"system.ai.x\"\ntask = \"llm/v1/chat\"\nruntime = \"process\"\ndir = \"x\"\n\
         band_tokens_per_second = 10\nband_usd_per_hour = 1.0\n",
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(data.path().join("data"));
    cfg.hosting.foundation_models_dir = Some(models.path().to_path_buf());
    let err = modelgate_server::Server::start(cfg).await.err().expect("the server refuses to start").to_string();
    assert!(err.contains("catalog.toml") && err.contains("model[0].command"), "{err}");
}
