//! Hosted models end to end: a registered version whose command is the repository's mock upstream
//! (an OpenAI-compatible server) is started by the deployer, serves queries through the endpoint,
//! is restarted when it crashes, refuses beyond its capacity with 429, scales to zero and starts
//! again on the next query, and is replaced by a new version without a failed query.

use std::sync::OnceLock;
use std::time::Duration;

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The mock upstream as a program (built once per test run).
pub(crate) fn mock_binary() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "--quiet", "-p", "modelgate-mock-upstream", "--bin", "modelgate-mock-upstream"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "the mock upstream builds");
        let target = std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| format!("{}/../../target", env!("CARGO_MANIFEST_DIR")));
        format!("{target}/debug/modelgate-mock-upstream")
    })
}

/// Registers `team.models.echo` version(s) running the mock with `extra` arguments.
async fn register(t: &TestServer, source: &std::path::Path, extra: &[&str]) -> String {
    let mut command = vec![mock_binary().to_string(), "--listen".into(), "127.0.0.1:$PORT".into()];
    command.extend(extra.iter().map(|s| s.to_string()));
    let body = json!({"source": source, "runtime": "process", "command": command});
    let (s, v) = t.post("/api/2.0/registered-models/team.models.echo/versions", body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["version"].as_str().unwrap().to_string()
}

fn hosted(version: &str, size: &str, scale_to_zero: bool) -> Value {
    json!({"served_entities": [{"name": "echo", "entity_name": "team.models.echo", "entity_version": version,
        "workload_size": size, "scale_to_zero_enabled": scale_to_zero}]})
}

async fn ask(t: &TestServer, text: &str) -> (StatusCode, Value) {
    t.post("/serving-endpoints/hosted/invocations", json!({"messages": [{"role": "user", "content": text}]})).await
}

async fn logs(t: &TestServer) -> String {
    let (_, l) = t.get("/api/2.0/serving-endpoints/hosted/served-models/echo/logs").await;
    l["logs"].as_str().unwrap_or_default().to_string()
}

/// The pid of the newest replica, from its "started ... (pid N)" line.
fn newest_pid(logs: &str) -> i32 {
    let line = logs.lines().rfind(|l| l.contains(" (pid ")).expect("a replica started");
    line.split(" (pid ").nth(1).unwrap().split(')').next().unwrap().parse().unwrap()
}

pub(crate) async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..150 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 15 s");
}

fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(')').next().and_then(|r| r.split_whitespace().next()).is_some_and(|s| s != "Z")
}

