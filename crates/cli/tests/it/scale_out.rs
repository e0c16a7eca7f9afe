//! Three `modelgate serve` processes on loopback sharing the real PostgreSQL (a fresh database)
//! and Redis: configuration made on one serves on the others within a second, one limit holds
//! across them, a replica killed with SIGKILL loses no acknowledged write and hands its jobs on,
//! and the data plane outlives PostgreSQL, with the usage records of the outage written after it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use modelgate_mock_upstream::CutProxy;
use modelgate_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

/// Every replica of an install shares its master key.
const MASTER_KEY: &str = "4d4f44454c474154452d7363616c652d6f75742d746573742d6b65792d303031";
const REDIS: &str = "redis://127.0.0.1:6379/0";

/// `n` replicas on `database` (and Redis), each with a data directory of its own.
async fn replicas(n: usize, database: &str, env: &Env) -> Vec<Serve> {
    replicas_with(n, database, env, &[]).await
}

/// `n` replicas, with more environment.
async fn replicas_with(n: usize, database: &str, env: &Env, more: &[(&'static str, &'static str)]) -> Vec<Serve> {
    let mut started = Vec::new();
    for i in 0..n {
        let data = env.dir.path().join(format!("replica-{i}"));
        let database = database.to_string();
        let more = more.to_vec();
        started.push(tokio::task::spawn_blocking(move || {
            let mut envs = vec![
                ("MODELGATE_DATABASE_URL", database.as_str()),
                ("MODELGATE_REDIS_URL", REDIS),
                ("MODELGATE_MASTER_KEY", MASTER_KEY),
                ("MODELGATE_ADMIN_TOKEN", ADMIN),
            ];
            envs.extend(more);
            spawn_server(&data, &envs)
        }));
    }
    let mut out = Vec::new();
    for s in started {
        out.push(s.await.unwrap());
    }
    out
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut r = http.request(method, url).bearer_auth(ADMIN);
    if let Some(b) = body {
        r = r.json(&b);
    }
    match r.send().await {
        Ok(resp) => {
            let status = resp.status();
            (status, serde_json::from_str(&resp.text().await.unwrap_or_default()).unwrap_or(Value::Null))
        }
        Err(e) => (StatusCode::BAD_GATEWAY, json!({"transport": e.to_string()})),
    }
}

async fn post(http: &reqwest::Client, host: &str, path: &str, body: Value) -> (StatusCode, Value) {
    call(http, reqwest::Method::POST, format!("{host}{path}"), Some(body)).await
}

async fn get(http: &reqwest::Client, host: &str, path: &str) -> (StatusCode, Value) {
    call(http, reqwest::Method::GET, format!("{host}{path}"), None).await
}

async fn ask(http: &reqwest::Client, host: &str, endpoint: &str) -> StatusCode {
    let body = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5});
    post(http, host, &format!("/serving-endpoints/{endpoint}/invocations"), body).await.0
}

fn endpoint(name: &str, mock: &str, limits: Value) -> Value {
    json!({
        "name": name,
        "config": {"served_entities": [{"name": "m", "external_model": {
            "provider": "openai", "name": "gpt-4o-mini", "task": "llm/v1/chat",
            "openai_config": {"openai_api_key": "{{secrets/llm/k}}", "openai_api_base": format!("{mock}/v1")}}}]},
        "ai_gateway": {"rate_limits": limits},
    })
}

