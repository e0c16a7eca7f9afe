//! Users, groups, service principals (SCIM), token management and the interim write rule.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SCIM: &str = "/api/2.0/preview/scim/v2";

async fn create(t: &TestServer, kind: &str, body: Value) -> Value {
    let (s, b) = t.post(&format!("{SCIM}/{kind}"), body).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b
}

async fn obo_token(t: &TestServer, body: Value) -> String {
    let (s, b) = t.post("/api/2.0/token-management/on-behalf-of/tokens", body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["token_value"].as_str().unwrap().to_string()
}

fn add_member(id: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
           "Operations": [{"op": "add", "path": "members", "value": [{"value": id}]}]})
}

#[tokio::test]
async fn scim_resources_filters_and_pages() {
    let t = TestServer::start().await;
    let alice = create(&t, "Users", json!({"userName": "alice@example.com", "displayName": "Alice"})).await;
    let alice_id = alice["id"].as_str().unwrap().to_string();
    assert_eq!(alice["emails"][0]["value"], "alice@example.com");
    assert_eq!(alice_id.len(), 16);
    for u in ["bob@example.com", "carol@example.com"] {
        create(&t, "Users", json!({"userName": u})).await;
    }
    let dup = t.post(&format!("{SCIM}/Users"), json!({"userName": "alice@example.com"})).await;
    assert_error(&dup, StatusCode::CONFLICT, "RESOURCE_ALREADY_EXISTS", "alice@example.com");

    let (_, found) = t.get(&format!("{SCIM}/Users?filter=userName%20eq%20%22ALICE@example.com%22")).await;
    assert_eq!(found["totalResults"], 1);
    assert_eq!(found["Resources"][0]["id"], alice_id.as_str());
    let (_, p1) = t.get(&format!("{SCIM}/Users?startIndex=1&count=2")).await;
    assert_eq!((p1["totalResults"].as_u64(), p1["Resources"].as_array().unwrap().len()), (Some(4), 2), "admin + 3");
    let (_, end) = t.get(&format!("{SCIM}/Users?startIndex=5&count=2")).await;
    assert_eq!(end["Resources"], json!([]), "past the end is an empty page (the SDK stops on it)");
    let bad = t.get(&format!("{SCIM}/Users?filter=userName%20gt%20%22a%22")).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "operator 'gt'");

    let ml = create(&t, "Groups", json!({"displayName": "ml", "members": [{"value": alice_id}]})).await;
    let ml_id = ml["id"].as_str().unwrap().to_string();
    assert_eq!(ml["members"][0]["value"], alice_id.as_str());
    let staff = create(&t, "Groups", json!({"displayName": "staff", "members": [{"value": ml_id}]})).await;
    let sp = create(&t, "ServicePrincipals", json!({"displayName": "batch job"})).await;
    assert_eq!(sp["applicationId"].as_str().unwrap().len(), 36, "a UUID is assigned");
    let (s, patched) =
        t.call(Method::PATCH, &format!("{SCIM}/Groups/{ml_id}"), Some(add_member(sp["id"].as_str().unwrap()))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(patched["members"].as_array().unwrap().len(), 2);
    let (_, user) = t.get(&format!("{SCIM}/Users/{alice_id}")).await;
    assert_eq!(user["groups"][0]["display"], "ml");

    // A group cannot end up containing itself.
    let cycle =
        t.call(Method::PATCH, &format!("{SCIM}/Groups/{ml_id}"), Some(add_member(staff["id"].as_str().unwrap()))).await;
    assert_error(&cycle, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "contain itself");

    let (_, me) = t.get(&format!("{SCIM}/Me")).await;
    assert_eq!(me["userName"], "admin");
    assert_eq!(me["groups"][0]["display"], "admins");

    let (s, _) = t.call(Method::DELETE, &format!("{SCIM}/Groups/{ml_id}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_error(
        &t.get(&format!("{SCIM}/Groups/{ml_id}")).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_DOES_NOT_EXIST",
        "Group",
    );
    let (_, user) = t.get(&format!("{SCIM}/Users/{alice_id}")).await;
    let groups: Vec<&str> = user["groups"].as_array().unwrap().iter().map(|g| g["display"].as_str().unwrap()).collect();
    assert_eq!(groups, vec!["users"], "memberships go with the group; everyone stays in the built-in users group");
}

#[tokio::test]
async fn admin_through_nested_groups_and_immediate_revocation() {
    let t = TestServer::start().await;
    let (_, admins) = t.get(&format!("{SCIM}/Groups?filter=displayName%20eq%20%22admins%22")).await;
    let admins_id = admins["Resources"][0]["id"].as_str().unwrap().to_string();
    let ops = create(&t, "Groups", json!({"displayName": "ops"})).await;
    let ops_id = ops["id"].as_str().unwrap().to_string();
    let bob = create(&t, "Users", json!({"userName": "bob@example.com", "groups": [{"value": ops_id}]})).await;
    let bob_id = bob["id"].as_str().unwrap().to_string();
    let bob_token = obo_token(&t, json!({"user_name": "bob@example.com", "comment": "bob"})).await;

    let users = format!("{SCIM}/Users");
    let got = t.call_as(Some(&bob_token), Method::POST, &users, Some(json!({"userName": "new@example.com"}))).await;
    assert_error(&got, StatusCode::FORBIDDEN, "PERMISSION_DENIED", "Only admins may create users");
    assert_eq!(
        t.call_as(Some(&bob_token), Method::GET, "/api/2.0/serving-endpoints", None).await.0,
        StatusCode::OK,
        "reads are allowed"
    );

    // ops joins admins: bob is an admin through nested membership, on the very next request.
    t.call(Method::PATCH, &format!("{SCIM}/Groups/{admins_id}"), Some(add_member(&ops_id))).await;
    let got = t.call_as(Some(&bob_token), Method::POST, &users, Some(json!({"userName": "new@example.com"}))).await;
    assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
    let remove = json!({"Operations": [{"op": "remove", "path": format!("members[value eq \"{ops_id}\"]")}]});
    t.call(Method::PATCH, &format!("{SCIM}/Groups/{admins_id}"), Some(remove)).await;
    let got = t.call_as(Some(&bob_token), Method::POST, &users, Some(json!({"userName": "again@example.com"}))).await;
    assert_eq!(got.0, StatusCode::FORBIDDEN);

    // Deactivating or deleting a user, or deleting the token, cuts access at once.
    let deactivate = json!({"Operations": [{"op": "replace", "path": "active", "value": false}]});
    t.call(Method::PATCH, &format!("{SCIM}/Users/{bob_id}"), Some(deactivate)).await;
    assert_eq!(
        t.call_as(Some(&bob_token), Method::GET, "/api/2.0/serving-endpoints", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let activate = json!({"Operations": [{"op": "replace", "path": "active", "value": true}]});
    t.call(Method::PATCH, &format!("{SCIM}/Users/{bob_id}"), Some(activate)).await;
    assert_eq!(t.call_as(Some(&bob_token), Method::GET, "/api/2.0/serving-endpoints", None).await.0, StatusCode::OK);
    t.call(Method::DELETE, &format!("{SCIM}/Users/{bob_id}"), None).await;
    assert_eq!(
        t.call_as(Some(&bob_token), Method::GET, "/api/2.0/serving-endpoints", None).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Guards.
    let got = t.call(Method::DELETE, &format!("{SCIM}/Groups/{admins_id}"), None).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_STATE", "admins group cannot be deleted");
    let (_, me) = t.get(&format!("{SCIM}/Me")).await;
    let got = t.call(Method::DELETE, &format!("{SCIM}/Users/{}", me["id"].as_str().unwrap()), None).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_STATE", "cannot delete yourself");
}

#[tokio::test]
async fn service_principal_tokens_and_token_management() {
    let t = TestServer::start().await;
    let sp = create(&t, "ServicePrincipals", json!({"displayName": "chat app", "applicationId": "app-123"})).await;
    let token = obo_token(&t, json!({"application_id": "app-123", "lifetime_seconds": 3600, "comment": "ci"})).await;
    let (s, me) = t.call_as(Some(&token), Method::GET, &format!("{SCIM}/Me"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["id"], sp["id"]);
    // A service principal may query the data plane (the endpoint is unknown, so 404, not 403).
    let got = t
        .call_as(Some(&token), Method::POST, "/serving-endpoints/none/invocations", Some(json!({"messages": []})))
        .await;
    assert_eq!(got.0, StatusCode::NOT_FOUND, "{}", got.1);
    let got = t.call_as(Some(&token), Method::GET, "/api/2.0/token-management/tokens", None).await;
    assert_error(&got, StatusCode::FORBIDDEN, "PERMISSION_DENIED", "Only admins");

    let (_, all) = t.get("/api/2.0/token-management/tokens").await;
    let info = all["token_infos"].as_array().unwrap().iter().find(|i| i["owner"] == "app-123").unwrap().clone();
    assert_eq!(info["created_by_username"], "admin");
    assert_eq!(info["owner_id"].as_i64().unwrap().to_string(), sp["id"].as_str().unwrap());
    assert!(info["expiry_time"].as_i64().unwrap() > info["creation_time"].as_i64().unwrap());
    let id = info["token_id"].as_str().unwrap();
    let (_, one) = t.get(&format!("/api/2.0/token-management/tokens/{id}")).await;
    assert_eq!(one["token_info"]["comment"], "ci");
    assert!(!all.to_string().contains(&token), "token values are never listed");
    let (s, _) = t.call(Method::DELETE, &format!("/api/2.0/token-management/tokens/{id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(t.call_as(Some(&token), Method::GET, &format!("{SCIM}/Me"), None).await.0, StatusCode::UNAUTHORIZED);
    let got = t.post("/api/2.0/token-management/on-behalf-of/tokens", json!({"application_id": "nope"})).await;
    assert_error(&got, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", "application_id 'nope'");
}