#[tokio::test]
async fn a_registered_version_serves_restarts_and_is_replaced_without_a_failed_query() {
    let t = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("weights.bin"), "w").unwrap();
    t.post("/api/2.0/registered-models", json!({"name": "team.models.echo"})).await;
    let v1 = register(&t, dir.path(), &[]).await;

    // Config checks: an unknown version is named, GPU is refused at deployment.
    let (s, e) =
        t.post("/api/2.0/serving-endpoints", json!({"name": "hosted", "config": hosted("9", "Small", false)})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e["message"].as_str().unwrap().contains("config.served_entities[0].entity_version"), "{e}");

    let (s, e) =
        t.post("/api/2.0/serving-endpoints", json!({"name": "hosted", "config": hosted(&v1, "Small", false)})).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let e = t.wait_settled("hosted").await;
    assert_eq!(e["state"]["ready"], "READY", "{e}");
    assert_eq!(e["task"], "llm/v1/chat");
    let (_, build) = t.get("/api/2.0/serving-endpoints/hosted/served-models/echo/build-logs").await;
    assert!(build["logs"].as_str().unwrap().contains("a replica is serving"), "{build}");

    let (_, inv) = t.get("/api/2.0/inventory").await;
    let row = &inv["endpoints"][0];
    assert_eq!(
        (row["type"].as_str(), row["model"].as_str(), row["model_version"].as_str(), row["provider"].as_str()),
        (Some("custom"), Some("team.models.echo"), Some(v1.as_str()), Some("modelgate")),
        "{inv}"
    );
    let (s, answer) = ask(&t, "hello replica").await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    assert_eq!(answer["choices"][0]["message"]["content"], "echo: hello replica");
    let first = newest_pid(&logs(&t).await);
    assert!(alive(first));
    // `serving-endpoints test` probes the entity through a replica.
    let (s, report) = t.post("/api/2.0/serving-endpoints/hosted/test", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(
        (report["ok"].as_bool(), report["served_entities"][0]["provider"].as_str()),
        (Some(true), Some("openai")),
        "{report}"
    );

    // A crash: the supervisor starts another replica and queries are served again.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first), nix::sys::signal::Signal::SIGKILL).unwrap();
    eventually("a restart after the crash", async || logs(&t).await.contains("starting another")).await;
    eventually("a query after the restart", async || ask(&t, "again").await.0 == StatusCode::OK).await;
    let second = newest_pid(&logs(&t).await);
    assert_ne!(first, second);

    // A new version replaces the old one while queries keep flowing: none fails.
    let v2 = register(&t, dir.path(), &["--threads", "2"]).await;
    let (s, e) = t.put("/api/2.0/serving-endpoints/hosted/config", hosted(&v2, "Small", false)).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let mut failures = Vec::new();
    let mut served = 0;
    loop {
        let (s, a) = ask(&t, "during the switch").await;
        if s == StatusCode::OK {
            served += 1;
        } else {
            failures.push(a);
        }
        let (_, e) = t.get("/api/2.0/serving-endpoints/hosted").await;
        if e["state"]["config_update"] != "IN_PROGRESS" {
            break;
        }
    }
    assert!(failures.is_empty(), "no query fails during the switch ({served} served): {failures:?}");
    let e = t.wait_settled("hosted").await;
    assert_eq!(e["config"]["served_entities"][0]["entity_version"], v2.as_str());
    let third = newest_pid(&logs(&t).await);
    assert_ne!(third, second);
    eventually("the old replica stops", async || !alive(second)).await;
    assert_eq!(ask(&t, "on v2").await.0, StatusCode::OK);

    // Deleting the endpoint stops its replicas.
    let (s, _) = t.call(reqwest::Method::DELETE, "/api/2.0/serving-endpoints/hosted", None).await;
    assert_eq!(s, StatusCode::OK);
    eventually("the replica stops with its endpoint", async || !alive(third)).await;
}

