//! A few thousand generated bad requests against every route that reads a body, query or path:
//! never a 5xx, always a JSON error, and nothing stored changes.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Routes that read a JSON body: method, path (placeholders in braces), a well-formed body.
fn body_routes() -> Vec<(Method, &'static str, Value)> {
    let entity = json!({"served_entities": [{"name": "a", "external_model": {"provider": "openai", "name": "gpt-4o",
        "task": "llm/v1/chat", "openai_config": {"openai_api_key": "{{secrets/llm/k}}"}}}]});
    let chat = json!({"model": "fz", "messages": [{"role": "user", "content": "hi"}]});
    vec![
        (Method::POST, "/api/2.0/serving-endpoints", json!({"name": "new", "config": entity})),
        (Method::PUT, "/api/2.0/serving-endpoints/fz/config", entity),
        (Method::POST, "/api/2.0/serving-endpoints/fz/config:rollback", json!({"config_version": 1})),
        (
            Method::PUT,
            "/api/2.0/serving-endpoints/fz/ai-gateway",
            json!({"guardrails": {"input": {"pii": {"behavior": "MASK"}}}}),
        ),
        (
            Method::PUT,
            "/api/2.0/serving-endpoints/fz/rate-limits",
            json!({"rate_limits": [{"calls": 1, "renewal_period": "minute"}]}),
        ),
        (Method::PATCH, "/api/2.0/serving-endpoints/fz/tags", json!({"add_tags": [{"key": "k", "value": "v"}]})),
        (Method::PATCH, "/api/2.0/serving-endpoints/fz/notifications", json!({"email_notifications": {}})),
        (Method::PATCH, "/api/2.0/serving-endpoints/fz/telemetry-config", json!({"telemetry_config": {}})),
        (Method::PUT, "/api/2.0/serving-endpoints/fz/budget-policy", json!({"budget_policy_id": "{policy}"})),
        (Method::PUT, "/api/2.0/permissions/serving-endpoints/{id}", json!({"access_control_list": []})),
        (Method::PATCH, "/api/2.0/permissions/serving-endpoints/{id}", json!({"access_control_list": []})),
        (Method::POST, "/api/2.0/secrets/scopes/create", json!({"scope": "new"})),
        (Method::POST, "/api/2.0/secrets/scopes/delete", json!({"scope": "spare"})),
        (Method::POST, "/api/2.0/secrets/put", json!({"scope": "llm", "key": "new", "string_value": "v"})),
        (Method::POST, "/api/2.0/secrets/delete", json!({"scope": "spare", "key": "x"})),
        (
            Method::POST,
            "/api/2.0/secrets/acls/put",
            json!({"scope": "llm", "principal": "users", "permission": "READ"}),
        ),
        (Method::POST, "/api/2.0/secrets/acls/delete", json!({"scope": "llm", "principal": "users"})),
        (Method::POST, "/api/2.0/token/create", json!({"comment": "c"})),
        (Method::POST, "/api/2.0/token/delete", json!({"token_id": "{token}"})),
        (Method::POST, "/api/2.0/token-management/on-behalf-of/tokens", json!({"user_name": "fz@example.com"})),
        (Method::POST, "/api/2.0/preview/scim/v2/Users", json!({"userName": "new@example.com"})),
        (
            Method::PATCH,
            "/api/2.0/preview/scim/v2/Users/{user}",
            json!({"Operations": [{"op": "replace", "path": "active", "value": false}]}),
        ),
        (Method::POST, "/api/2.0/preview/scim/v2/Groups", json!({"displayName": "new"})),
        (
            Method::PATCH,
            "/api/2.0/preview/scim/v2/Groups/{group}",
            json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": "{user}"}]}]}),
        ),
        (Method::POST, "/api/2.0/preview/scim/v2/ServicePrincipals", json!({"applicationId": "new"})),
        (
            Method::PATCH,
            "/api/2.0/preview/scim/v2/ServicePrincipals/{sp}",
            json!({"Operations": [{"op": "replace", "path": "active", "value": false}]}),
        ),
        (Method::POST, "/api/2.0/budget-policies", json!({"name": "new", "period": "day", "amount_usd": 1.0})),
        (Method::PUT, "/api/2.0/budget-policies/{policy}", json!({"name": "fz", "period": "day", "amount_usd": 2.0})),
        (Method::POST, "/api/2.0/alert-destinations", json!({"name": "new", "url": "https://hooks.slack.com/x"})),
        (Method::POST, "/api/2.0/alert-rules", json!({"name": "new", "kind": "error_rate"})),
        (
            Method::PUT,
            "/api/2.0/alert-rules/{rule}",
            json!({"name": "error-rate", "kind": "error_rate", "threshold": 0.5}),
        ),
        (Method::POST, "/api/2.0/usage/recompute", json!({"since": "0"})),
        (Method::POST, "/serving-endpoints/fz/invocations", json!({"messages": [{"role": "user", "content": "hi"}]})),
        (Method::POST, "/serving-endpoints/chat/completions", chat.clone()),
        (Method::POST, "/v1/chat/completions", chat),
        (Method::POST, "/v1/completions", json!({"model": "fz", "prompt": "hi"})),
        (Method::POST, "/v1/embeddings", json!({"model": "fz", "input": "hi"})),
    ]
}

