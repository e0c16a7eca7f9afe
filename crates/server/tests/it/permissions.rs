//! Endpoint permissions: principal kind × permission level × route, inheritance through (nested)
//! groups, ownership of created endpoints, and the Permissions API shape.

use std::sync::Arc;

use crate::common::*;
use modelgate_mock_upstream::{Mock, Options};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SE: &str = "/api/2.0/serving-endpoints";

async fn call(t: &TestServer, token: &str, m: Method, path: String, body: Option<Value>) -> (StatusCode, Value) {
    t.call_as(Some(token), m, &path, body).await
}

struct Rig {
    t: TestServer,
    _mock: Arc<Mock>,
    endpoint_id: String,
    /// (label, token) of each principal under test.
    callers: Vec<(&'static str, String)>,
}

async fn rig() -> Rig {
    let mock = Mock::new(Options::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(modelgate_mock_upstream::serve(listener, mock.clone()));
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-perm").await;
    let entity = json!({"external_model": {"provider": "openai", "name": "gpt-4o", "task": "llm/v1/chat",
        "openai_config": {"openai_api_key": "{{secrets/llm/k}}", "openai_api_base": format!("{url}/v1")}}});
    let (_, e) = t.post(SE, json!({"name": "ep", "config": {"served_entities": [entity]}})).await;
    t.wait_settled("ep").await;

    create_principal(&t, "Users", json!({"userName": "direct@example.com"})).await;
    create_principal(&t, "ServicePrincipals", json!({"displayName": "app", "applicationId": "app-1"})).await;
    let g1 = create_principal(&t, "Groups", json!({"displayName": "readers"})).await;
    let g2 = create_principal(&t, "Groups", json!({"displayName": "sub-readers", "groups": [{"value": g1}]})).await;
    create_principal(&t, "Users", json!({"userName": "member@example.com", "groups": [{"value": g1}]})).await;
    create_principal(&t, "Users", json!({"userName": "nested@example.com", "groups": [{"value": g2}]})).await;
    let callers = vec![
        ("user", token_for(&t, json!({"user_name": "direct@example.com"})).await),
        ("service principal", token_for(&t, json!({"application_id": "app-1"})).await),
        ("group member", token_for(&t, json!({"user_name": "member@example.com"})).await),
        ("nested group member", token_for(&t, json!({"user_name": "nested@example.com"})).await),
    ];
    Rig { t, _mock: mock, endpoint_id: e["id"].as_str().unwrap().to_string(), callers }
}

#[tokio::test]
async fn principal_kind_by_level_by_route() {
    let r = rig().await;
    let perms = format!("/api/2.0/permissions/serving-endpoints/{}", r.endpoint_id);
    for level in [None, Some("CAN_VIEW"), Some("CAN_QUERY"), Some("CAN_MANAGE")] {
        let acl: Vec<Value> = match level {
            None => vec![],
            Some(l) => vec![
                json!({"user_name": "direct@example.com", "permission_level": l}),
                json!({"service_principal_name": "app-1", "permission_level": l}),
                json!({"group_name": "readers", "permission_level": l}),
            ],
        };
        let (s, b) = r.t.put(&perms, json!({"access_control_list": acl})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let rank = match level {
            None => 0,
            Some("CAN_VIEW") => 1,
            Some("CAN_QUERY") => 2,
            _ => 3,
        };
        for (who, token) in &r.callers {
            let ctx = format!("{who} with {level:?}");

            let (_, list) = call(&r.t, token, Method::GET, SE.to_string(), None).await;
            let listed = list["endpoints"].as_array().unwrap().iter().any(|e| e["name"] == "ep");
            assert_eq!(listed, rank >= 1, "{ctx}: list");

            let get = call(&r.t, token, Method::GET, format!("{SE}/ep"), None).await;
            let openapi = call(&r.t, token, Method::GET, format!("{SE}/ep/openapi"), None).await;
            let query = call(
                &r.t,
                token,
                Method::POST,
                "/serving-endpoints/ep/invocations".into(),
                Some(json!({"messages": [{"role": "user", "content": "x"}]})),
            )
            .await;
            let tags = call(
                &r.t,
                token,
                Method::PATCH,
                format!("{SE}/ep/tags"),
                Some(json!({"add_tags": [{"key": "k", "value": "v"}]})),
            )
            .await;
            let acl_get = call(&r.t, token, Method::GET, perms.clone(), None).await;
            if rank == 0 {
                for got in [&get, &openapi, &query, &tags, &acl_get] {
                    assert_error(got, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", "does not exist");
                }
                continue;
            }
            assert_eq!(get.0, StatusCode::OK, "{ctx}: get");
            assert_eq!(get.1["permission_level"], level.unwrap(), "{ctx}: the caller's level is shown");
            assert_eq!(openapi.0, StatusCode::OK, "{ctx}: openapi");
            assert_eq!(acl_get.0, StatusCode::OK, "{ctx}: permissions get");
            if rank >= 2 {
                assert_eq!(query.0, StatusCode::OK, "{ctx}: query {}", query.1);
            } else {
                assert_error(
                    &query,
                    StatusCode::FORBIDDEN,
                    "PERMISSION_DENIED",
                    "CAN_QUERY on endpoint 'ep' is required",
                );
            }
            if rank >= 3 {
                assert_eq!(tags.0, StatusCode::OK, "{ctx}: tags");
            } else {
                assert_error(
                    &tags,
                    StatusCode::FORBIDDEN,
                    "PERMISSION_DENIED",
                    "CAN_MANAGE on endpoint 'ep' is required",
                );
                let put = call(&r.t, token, Method::PUT, perms.clone(), Some(json!({"access_control_list": []}))).await;
                assert_eq!(put.0, StatusCode::FORBIDDEN, "{ctx}: only managers set permissions");
            }
        }
    }
}

#[tokio::test]
async fn creators_own_their_endpoints_and_the_acl_reads_like_databricks() {
    let r = rig().await;
    let (who, token) = &r.callers[0];
    assert_eq!(*who, "user");
    let entity = json!({"external_model": {"provider": "openai", "name": "o3", "task": "llm/v1/chat",
        "openai_config": {"openai_api_key": "{{secrets/llm/k}}"}}});
    let (s, created) = r
        .t
        .call_as(Some(token), Method::POST, SE, Some(json!({"name": "mine", "config": {"served_entities": [entity]}})))
        .await;
    assert_eq!(s, StatusCode::OK, "{created}");
    assert_eq!(created["creator"], "direct@example.com");
    let (_, acl) =
        r.t.get(&format!("/api/2.0/permissions/serving-endpoints/{}", created["id"].as_str().unwrap())).await;
    assert_eq!(acl["object_id"], format!("/serving-endpoints/{}", created["id"].as_str().unwrap()));
    assert_eq!(acl["object_type"], "serving-endpoint");
    let entries = acl["access_control_list"].as_array().unwrap();
    let owner = entries.iter().find(|e| e["user_name"] == "direct@example.com").unwrap();
    assert_eq!(owner["all_permissions"][0], json!({"permission_level": "CAN_MANAGE", "inherited": false}));
    let admins = entries.iter().find(|e| e["group_name"] == "admins").unwrap();
    assert_eq!(admins["all_permissions"][0]["inherited"], true);

    // Others cannot see it; the owner can hand out CAN_QUERY by name or id.
    let other = &r.callers[2].1;
    assert_eq!(r.t.call_as(Some(other), Method::GET, &format!("{SE}/mine"), None).await.0, StatusCode::NOT_FOUND);
    let grant = json!({"access_control_list": [{"group_name": "readers", "permission_level": "CAN_QUERY"}]});
    let (s, _) =
        r.t.call_as(Some(token), Method::PATCH, "/api/2.0/permissions/serving-endpoints/mine", Some(grant)).await;
    assert_eq!(s, StatusCode::OK);
    let (_, got) = r.t.call_as(Some(other), Method::GET, &format!("{SE}/mine"), None).await;
    assert_eq!(got["permission_level"], "CAN_QUERY");

    let (_, levels) = r.t.get("/api/2.0/permissions/serving-endpoints/mine/permissionLevels").await;
    let names: Vec<&str> = levels["permission_levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["permission_level"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["CAN_VIEW", "CAN_QUERY", "CAN_MANAGE"]);

    let bad =
        r.t.put(
            "/api/2.0/permissions/serving-endpoints/mine",
            json!({"access_control_list": [{"user_name": "ghost@example.com", "permission_level": "CAN_VIEW"}]}),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "no user named 'ghost@example.com'");
    let bad =
        r.t.put(
            "/api/2.0/permissions/serving-endpoints/mine",
            json!({"access_control_list": [{"group_name": "readers", "permission_level": "CAN_RUN"}]}),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "'CAN_RUN' is not one of");
    let (_, still) = r.t.call_as(Some(other), Method::GET, &format!("{SE}/mine"), None).await;
    assert_eq!(still["permission_level"], "CAN_QUERY", "a refused change keeps the old grants");
}
