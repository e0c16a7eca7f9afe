//! The web console over HTTP: sign-in with a token, the session cookie's flags, CSRF and
//! cross-origin refusals, sign-out, and pages that show only what the principal may see.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::json;

fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn value(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_string()
}

/// Signs in with `token`; returns the session cookie's value.
async fn sign_in(t: &TestServer, b: &reqwest::Client, token: &str) -> String {
    let page = b.get(format!("{}/console/sign-in", t.base)).send().await.unwrap();
    let csrf = value(&set_cookie(&page, "mg_csrf").unwrap());
    let r = b
        .post(format!("{}/console/sign-in", t.base))
        .header("cookie", format!("mg_csrf={csrf}"))
        .form(&[("token", token), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    value(&set_cookie(&r, "mg_session").expect("a session cookie"))
}

/// Creates the chat endpoint `name` answered by the mock at `url`, with `extra` top-level fields
/// (tags, ai_gateway), and waits until it serves.
async fn serve_chat(t: &TestServer, url: &str, name: &str, extra: serde_json::Value) {
    let mut body = json!({"name": name, "config": chat_config(url, "gpt-4o")});
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    create_ready(t, body).await;
}

/// A config with one entity `a` serving `model` from the mock at `url`.
fn chat_config(url: &str, model: &str) -> serde_json::Value {
    let mut config = json!({"served_entities": [mock_entity("a", url, json!({}))]});
    config["served_entities"][0]["external_model"]["name"] = json!(model);
    config
}

#[tokio::test]
async fn sign_in_sessions_csrf_and_what_each_principal_sees() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-console-secret-value").await;
    serve_chat(&t, &url, "visible", json!({"tags": [{"key": "team", "value": "ml"}]})).await;
    serve_chat(&t, &url, "hidden", json!({})).await;
    let b = browser();

    // Without a session: to the sign-in page.
    let r = b.get(format!("{}/", t.base)).send().await.unwrap();
    assert_eq!(
        (r.status(), r.headers().get("location").unwrap()),
        (StatusCode::SEE_OTHER, &"/console/sign-in".parse().unwrap())
    );
    let r = b.get(format!("{}/console/sign-in", t.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("content-security-policy").unwrap().to_str().unwrap().contains("frame-ancestors 'none'"));
    let csrf_cookie = set_cookie(&r, "mg_csrf").unwrap();
    assert!(csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Strict"), "{csrf_cookie}");
    let csrf = value(&csrf_cookie);
    assert!(r.text().await.unwrap().contains(&format!("value=\"{csrf}\"")));

    // A wrong token, a form without its CSRF token, and a form posted from another site fail.
    let post = |token: &str, csrf_field: &str, origin: Option<&str>| {
        let mut req = b
            .post(format!("{}/console/sign-in", t.base))
            .header("cookie", format!("mg_csrf={csrf}"))
            .form(&[("token", token.to_string()), ("csrf", csrf_field.to_string())]);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    assert_eq!(post("mgt_not_a_token", &csrf, None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(post(&t.token, "forged", None).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(post(&t.token, &csrf, Some("http://evil.example")).await.unwrap().status(), StatusCode::FORBIDDEN);

    // The admin signs in: an HttpOnly, SameSite=Strict session cookie, and every endpoint.
    let r = post(&t.token, &csrf, None).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let session_cookie = set_cookie(&r, "mg_session").unwrap();
    assert!(
        session_cookie.contains("HttpOnly")
            && session_cookie.contains("SameSite=Strict")
            && session_cookie.contains("Path=/"),
        "{session_cookie}"
    );
    let session = value(&session_cookie);
    let page = b.get(format!("{}/", t.base)).header("cookie", format!("mg_session={session}")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(">visible</a>") && html.contains(">hidden</a>") && html.contains("openai / gpt-4o"),
        "{html}"
    );
    assert!(!html.contains(&t.token) && !html.contains("sk-console-secret-value"), "no token or secret in the page");
    let css = b.get(format!("{}/console/assets/console.css", t.base)).send().await.unwrap();
    assert_eq!(css.headers().get("content-type").unwrap(), "text/css; charset=utf-8");

    // A user with CAN_QUERY on one endpoint sees that one only.
    let dev_id = create_principal(&t, "Users", json!({"userName": "dev@example.com"})).await;
    let (_, ep) = t.get("/api/2.0/serving-endpoints/visible").await;
    let acl = json!({"access_control_list": [{"user_name": "dev@example.com", "permission_level": "CAN_QUERY"}]});
    t.put(&format!("/api/2.0/permissions/serving-endpoints/{}", ep["id"].as_str().unwrap()), acl).await;
    let dev_token = token_for(&t, json!({"user_name": "dev@example.com"})).await;
    let dev_session = sign_in(&t, &b, &dev_token).await;
    let html = b
        .get(format!("{}/", t.base))
        .header("cookie", format!("mg_session={dev_session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(">visible</a>") && !html.contains(">hidden</a>"), "{html}");

    // The session cookie is not a bearer token for the API.
    let api = b
        .get(format!("{}/api/2.0/serving-endpoints", t.base))
        .header("cookie", format!("mg_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);

    // Sign-out needs the session's CSRF token; afterwards the cookie opens nothing.
    let r = b
        .post(format!("{}/console/sign-out", t.base))
        .header("cookie", format!("mg_session={session}"))
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let html = b
        .get(format!("{}/", t.base))
        .header("cookie", format!("mg_session={session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let page_csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let r = b
        .post(format!("{}/console/sign-out", t.base))
        .header("cookie", format!("mg_session={session}"))
        .form(&[("csrf", page_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = b.get(format!("{}/", t.base)).header("cookie", format!("mg_session={session}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "signed out");

    // A principal made inactive (or a revoked token) ends its sessions.
    let ops = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                     "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let (s, answer) =
        t.call(reqwest::Method::PATCH, &format!("/api/2.0/preview/scim/v2/Users/{dev_id}"), Some(ops)).await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    let r = b_get_path(&b, &t, &dev_session, "/").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the session of an inactive user ends");
}

#[tokio::test]
async fn the_endpoint_page_shows_versions_and_rolls_back_through_the_api_s_checks() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-console-2").await;
    serve_chat(&t, &url, "chat", json!({})).await;
    let (s, _) = t.put("/api/2.0/serving-endpoints/chat/config", chat_config(&url, "gpt-4o-mini")).await;
    assert_eq!(s, StatusCode::OK);
    t.wait_settled("chat").await;
    let b = browser();
    let session = sign_in(&t, &b, &t.token).await;
    let html = b_get_path(&b, &t, &session, "/console/endpoints/chat").await.text().await.unwrap();
    assert!(html.contains("<h1>chat</h1>") && html.contains("openai / gpt-4o-mini"), "{html}");
    assert!(
        html.contains("external_model.name: &quot;gpt-4o-mini&quot; → &quot;gpt-4o&quot;"),
        "the diff of version 1 against the active one: {html}"
    );
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();

    // A rollback without the CSRF token, or from another site, does nothing.
    let post = |form: Vec<(&'static str, String)>, origin: Option<&'static str>| {
        let mut req = b
            .post(format!("{}/console/endpoints/chat/rollback", t.base))
            .header("cookie", format!("mg_session={session}"))
            .form(&form);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    let r = post(vec![("csrf", "forged".into()), ("config_version", "1".into())], None).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r =
        post(vec![("csrf", csrf.clone()), ("config_version", "1".into())], Some("https://evil.example")).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (_, versions) = t.get("/api/2.0/serving-endpoints/chat/config-versions").await;
    assert_eq!(versions["config_versions"].as_array().unwrap().len(), 2, "nothing rolled back");

    let r = post(vec![("csrf", csrf.clone()), ("config_version", "1".into())], None).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let e = t.wait_settled("chat").await;
    assert_eq!(
        (e["config"]["config_version"].as_i64(), e["config"]["served_entities"][0]["external_model"]["name"].as_str()),
        (Some(3), Some("gpt-4o"))
    );
    let (_, audit) = t.get("/api/2.0/audit-log?action=POST").await;
    assert!(audit.to_string().contains("/console/endpoints/chat/rollback"), "the console's change is audited: {audit}");

    // A user who may only query sees the page without actions, and is refused the action.
    create_principal(&t, "Users", json!({"userName": "viewer@example.com"})).await;
    let (_, ep) = t.get("/api/2.0/serving-endpoints/chat").await;
    let acl = json!({"access_control_list": [{"user_name": "viewer@example.com", "permission_level": "CAN_QUERY"}]});
    t.put(&format!("/api/2.0/permissions/serving-endpoints/{}", ep["id"].as_str().unwrap()), acl).await;
    let viewer = token_for(&t, json!({"user_name": "viewer@example.com"})).await;
    let viewer_session = sign_in(&t, &b, &viewer).await;
    let html = b_get_path(&b, &t, &viewer_session, "/console/endpoints/chat").await.text().await.unwrap();
    assert!(html.contains("<h1>chat</h1>") && !html.contains("Roll back") && !html.contains(">Stop<"), "{html}");
    let viewer_csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let r = b
        .post(format!("{}/console/endpoints/chat/stop", t.base))
        .header("cookie", format!("mg_session={viewer_session}"))
        .form(&[("csrf", viewer_csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("PERMISSION_DENIED"));
    let r = b_get_path(&b, &t, &viewer_session, "/console/endpoints/nope").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

async fn b_get_path(b: &reqwest::Client, t: &TestServer, session: &str, path: &str) -> reqwest::Response {
    b.get(format!("{}{path}", t.base)).header("cookie", format!("mg_session={session}")).send().await.unwrap()
}

#[tokio::test]
async fn the_playground_streams_a_query_as_the_signed_in_principal() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-console-3").await;
    serve_chat(&t, &url, "chat", json!({})).await;
    let b = browser();
    let session = sign_in(&t, &b, &t.token).await;
    let html = b_get_path(&b, &t, &session, "/console/playground").await.text().await.unwrap();
    assert!(html.contains("<option value=\"chat\">chat</option>"), "{html}");
    let csrf = html.split("data-csrf=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let ask = |token: String| {
        b.post(format!("{}/console/playground/chat", t.base))
            .header("cookie", format!("mg_session={session}"))
            .header("x-csrf-token", token)
            .json(&json!({"messages": [{"role": "user", "content": "stream these words"}], "stream": true}))
            .send()
    };
    assert_eq!(ask("forged".into()).await.unwrap().status(), StatusCode::FORBIDDEN);
    let r = ask(csrf).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers().get("content-type").unwrap(), "text/event-stream");
    let text = r.text().await.unwrap();
    let payloads = sse_payloads(&text);
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"), "{text}");
    assert!(text.contains("\"content\":\"stream \""), "streamed chunk by chunk: {text}");
    let (_, log) = t.get("/api/2.0/requests?endpoint=chat").await;
    assert_eq!(log["requests"][0]["requester"], "admin", "billed to the signed-in principal: {log}");

    // The endpoint's charts show that query, from the usage records.
    let html = b_get_path(&b, &t, &session, "/console/endpoints/chat?window=1h").await.text().await.unwrap();
    assert!(html.contains("1 queries, ") && html.contains(" in the last hour"), "{html}");
    assert_eq!(html.matches("<figure class=\"chart\">").count(), 5, "{html}");
    assert!(
        html.contains("Queries per minute") && html.contains("Time to first token") && html.contains("p95"),
        "{html}"
    );
    // The streamed query has a time to first token: its chart has a point.
    let ttft = html.split("<figcaption>Time to first token").nth(1).unwrap().split("</figure>").next().unwrap();
    assert!(ttft.contains("<path d=\"M"), "{ttft}");
    // The charts refresh from their own route, with the page's checks.
    let fragment = b_get_path(&b, &t, &session, "/console/endpoints/chat/metrics?window=1h").await;
    assert_eq!(fragment.status(), StatusCode::OK);
    assert!(fragment.text().await.unwrap().contains("1 queries, "), "the fragment has the figures");
    let day = b_get_path(&b, &t, &session, "/console/endpoints/chat?window=7d").await.text().await.unwrap();
    assert!(day.contains(" in the last 7 days"), "{day}");
}

#[tokio::test]
async fn operations_show_alerts_audit_and_secret_names_never_values() {
    let t = TestServer::start().await;
    t.secret("llm", "openai", "sk-console-secret-never-shown").await;
    let b = browser();
    let admin = sign_in(&t, &b, &t.token).await;
    let html = b_get_path(&b, &t, &admin, "/console/operations").await.text().await.unwrap();
    assert!(html.contains("Nothing is firing."), "{html}");
    assert!(html.contains("secret:llm/openai"), "the audit log shows the secret's creation: {html}");
    assert!(html.contains("<strong>llm</strong>") && html.contains(">openai</span>"), "{html}");
    assert!(
        !html.contains("sk-console-secret-never-shown") && !html.contains(&t.token),
        "no secret or token in the page"
    );

    // A user without admin rights or scope access sees neither the log nor the keys.
    create_principal(&t, "Users", json!({"userName": "nobody@example.com"})).await;
    let token = token_for(&t, json!({"user_name": "nobody@example.com"})).await;
    let user = sign_in(&t, &b, &token).await;
    let html = b_get_path(&b, &t, &user, "/console/operations").await.text().await.unwrap();
    assert!(html.contains("Only admins") && html.contains("No secret scope you may read."), "{html}");
    assert!(!html.contains(">openai</span>"), "{html}");
}

#[tokio::test]
async fn cost_and_usage_by_dimension_with_budgets_and_csv() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-console-4").await;
    serve_chat(&t, &url, "chat", json!({"tags": [{"key": "team", "value": "ml"}]})).await;
    let (s, _) =
        t.post("/serving-endpoints/chat/invocations", json!({"messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) =
        t.post("/api/2.0/budget-policies", json!({"name": "ml-monthly", "period": "month", "amount_usd": 100})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let b = browser();
    let session = sign_in(&t, &b, &t.token).await;
    let html = b_get_path(&b, &t, &session, "/console/usage?by=tag.team&days=7").await.text().await.unwrap();
    assert!(html.contains("<td>ml</td><td>1</td><td>0</td>"), "one query for team ml: {html}");
    assert!(html.contains("ml-monthly") && html.contains("$100.00"), "{html}");
    let csv = b_get_path(&b, &t, &session, "/console/usage?by=endpoint&days=7&format=csv").await;
    assert_eq!(csv.headers().get("content-type").unwrap(), "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("endpoint,requests,errors,input_tokens,output_tokens,cost_usd"));
    assert!(lines.next().unwrap().starts_with("chat,1,0,"), "{text}");
}

/// The session's CSRF token, from any page's sign-out form.
fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn managers_change_tags_permissions_and_the_gateway_and_delete_from_the_endpoint_page() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-console-5").await;
    serve_chat(&t, &url, "chat", json!({})).await;
    create_principal(&t, "Users", json!({"userName": "dev@example.com"})).await;
    let b = browser();
    let session = sign_in(&t, &b, &t.token).await;
    let csrf = csrf_of(&b_get_path(&b, &t, &session, "/console/endpoints/chat").await.text().await.unwrap());
    let act = |action: &'static str, form: Vec<(&'static str, &'static str)>| {
        let mut form: Vec<(&str, String)> = form.into_iter().map(|(k, v)| (k, v.to_string())).collect();
        form.push(("csrf", csrf.clone()));
        b.post(format!("{}/console/endpoints/chat/{action}", t.base))
            .header("cookie", format!("mg_session={session}"))
            .form(&form)
            .send()
    };

    // Tags.
    assert_eq!(act("tags-add", vec![("key", "team"), ("value", "ml")]).await.unwrap().status(), StatusCode::SEE_OTHER);
    let (_, e) = t.get("/api/2.0/serving-endpoints/chat").await;
    assert_eq!(e["tags"], json!([{"key": "team", "value": "ml"}]));
    assert_eq!(act("tags-remove", vec![("key", "team")]).await.unwrap().status(), StatusCode::SEE_OTHER);
    let (_, e) = t.get("/api/2.0/serving-endpoints/chat").await;
    assert!(e.get("tags").is_none_or(|t| t.as_array().unwrap().is_empty()), "{e}");

    // Permissions: a grant, a grant to nobody (the API's error, nothing changed), a revoke.
    let id = e["id"].as_str().unwrap().to_string();
    let acl = || async { t.get(&format!("/api/2.0/permissions/serving-endpoints/{id}")).await.1.to_string() };
    let r = act("grant", vec![("kind", "user_name"), ("principal", "dev@example.com"), ("level", "CAN_QUERY")]).await;
    assert_eq!(r.unwrap().status(), StatusCode::SEE_OTHER);
    assert!(acl().await.contains("dev@example.com"));
    let r = act("grant", vec![("kind", "user_name"), ("principal", "ghost@example.com"), ("level", "CAN_QUERY")]);
    let r = r.await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("ghost@example.com"), "the API's message names the principal");
    let before = acl().await;
    assert!(!before.contains("ghost") && before.contains("dev@example.com"));
    let r = act("revoke", vec![("kind", "user_name"), ("principal", "dev@example.com")]).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let after = acl().await;
    assert!(!after.contains("dev@example.com") && after.contains("CAN_MANAGE"), "only that grant went: {after}");

    // The AI gateway: JSON that does not parse and a limit the API refuses change nothing.
    let r = act("ai-gateway", vec![("json", "{\"rate_limits\": [")]).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("does not parse"));
    let bad = r#"{"rate_limits": [{"calls": 5, "renewal_period": "fortnight"}]}"#;
    let r = act("ai-gateway", vec![("json", bad)]).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("renewal_period"), "the API's message, as it is");
    assert!(t.get("/api/2.0/serving-endpoints/chat").await.1.get("ai_gateway").is_none());
    let good = r#"{"rate_limits": [{"calls": 5, "renewal_period": "minute", "key": "user"}],
        "guardrails": {"input": {"pii": {"behavior": "MASK"}}}, "cache_config": {"enabled": true, "ttl_seconds": 60}}"#;
    assert_eq!(act("ai-gateway", vec![("json", good)]).await.unwrap().status(), StatusCode::SEE_OTHER);
    let html = b_get_path(&b, &t, &session, "/console/endpoints/chat").await.text().await.unwrap();
    assert!(html.contains("response cache: on (60 s, shared by every caller)"), "the cache: {html}");
    assert!(html.contains("<td>user</td><td></td><td>5</td><td></td><td>minute</td>"), "the limit: {html}");
    assert!(html.contains("<code>pii</code>") && html.contains("MASK"), "the guardrail: {html}");

    // A second version: the side-by-side comparison marks what changed.
    assert_eq!(
        t.put("/api/2.0/serving-endpoints/chat/config", chat_config(&url, "gpt-4o-mini")).await.0,
        StatusCode::OK
    );
    t.wait_settled("chat").await;
    let html = b_get_path(&b, &t, &session, "/console/endpoints/chat?compare=1").await.text().await.unwrap();
    let compare = html.split("table class=\"side-by-side\"").nth(1).expect("a side-by-side table");
    let changed = compare.split("<tr class=\"changed\">").nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(changed.contains("gpt-4o-mini") && changed.contains("&quot;gpt-4o&quot;"), "{changed}");

    // Delete asks for the name: a wrong one is refused and the endpoint stays.
    let r = act("delete", vec![("confirm", "chta")]).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(t.get("/api/2.0/serving-endpoints/chat").await.0, StatusCode::OK);
    let r = act("delete", vec![("confirm", "chat")]).await.unwrap();
    assert_eq!((r.status(), r.headers().get("location").unwrap().to_str().unwrap()), (StatusCode::SEE_OTHER, "/"));
    assert_eq!(t.get("/api/2.0/serving-endpoints/chat").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_list_sorts_and_filters_by_tag_and_identity_is_for_admins() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-console-6").await;
    for (name, team) in [("alpha", "ml"), ("beta", "search")] {
        serve_chat(&t, &url, name, json!({"tags": [{"key": "team", "value": team}]})).await;
    }
    let b = browser();
    let admin = sign_in(&t, &b, &t.token).await;
    let order = |html: &str| (html.find(">alpha</a>"), html.find(">beta</a>"));
    let html = b_get_path(&b, &t, &admin, "/?sort=name&desc=true").await.text().await.unwrap();
    let (a, z) = order(&html);
    assert!(a.unwrap() > z.unwrap(), "descending by name: {html}");
    assert!(html.contains("aria-sort=\"descending\""), "{html}");
    let html = b_get_path(&b, &t, &admin, "/?tag=team%3Dml").await.text().await.unwrap();
    assert_eq!(order(&html).1, None, "only the ml endpoint: {html}");
    assert!(order(&html).0.is_some());
    let html = b_get_path(&b, &t, &admin, "/?tag=team%3Dnone").await.text().await.unwrap();
    assert!(html.contains("No endpoint has the tag"), "{html}");

    create_principal(&t, "Users", json!({"userName": "dev@example.com"})).await;
    let dev_token = token_for(&t, json!({"user_name": "dev@example.com"})).await;
    let limits = json!({"allowed_endpoints": ["alpha"], "rate_limits": [{"calls": 60, "renewal_period": "minute"}],
                        "budget": {"amount_usd": 20, "period": "month", "action": "BLOCK"}});
    token_for(&t, json!({"user_name": "dev@example.com", "limits": limits})).await;
    let html = b_get_path(&b, &t, &admin, "/console/identity").await.text().await.unwrap();
    assert!(html.contains("endpoints: alpha · 60 calls/min · $20.00/month BLOCK ($0.00 spent)"), "{html}");
    assert!(html.contains("<td>dev@example.com</td>") && html.contains("<td>admins</td>"), "{html}");
    assert!(!html.contains(&dev_token) && !html.contains(&t.token), "token values are never shown");
    let dev = sign_in(&t, &b, &dev_token).await;
    let r = b_get_path(&b, &t, &dev, "/console/identity").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let html = r.text().await.unwrap();
    assert!(html.contains("Only admins may see users"), "{html}");
    assert!(!html.contains("href=\"/console/identity\""), "no Identity link for a non-admin");
}

/// Posts the password form; returns the response.
async fn password_sign_in(t: &TestServer, b: &reqwest::Client, user: &str, password: &str) -> reqwest::Response {
    let page = b.get(format!("{}/console/sign-in", t.base)).send().await.unwrap();
    let csrf = value(&set_cookie(&page, "mg_csrf").unwrap());
    b.post(format!("{}/console/sign-in", t.base))
        .header("cookie", format!("mg_csrf={csrf}"))
        .form(&[("user_name", user), ("password", password), ("csrf", &csrf)])
        .send()
        .await
        .unwrap()
}

fn scim_password(op: &str, value: serde_json::Value) -> serde_json::Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": op, "path": "password", "value": value}]})
}

#[tokio::test]
async fn password_sign_in_when_enabled_with_lockout_and_sessions_that_end_with_the_password() {
    let t = TestServer::start_with(|c| c.console_password_sign_in = true).await;
    let b = browser();
    // An admin creates a user with a password; the password is never returned.
    let (s, user) = t
        .post(
            "/api/2.0/preview/scim/v2/Users",
            json!({"userName": "dev@example.com", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{user}");
    assert!(!user.to_string().contains("correct horse") && user.get("password").is_none(), "{user}");
    let id = user["id"].as_str().unwrap().to_string();
    // A password that breaks the rule is refused, naming the field; nothing is created.
    let (s, e) =
        t.post("/api/2.0/preview/scim/v2/Users", json!({"userName": "weak@example.com", "password": "short"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e["message"].as_str().unwrap().contains("password must be at least 12 characters"), "{e}");
    let (_, users) = t.get("/api/2.0/preview/scim/v2/Users").await;
    assert!(!users.to_string().contains("weak@example.com"));

    let form = b.get(format!("{}/console/sign-in", t.base)).send().await.unwrap().text().await.unwrap();
    assert!(form.contains("Sign in with password"), "{form}");
    let r = password_sign_in(&t, &b, "dev@example.com", "correct horse battery").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let session = value(&set_cookie(&r, "mg_session").unwrap());
    let html = b_get_path(&b, &t, &session, "/").await.text().await.unwrap();
    assert!(html.contains("dev@example.com") && html.contains("No serving endpoints you may see yet."), "{html}");

    // Wrong passwords and unknown users get the same answer; the fifth failure locks the name.
    let r = password_sign_in(&t, &b, "nobody@example.com", "correct horse battery").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("That user name and password do not match."));
    for _ in 0..5 {
        let r = password_sign_in(&t, &b, "dev@example.com", "wrong horse battery").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = password_sign_in(&t, &b, "dev@example.com", "correct horse battery").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "locked even with the right password");
    assert!(r.text().await.unwrap().contains("Too many failed sign-ins"));
    assert_eq!(b_get_path(&b, &t, &session, "/").await.status(), StatusCode::OK, "a live session is not locked out");

    // A new password ends the sessions of the old one; the audit log never holds a password.
    let path = format!("/api/2.0/preview/scim/v2/Users/{id}");
    let (s, _) = t
        .call(reqwest::Method::PATCH, &path, Some(scim_password("replace", json!("a different battery staple"))))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b_get_path(&b, &t, &session, "/").await.status(), StatusCode::SEE_OTHER, "the old session ended");
    let (_, audit) = t.get("/api/2.0/audit-log").await;
    let text = audit.to_string();
    assert!(!text.contains("correct horse") && !text.contains("different battery") && !text.contains("wrong horse"));
    let sign_ins: Vec<&serde_json::Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["path"] == "/console/sign-in" && e["status"] == 303)
        .collect();
    assert!(
        sign_ins.iter().any(|e| e["principal"] == "dev@example.com" && e["token_id"] == "console-password"),
        "the password sign-in is audited: {audit}"
    );
    assert!(audit["entries"].as_array().unwrap().iter().any(|e| e["path"] == "/console/sign-in" && e["status"] == 401));
    // Removing a password stops password sign-in for that user.
    let (_, ops) = t
        .post("/api/2.0/preview/scim/v2/Users", json!({"userName": "ops@example.com", "password": "ops password 123"}))
        .await;
    let r = password_sign_in(&t, &b, "ops@example.com", "ops password 123").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let ops_path = format!("/api/2.0/preview/scim/v2/Users/{}", ops["id"].as_str().unwrap());
    let (s, _) =
        t.call(reqwest::Method::PATCH, &ops_path, Some(scim_password("remove", serde_json::Value::Null))).await;
    assert_eq!(s, StatusCode::OK);
    let r = password_sign_in(&t, &b, "ops@example.com", "ops password 123").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn password_sign_in_is_off_unless_the_server_enables_it() {
    let t = TestServer::start().await;
    let (s, _) = t
        .post(
            "/api/2.0/preview/scim/v2/Users",
            json!({"userName": "dev@example.com", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let b = browser();
    let form = b.get(format!("{}/console/sign-in", t.base)).send().await.unwrap().text().await.unwrap();
    assert!(!form.contains("Sign in with password"), "{form}");
    let r = password_sign_in(&t, &b, "dev@example.com", "correct horse battery").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(set_cookie(&r, "mg_session").is_none());
    assert!(r.text().await.unwrap().contains("Password sign-in is not enabled"));
}

#[tokio::test]
async fn the_console_shows_inventory_flags_policy_violations_and_rate_limited_queries() {
    let (_m, url) = mock().await;
    let t = TestServer::start().await;
    t.secret("llm", "k", "sk-console-7").await;
    let limit = json!({"ai_gateway": {"rate_limits": [{"calls": 1, "renewal_period": "minute"}]}});
    serve_chat(&t, &url, "chat-test", limit).await;
    let (s, b) = t.put("/api/2.0/workspace-policy", json!({"mode": "warn", "required_tags": ["team"]})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ask = json!({"messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(t.post("/serving-endpoints/chat-test/invocations", ask.clone()).await.0, StatusCode::OK);
    assert_eq!(t.post("/serving-endpoints/chat-test/invocations", ask).await.0, StatusCode::TOO_MANY_REQUESTS);

    let b = browser();
    let session = sign_in(&t, &b, &t.token).await;
    let list = b_get_path(&b, &t, &session, "/").await.text().await.unwrap();
    assert!(
        list.contains("<span class=\"flag\" title=\"required_tags: the tags team are required\">breaks_policy</span>"),
        "the inventory's flag, with its reason: {list}"
    );
    let ops = b_get_path(&b, &t, &session, "/console/operations").await.text().await.unwrap();
    let standards = ops.split("Workspace standards").nth(1).unwrap().split("Audit log").next().unwrap();
    assert!(standards.contains(">chat-test</a>") && standards.contains("required_tags"), "{standards}");
    let page = b_get_path(&b, &t, &session, "/console/endpoints/chat-test").await.text().await.unwrap();
    let queries = page.split("<figcaption>Queries per minute").nth(1).unwrap().split("</figure>").next().unwrap();
    let limited = queries.split("<th>rate-limited</th>").count();
    assert_eq!(limited, 2, "the figures table has a rate-limited column: {queries}");
    let last_row = queries.split("<tr>").last().unwrap();
    let cells: Vec<&str> = last_row.split("<td>").skip(1).map(|c| c.split("</td>").next().unwrap()).collect();
    assert_eq!(&cells[1..], ["2", "1", "1"], "all, failed and rate-limited per minute: {last_row}");
}

#[tokio::test]
async fn cookies_are_secure_behind_tls_and_the_page_script_gets_401_without_a_session() {
    let t = TestServer::start().await;
    let b = browser();
    let page = b.get(format!("{}/console/sign-in", t.base)).header("x-forwarded-proto", "https").send().await.unwrap();
    let pre = set_cookie(&page, "mg_csrf").unwrap();
    assert!(pre.contains("Secure"), "{pre}");
    let csrf = value(&pre);
    let r = b
        .post(format!("{}/console/sign-in", t.base))
        .header("forwarded", "for=10.0.0.1;proto=https")
        .header("cookie", format!("mg_csrf={csrf}"))
        .form(&[("token", t.token.as_str()), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    let session = set_cookie(&r, "mg_session").unwrap();
    assert!(session.contains("Secure") && session.contains("HttpOnly"), "{session}");
    // Over plain HTTP the cookie cannot be Secure, or the browser would drop it.
    let plain = b.get(format!("{}/console/sign-in", t.base)).send().await.unwrap();
    assert!(!set_cookie(&plain, "mg_csrf").unwrap().contains("Secure"));

    // The chart refresh and the playground without a session: 401, not the sign-in page.
    let r =
        b.get(format!("{}/console/endpoints/x/metrics", t.base)).header("x-console-fetch", "1").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = b.post(format!("{}/console/playground/x", t.base)).header("x-csrf-token", "t").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