/// Routes that read a query or path: GET with placeholders.
const GET_ROUTES: &[&str] = &[
    "/api/2.0/serving-endpoints/fz",
    "/api/2.0/serving-endpoints/fz/config-versions",
    "/api/2.0/serving-endpoints/fz/openapi",
    "/api/2.0/serving-endpoints/fz/metrics",
    "/api/2.0/serving-endpoints/fz/metrics-summary",
    "/api/2.0/serving-endpoints/fz/inference-table",
    "/api/2.0/serving-endpoints/fz/served-models/a/logs",
    "/api/2.0/serving-endpoints/fz/served-models/a/build-logs",
    "/api/2.0/permissions/serving-endpoints/{id}",
    "/api/2.0/permissions/serving-endpoints/{id}/permissionLevels",
    "/api/2.0/secrets/scopes/list",
    "/api/2.0/secrets/get",
    "/api/2.0/secrets/list",
    "/api/2.0/secrets/acls/get",
    "/api/2.0/secrets/acls/list",
    "/api/2.0/token/list",
    "/api/2.0/token-management/tokens",
    "/api/2.0/token-management/tokens/{token}",
    "/api/2.0/audit-log",
    "/api/2.0/usage",
    "/api/2.0/budget-policies",
    "/api/2.0/budget-policies/{policy}",
    "/api/2.0/alert-destinations",
    "/api/2.0/alert-rules",
    "/api/2.0/alerts",
    "/api/2.0/preview/scim/v2/Users",
    "/api/2.0/preview/scim/v2/Users/{user}",
    "/api/2.0/preview/scim/v2/Groups",
    "/api/2.0/preview/scim/v2/Groups/{group}",
    "/api/2.0/preview/scim/v2/ServicePrincipals",
    "/api/2.0/preview/scim/v2/ServicePrincipals/{sp}",
    "/api/2.0/preview/scim/v2/Me",
    "/v1/models",
    "/metrics",
];

/// Bad versions of a well-formed body: every one is malformed JSON, not an object, or has
/// something after the object, so no route may accept it.
fn corruptions(good: &[u8], rng: &mut fastrand::Rng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for cut in [1, good.len() / 3, good.len() / 2, good.len() - 1] {
        out.push(good[..cut.max(1)].to_vec());
    }
    for suffix in [&b" x"[..], b"}", b"{}", b"[]", b",", b"\0", b"\xff"] {
        out.push([good, suffix].concat());
    }
    for top in [&b"[]"[..], b"\"s\"", b"1", b"null", b"true", b"-0", b"1e999", b"\"\\ud800\""] {
        out.push(top.to_vec());
    }
    out.push([b"[", good, b"]"].concat());
    // Not UTF-8 inside a string.
    if let Some(at) = good.windows(2).position(|w| w == b":\"") {
        out.push([&good[..at + 2], &[0xff, 0xfe][..], &good[at + 2..]].concat());
    }
    out.push([&b"{\"a\": \""[..], &[0xff, 0xfe, 0xfd], b"\"}"].concat());
    // Nesting far past serde_json's recursion limit.
    out.push([vec![b'['; 5000], vec![b']'; 5000]].concat());
    out.push(["{\"a\":".repeat(3000).into_bytes(), b"1".to_vec(), vec![b'}'; 3000]].concat());
    // Random bytes that are not a JSON object (or blank, which reads as `{}`).
    while out.len() < 60 {
        let len = rng.usize(1..300);
        let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        let blank = bytes.iter().all(u8::is_ascii_whitespace);
        let object = serde_json::from_slice::<Value>(&bytes).is_ok_and(|v| v.is_object());
        if !blank && !object {
            out.push(bytes);
        }
    }
    out
}

/// Everything stored that a request could change.
async fn stored(t: &TestServer, ids: &Ids) -> Value {
    let mut out = serde_json::Map::new();
    for path in [
        "/api/2.0/serving-endpoints".to_string(),
        "/api/2.0/serving-endpoints/fz".to_string(),
        "/api/2.0/serving-endpoints/fz/config-versions".to_string(),
        format!("/api/2.0/permissions/serving-endpoints/{}", ids.id),
        "/api/2.0/secrets/scopes/list".to_string(),
        "/api/2.0/secrets/list?scope=llm".to_string(),
        "/api/2.0/secrets/list?scope=spare".to_string(),
        "/api/2.0/secrets/acls/list?scope=llm".to_string(),
        "/api/2.0/preview/scim/v2/Users".to_string(),
        "/api/2.0/preview/scim/v2/Groups".to_string(),
        "/api/2.0/preview/scim/v2/ServicePrincipals".to_string(),
        "/api/2.0/token-management/tokens".to_string(),
        "/api/2.0/budget-policies".to_string(),
        "/api/2.0/alert-rules".to_string(),
        "/api/2.0/alert-destinations".to_string(),
    ] {
        let (s, b) = t.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{path}: {b}");
        out.insert(path, b);
    }
    Value::Object(out)
}

