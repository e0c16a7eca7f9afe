//! Secrets, tokens, authentication and restarts over real HTTP.

use std::time::Duration;

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::{Method, StatusCode};
use serde_json::json;

const SECRETS: &str = "/api/2.0/secrets";

#[tokio::test]
async fn scopes_and_secrets() {
    let t = TestServer::start().await;
    assert_eq!(t.post(&format!("{SECRETS}/scopes/create"), json!({"scope": "team.a"})).await.0, StatusCode::OK);
    assert_error(
        &t.post(&format!("{SECRETS}/scopes/create"), json!({"scope": "team.a"})).await,
        StatusCode::CONFLICT,
        "RESOURCE_ALREADY_EXISTS",
        "team.a",
    );
    assert_error(
        &t.post(&format!("{SECRETS}/scopes/create"), json!({"scope": "bad/scope"})).await,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
        "invalid scope name",
    );
    assert_error(
        &t.post(&format!("{SECRETS}/scopes/create"), json!({"scope": "kv", "scope_backend_type": "AZURE_KEYVAULT"}))
            .await,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
        "not supported",
    );
    assert_eq!(
        t.get(&format!("{SECRETS}/scopes/list")).await.1,
        json!({"scopes": [{"name": "team.a", "backend_type": "DATABRICKS"}]})
    );

    let put = |body| t.post("/api/2.0/secrets/put", body);
    assert_eq!(put(json!({"scope": "team.a", "key": "k1", "string_value": "hello"})).await.0, StatusCode::OK);
    assert_eq!(
        put(json!({"scope": "team.a", "key": "k2", "bytes_value": B64.encode([0u8, 159, 146, 150])})).await.0,
        StatusCode::OK
    );
    assert_error(
        &put(json!({"scope": "team.a", "key": "k3"})).await,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
        "one of string_value or bytes_value",
    );
    assert_error(
        &put(json!({"scope": "team.a", "key": "k3", "string_value": "a", "bytes_value": "YQ=="})).await,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
        "exactly one",
    );
    assert_error(
        &put(json!({"scope": "team.a", "key": "k3", "bytes_value": "not base64!"})).await,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
        "base64",
    );
    assert_error(
        &put(json!({"scope": "team.a", "key": "k3", "string_value": "x".repeat(128 * 1024 + 1)})).await,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
        "the limit is 131072",
    );
    assert_error(
        &put(json!({"scope": "nope", "key": "k", "string_value": "x"})).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_DOES_NOT_EXIST",
        "Scope 'nope'",
    );

    let (_, got) = t.get(&format!("{SECRETS}/get?scope=team.a&key=k2")).await;
    assert_eq!(got, json!({"key": "k2", "value": B64.encode([0u8, 159, 146, 150])}));
    assert_eq!(t.get(&format!("{SECRETS}/get?scope=team.a&key=k1")).await.1["value"], B64.encode("hello"));
    assert_error(
        &t.get(&format!("{SECRETS}/get?scope=team.a")).await,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
        "'key' is required",
    );
    assert_error(
        &t.get(&format!("{SECRETS}/get?scope=team.a&key=zz")).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_DOES_NOT_EXIST",
        "zz",
    );

    let (_, list) = t.get(&format!("{SECRETS}/list?scope=team.a")).await;
    let keys: Vec<&str> = list["secrets"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap()).collect();
    assert_eq!(keys, vec!["k1", "k2"]);
    assert!(list["secrets"][0]["last_updated_timestamp"].as_i64().unwrap() > 1_600_000_000_000);
    assert!(!list.to_string().contains("hello"));

    assert_eq!(t.post(&format!("{SECRETS}/delete"), json!({"scope": "team.a", "key": "k1"})).await.0, StatusCode::OK);
    assert_error(
        &t.post(&format!("{SECRETS}/delete"), json!({"scope": "team.a", "key": "k1"})).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_DOES_NOT_EXIST",
        "k1",
    );
    assert_eq!(t.post(&format!("{SECRETS}/scopes/delete"), json!({"scope": "team.a"})).await.0, StatusCode::OK);
    assert_error(
        &t.get(&format!("{SECRETS}/list?scope=team.a")).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_DOES_NOT_EXIST",
        "team.a",
    );
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest() {
    let t = TestServer::start().await;
    let value = "sk-encrypted-at-rest-777";
    t.secret("s", "k", value).await;
    for entry in std::fs::read_dir(t.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
            "{} holds the value in clear",
            path.display()
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(t.data_dir().join("master.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "key file is owner-only");
    }
}

#[tokio::test]
async fn referenced_secrets_cannot_be_deleted() {
    let t = TestServer::start().await;
    t.secret("llm", "openai", "sk-1").await;
    t.post("/api/2.0/serving-endpoints", create_body("chat", vec![openai_entity("gpt-4o", "{{secrets/llm/openai}}")]))
        .await;
    t.wait_settled("chat").await;
    let got = t.post(&format!("{SECRETS}/delete"), json!({"scope": "llm", "key": "openai"})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_STATE", "in use by endpoint 'chat' (served entity 'gpt-4o'");
    assert_error(
        &t.post(&format!("{SECRETS}/scopes/delete"), json!({"scope": "llm"})).await,
        StatusCode::BAD_REQUEST,
        "INVALID_STATE",
        "endpoint 'chat'",
    );
    // Overwriting (rotation) is allowed.
    assert_eq!(
        t.post(&format!("{SECRETS}/put"), json!({"scope": "llm", "key": "openai", "string_value": "sk-2"})).await.0,
        StatusCode::OK
    );
    // Once the endpoint is gone, so is the reference.
    t.call(Method::DELETE, "/api/2.0/serving-endpoints/chat", None).await;
    assert_eq!(t.post(&format!("{SECRETS}/delete"), json!({"scope": "llm", "key": "openai"})).await.0, StatusCode::OK);
}

#[tokio::test]
async fn authentication() {
    let t = TestServer::start().await;
    for path in ["/api/2.0/serving-endpoints", "/serving-endpoints/x/invocations", "/anything"] {
        let got = t.call_as(None, Method::GET, path, None).await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "Authorization");
        let got = t.call_as(Some("mgt_wrong"), Method::GET, path, None).await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "Invalid access token");
    }
    for path in ["/healthz", "/readyz", "/.well-known/databricks-config"] {
        assert_eq!(t.call_as(None, Method::GET, path, None).await.0, StatusCode::OK, "{path}");
    }
    let (_, wk) = t.call_as(None, Method::GET, "/.well-known/databricks-config", None).await;
    assert_eq!(wk["oidc_endpoint"], "");
    assert!(wk["workspace_id"].as_str().unwrap().chars().all(|c| c.is_ascii_digit()));
    assert_error(
        &t.get("/api/2.0/nothing-here").await,
        StatusCode::NOT_FOUND,
        "ENDPOINT_NOT_FOUND",
        "No API found for 'GET /api/2.0/nothing-here'",
    );
}

#[tokio::test]
async fn tokens_create_list_revoke_and_expire() {
    let t = TestServer::start().await;
    let (s, created) = t.post("/api/2.0/token/create", json!({"comment": "ci"})).await;
    assert_eq!(s, StatusCode::OK);
    let value = created["token_value"].as_str().unwrap().to_string();
    let id = created["token_info"]["token_id"].as_str().unwrap().to_string();
    assert!(value.starts_with("mgt_"));
    assert_eq!(created["token_info"]["expiry_time"], -1);
    assert_eq!(t.call_as(Some(&value), Method::GET, "/api/2.0/serving-endpoints", None).await.0, StatusCode::OK);

    let (_, list) = t.get("/api/2.0/token/list").await;
    assert!(
        list["token_infos"].as_array().unwrap().iter().any(|i| i["token_id"] == id.as_str() && i["comment"] == "ci")
    );
    assert!(!list.to_string().contains(&value), "listing never shows token values");

    assert_eq!(t.post("/api/2.0/token/delete", json!({"token_id": id})).await.0, StatusCode::OK);
    assert_error(
        &t.call_as(Some(&value), Method::GET, "/api/2.0/serving-endpoints", None).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        "Invalid",
    );
    assert_error(
        &t.post("/api/2.0/token/delete", json!({"token_id": id})).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_DOES_NOT_EXIST",
        "does not exist",
    );

    let (_, short) = t.post("/api/2.0/token/create", json!({"lifetime_seconds": 1})).await;
    let short = short["token_value"].as_str().unwrap().to_string();
    assert_eq!(t.call_as(Some(&short), Method::GET, "/api/2.0/serving-endpoints", None).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_error(
        &t.call_as(Some(&short), Method::GET, "/api/2.0/serving-endpoints", None).await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        "expired",
    );
}

#[tokio::test]
async fn state_survives_restart_and_pending_deployments_resume() {
    let mut t = TestServer::start_with(|c| c.deploy_delay = Duration::from_secs(30)).await;
    t.secret("llm", "k", "sk-restart").await;
    let (s, _) = t
        .post("/api/2.0/serving-endpoints", create_body("chat", vec![openai_entity("gpt-4o", "{{secrets/llm/k}}")]))
        .await;
    assert_eq!(s, StatusCode::OK);
    // Shut down while the deployment is still held back; the next start must finish it.
    t.restart_with(|_| {}).await;
    let e = t.wait_settled("chat").await;
    assert_eq!(e["state"], json!({"ready": "READY", "config_update": "NOT_UPDATING"}));
    assert_eq!(t.get("/api/2.0/secrets/get?scope=llm&key=k").await.1["value"], B64.encode("sk-restart"));
}

#[tokio::test]
async fn a_wrong_master_key_refuses_to_start_and_changes_nothing() {
    let mut t = TestServer::start().await;
    t.secret("llm", "k", "v").await;
    if let Some(s) = t.server.take() {
        s.shutdown().await.unwrap();
    }
    let key_file = t.data_dir().join("master.key");
    let before = std::fs::read(&key_file).unwrap();
    let mut cfg = t.config();
    cfg.master_key = Some("ab".repeat(32));
    let err = modelgate_server::Server::start(cfg).await.err().expect("start must fail");
    let msg = err.to_string();
    assert!(msg.contains("does not decrypt the data"), "{msg}");
    assert_eq!(std::fs::read(&key_file).unwrap(), before, "key file untouched");

    // A missing key file with existing data is refused too, and no new key is generated.
    let moved = t.dir.path().join("moved.key");
    std::fs::rename(&key_file, &moved).unwrap();
    let err = modelgate_server::Server::start(t.config()).await.err().expect("start must fail");
    assert!(err.to_string().contains("no master key"), "{err}");
    assert!(!key_file.exists());
    std::fs::rename(&moved, &key_file).unwrap();

    t.restart_with(|_| {}).await;
    assert_eq!(
        t.get("/api/2.0/secrets/get?scope=llm&key=k").await.1["value"],
        B64.encode("v"),
        "right key still opens the data"
    );
}