/// Creates `body` through `host` and waits until that replica says it is ready.
async fn create_ready(http: &reqwest::Client, host: &str, body: Value) {
    let (s, b) = post(http, host, "/api/2.0/serving-endpoints", body.clone()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let name = body["name"].as_str().unwrap();
    let path = format!("/api/2.0/serving-endpoints/{name}");
    let ready = eventually(Duration::from_secs(30), || async {
        let (_, b) = get(http, host, &path).await;
        b["state"]["ready"] == "READY"
    })
    .await;
    assert!(ready, "{name} never became ready");
}

async fn eventually<F: std::future::Future<Output = bool>>(limit: Duration, mut check: impl FnMut() -> F) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn secret(http: &reqwest::Client, host: &str) {
    let (s, b) = post(http, host, "/api/2.0/secrets/scopes/create", json!({"scope": "llm"})).await;
    assert!(s == StatusCode::OK || b["error_code"] == "RESOURCE_ALREADY_EXISTS", "{b}");
    let (s, b) =
        post(http, host, "/api/2.0/secrets/put", json!({"scope": "llm", "key": "k", "string_value": "sk-x"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

async fn roles(http: &reqwest::Client, servers: &[&Serve]) -> Vec<String> {
    let mut out = Vec::new();
    for s in servers {
        let (_, b) = get(http, &s.host, "/readyz").await;
        out.push(b["replica"]["role"].as_str().unwrap_or("unreachable").to_string());
    }
    out
}

/// `n` queries of `endpoint` at once, taken in turn by `hosts`; their statuses.
async fn spread(http: &reqwest::Client, hosts: &[String], endpoint: &str, n: usize) -> Vec<StatusCode> {
    let asks: Vec<_> = (0..n)
        .map(|i| {
            let (http, host, endpoint) = (http.clone(), hosts[i % hosts.len()].clone(), endpoint.to_string());
            tokio::spawn(async move { ask(&http, &host, &endpoint).await })
        })
        .collect();
    let mut codes = Vec::new();
    for t in asks {
        codes.push(t.await.unwrap());
    }
    codes
}

/// Waits until at least `secs` seconds are left in the current minute (limits count per minute).
async fn room_in_the_minute(secs: u64) {
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    while 60 - now() % 60 < secs {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The mock provider, for as long as the test's runtime runs.
async fn mock() -> String {
    let m = modelgate_mock_upstream::Mock::new(Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(modelgate_mock_upstream::serve(listener, m));
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_made_on_one_replica_serves_on_the_others_within_a_second_and_one_limit_holds() {
    let mock = mock().await;
    let pg = TestDatabase::create().await;
    let env = Env::new();
    let servers = replicas(3, &pg.url, &env).await;
    let [a, b, c] = [&servers[0], &servers[1], &servers[2]];
    let http = http();
    let started = Instant::now();
    let mut roles_now = roles(&http, &[a, b, c]).await;
    while roles_now.iter().filter(|r| *r == "leader").count() != 1 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        roles_now = roles(&http, &[a, b, c]).await;
    }
    let count = |role: &str| roles_now.iter().filter(|r| *r == role).count();
    assert_eq!((count("leader"), count("follower")), (1, 2), "exactly one leader: {roles_now:?}");
    let mut leaders = 0;
    for s in [a, b, c] {
        let metrics = http.get(format!("{}/metrics", s.host)).bearer_auth(ADMIN).send().await.unwrap();
        let text = metrics.text().await.unwrap();
        leaders += text.lines().filter(|l| *l == "replica_leader 1").count();
    }
    assert_eq!(leaders, 1, "replica_leader in /metrics");

    secret(&http, &a.host).await;
    create_ready(&http, &a.host, endpoint("chat", &mock, json!([]))).await;
    let made = Instant::now();
    for other in [b, c] {
        let host = other.host.clone();
        let served =
            eventually(Duration::from_secs(1), || async { ask(&http, &host, "chat").await == StatusCode::OK }).await;
        assert!(served, "{host} did not serve within a second of the change on {}", a.host);
    }
    assert!(made.elapsed() < Duration::from_secs(2), "{:?}", made.elapsed());

    // A change of settings made on B reaches C's data plane just as fast.
    let (s, body) = call(
        &http,
        reqwest::Method::PUT,
        format!("{}/api/2.0/serving-endpoints/chat/ai-gateway", b.host),
        Some(json!({"rate_limits": [{"key": "endpoint", "calls": 10, "renewal_period": "minute"}]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // Within a second every replica counts the new limit.
    tokio::time::sleep(Duration::from_secs(1)).await;
    room_in_the_minute(20).await;
    // Ten calls a minute for the three together, under concurrent load spread over all three.
    let hosts = [a.host.clone(), b.host.clone(), c.host.clone()];
    let codes = spread(&http, &hosts, "chat", 45).await;
    let ok = codes.iter().filter(|s| **s == StatusCode::OK).count();
    let limited = codes.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((ok, limited), (10, 35), "{codes:?}");

    // A token limit likewise: every query reserves at least its max_tokens (5), so 60 tokens a
    // minute admit at most 12 queries whichever replica takes them (each alone would admit 12).
    let tokens = json!([{"key": "endpoint", "tokens": 60, "renewal_period": "minute"}]);
    create_ready(&http, &c.host, endpoint("metered", &mock, tokens)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    room_in_the_minute(20).await;
    let codes = spread(&http, &hosts, "metered", 45).await;
    let ok = codes.iter().filter(|s| **s == StatusCode::OK).count();
    assert!((1..=12).contains(&ok), "{ok} admitted: {codes:?}");
    assert_eq!(codes.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count(), 45 - ok, "{codes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_loses_no_acknowledged_write_and_its_jobs_move() {
    let mock = mock().await;
    let pg = TestDatabase::create().await;
    let env = Env::new();
    let mut servers = replicas(3, &pg.url, &env).await;
    let http = http();
    let refs: Vec<&Serve> = servers.iter().collect();
    assert!(
        eventually(Duration::from_secs(10), || async {
            roles(&http, &refs).await.iter().filter(|r| *r == "leader").count() == 1
        })
        .await
    );
    let leader = roles(&http, &refs).await.iter().position(|r| r == "leader").unwrap();
    secret(&http, &servers[0].host).await;

    // Writes through every replica while the leader is killed midway.
    let hosts: Vec<String> = servers.iter().map(|s| s.host.clone()).collect();
    let acks: Vec<Arc<Mutex<Vec<String>>>> = hosts.iter().map(|_| Arc::default()).collect();
    let writers: Vec<_> = hosts
        .iter()
        .zip(&acks)
        .enumerate()
        .map(|(i, (host, acked))| {
            let (http, host, acked) = (http.clone(), host.clone(), acked.clone());
            tokio::spawn(async move {
                for n in 0..40 {
                    let key = format!("r{i}-{n}");
                    let body = json!({"scope": "llm", "key": key, "string_value": "v"});
                    if post(&http, &host, "/api/2.0/secrets/put", body).await.0 == StatusCode::OK {
                        acked.lock().unwrap().push(key);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect();
    assert!(
        eventually(Duration::from_secs(20), || async { acks[leader].lock().unwrap().len() >= 5 }).await,
        "the leader acknowledged writes"
    );
    servers[leader].child.kill().unwrap();
    let killed_at = Instant::now();
    for w in writers {
        w.await.unwrap();
    }
    let acknowledged: BTreeSet<String> = acks.iter().flat_map(|a| a.lock().unwrap().clone()).collect();
    let killed = servers.remove(leader);
    let survivors: Vec<&Serve> = servers.iter().collect();
    let (s, listed) = get(&http, &survivors[0].host, "/api/2.0/secrets/list?scope=llm").await;
    assert_eq!(s, StatusCode::OK, "{listed}");
    let stored: BTreeSet<String> =
        listed["secrets"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap().to_string()).collect();
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    drop(killed);

    // Its jobs move: another replica leads within seconds and deploys what is created now.
    assert!(
        eventually(Duration::from_secs(10), || async {
            roles(&http, &survivors).await.iter().filter(|r| *r == "leader").count() == 1
        })
        .await,
        "no new leader"
    );
    assert!(killed_at.elapsed() < Duration::from_secs(12), "{:?}", killed_at.elapsed());
    let follower = roles(&http, &survivors).await.iter().position(|r| r == "follower").unwrap();
    create_ready(&http, &survivors[follower].host, endpoint("after", &mock, json!([]))).await;
    let other = survivors[1 - follower].host.clone();
    assert!(eventually(Duration::from_secs(1), || async { ask(&http, &other, "after").await == StatusCode::OK }).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_postgres_replicas_serve_refuse_changes_and_write_usage_when_it_returns() {
    let mock = mock().await;
    let pg = TestDatabase::create().await;
    let proxy = CutProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let through_proxy = pg.url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    assert_ne!(through_proxy, pg.url, "the test server's URL names 127.0.0.1:5432");
    let env = Env::new();
    let servers = replicas(2, &through_proxy, &env).await;
    let (a, b) = (&servers[0], &servers[1]);
    let http = http();
    secret(&http, &a.host).await;
    create_ready(&http, &a.host, endpoint("chat", &mock, json!([]))).await;
    // Both serve it before the database goes away (a change still on its way to a replica when
    // it does would reach that replica only once the database is back).
    for host in [&a.host, &b.host] {
        assert!(
            eventually(Duration::from_secs(2), || async { ask(&http, host, "chat").await == StatusCode::OK }).await
        );
    }

    proxy.set_open(false);
    for host in [&a.host, &b.host] {
        for _ in 0..5 {
            let body = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5});
            let (s, b) = post(&http, host, "/serving-endpoints/chat/invocations", body).await;
            assert_eq!(s, StatusCode::OK, "served from the snapshot: {b}");
        }
    }
    let (s, body) = post(&http, &a.host, "/api/2.0/secrets/scopes/create", json!({"scope": "other"})).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body} {}", a.output.lock().unwrap());
    assert_eq!(body["error_code"], "TEMPORARILY_UNAVAILABLE");
    assert!(body["message"].as_str().unwrap().contains("database is not reachable"), "{body}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (s, ready) = get(&http, &b.host, "/readyz").await;
    assert_eq!(s, StatusCode::OK, "{ready}");
    assert!(ready["database"].as_str().unwrap().starts_with("down"), "{ready}");
    assert!(ready["snapshot_age_seconds"].as_f64().unwrap() >= 1.0, "the snapshot ages: {ready}");

    proxy.set_open(true);
    // The ten queries of the outage (and the ones before) reach the request log.
    let logged = eventually(Duration::from_secs(20), || async {
        let (s, b) = get(&http, &a.host, "/api/2.0/requests?endpoint=chat&limit=100").await;
        s == StatusCode::OK && b["requests"].as_array().map_or(0, Vec::len) >= 11
    })
    .await;
    assert!(logged, "{:?}", get(&http, &a.host, "/api/2.0/requests?endpoint=chat&limit=100").await);
    let (_, ready) = get(&http, &b.host, "/readyz").await;
    assert_eq!(ready["database"], "up", "{ready}");
    let (s, body) = post(&http, &a.host, "/api/2.0/secrets/scopes/create", json!({"scope": "other"})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_store_moves_a_single_node_install_to_postgres_without_losing_anything() {
    let mock = mock().await;
    let pg = TestDatabase::create().await;
    let env = Env::new();
    let data = env.data();
    let http = http();
    let first = {
        let data = data.clone();
        tokio::task::spawn_blocking(move || spawn_server(&data, &[("MODELGATE_ADMIN_TOKEN", ADMIN)])).await.unwrap()
    };
    secret(&http, &first.host).await;
    create_ready(&http, &first.host, endpoint("chat", &mock, json!([]))).await;
    for _ in 0..3 {
        assert_eq!(ask(&http, &first.host, "chat").await, StatusCode::OK);
    }
    let (_, before) = get(&http, &first.host, "/api/2.0/serving-endpoints/chat").await;

    // While the server runs, its data directory is taken.
    let migrate = |to: &str| {
        let from = format!("sqlite:{}", data.display());
        std::process::Command::new(BIN).args(["migrate-store", "--from", &from, "--to", to]).output().unwrap()
    };
    let not_sqlite = std::process::Command::new(BIN)
        .args(["migrate-store", "--from", &data.display().to_string(), "--to", &pg.url])
        .output()
        .unwrap();
    assert!(!not_sqlite.status.success() && text(&not_sqlite).1.contains("--from must be sqlite:DATA_DIR"));
    let busy = migrate(&pg.url);
    assert!(!busy.status.success() && text(&busy).1.contains("in use by another modelgate server"), "{busy:?}");

    sigterm(&first.child);
    let mut first = first;
    assert!(wait_timeout(&mut first.child, Duration::from_secs(30)).is_some_and(|s| s.success()));
    let moved = migrate(&pg.url);
    let (out, err) = text(&moved);
    assert!(moved.status.success(), "{out}{err}");
    assert!(out.contains("usage") && out.contains("Moved"), "{out}");
    let again = migrate(&pg.url);
    assert!(!again.status.success() && text(&again).1.contains("migrate into an empty database"), "{again:?}");

    // A replica on PostgreSQL, with the install's key and a data directory of its own.
    let key = std::fs::read_to_string(data.join("master.key")).unwrap();
    let replica = {
        let (dir, url) = (env.dir.path().join("replica"), pg.url.clone());
        tokio::task::spawn_blocking(move || {
            spawn_server(
                &dir,
                &[
                    ("MODELGATE_ADMIN_TOKEN", ADMIN),
                    ("MODELGATE_DATABASE_URL", &url),
                    ("MODELGATE_MASTER_KEY", key.trim()),
                ],
            )
        })
        .await
        .unwrap()
    };
    let (_, after) = get(&http, &replica.host, "/api/2.0/serving-endpoints/chat").await;
    assert_eq!((&after["id"], &after["state"]), (&before["id"], &before["state"]));
    assert_eq!(ask(&http, &replica.host, "chat").await, StatusCode::OK, "the secret still decrypts");
    let (s, log) = get(&http, &replica.host, "/api/2.0/requests?endpoint=chat").await;
    assert_eq!(s, StatusCode::OK, "{log}");
    assert_eq!(log["requests"].as_array().unwrap().len(), 4, "three queries before, one after: {log}");
    let (_, audit) = get(&http, &replica.host, "/api/2.0/audit-log").await;
    assert!(audit.to_string().contains("serving-endpoint:chat"), "{audit}");
    // New audit records continue the old numbering.
    let (s, _) = post(&http, &replica.host, "/api/2.0/secrets/scopes/create", json!({"scope": "after"})).await;
    assert_eq!(s, StatusCode::OK);
}

/// How often replicas share budget spend (docs/budgets.md).
fn budgets_sync() -> Duration {
    Duration::from_secs(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_budget_spent_through_one_replica_stops_every_replica() {
    let mock = mock().await;
    let pg = TestDatabase::create().await;
    let env = Env::new();
    let servers = replicas(3, &pg.url, &env).await;
    let (a, others) = (&servers[0], [&servers[1], &servers[2]]);
    let http = http();
    secret(&http, &a.host).await;
    create_ready(&http, &a.host, endpoint("chat", &mock, json!([]))).await;
    // One query through each replica: what a query costs, and all three serve.
    for s in &servers {
        let host = s.host.clone();
        assert!(
            eventually(Duration::from_secs(2), || async { ask(&http, &host, "chat").await == StatusCode::OK }).await
        );
    }
    // The other replicas' records reach the shared database within their writers' linger.
    let served = "/api/2.0/requests?endpoint=chat&status=200";
    assert!(
        eventually(Duration::from_secs(5), || async {
            get(&http, &a.host, served).await.1["requests"].as_array().map_or(0, Vec::len) == 3
        })
        .await
    );
    let (_, log) = get(&http, &a.host, served).await;
    let costs: Vec<f64> = log["requests"].as_array().unwrap().iter().map(|r| r["cost_usd"].as_f64().unwrap()).collect();
    let (spent, each) = (costs.iter().sum::<f64>(), costs[0]);
    assert!(each > 0.0, "{log}");
    // Room for two more queries in the whole install (the name is unique to this run: budget
    // totals live in the shared Redis).
    let policy = json!({"name": format!("two-more-{}", std::process::id()), "period": "day",
                        "amount_usd": spent + 1.5 * each, "action": "BLOCK", "scope": {"endpoint": "chat"}});
    let (s, b) = post(&http, &a.host, "/api/2.0/budget-policies", policy).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let mut through_a = Vec::new();
    for _ in 0..3 {
        through_a.push(ask(&http, &a.host, "chat").await);
    }
    assert_eq!(through_a, [StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS]);
    // Each of the others alone would still see room for two; a sync interval (a second) later
    // they know what A spent and refuse their first query.
    tokio::time::sleep(budgets_sync() + Duration::from_millis(500)).await;
    for other in others {
        assert_eq!(ask(&http, &other.host, "chat").await, StatusCode::TOO_MANY_REQUESTS, "{}", other.host);
    }
    let (_, log) = get(&http, &a.host, served).await;
    let served = log["requests"].as_array().unwrap().len();
    assert_eq!(served, 5, "{log}");
}

/// A webhook receiver on loopback: every JSON body POSTed is kept.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let inbox: Arc<Mutex<Vec<Value>>> = Arc::default();
    let kept = inbox.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(v);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, inbox)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_alerts_once_on_what_every_replica_served() {
    let mock = mock().await;
    let (hook, inbox) = receiver().await;
    let pg = TestDatabase::create().await;
    let env = Env::new();
    let servers = replicas_with(3, &pg.url, &env, &[("MODELGATE_ALERT_INTERVAL", "1s")]).await;
    let http = http();
    let refs: Vec<&Serve> = servers.iter().collect();
    assert!(
        eventually(Duration::from_secs(10), || async {
            roles(&http, &refs).await.iter().filter(|r| *r == "leader").count() == 1
        })
        .await
    );
    let roles_now = roles(&http, &refs).await;
    let followers: Vec<&Serve> =
        servers.iter().zip(&roles_now).filter(|(_, r)| *r == "follower").map(|(s, _)| s).collect();
    let host = &servers[0].host;
    secret(&http, host).await;
    create_ready(&http, host, endpoint("flaky", &mock, json!([]))).await;
    let (s, b) =
        post(&http, host, "/api/2.0/alert-destinations", json!({"name": "hook", "url": hook, "format": "json"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, rules) = get(&http, host, "/api/2.0/alert-rules").await;
    let mut rule = rules["rules"].as_array().unwrap().iter().find(|r| r["name"] == "error-rate").unwrap().clone();
    let id = rule["rule_id"].as_str().unwrap().to_string();
    let o = rule.as_object_mut().unwrap();
    o.remove("rule_id");
    o.extend(json!({"window": "30s", "min_requests": 4}).as_object().unwrap().clone());
    let (s, b) = call(&http, reqwest::Method::PUT, format!("{host}/api/2.0/alert-rules/{id}"), Some(rule)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for f in &followers {
        let other = f.host.clone();
        assert!(
            eventually(Duration::from_secs(2), || async { ask(&http, &other, "flaky").await == StatusCode::OK }).await
        );
    }

    // Failures only through the followers: three each, fewer than the rule's minimum (four) on
    // any one replica, and none through the leader, which evaluates.
    let failing = json!({"messages": [{"role": "user", "content": "__status_401__"}], "max_tokens": 5});
    for f in &followers {
        for _ in 0..3 {
            let (s, b) = post(&http, &f.host, "/serving-endpoints/flaky/invocations", failing.clone()).await;
            assert!(s.is_client_error() || s.is_server_error(), "{s} {b}");
        }
    }
    let fired = eventually(Duration::from_secs(15), || async {
        inbox.lock().unwrap().iter().any(|m| m["alert"]["kind"] == "error_rate")
    })
    .await;
    assert!(fired, "no error-rate alert: {:?}", inbox.lock().unwrap());
    // Three more evaluation rounds: still one message, from one replica.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let messages: Vec<Value> = inbox.lock().unwrap().clone();
    let error_rate: Vec<&Value> =
        messages.iter().filter(|m| m["alert"]["endpoint"] == "flaky" && m["alert"]["kind"] == "error_rate").collect();
    assert_eq!(error_rate.len(), 1, "{messages:?}");
}
