//! Test harness: a real server on an ephemeral port over a temporary data directory, with its
//! databases there (SQLite) or, with `MODELGATE_TEST_STORE=postgres`, in a fresh database on the
//! real PostgreSQL server.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use modelgate_server::{Server, ServerConfig};
use modelgate_store::Location;
use modelgate_store::testing::{TestDatabase, postgres_requested};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const ADMIN_TOKEN: &str = "mgt_test_admin_token_0123456789abcdef";

pub struct TestServer {
    pub server: Option<Server>,
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database, when the suite runs on PostgreSQL (dropped after the server).
    pub pg: Option<TestDatabase>,
}

pub fn config(dir: PathBuf) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir,
        master_key: None,
        admin_token: Some(ADMIN_TOKEN.into()),
        deploy_delay: Duration::ZERO,
        // The server runs on the test's own runtime, so its queue delay would measure the test's
        // work too; the tests that are about it turn it on.
        limits: modelgate_server::Limits { max_queue_delay: Duration::ZERO, ..Default::default() },
        ..Default::default()
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let pg = if postgres_requested() { Some(TestDatabase::create().await) } else { None };
        let mut cfg = config(dir.path().join("data"));
        cfg.database_url = pg.as_ref().map(|d| d.url.clone());
        tweak(&mut cfg);
        let server = Server::start(cfg).await.expect("server starts");
        Self {
            base: format!("http://{}", server.addr),
            server: Some(server),
            token: ADMIN_TOKEN.into(),
            http: reqwest::Client::new(),
            dir,
            pg,
        }
    }

    /// The configuration this server starts with, before a test's tweaks.
    pub fn config(&self) -> ServerConfig {
        let mut cfg = config(self.data_dir());
        cfg.database_url = self.pg.as_ref().map(|d| d.url.clone());
        cfg
    }

    /// Where the usage and inference tables are.
    pub fn logs(&self, sqlite_file: &str) -> Location {
        match &self.pg {
            Some(pg) => Location::Postgres(pg.url.clone()),
            None => Location::Sqlite(self.data_dir().join(sqlite_file)),
        }
    }

    /// Stops and starts the server again on the same data directory.
    pub async fn restart_with(&mut self, tweak: impl FnOnce(&mut ServerConfig)) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.unwrap();
        }
        let mut cfg = self.config();
        tweak(&mut cfg);
        let server = Server::start(cfg).await.expect("server restarts");
        self.base = format!("http://{}", server.addr);
        self.server = Some(server);
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub async fn call_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request reaches the server");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, value)
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as(Some(&self.token), method, path, body).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// Polls until the endpoint is no longer updating and returns it.
    pub async fn wait_settled(&self, name: &str) -> Value {
        for _ in 0..200 {
            let (status, e) = self.get(&format!("/api/2.0/serving-endpoints/{name}")).await;
            assert_eq!(status, StatusCode::OK, "{e}");
            if e["state"]["config_update"] != "IN_PROGRESS" {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("endpoint {name} never settled");
    }

    pub async fn secret(&self, scope: &str, key: &str, value: &str) {
        let (s, b) = self.post("/api/2.0/secrets/scopes/create", json!({"scope": scope})).await;
        assert!(s == StatusCode::OK || b["error_code"] == "RESOURCE_ALREADY_EXISTS", "{b}");
        let (s, b) =
            self.post("/api/2.0/secrets/put", json!({"scope": scope, "key": key, "string_value": value})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
}

/// An external-model served entity using OpenAI with a secret reference.
pub fn openai_entity(model: &str, secret: &str) -> Value {
    json!({"external_model": {"provider": "openai", "name": model, "task": "llm/v1/chat",
           "openai_config": {"openai_api_key": secret}}})
}

pub fn create_body(name: &str, entities: Vec<Value>) -> Value {
    json!({"name": name, "config": {"served_entities": entities}})
}

/// Asserts an error status, code and message fragment.
pub fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str, fragment: &str) {
    assert_eq!(got.0, status, "body: {}", got.1);
    assert_eq!(got.1["error_code"], code, "body: {}", got.1);
    let msg = got.1["message"].as_str().unwrap_or_default();
    assert!(msg.contains(fragment), "message {msg:?} should contain {fragment:?}");
}

/// A fake provider on an ephemeral loopback port, and its base URL.
pub async fn mock() -> (std::sync::Arc<modelgate_mock_upstream::Mock>, String) {
    mock_with(modelgate_mock_upstream::Options::default()).await
}

/// [`mock`] with options (delays, chunk pacing).
pub async fn mock_with(
    options: modelgate_mock_upstream::Options,
) -> (std::sync::Arc<modelgate_mock_upstream::Mock>, String) {
    let m = modelgate_mock_upstream::Mock::new(options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(modelgate_mock_upstream::serve(listener, m.clone()));
    (m, url)
}

/// An OpenAI chat entity named `name` pointing at a mock, keyed by `{{secrets/llm/k}}`; `extra`
/// fields are merged in.
pub fn mock_entity(name: &str, url: &str, extra: Value) -> Value {
    let mut e = json!({"name": name, "external_model": {"provider": "openai", "name": "gpt-4o", "task": "llm/v1/chat",
        "openai_config": {"openai_api_key": "{{secrets/llm/k}}", "openai_api_base": format!("{url}/v1")}}});
    e.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    e
}

/// Creates an endpoint and waits until it is READY.
pub async fn create_ready(t: &TestServer, body: Value) {
    let (s, b) = t.post("/api/2.0/serving-endpoints", body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let name = b["name"].as_str().unwrap().to_string();
    assert_eq!(t.wait_settled(&name).await["state"]["ready"], "READY");
}

/// The `data:` payloads of an SSE body.
pub fn sse_payloads(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.split('\n').filter(|l| !l.is_empty()) {
        let payload = line.strip_prefix("data: ").unwrap_or_else(|| panic!("non-data line {line:?} in {text:?}"));
        out.push(payload.to_string());
    }
    out
}

/// Creates a SCIM principal (`Users`, `Groups` or `ServicePrincipals`) and returns its id.
pub async fn create_principal(t: &TestServer, kind: &str, body: Value) -> String {
    let (s, b) = t.post(&format!("/api/2.0/preview/scim/v2/{kind}"), body).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["id"].as_str().unwrap().to_string()
}

/// An on-behalf-of token for `{"user_name": ...}` or `{"application_id": ...}`.
pub async fn token_for(t: &TestServer, body: Value) -> String {
    let (s, b) = t.post("/api/2.0/token-management/on-behalf-of/tokens", body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["token_value"].as_str().unwrap().to_string()
}

/// Runs `sql` on the control-plane database while the server is stopped, then starts it again
/// with `tweak`.
pub async fn tamper(t: &mut TestServer, sql: &str, tweak: impl FnOnce(&mut ServerConfig)) {
    t.server.take().unwrap().shutdown().await.unwrap();
    let changed = match &t.pg {
        Some(pg) => {
            let pool = sqlx::PgPool::connect(&pg.url).await.unwrap();
            let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(&pool).await.unwrap();
            pool.close().await;
            done.rows_affected()
        }
        None => {
            let url = format!("sqlite://{}", t.data_dir().join("modelgate.db").display());
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(&pool).await.unwrap();
            pool.close().await;
            done.rows_affected()
        }
    };
    assert!(changed > 0, "{sql} changed nothing");
    t.restart_with(tweak).await;
}
