//! Control-plane handlers in process: the real router, store and middleware, driven with tower's
//! `oneshot` instead of a socket (the integration tests in `tests/it` cover what needs one).

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{Assembly, ServerConfig};

const ADMIN: &str = "mgt_in_process_admin_token_0123456789abcdef";

/// A router over a fresh data directory. The deployer does not run, so configs stay pending.
struct InProcess {
    router: Router,
    _dir: tempfile::TempDir,
}

impl InProcess {
    async fn new() -> InProcess {
        let dir = tempfile::tempdir().unwrap();
        let config = ServerConfig {
            data_dir: dir.path().join("data"),
            admin_token: Some(ADMIN.into()),
            master_key: Some("00".repeat(32)),
            ..ServerConfig::default()
        };
        let assembly = Assembly::new(&config).await.unwrap();
        let gate = crate::http::limits::Gate::new(config.limits, assembly.app.metrics.clone());
        InProcess { router: crate::routes::router(assembly.app, gate), _dir: dir }
    }

    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let resp = self.router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(method, path, Some(ADMIN), body).await
    }
}

#[tokio::test]
async fn requests_without_a_valid_token_are_refused_with_a_json_error() {
    let s = InProcess::new().await;
    for token in [None, Some("mgt_not_a_real_token_000000000000000000000")] {
        let (status, body) = s.call("GET", "/api/2.0/serving-endpoints", token, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body["error_code"].is_string() && body["message"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn unknown_routes_are_json_404s() {
    let s = InProcess::new().await;
    let (status, body) = s.admin("GET", "/api/2.0/no-such-thing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("/api/2.0/no-such-thing")), "{body}");
}

#[tokio::test]
async fn a_new_endpoint_reports_its_states_by_their_wire_names() {
    let s = InProcess::new().await;
    let entity = json!({"name": "e", "external_model": {"provider": "openai", "name": "gpt-4o", "task": "llm/v1/chat",
                        "openai_config": {"openai_api_key_plaintext": "sk-in-process-0123"}}});
    let (status, body) = s
        .admin(
            "POST",
            "/api/2.0/serving-endpoints",
            Some(json!({"name": "chat", "config": {"served_entities": [entity]}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], json!({"ready": "NOT_READY", "config_update": "IN_PROGRESS"}), "{body}");
    assert!(!body.to_string().contains("sk-in-process-0123"), "the key is never shown: {body}");
    let (_, got) = s.admin("GET", "/api/2.0/serving-endpoints/chat", None).await;
    assert_eq!(got["pending_config"]["served_entities"][0]["state"]["deployment"], "DEPLOYMENT_CREATING", "{got}");
}

#[tokio::test]
async fn bad_input_is_named_and_nothing_is_stored() {
    let s = InProcess::new().await;
    for (body, field) in [
        (
            json!({"name": "x", "config": {"served_entities": [{"external_model": {"provider": "palm-tree", "name": "m", "task": "llm/v1/chat"}}]}}),
            "provider",
        ),
        (json!({"name": "bad name!", "config": {}}), "name"),
    ] {
        let (status, got) = s.admin("POST", "/api/2.0/serving-endpoints", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{got}");
        assert!(got["message"].as_str().is_some_and(|m| m.contains(field)), "{field}: {got}");
    }
    let (_, list) = s.admin("GET", "/api/2.0/serving-endpoints", None).await;
    assert_eq!(list["endpoints"].as_array().map_or(0, Vec::len), 0, "{list}");

    let (status, got) = s.admin("POST", "/api/2.0/alert-rules", Some(json!({"name": "r", "kind": "vibes"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{got}");
    assert!(got["message"].as_str().is_some_and(|m| m.contains("kind") && m.contains("error_rate")), "{got}");
}
