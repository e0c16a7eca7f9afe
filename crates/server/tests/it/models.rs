//! The model registry: registered models, versions with their content hash, who may register a
//! version that runs a program, visibility and grants, and version numbers that are never reused.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// A model directory with a file in it.
fn source(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(d.path().join(name), text).unwrap();
    }
    d
}

#[tokio::test]
async fn register_models_and_versions_with_their_hash() {
    let t = TestServer::start().await;
    let (s, m) = t.post("/api/2.0/registered-models", json!({"name": "team.models.echo", "description": "d"})).await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!((m["creator"].as_str(), m["permission_level"].as_str()), (Some("admin"), Some("CAN_MANAGE")));
    let (s, e) = t.post("/api/2.0/registered-models", json!({"name": "team.models.echo"})).await;
    assert_eq!((s, e["error_code"].as_str()), (StatusCode::CONFLICT, Some("RESOURCE_ALREADY_EXISTS")), "{e}");
    let (s, e) = t.post("/api/2.0/registered-models", json!({"name": "a.b.c.d"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e["message"].as_str().unwrap().starts_with("name: "), "{e}");

    let dir = source(&[("serve.py", "print('hi')")]);
    let body = json!({"source": dir.path(), "runtime": "process", "command": ["python3", "serve.py", "--port", "$PORT"],
        "env": {"API_KEY": "{{secrets/llm/k}}", "MODE": "fast"}});
    let (s, v) = t.post("/api/2.0/registered-models/team.models.echo/versions", body.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!((v["version"].as_str(), v["runtime"].as_str()), (Some("1"), Some("process")));
    assert_eq!(v["command"], json!(["python3", "serve.py", "--port", "$PORT"]));
    assert_eq!(v["env"]["API_KEY"], "{{secrets/llm/k}}");
    let hash = v["content_hash"].as_str().unwrap().to_string();
    assert!(hash.starts_with("sha256:") && hash.len() == 71, "{hash}");
    // The same files hash the same; changed files do not.
    let (_, v2) = t.post("/api/2.0/registered-models/team.models.echo/versions", body.clone()).await;
    assert_eq!((v2["version"].as_str(), v2["content_hash"].as_str()), (Some("2"), Some(hash.as_str())));
    std::fs::write(dir.path().join("serve.py"), "print('changed')").unwrap();
    let (_, v3) = t.post("/api/2.0/registered-models/team.models.echo/versions", body).await;
    assert_ne!(v3["content_hash"].as_str(), Some(hash.as_str()));

    // Bad versions are refused naming the field, and take no number.
    let bad = [
        (json!({"source": dir.path(), "runtime": "docker"}), "runtime"),
        (json!({"source": dir.path(), "runtime": "process"}), "command"),
        (json!({"source": "s3://bucket/model", "runtime": "process", "command": ["x"]}), "source"),
        (json!({"source": dir.path(), "runtime": "embedded"}), "source"),
        (json!({"source": dir.path(), "runtime": "process", "command": ["x"], "env": {"A-B": "1"}}), "env.A-B"),
    ];
    for (body, field) in bad {
        let (s, e) = t.post("/api/2.0/registered-models/team.models.echo/versions", body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
        assert!(e["message"].as_str().unwrap().starts_with(&format!("{field}: ")), "{field}: {e}");
    }
    let (_, e) = t
        .post(
            "/api/2.0/registered-models/team.models.echo/versions",
            json!({"source": dir.path(), "runtime": "embedded"}),
        )
        .await;
    assert!(e["message"].as_str().unwrap().contains("missing: config.json, tokenizer.json, model.safetensors"), "{e}");

    // Versions are listed newest first; a deleted number is not given again.
    let (s, _) = t.call(Method::DELETE, "/api/2.0/registered-models/team.models.echo/versions/3", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v4) = t
        .post(
            "/api/2.0/registered-models/team.models.echo/versions",
            json!({"source": dir.path(), "runtime": "process", "command": ["python3"]}),
        )
        .await;
    assert_eq!(v4["version"], "4");
    let (_, list) = t.get("/api/2.0/registered-models/team.models.echo/versions").await;
    let numbers: Vec<&str> =
        list["model_versions"].as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap()).collect();
    assert_eq!(numbers, ["4", "2", "1"]);
    let (s, _) = t.get("/api/2.0/registered-models/team.models.echo/versions/3").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, m) = t.get("/api/2.0/registered-models/team.models.echo").await;
    assert_eq!(m["latest_version"], "4");
    let (s, _) = t.call(Method::DELETE, "/api/2.0/registered-models/team.models.echo", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(t.get("/api/2.0/registered-models/team.models.echo").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn who_may_see_register_and_run_a_model() {
    let t = TestServer::start().await;
    create_principal(&t, "Users", json!({"userName": "dev@example.com"})).await;
    create_principal(&t, "Users", json!({"userName": "other@example.com"})).await;
    let dev = token_for(&t, json!({"user_name": "dev@example.com"})).await;
    let other = token_for(&t, json!({"user_name": "other@example.com"})).await;
    let as_ = |token: &str, method: Method, path: &str, body: Option<serde_json::Value>| {
        let token = token.to_string();
        let path = path.to_string();
        let t = &t;
        async move { t.call_as(Some(&token), method, &path, body).await }
    };

    // Anyone registers a model and manages it; nobody else sees it.
    let (s, m) = as_(&dev, Method::POST, "/api/2.0/registered-models", Some(json!({"name": "churn"}))).await;
    assert_eq!((s, m["permission_level"].as_str()), (StatusCode::OK, Some("CAN_MANAGE")), "{m}");
    let (_, list) = as_(&other, Method::GET, "/api/2.0/registered-models", None).await;
    assert_eq!(list["registered_models"], json!([]));
    assert_eq!(as_(&other, Method::GET, "/api/2.0/registered-models/churn", None).await.0, StatusCode::NOT_FOUND);

    // A version that runs a program takes an admin or a model runner, even for the model's manager.
    let dir = source(&[("serve.py", "")]);
    let process = json!({"source": dir.path(), "runtime": "process", "command": ["python3", "serve.py"]});
    let (s, e) = as_(&dev, Method::POST, "/api/2.0/registered-models/churn/versions", Some(process.clone())).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(e["message"].as_str().unwrap().contains("model-runners"), "{e}");
    let (_, groups) = t.get("/api/2.0/preview/scim/v2/Groups?filter=displayName%20eq%20%22model-runners%22").await;
    let group_id = groups["Resources"][0]["id"].as_str().unwrap().to_string();
    let (_, users) = t.get("/api/2.0/preview/scim/v2/Users?filter=userName%20eq%20%22dev@example.com%22").await;
    let dev_id = users["Resources"][0]["id"].as_str().unwrap().to_string();
    let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": dev_id}]}]});
    let (s, _) = t.call(Method::PATCH, &format!("/api/2.0/preview/scim/v2/Groups/{group_id}"), Some(add)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = as_(&dev, Method::POST, "/api/2.0/registered-models/churn/versions", Some(process.clone())).await;
    assert_eq!((s, v["version"].as_str()), (StatusCode::OK, Some("1")), "{v}");

    // Grants: CAN_VIEW sees the model and its versions but registers nothing.
    let grant = json!({"access_control_list": [{"user_name": "other@example.com", "permission_level": "CAN_VIEW"}]});
    let (s, acl) = as_(&dev, Method::PATCH, "/api/2.0/permissions/registered-models/churn", Some(grant)).await;
    assert_eq!(s, StatusCode::OK, "{acl}");
    assert!(acl.to_string().contains("other@example.com") && acl.to_string().contains("admins"), "{acl}");
    let (_, list) = as_(&other, Method::GET, "/api/2.0/registered-models", None).await;
    assert_eq!(list["registered_models"][0]["permission_level"], "CAN_VIEW");
    let (s, _) = as_(&other, Method::GET, "/api/2.0/registered-models/churn/versions/1", None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, e) = as_(&other, Method::POST, "/api/2.0/registered-models/churn/versions", Some(process)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(e["message"].as_str().unwrap().contains("CAN_MANAGE on registered model 'churn' is required"), "{e}");
    let (s, _) = as_(&other, Method::DELETE, "/api/2.0/registered-models/churn", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A grant to nobody changes nothing.
    let ghost = json!({"access_control_list": [{"user_name": "ghost@example.com", "permission_level": "CAN_VIEW"}]});
    let (s, _) = as_(&dev, Method::PUT, "/api/2.0/permissions/registered-models/churn", Some(ghost)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, acl) = as_(&dev, Method::GET, "/api/2.0/permissions/registered-models/churn", None).await;
    assert!(acl.to_string().contains("other@example.com"), "{acl}");
    // The registration is audited.
    let (_, audit) = t.get("/api/2.0/audit-log?action=POST").await;
    assert!(audit.to_string().contains("/api/2.0/registered-models/churn/versions"), "{audit}");
}