struct Ids {
    id: String,
    user: String,
    group: String,
    sp: String,
    token: String,
    policy: String,
    rule: String,
}

impl Ids {
    fn fill(&self, text: &str) -> String {
        text.replace("{id}", &self.id)
            .replace("{user}", &self.user)
            .replace("{group}", &self.group)
            .replace("{sp}", &self.sp)
            .replace("{token}", &self.token)
            .replace("{policy}", &self.policy)
            .replace("{rule}", &self.rule)
    }
}

async fn send(t: &TestServer, method: Method, path: &str, body: Option<Vec<u8>>) -> (StatusCode, String) {
    let mut req = t.http.request(method, format!("{}{path}", t.base)).bearer_auth(&t.token);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req.send().await.expect("the server answers");
    let status = resp.status();
    (status, resp.text().await.unwrap_or_default())
}

fn assert_json_error(status: StatusCode, text: &str, what: &str) {
    assert!(!status.is_server_error(), "{what}: {status} {text}");
    if status.is_client_error() {
        let v: Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("{what}: not JSON: {text}"));
        assert!(v["error_code"].is_string() && v["message"].is_string(), "{what}: {v}");
    }
}

#[tokio::test]
async fn thousands_of_bad_requests_change_nothing() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-fuzz-0123").await;
    t.secret("spare", "x", "v").await;
    create_ready(&t, json!({"name": "fz", "config": {"served_entities": [mock_entity("a", &url, json!({}))]}})).await;
    let id = t.get("/api/2.0/serving-endpoints/fz").await.1["id"].as_str().unwrap().to_string();
    let user = create_principal(&t, "Users", json!({"userName": "fz@example.com"})).await;
    let group = create_principal(&t, "Groups", json!({"displayName": "fz"})).await;
    let sp = create_principal(&t, "ServicePrincipals", json!({"applicationId": "fz-app"})).await;
    let token = t.post("/api/2.0/token/create", json!({"comment": "fz"})).await.1["token_info"]["token_id"]
        .as_str()
        .unwrap()
        .to_string();
    let policy = t.post("/api/2.0/budget-policies", json!({"name": "fz", "period": "day", "amount_usd": 1.0})).await.1
        ["policy_id"]
        .as_str()
        .unwrap()
        .to_string();
    let rule = t.get("/api/2.0/alert-rules").await.1["rules"][0]["rule_id"].as_str().unwrap().to_string();
    let ids = Ids { id, user, group, sp, token, policy, rule };
    let before = stored(&t, &ids).await;

    let mut rng = fastrand::Rng::with_seed(0x6d67_6174);
    let mut sent = 0;
    for (method, path, good) in body_routes() {
        let path = ids.fill(path);
        let good = ids.fill(&good.to_string()).into_bytes();
        for bad in corruptions(&good, &mut rng) {
            let (status, text) = send(&t, method.clone(), &path, Some(bad.clone())).await;
            let what = format!("{method} {path} with {:?}", String::from_utf8_lossy(&bad[..bad.len().min(80)]));
            assert!(status.is_client_error(), "{what}: {status} {text}");
            assert_json_error(status, &text, &what);
            sent += 1;
        }
    }
    let queries = [
        "limit=abc",
        "since=-1e999&until=zz",
        "%ZZ=1",
        "filter=%22",
        "start=1&end=0",
        "group_by=nope",
        "scope=..&key=%00",
        "format=exe&status=9xx",
        "limit=-5&action=%FF",
        "bucket=eon",
    ];
    let segments = ["%FF%FE", "..", "%2e%2e", "\u{202e}x", &"z".repeat(3000), "a%00b"];
    for route in GET_ROUTES {
        let path = ids.fill(route);
        for q in queries {
            let (status, text) = send(&t, Method::GET, &format!("{path}?{q}"), None).await;
            assert_json_error(status, &text, &format!("GET {path}?{q}"));
            sent += 1;
        }
        let params = [&ids.id, &ids.user, &ids.group, &ids.sp, &ids.token, &ids.policy, "fz", "a"];
        for seg in segments {
            let encoded: String = seg
                .bytes()
                .map(|b| if b.is_ascii_graphic() { (b as char).to_string() } else { format!("%{b:02X}") })
                .collect();
            for p in params.iter().filter(|p| path.contains(&format!("/{p}"))) {
                let bad = path.replacen(&format!("/{p}"), &format!("/{encoded}"), 1);
                let (status, text) = send(&t, Method::GET, &bad, None).await;
                assert_json_error(status, &text, &format!("GET {bad}"));
                sent += 1;
            }
        }
    }
    assert!(sent > 2500, "{sent} requests");
    assert_eq!(stored(&t, &ids).await, before, "a bad request changed something");
    let (status, _) = t
        .post("/v1/chat/completions", json!({"model": "fz", "messages": [{"role": "user", "content": "still fine?"}]}))
        .await;
    assert_eq!(status, StatusCode::OK);
}
