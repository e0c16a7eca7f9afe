//! Rate limits shared by replicas through a real Redis (127.0.0.1:6379): two servers on copies of
//! one data directory (the same endpoint ids, as replicas on one database have) hold a limit
//! together; with Redis unreachable (a loopback proxy cut off) a replica keeps serving with its
//! own counters, says so in `/readyz` and `/metrics`, and shares again once Redis is back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use crate::hosting::eventually;
use modelgate_mock_upstream::CutProxy;
use reqwest::StatusCode;
use serde_json::{Value, json};

const REDIS: &str = "127.0.0.1:6379";

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

pub(crate) async fn start_at(
    dir: PathBuf,
    redis: &str,
    database_url: Option<String>,
) -> (modelgate_server::Server, String) {
    let mut cfg = config(dir);
    cfg.database_url = database_url;
    cfg.redis_url = Some(format!("redis://{redis}/0"));
    let server = modelgate_server::Server::start(cfg).await.expect("server starts");
    let base = format!("http://{}", server.addr);
    (server, base)
}

async fn ask(http: &reqwest::Client, base: &str) -> StatusCode {
    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    let r = http.post(format!("{base}/serving-endpoints/limited/invocations")).bearer_auth(ADMIN_TOKEN).json(&body);
    r.send().await.unwrap().status()
}

async fn get(http: &reqwest::Client, url: String) -> Value {
    let r = http.get(url).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null)
}

/// Waits until at least `secs` seconds are left in the current minute (limits count per minute).
async fn room_in_the_minute(secs: u64) {
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    while 60 - now() % 60 < secs {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn limited(url: &str, calls: u64) -> Value {
    let mut body = create_body("limited", vec![mock_entity("m", url, json!({}))]);
    body["ai_gateway"] = json!({"rate_limits": [{"key": "endpoint", "calls": calls, "renewal_period": "minute"}]});
    body
}

#[tokio::test]
async fn two_replicas_hold_one_limit_together() {
    let (_mock, url) = mock().await;
    let mut t = TestServer::start_with(|c| c.redis_url = Some(format!("redis://{REDIS}/0"))).await;
    t.secret("llm", "k", "sk-shared").await;
    create_ready(&t, limited(&url, 6)).await;
    // A second replica: the same database content (here a copy of the stopped first one's).
    t.server.take().unwrap().shutdown().await.unwrap();
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&t.data_dir(), &copy.path().join("data"));
    // On PostgreSQL both share the database anyway.
    let url = t.config().database_url;
    let (a, base_a) = start_at(t.data_dir(), REDIS, url.clone()).await;
    let (b, base_b) = start_at(copy.path().join("data"), REDIS, url).await;
    let http = reqwest::Client::new();
    room_in_the_minute(20).await;
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(ask(&http, &base_a).await);
        codes.push(ask(&http, &base_b).await);
    }
    let ok = codes.iter().filter(|c| **c == StatusCode::OK).count();
    assert_eq!(ok, 6, "six calls a minute across both replicas: {codes:?}");
    assert!(codes.iter().skip(6).all(|c| *c == StatusCode::TOO_MANY_REQUESTS), "{codes:?}");
    let ready = get(&http, format!("{base_b}/readyz")).await;
    assert_eq!(ready["redis"], "up", "{ready}");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_redis_a_replica_counts_alone_and_shares_again_when_it_returns() {
    let (_mock, url) = mock().await;
    let proxy = CutProxy::start(REDIS.parse().unwrap()).await;
    let redis = proxy.addr.to_string();
    let t = TestServer::start_with(|c| c.redis_url = Some(format!("redis://{redis}/0"))).await;
    t.secret("llm", "k", "sk-shared").await;
    create_ready(&t, limited(&url, 3)).await;
    let http = reqwest::Client::new();
    room_in_the_minute(30).await;
    assert_eq!(ask(&http, &t.base).await, StatusCode::OK, "counted in Redis");

    proxy.set_open(false);
    // Redis does not answer: the replica serves on its own counters, whose minute starts afresh.
    let codes: Vec<StatusCode> = {
        let mut c = Vec::new();
        for _ in 0..4 {
            c.push(ask(&http, &t.base).await);
        }
        c
    };
    assert_eq!(codes[..3], [StatusCode::OK; 3], "{codes:?}");
    assert_eq!(codes[3], StatusCode::TOO_MANY_REQUESTS, "the limit still holds per replica: {codes:?}");
    let ready = get(&http, format!("{}/readyz", t.base)).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["redis"], "down: rate limits count per replica", "{ready}");
    let metrics = http.get(format!("{}/metrics", t.base)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "redis_up 0"), "{metrics}");

    proxy.set_open(true);
    eventually("Redis is used again", async || get(&http, format!("{}/readyz", t.base)).await["redis"] == "up").await;
    // Shared again: Redis holds the one call made before the outage, so two more fit.
    let codes = [ask(&http, &t.base).await, ask(&http, &t.base).await, ask(&http, &t.base).await];
    assert_eq!(codes, [StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS], "{codes:?}");
}

#[tokio::test]
async fn a_redis_url_that_cannot_be_used_stops_the_server() {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(data.path().join("data"));
    cfg.redis_url = Some("http://127.0.0.1:6379".into());
    let err = modelgate_server::Server::start(cfg).await.err().expect("refused").to_string();
    assert!(err.contains("--redis-url"), "{err}");
}