#[tokio::test]
async fn capacity_queue_429_and_scale_to_zero_with_a_cold_start() {
    let t = TestServer::start_with(|c| {
        c.hosting.idle_to_zero = Duration::from_secs(1);
        c.hosting.cold_start_timeout = Duration::from_secs(20);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    t.post("/api/2.0/registered-models", json!({"name": "team.models.echo"})).await;
    // Each answer takes 600 ms: a Small entity (4 at once, 4 waiting) turns the rest away.
    let v1 = register(&t, dir.path(), &["--delay", "600ms"]).await;
    let (s, e) =
        t.post("/api/2.0/serving-endpoints", json!({"name": "hosted", "config": hosted(&v1, "Small", true)})).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(t.wait_settled("hosted").await["state"]["ready"], "READY");

    let burst: Vec<_> = (0..12)
        .map(|i| {
            let (http, base, token) = (reqwest::Client::new(), t.base.clone(), t.token.clone());
            tokio::spawn(async move {
                let r = http
                    .post(format!("{base}/serving-endpoints/hosted/invocations"))
                    .bearer_auth(token)
                    .json(&json!({"messages": [{"role": "user", "content": format!("q{i}")}]}))
                    .send()
                    .await
                    .unwrap();
                (r.status(), r.headers().get("retry-after").is_some())
            })
        })
        .collect();
    let mut codes = Vec::new();
    for b in burst {
        codes.push(b.await.unwrap());
    }
    let ok = codes.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let busy: Vec<_> = codes.iter().filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!((ok, busy.len()), (8, 4), "4 served at once, 4 waited, 4 refused: {codes:?}");
    assert!(busy.iter().all(|(_, retry_after)| *retry_after), "429s carry Retry-After");

    // Idle for the idle time: scaled to zero; the next query starts a replica and is served.
    let pid = newest_pid(&logs(&t).await);
    eventually("scale to zero", async || logs(&t).await.contains("scaled to zero")).await;
    eventually("the replica stops", async || !alive(pid)).await;
    let (_, e) = t.get("/api/2.0/serving-endpoints/hosted").await;
    let note = e["config"]["served_entities"][0]["state"]["deployment_state_message"].as_str().unwrap().to_string();
    assert_eq!(note, "Scaled to zero: the next query starts a replica.");
    let (s, a) = ask(&t, "cold").await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(a["choices"][0]["message"]["content"], "echo: cold");
    assert_ne!(newest_pid(&logs(&t).await), pid, "a new replica answered");
    // The cold starts are in the metrics: the deployment's and this one.
    let metrics =
        t.http.get(format!("{}/metrics", t.base)).bearer_auth(&t.token).send().await.unwrap().text().await.unwrap();
    let count = metrics
        .lines()
        .find(|l| l.starts_with("cold_start_ms_count{") && l.contains("endpoint_name=\"hosted\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok());
    assert!(count.is_some_and(|n| n >= 1), "{metrics}");
    assert!(metrics.lines().any(|l| l.starts_with("hosted_replicas{") && l.ends_with(" 1")), "{metrics}");
}

#[tokio::test]
async fn a_version_that_never_answers_fails_the_update_and_the_old_one_keeps_serving() {
    let t = TestServer::start_with(|c| c.hosting.cold_start_timeout = Duration::from_secs(2)).await;
    let dir = tempfile::tempdir().unwrap();
    t.post("/api/2.0/registered-models", json!({"name": "team.models.echo"})).await;
    let good = register(&t, dir.path(), &[]).await;
    let (s, _) =
        t.post("/api/2.0/serving-endpoints", json!({"name": "hosted", "config": hosted(&good, "Small", false)})).await;
    assert_eq!(s, StatusCode::OK);
    t.wait_settled("hosted").await;
    // A program that exits at once.
    let body = json!({"source": dir.path(), "runtime": "process", "command": ["/bin/false"]});
    let (_, bad) = t.post("/api/2.0/registered-models/team.models.echo/versions", body).await;
    let (s, _) = t
        .put("/api/2.0/serving-endpoints/hosted/config", hosted(bad["version"].as_str().unwrap(), "Small", false))
        .await;
    assert_eq!(s, StatusCode::OK);
    let e = t.wait_settled("hosted").await;
    assert_eq!(
        (e["state"]["ready"].as_str(), e["state"]["config_update"].as_str()),
        (Some("READY"), Some("UPDATE_FAILED")),
        "{e}"
    );
    assert_eq!(e["config"]["served_entities"][0]["entity_version"], good.as_str(), "the old version still serves");
    let (_, versions) = t.get("/api/2.0/serving-endpoints/hosted/config-versions").await;
    let log = versions["config_versions"][0]["build_logs"].as_str().unwrap().to_string();
    assert!(log.contains("did not start") && log.contains("exited with status 1"), "{log}");
    assert_eq!(ask(&t, "still here").await.0, StatusCode::OK);
    // A GPU workload is refused with the reason.
    let mut gpu = hosted(&good, "Small", false);
    gpu["served_entities"][0]["workload_type"] = json!("GPU_SMALL");
    t.put("/api/2.0/serving-endpoints/hosted/config", gpu).await;
    let (_, versions) = {
        t.wait_settled("hosted").await;
        t.get("/api/2.0/serving-endpoints/hosted/config-versions").await
    };
    assert!(versions["config_versions"][0]["build_logs"].as_str().unwrap().contains("needs a GPU"), "{versions}");
}

/// The port of every replica started, from their "started ... on port P" lines.
fn ports(logs: &str) -> Vec<u16> {
    logs.lines().filter_map(|l| l.split(" on port ").nth(1)).filter_map(|p| p.trim().parse().ok()).collect()
}

#[tokio::test]
async fn traffic_splits_across_two_versions() {
    let t = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    t.post("/api/2.0/registered-models", json!({"name": "team.models.echo"})).await;
    let (v1, v2) = (register(&t, dir.path(), &[]).await, register(&t, dir.path(), &[]).await);
    let entity = |name: &str, v: &str| {
        json!({"name": name, "entity_name": "team.models.echo", "entity_version": v,
        "workload_size": "Small", "scale_to_zero_enabled": false})
    };
    let config = json!({"served_entities": [entity("old", &v1), entity("new", &v2)],
        "traffic_config": {"routes": [{"served_entity_name": "old", "traffic_percentage": 50},
                                      {"served_entity_name": "new", "traffic_percentage": 50}]}});
    let (s, e) = t.post("/api/2.0/serving-endpoints", json!({"name": "hosted", "config": config})).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(t.wait_settled("hosted").await["state"]["ready"], "READY");
    let mut by_entity = std::collections::HashMap::new();
    for i in 0..40 {
        let r = t
            .http
            .post(format!("{}/serving-endpoints/hosted/invocations", t.base))
            .bearer_auth(&t.token)
            .json(&json!({"messages": [{"role": "user", "content": format!("q{i}")}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let served_by = r.headers().get("served-model-name").map(|v| v.to_str().unwrap().to_string());
        *by_entity.entry(served_by).or_insert(0) += 1;
    }
    let (old, new) = (by_entity.get(&Some("old".to_string())), by_entity.get(&Some("new".to_string())));
    assert!(old.is_some_and(|n| *n >= 8) && new.is_some_and(|n| *n >= 8), "both versions serve: {by_entity:?}");
    // Each version's own replica answered its share: its process recorded the requests.
    for (entity, share) in [("old", old), ("new", new)] {
        let (_, l) = t.get(&format!("/api/2.0/serving-endpoints/hosted/served-models/{entity}/logs")).await;
        let port = ports(l["logs"].as_str().unwrap())[0];
        let seen: Value =
            reqwest::get(format!("http://127.0.0.1:{port}/__requests")).await.unwrap().json().await.unwrap();
        let chats = seen["requests"].as_array().unwrap().iter().filter(|r| r["path"] == "/v1/chat/completions").count();
        assert_eq!(chats, *share.unwrap(), "{entity}'s replica got its queries");
    }
}

#[tokio::test]
async fn replicas_scale_up_under_load_and_back_down_to_the_minimum() {
    let t = TestServer::start_with(|c| c.hosting.scale_down_after = Duration::from_secs(1)).await;
    let dir = tempfile::tempdir().unwrap();
    t.post("/api/2.0/registered-models", json!({"name": "team.models.echo"})).await;
    let v1 = register(&t, dir.path(), &["--delay", "400ms"]).await;
    let (s, e) =
        t.post("/api/2.0/serving-endpoints", json!({"name": "hosted", "config": hosted(&v1, "Medium", false)})).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    t.wait_settled("hosted").await;
    let state = async || {
        let (_, e) = t.get("/api/2.0/serving-endpoints/hosted").await;
        e["config"]["served_entities"][0]["state"]["deployment_state_message"].as_str().unwrap_or_default().to_string()
    };
    eventually("the minimum of a Medium entity", async || state().await.starts_with("Served by 2 replicas")).await;
    // 16 queries at once: 8 slots on 2 replicas, so the set grows to its maximum of 4.
    let burst: Vec<_> = (0..16)
        .map(|i| {
            let (http, base, token) = (reqwest::Client::new(), t.base.clone(), t.token.clone());
            tokio::spawn(async move {
                http.post(format!("{base}/serving-endpoints/hosted/invocations"))
                    .bearer_auth(token)
                    .json(&json!({"messages": [{"role": "user", "content": format!("q{i}")}]}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for b in burst {
        assert_eq!(b.await.unwrap(), StatusCode::OK, "the queue holds what the slots cannot");
    }
    let started = ports(&logs(&t).await).len();
    assert!(started > 2, "replicas were added under load: {}", logs(&t).await);
    // Unused for the scale-down time, the extra replicas go; the minimum stays.
    eventually("scale down to the minimum", async || state().await.starts_with("Served by 2 replicas")).await;
    assert!(logs(&t).await.contains("stopped: "), "{}", logs(&t).await);
}

#[tokio::test]
async fn an_entity_whose_replicas_can_no_longer_start_is_not_ready_and_says_why() {
    let t = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok"), "").unwrap();
    t.post("/api/2.0/registered-models", json!({"name": "team.models.echo"})).await;
    // A program that serves while the file `ok` is in its source, and exits at once otherwise.
    let script = format!("test -f \"$MODEL_PATH/ok\" && exec {} --listen 127.0.0.1:$PORT", mock_binary());
    let body = json!({"source": dir.path(), "runtime": "process", "command": ["/bin/sh", "-c", script]});
    let (s, v) = t.post("/api/2.0/registered-models/team.models.echo/versions", body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, e) =
        t.post("/api/2.0/serving-endpoints", json!({"name": "hosted", "config": hosted("1", "Small", false)})).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(t.wait_settled("hosted").await["state"]["ready"], "READY");
    std::fs::remove_file(dir.path().join("ok")).unwrap();
    let pid = newest_pid(&logs(&t).await);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    eventually("not ready after failed restarts", async || {
        let (_, e) = t.get("/api/2.0/serving-endpoints/hosted").await;
        e["state"]["ready"] == "NOT_READY"
    })
    .await;
    let (_, e) = t.get("/api/2.0/serving-endpoints/hosted").await;
    let note = e["config"]["served_entities"][0]["state"]["deployment_state_message"].as_str().unwrap().to_string();
    assert!(note.starts_with("No replica is serving: the last one failed to start (it exited with status 1"), "{note}");
    let (s, a) = ask(&t, "anyone?").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{a}");
    assert!(a["message"].as_str().unwrap().contains("failed to start"), "{a}");
    // The file is back: the next restart serves again.
    std::fs::write(dir.path().join("ok"), "").unwrap();
    eventually("ready again", async || {
        let (_, e) = t.get("/api/2.0/serving-endpoints/hosted").await;
        e["state"]["ready"] == "READY" && ask(&t, "back").await.0 == StatusCode::OK
    })
    .await;
}

#[tokio::test]
async fn hosted_tokens_are_priced_as_provider_modelgate_from_the_price_table() {
    let prices = tempfile::tempdir().unwrap();
    let file = prices.path().join("prices.json");
    std::fs::write(
        &file,
        r#"{"version": "hosted-1", "prices": [{"provider": "modelgate", "model": "team.models.echo", "input": 2.0, "output": 4.0}]}"#,
    )
    .unwrap();
    let t = TestServer::start_with(|c| c.price_table = Some(file.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    t.post("/api/2.0/registered-models", json!({"name": "team.models.echo"})).await;
    let v1 = register(&t, dir.path(), &[]).await;
    let (s, _) =
        t.post("/api/2.0/serving-endpoints", json!({"name": "hosted", "config": hosted(&v1, "Small", false)})).await;
    assert_eq!(s, StatusCode::OK);
    t.wait_settled("hosted").await;
    let (s, a) = ask(&t, "price me").await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let (input, output) =
        (a["usage"]["prompt_tokens"].as_f64().unwrap(), a["usage"]["completion_tokens"].as_f64().unwrap());
    let (_, report) = t.get("/api/2.0/usage?group_by=provider,model").await;
    let row = &report["rows"][0];
    assert_eq!(
        (row["provider"].as_str(), row["model"].as_str()),
        (Some("modelgate"), Some("team.models.echo")),
        "{report}"
    );
    let expected = (input * 2.0 + output * 4.0) / 1e6;
    assert!((row["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-12, "{report} vs {expected}");
}

#[tokio::test]
async fn foundation_models_are_listed_and_served_once_installed() {
    let installed = tempfile::tempdir().unwrap();
    let dir = installed.path().to_path_buf();
    let t = TestServer::start_with(|c| c.hosting.foundation_models_dir = Some(dir.clone())).await;
    let (_, list) = t.get("/api/2.0/foundation-models").await;
    let minilm = &list["foundation_models"][0];
    assert_eq!(
        (minilm["name"].as_str(), minilm["available"].as_bool()),
        (Some("system.ai.all-minilm-l6-v2"), Some(false))
    );
    assert!(minilm["reason"].as_str().unwrap().contains("is not installed"), "{list}");
    assert_eq!(minilm["price_per_million_tokens"]["input"], 0.01, "priced from the built-in table: {list}");
    // Not installed: a config naming it is refused, naming the field and where the files go.
    let config = json!({"served_entities": [{"entity_name": "system.ai.all-minilm-l6-v2", "workload_size": "Small",
        "scale_to_zero_enabled": true}]});
    let (s, e) = t.post("/api/2.0/serving-endpoints", json!({"name": "embed", "config": config})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let message = e["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "config.served_entities[0].entity_name: foundation model system.ai.all-minilm-l6-v2 is not installed"
        ),
        "{e}"
    );
    assert!(message.contains(&dir.join("all-MiniLM-L6-v2").display().to_string()), "{e}");
    // Its files in place (here empty stand-ins: listing does not load them), it is available.
    let files = dir.join("all-MiniLM-L6-v2");
    std::fs::create_dir_all(&files).unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::write(files.join(f), "").unwrap();
    }
    let (_, list) = t.get("/api/2.0/foundation-models").await;
    assert_eq!(list["foundation_models"][0]["available"], true, "{list}");
}
