//! Secret scope ACLs: READ < WRITE < MANAGE, inherited through groups, enforced on every secrets
//! route and when a config that references a scope deploys.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SCIM: &str = "/api/2.0/preview/scim/v2";
const S: &str = "/api/2.0/secrets";

async fn user_token(t: &TestServer, name: &str, groups: Vec<&str>) -> String {
    let refs: Vec<Value> = groups.iter().map(|g| json!({"value": g})).collect();
    let (s, b) = t.post(&format!("{SCIM}/Users"), json!({"userName": name, "groups": refs})).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (_, tok) = t.post("/api/2.0/token-management/on-behalf-of/tokens", json!({"user_name": name})).await;
    tok["token_value"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn each_permission_level_on_each_route() {
    let t = TestServer::start().await;
    t.secret("team", "k", "sk-team").await;
    let (s, g) = t.post(&format!("{SCIM}/Groups"), json!({"displayName": "team-members"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let gid = g["id"].as_str().unwrap().to_string();
    let u = user_token(&t, "u@example.com", vec![&gid]).await;
    let as_u = |m: Method, p: String, b: Option<Value>| {
        let t = &t;
        let u = u.clone();
        async move { t.call_as(Some(&u), m, &p, b).await }
    };

    let list = || as_u(Method::GET, format!("{S}/list?scope=team"), None);
    let get = || as_u(Method::GET, format!("{S}/get?scope=team&key=k"), None);
    let put =
        || as_u(Method::POST, format!("{S}/put"), Some(json!({"scope": "team", "key": "k2", "string_value": "v"})));
    let acls = || as_u(Method::GET, format!("{S}/acls/list?scope=team"), None);

    assert_error(
        &list().await,
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
        "READ permission on secret scope 'team' is required",
    );
    assert_error(&get().await, StatusCode::FORBIDDEN, "PERMISSION_DENIED", "READ");
    assert_error(&put().await, StatusCode::FORBIDDEN, "PERMISSION_DENIED", "WRITE permission");
    assert_error(
        &as_u(Method::GET, format!("{S}/list?scope=ghost"), None).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_DOES_NOT_EXIST",
        "ghost",
    );

    let grant = |perm: &str| {
        t.post("/api/2.0/secrets/acls/put", json!({"scope": "team", "principal": "team-members", "permission": perm}))
    };
    assert_eq!(grant("READ").await.0, StatusCode::OK);
    assert_eq!(list().await.0, StatusCode::OK);
    assert_eq!(get().await.1["key"], "k", "READ through the group reads values");
    assert_error(&put().await, StatusCode::FORBIDDEN, "PERMISSION_DENIED", "WRITE permission");

    assert_eq!(grant("WRITE").await.0, StatusCode::OK);
    assert_eq!(put().await.0, StatusCode::OK);
    assert_error(&acls().await, StatusCode::FORBIDDEN, "PERMISSION_DENIED", "MANAGE permission");

    assert_eq!(grant("MANAGE").await.0, StatusCode::OK);
    let (s, listed) = acls().await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        listed["items"].as_array().unwrap().contains(&json!({"principal": "team-members", "permission": "MANAGE"})),
        "{listed}"
    );
    assert_eq!(listed["items"], listed["acls"]);
    let (_, one) = as_u(Method::GET, format!("{S}/acls/get?scope=team&principal=team-members"), None).await;
    assert_eq!(one, json!({"principal": "team-members", "permission": "MANAGE"}));

    let bad = t
        .post(&format!("{S}/acls/put"), json!({"scope": "team", "principal": "team-members", "permission": "OWN"}))
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "'OWN' is not one of READ, WRITE, MANAGE");
    let bad =
        t.post(&format!("{S}/acls/put"), json!({"scope": "team", "principal": "nobody", "permission": "READ"})).await;
    assert_error(
        &bad,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
        "no user, group or service principal named 'nobody'",
    );

    assert_eq!(
        t.post(&format!("{S}/acls/delete"), json!({"scope": "team", "principal": "team-members"})).await.0,
        StatusCode::OK
    );
    assert_error(&list().await, StatusCode::FORBIDDEN, "PERMISSION_DENIED", "READ");
}

#[tokio::test]
async fn creators_manage_their_scopes_and_users_can_be_given_manage() {
    let t = TestServer::start().await;
    let a = user_token(&t, "a@example.com", vec![]).await;
    let b = user_token(&t, "b@example.com", vec![]).await;
    assert_eq!(
        t.call_as(Some(&a), Method::POST, &format!("{S}/scopes/create"), Some(json!({"scope": "a-scope"}))).await.0,
        StatusCode::OK
    );
    let (_, acl) = t.call_as(Some(&a), Method::GET, &format!("{S}/acls/list?scope=a-scope"), None).await;
    assert_eq!(acl["items"], json!([{"principal": "a@example.com", "permission": "MANAGE"}]));
    let got = t.call_as(Some(&b), Method::POST, &format!("{S}/scopes/delete"), Some(json!({"scope": "a-scope"}))).await;
    assert_error(&got, StatusCode::FORBIDDEN, "PERMISSION_DENIED", "MANAGE permission");

    let body = json!({"scope": "shared", "initial_manage_principal": "users"});
    assert_eq!(t.call_as(Some(&a), Method::POST, &format!("{S}/scopes/create"), Some(body)).await.0, StatusCode::OK);
    let put = json!({"scope": "shared", "key": "x", "string_value": "y"});
    assert_eq!(
        t.call_as(Some(&b), Method::POST, &format!("{S}/put"), Some(put)).await.0,
        StatusCode::OK,
        "every user manages it"
    );
}

#[tokio::test]
async fn deploying_needs_read_on_every_referenced_scope() {
    let t = TestServer::start().await;
    t.secret("locked", "k", "sk-locked").await;
    let u = user_token(&t, "dev@example.com", vec![]).await;
    let body = create_body("dev-chat", vec![openai_entity("gpt-4o", "{{secrets/locked/k}}")]);
    let (s, _) = t.call_as(Some(&u), Method::POST, "/api/2.0/serving-endpoints", Some(body)).await;
    assert_eq!(s, StatusCode::OK);
    let e = t.wait_settled("dev-chat").await;
    assert_eq!(e["state"]["config_update"], "UPDATE_FAILED");
    let (_, logs) = t.get("/api/2.0/serving-endpoints/dev-chat/served-models/gpt-4o/build-logs").await;
    let logs = logs["logs"].as_str().unwrap();
    assert!(
        logs.contains("dev@example.com may not READ secret scope 'locked', needed for {{secrets/locked/k}}"),
        "{logs}"
    );
    assert!(!logs.contains("sk-locked"));

    t.post(&format!("{S}/acls/put"), json!({"scope": "locked", "principal": "dev@example.com", "permission": "READ"}))
        .await;
    let config = json!({"served_entities": [openai_entity("gpt-4o", "{{secrets/locked/k}}")]});
    let (s, _) = t.call_as(Some(&u), Method::PUT, "/api/2.0/serving-endpoints/dev-chat/config", Some(config)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(t.wait_settled("dev-chat").await["state"], json!({"ready": "READY", "config_update": "NOT_UPDATING"}));
}
