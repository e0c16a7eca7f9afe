//! Serving-endpoint control plane over real HTTP.

use std::time::Duration;

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SE: &str = "/api/2.0/serving-endpoints";
const KEY: &str = "{{secrets/llm/openai}}";

async fn ready_server() -> TestServer {
    let t = TestServer::start().await;
    t.secret("llm", "openai", "sk-test-value").await;
    t
}

#[tokio::test]
async fn create_goes_from_in_progress_to_ready() {
    let t = ready_server().await;
    let (s, e) = t.post(SE, create_body("chat", vec![openai_entity("gpt-4o.mini", KEY)])).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["state"], json!({"ready": "NOT_READY", "config_update": "IN_PROGRESS"}));
    assert!(e.get("config").is_none());
    let pending = &e["pending_config"];
    assert_eq!(pending["config_version"], 1);
    assert!(pending["start_time"].as_i64().unwrap() > 1_600_000_000_000, "start_time is in ms");
    assert_eq!(pending["served_entities"][0]["name"], "gpt-4o-mini", "default name replaces '.'");
    assert_eq!(pending["served_entities"][0]["state"]["deployment"], "DEPLOYMENT_CREATING");
    assert_eq!(e["id"].as_str().unwrap().len(), 32);
    assert_eq!(e["creator"], "admin");
    assert_eq!(e["task"], "llm/v1/chat");

    let e = t.wait_settled("chat").await;
    assert_eq!(e["state"], json!({"ready": "READY", "config_update": "NOT_UPDATING"}));
    assert!(e.get("pending_config").is_none());
    assert_eq!(e["config"]["config_version"], 1);
    assert_eq!(e["config"]["served_entities"][0]["state"]["deployment"], "DEPLOYMENT_READY");
    assert_eq!(e["config"]["traffic_config"]["routes"][0]["traffic_percentage"], 100);
    assert_eq!(e["permission_level"], "CAN_MANAGE");

    // mlflow sends a trailing slash on list and create.
    let (s, _) = t.post(&format!("{SE}/"), create_body("chat2", vec![openai_entity("gpt-4o", KEY)])).await;
    assert_eq!(s, StatusCode::OK);
    let (s, list) = t.get(&format!("{SE}/")).await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = list["endpoints"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["chat", "chat2"]);
}

#[tokio::test]
async fn empty_list_still_has_endpoints_array() {
    let t = TestServer::start().await;
    let (s, list) = t.get(SE).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list, json!({"endpoints": []}));
}

#[tokio::test]
async fn every_field_is_stored_and_returned() {
    let t = ready_server().await;
    // A budget reference must name a policy that exists.
    let (s, policy) =
        t.post("/api/2.0/budget-policies", json!({"name": "ml-monthly", "period": "month", "amount_usd": 100.0})).await;
    assert_eq!(s, StatusCode::OK, "{policy}");
    let body = json!({
        "name": "full",
        "config": {"served_entities": [
            {"name": "primary", "external_model": {"provider": "openai", "name": "gpt-4o", "task": "llm/v1/chat",
              "openai_config": {"openai_api_key": KEY, "openai_organization": "org-1", "openai_api_base": "https://api.openai.com/v1"}},
             "workload_size": "Small", "scale_to_zero_enabled": true, "environment_vars": {"A": "1"}},
            {"name": "backup", "external_model": {"provider": "anthropic", "name": "claude-3-5-sonnet", "task": "llm/v1/chat",
              "anthropic_config": {"anthropic_api_key": KEY}}}],
            "traffic_config": {"routes": [{"served_entity_name": "primary", "traffic_percentage": "80"},
                                          {"served_model_name": "backup", "traffic_percentage": 20}]}},
        "ai_gateway": {"usage_tracking_config": {"enabled": true},
                       "rate_limits": [{"renewal_period": "minute", "calls": 100, "key": "user"}],
                       "guardrails": {"input": {"pii": {"behavior": "MASK"}, "invalid_keywords": ["secret"]}},
                       "fallback_config": {"enabled": true},
                       "inference_table_config": {"catalog_name": "c", "schema_name": "s", "enabled": true}},
        "tags": [{"key": "team", "value": "ml"}, {"key": "env"}],
        "description": "the full thing",
        "budget_policy_id": policy["policy_id"],
        "email_notifications": {"on_update_failure": ["a@example.com"]},
        "route_optimized": false,
        "rate_limits": [{"calls": 10, "renewal_period": "minute", "key": "endpoint"}],
        "telemetry_config": {"enabled_telemetry_features": ["TELEMETRY_FEATURE_METRICS"]}
    });
    let (s, _) = t.post(SE, body.clone()).await;
    assert_eq!(s, StatusCode::OK);
    let e = t.wait_settled("full").await;
    for field in [
        "ai_gateway",
        "tags",
        "description",
        "budget_policy_id",
        "email_notifications",
        "route_optimized",
        "rate_limits",
        "telemetry_config",
    ] {
        assert_eq!(e[field], body[field], "field {field}");
    }
    let ents = &e["config"]["served_entities"];
    assert_eq!(ents[0]["external_model"]["openai_config"]["openai_organization"], "org-1");
    assert_eq!(ents[0]["environment_vars"], json!({"A": "1"}));
    assert_eq!(ents[0]["workload_size"], "Small");
    assert_eq!(
        e["config"]["traffic_config"]["routes"][0]["traffic_percentage"], 80,
        "string percentages become integers"
    );
    assert_eq!(e["endpoint_type"], "EXTERNAL_MODEL");
}

#[tokio::test]
async fn validation_errors_name_the_field_and_store_nothing() {
    let t = ready_server().await;
    let ok = openai_entity("gpt-4o", KEY);
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"name": "bad name!", "config": {"served_entities": [ok.clone()]}}),
            "INVALID_PARAMETER_VALUE",
            "name: invalid endpoint name",
        ),
        (json!({"name": "x"}), "INVALID_PARAMETER_VALUE", "config: is required"),
        (
            json!({"name": "x", "config": {"served_entities": []}}),
            "INVALID_PARAMETER_VALUE",
            "config.served_entities: at least one",
        ),
        (
            create_body("x", (0..16).map(|i| openai_entity(&format!("m{i}"), KEY)).collect()),
            "INVALID_PARAMETER_VALUE",
            "at most 15",
        ),
        (
            create_body("x", vec![ok.clone(), ok.clone()]),
            "INVALID_PARAMETER_VALUE",
            "config.served_entities[1].name: served entity name 'gpt-4o' is already used",
        ),
        (
            json!({"name": "x", "config": {"served_entities": [ok.clone()], "traffic_config": {"routes": [{"served_model_name": "gpt-4o", "traffic_percentage": 90}]}}}),
            "INVALID_PARAMETER_VALUE",
            "add up to 90",
        ),
        (
            json!({"name": "x", "config": {"served_entities": [ok.clone()], "traffic_config": {"routes": [{"served_model_name": "nope", "traffic_percentage": 100}]}}}),
            "INVALID_PARAMETER_VALUE",
            "config.traffic_config.routes[0].served_entity_name: 'nope' is not a served entity",
        ),
        (
            create_body(
                "x",
                vec![
                    json!({"external_model": {"provider": "openai", "name": "m", "task": "llm/v1/chat", "openai_config": {"openai_api_key": "sk-live-abc"}}}),
                ],
            ),
            "INVALID_PARAMETER_VALUE",
            "config.served_entities[0].external_model.openai_config.openai_api_key: must be a secret reference",
        ),
        (
            create_body(
                "x",
                vec![
                    ok.clone(),
                    json!({"external_model": {"provider": "openai", "name": "e", "task": "llm/v1/embeddings", "openai_config": {"openai_api_key": KEY}}}),
                ],
            ),
            "INVALID_PARAMETER_VALUE",
            "config.served_entities[1].external_model.task",
        ),
        (
            create_body("x", vec![json!({"external_model": {"provider": "nope", "name": "m", "task": "llm/v1/chat"}})]),
            "INVALID_PARAMETER_VALUE",
            "config.served_entities[0].external_model.provider: 'nope' is not a supported provider",
        ),
        (
            create_body(
                "x",
                vec![
                    json!({"external_model": {"provider": "amazon-bedrock", "name": "m", "task": "llm/v1/chat", "amazon_bedrock_config": {"aws_region": "us-east-1", "bedrock_provider": "meta", "instance_profile_arn": "arn"}}}),
                ],
            ),
            "INVALID_PARAMETER_VALUE",
            "bedrock_provider: 'meta' is not one of",
        ),
        (
            create_body(
                "x",
                vec![
                    json!({"external_model": {"provider": "google-cloud-vertex-ai", "name": "gemini", "task": "llm/v1/chat", "google_cloud_vertex_ai_config": {"region": "us", "private_key": KEY}}}),
                ],
            ),
            "INVALID_PARAMETER_VALUE",
            "google_cloud_vertex_ai_config.project_id: is required",
        ),
        (
            create_body(
                "x",
                vec![
                    json!({"external_model": {"provider": "custom", "name": "m", "task": "llm/v1/chat", "custom_provider_config": {"custom_provider_url": "http://localhost:1"}}}),
                ],
            ),
            "INVALID_PARAMETER_VALUE",
            "custom_provider_config.api_key_auth: one of api_key_auth or bearer_token_auth",
        ),
        (
            create_body("x", vec![ok.clone(), json!({"entity_name": "main.default.model", "entity_version": "1"})]),
            "INVALID_PARAMETER_VALUE",
            "cannot mix external models",
        ),
        (
            create_body(
                "x",
                vec![
                    json!({"external_model": {"provider": "openai", "name": "m", "task": "llm/v1/chat", "openai_config": {"openai_api_key": "{{secrets/bad scope/k}}"}}}),
                ],
            ),
            "INVALID_PARAMETER_VALUE",
            "secret reference scope",
        ),
        (
            json!({"name": "x", "config": {"served_entities": [{"bogus": 1}]}}),
            "INVALID_PARAMETER_VALUE",
            "config.served_entities[0].bogus: unknown field `bogus`",
        ),
        (
            json!({"name": "x", "config": {"served_entities": [ok.clone()]}, "ai_gateway": {"rate_limits": [{"renewal_period": "hour", "calls": 1}]}}),
            "INVALID_PARAMETER_VALUE",
            "ai_gateway.rate_limits[0].renewal_period",
        ),
        (
            json!({"name": "x", "config": {"served_entities": [ok.clone()]}, "tags": [{"key": "a"}, {"key": "a"}]}),
            "INVALID_PARAMETER_VALUE",
            "duplicate tag key",
        ),
        (json!({"name": 5}), "INVALID_PARAMETER_VALUE", "name: invalid type"),
    ];
    for (body, code, fragment) in cases {
        let got = t.post(SE, body.clone()).await;
        assert_error(&got, StatusCode::BAD_REQUEST, code, fragment);
    }
    // Malformed JSON.
    let resp = t.http.post(format!("{}{SE}", t.base)).bearer_auth(&t.token).body("{\"name\": ").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error_code"], "BAD_REQUEST");
    assert!(body["message"].as_str().unwrap().contains("line 1 column"), "{body}");
    assert_eq!(t.get(SE).await.1, json!({"endpoints": []}), "nothing was stored");
}

#[tokio::test]
async fn duplicate_and_missing_endpoints() {
    let t = ready_server().await;
    let body = create_body("dup", vec![openai_entity("gpt-4o", KEY)]);
    assert_eq!(t.post(SE, body.clone()).await.0, StatusCode::OK);
    assert_error(&t.post(SE, body).await, StatusCode::CONFLICT, "RESOURCE_ALREADY_EXISTS", "'dup' already exists");
    assert_error(
        &t.get(&format!("{SE}/ghost")).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_DOES_NOT_EXIST",
        "Endpoint with name 'ghost' does not exist.",
    );
    assert_error(
        &t.call(Method::DELETE, &format!("{SE}/ghost"), None).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_DOES_NOT_EXIST",
        "ghost",
    );
    assert_error(
        &t.put(&format!("{SE}/ghost/config"), json!({"served_entities": [openai_entity("m", KEY)]})).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_DOES_NOT_EXIST",
        "ghost",
    );
}

#[tokio::test]
async fn update_keeps_old_version_serving_and_rejects_a_second_update() {
    let t = TestServer::start_with(|c| c.deploy_delay = Duration::from_millis(400)).await;
    t.secret("llm", "openai", "sk-test-value").await;
    t.post(SE, create_body("chat", vec![openai_entity("gpt-4o", KEY)])).await;
    t.wait_settled("chat").await;

    let (s, e) = t.put(&format!("{SE}/chat/config"), json!({"served_entities": [openai_entity("gpt-4.1", KEY)]})).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["state"], json!({"ready": "READY", "config_update": "IN_PROGRESS"}), "v1 keeps serving");
    assert_eq!(e["config"]["config_version"], 1);
    assert_eq!(e["pending_config"]["config_version"], 2);
    assert_eq!(e["pending_config"]["served_entities"][0]["name"], "gpt-4-1");

    let second = t.put(&format!("{SE}/chat/config"), json!({"served_entities": [openai_entity("o3", KEY)]})).await;
    assert_error(&second, StatusCode::CONFLICT, "RESOURCE_CONFLICT", "in progress");

    let e = t.wait_settled("chat").await;
    assert_eq!(e["config"]["config_version"], 2);
    assert_eq!(e["state"]["config_update"], "NOT_UPDATING");
    let (_, v) = t.get(&format!("{SE}/chat/config-versions")).await;
    let statuses: Vec<(i64, &str)> = v["config_versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["config_version"].as_i64().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses, vec![(2, "ACTIVE"), (1, "SUPERSEDED")]);
}

#[tokio::test]
async fn failed_update_reports_build_logs_and_old_config_keeps_serving() {
    let t = ready_server().await;
    t.post(SE, create_body("chat", vec![openai_entity("gpt-4o", KEY)])).await;
    t.wait_settled("chat").await;
    let (s, _) = t
        .put(
            &format!("{SE}/chat/config"),
            json!({"served_entities": [openai_entity("gpt-5", "{{secrets/llm/missing}}")]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let e = t.wait_settled("chat").await;
    assert_eq!(e["state"], json!({"ready": "READY", "config_update": "UPDATE_FAILED"}));
    assert_eq!(e["config"]["config_version"], 1);
    let (_, logs) = t.get(&format!("{SE}/chat/served-models/gpt-5/build-logs")).await;
    let logs = logs["logs"].as_str().unwrap();
    assert!(logs.contains("[gpt-5] ERROR secret {{secrets/llm/missing}} referenced by external_model.openai_config.openai_api_key does not exist"), "{logs}");
    assert!(!logs.contains("sk-test-value"));
    // After a failure a new update is allowed.
    let (s, _) = t.put(&format!("{SE}/chat/config"), json!({"served_entities": [openai_entity("gpt-5", KEY)]})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(t.wait_settled("chat").await["config"]["config_version"], 3);
}

#[tokio::test]
async fn failed_create_stays_not_ready() {
    let t = TestServer::start().await;
    t.post(SE, create_body("broken", vec![openai_entity("gpt-4o", "{{secrets/none/here}}")])).await;
    let e = t.wait_settled("broken").await;
    assert_eq!(e["state"], json!({"ready": "NOT_READY", "config_update": "UPDATE_FAILED"}));
    // A registered model that does not exist is refused when the config is submitted.
    let got =
        t.post(SE, create_body("uc", vec![json!({"entity_name": "main.default.ads", "entity_version": "3"})])).await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
        "config.served_entities[0].entity_name: registered model 'main.default.ads' does not exist",
    );
    assert_eq!(t.get(&format!("{SE}/uc")).await.0, StatusCode::NOT_FOUND, "nothing was created");
}

#[tokio::test]
async fn cannot_switch_between_external_and_other_entities() {
    let t = ready_server().await;
    t.post(SE, create_body("chat", vec![openai_entity("gpt-4o", KEY)])).await;
    t.wait_settled("chat").await;
    let got = t
        .put(&format!("{SE}/chat/config"), json!({"served_entities": [{"entity_name": "m", "entity_version": "1"}]}))
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "cannot switch between external models");
    assert_eq!(t.get(&format!("{SE}/chat")).await.1["state"]["config_update"], "NOT_UPDATING", "nothing changed");
}

#[tokio::test]
async fn rollback_deploys_an_earlier_version_as_a_new_one() {
    let t = ready_server().await;
    t.post(SE, create_body("chat", vec![openai_entity("gpt-4o", KEY)])).await;
    t.wait_settled("chat").await;
    t.put(&format!("{SE}/chat/config"), json!({"served_entities": [openai_entity("o3", KEY)]})).await;
    t.wait_settled("chat").await;
    let (s, _) = t.post(&format!("{SE}/chat/config:rollback"), json!({"config_version": 1})).await;
    assert_eq!(s, StatusCode::OK);
    let e = t.wait_settled("chat").await;
    assert_eq!(e["config"]["config_version"], 3);
    assert_eq!(e["config"]["served_entities"][0]["name"], "gpt-4o");
    assert_error(
        &t.post(&format!("{SE}/chat/config:rollback"), json!({"config_version": 9})).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_DOES_NOT_EXIST",
        "no config version 9",
    );
}

#[tokio::test]
async fn stop_and_start() {
    let t = ready_server().await;
    t.post(SE, create_body("chat", vec![openai_entity("gpt-4o", KEY)])).await;
    t.wait_settled("chat").await;
    let (s, e) = t.post(&format!("{SE}/chat/config:stop"), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(e["state"]["ready"], "NOT_READY");
    assert_eq!(e["stopped"], true);
    assert_eq!(e["config"]["served_entities"][0]["state"]["deployment"], "DEPLOYMENT_ABORTED");
    let (_, logs) = t.get(&format!("{SE}/chat/served-models/gpt-4o/logs")).await;
    assert!(logs["logs"].as_str().unwrap().contains("endpoint stopped"), "{logs}");
    let (_, e) = t.call(Method::POST, &format!("{SE}/chat/config:start"), None).await;
    assert_eq!(e["state"]["ready"], "READY");
    assert_eq!(e["stopped"], false);
}

#[tokio::test]
async fn gateway_rate_limits_tags_and_notifications() {
    let t = ready_server().await;
    t.post(SE, create_body("chat", vec![openai_entity("gpt-4o", KEY)])).await;
    let gw = json!({"rate_limits": [{"renewal_period": "minute", "tokens": "5000", "key": "user_group", "principal": "ml"}],
                    "fallback_config": {"enabled": true}});
    // A limit naming a group that does not exist is refused, and nothing is stored.
    let got = t.put(&format!("{SE}/chat/ai-gateway"), gw.clone()).await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
        "rate_limits[0].principal: no group named 'ml'",
    );
    let (_, e) = t.get(&format!("{SE}/chat")).await;
    assert!(e.get("ai_gateway").is_none(), "{e}");
    for (kind, body) in [("Groups", json!({"displayName": "ml"}))] {
        create_principal(&t, kind, body).await;
    }
    let sp = json!({"rate_limits": [{"renewal_period": "minute", "calls": 1, "key": "service_principal", "principal": "ghost-app"}]});
    let got = t.put(&format!("{SE}/chat/ai-gateway"), sp).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "no service principal named 'ghost-app'");
    let (s, body) = t.put(&format!("{SE}/chat/ai-gateway"), gw).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["rate_limits"][0]["tokens"], 5000);
    assert_error(
        &t.put(&format!("{SE}/chat/ai-gateway"), json!({"guardrails": {"input": {"pii": {"behavior": "HIDE"}}}})).await,
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
        "guardrails.input.pii.behavior",
    );
    assert_eq!(
        t.get(&format!("{SE}/chat")).await.1["ai_gateway"]["fallback_config"]["enabled"],
        true,
        "failed put changed nothing"
    );

    let (s, body) = t
        .put(&format!("{SE}/chat/rate-limits"), json!({"rate_limits": [{"calls": 5, "renewal_period": "minute"}]}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["rate_limits"][0]["calls"], 5);

    let (_, tags) = t
        .call(
            Method::PATCH,
            &format!("{SE}/chat/tags"),
            Some(json!({"add_tags": [{"key": "team", "value": "a"}, {"key": "x", "value": "1"}]})),
        )
        .await;
    assert_eq!(tags["tags"].as_array().unwrap().len(), 2);
    let (_, tags) = t
        .call(
            Method::PATCH,
            &format!("{SE}/chat/tags"),
            Some(json!({"add_tags": [{"key": "team", "value": "b"}], "delete_tags": ["x"]})),
        )
        .await;
    assert_eq!(tags, json!({"tags": [{"key": "team", "value": "b"}]}));

    let (s, n) = t
        .call(
            Method::PATCH,
            &format!("{SE}/chat/notifications"),
            Some(json!({"email_notifications": {"on_update_success": ["a@b.c"]}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(n["email_notifications"]["on_update_success"][0], "a@b.c");
    assert_eq!(t.get(&format!("{SE}/chat")).await.1["email_notifications"]["on_update_success"][0], "a@b.c");
}

#[tokio::test]
async fn openapi_logs_and_delete() {
    let t = ready_server().await;
    t.post(SE, create_body("chat", vec![openai_entity("gpt-4o", KEY)])).await;
    t.wait_settled("chat").await;
    let (s, doc) = t.get(&format!("{SE}/chat/openapi")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.0.3");
    let op = &doc["paths"]["/serving-endpoints/chat/invocations"]["post"];
    assert!(op.is_object(), "{doc}");
    assert_eq!(doc["components"]["schemas"]["Request"]["required"], json!(["messages"]));
    assert!(doc["components"]["schemas"]["Response"]["properties"]["choices"].is_object());

    let (_, logs) = t.get(&format!("{SE}/chat/served-models/gpt-4o/logs")).await;
    assert!(logs["logs"].as_str().unwrap().contains("config version 1 is serving"), "{logs}");
    assert_error(
        &t.get(&format!("{SE}/chat/served-models/nope/logs")).await,
        StatusCode::NOT_FOUND,
        "RESOURCE_DOES_NOT_EXIST",
        "Served model 'nope'",
    );

    let (s, body) = t.call(Method::DELETE, &format!("{SE}/chat"), None).await;
    assert_eq!((s, body), (StatusCode::OK, json!({})));
    assert_eq!(t.get(&format!("{SE}/chat")).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn plaintext_credentials_are_never_echoed_nor_stored_in_clear() {
    let t = TestServer::start().await;
    let plaintext = "sk-plaintext-never-shown-42";
    let body = create_body(
        "p",
        vec![json!({"external_model": {"provider": "openai", "name": "gpt-4o", "task": "llm/v1/chat",
        "openai_config": {"openai_api_key_plaintext": plaintext}}})],
    );
    let (s, created) = t.post(SE, body).await;
    assert_eq!(s, StatusCode::OK);
    let ready = t.wait_settled("p").await;
    assert_eq!(ready["state"]["ready"], "READY", "{ready}");
    let (_, versions) = t.get(&format!("{SE}/p/config-versions")).await;
    let (_, list) = t.get(SE).await;
    for v in [&created, &ready, &versions, &list] {
        let text = v.to_string();
        assert!(!text.contains(plaintext) && !text.contains("plaintext"), "{text}");
    }
    for entry in std::fs::read_dir(t.data_dir()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(plaintext.len()).any(|w| w == plaintext.as_bytes()), "plaintext found on disk");
    }
}

#[tokio::test]
async fn twenty_concurrent_creates_of_one_name() {
    let t = ready_server().await;
    let body = create_body("race", vec![openai_entity("gpt-4o", KEY)]);
    let calls = (0..20).map(|_| t.post(SE, body.clone()));
    let results = futures::future::join_all(calls).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let dup = results
        .iter()
        .filter(|(s, b)| *s == StatusCode::CONFLICT && b["error_code"] == "RESOURCE_ALREADY_EXISTS")
        .count();
    assert_eq!((ok, dup), (1, 19), "{results:?}");
    let (_, list) = t.get(SE).await;
    assert_eq!(list["endpoints"].as_array().unwrap().len(), 1);
    let e = t.wait_settled("race").await;
    let (_, v) = t.get(&format!("{SE}/race/config-versions")).await;
    assert_eq!(v["config_versions"].as_array().unwrap().len(), 1);
    assert_eq!(e["state"]["ready"], "READY");
}

#[tokio::test]
async fn applying_the_same_config_twice_makes_one_version() {
    let t = ready_server().await;
    let (s, e) = t.post(SE, create_body("same", vec![openai_entity("gpt-4o", KEY)])).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    t.wait_settled("same").await;
    let config = json!({"served_entities": [openai_entity("gpt-4o", KEY)]});
    for _ in 0..2 {
        let (s, e) = t.put(&format!("{SE}/same/config"), config.clone()).await;
        assert_eq!(s, StatusCode::OK, "{e}");
        t.wait_settled("same").await;
    }
    let (_, versions) = t.get(&format!("{SE}/same/config-versions")).await;
    assert_eq!(versions["config_versions"].as_array().unwrap().len(), 1, "the same config is no change: {versions}");

    // With a plaintext key: the same key is no change, another key is.
    let plain = |key: &str| {
        json!({"served_entities": [{"name": "p", "external_model": {"provider": "openai", "name": "gpt-4o",
            "task": "llm/v1/chat", "openai_config": {"openai_api_key_plaintext": key}}}]})
    };
    for (key, expected) in [("sk-one", 2), ("sk-one", 2), ("sk-two", 3)] {
        let (s, e) = t.put(&format!("{SE}/same/config"), plain(key)).await;
        assert_eq!(s, StatusCode::OK, "{e}");
        let e = t.wait_settled("same").await;
        assert_eq!(e["config"]["config_version"], expected, "{key}: {e}");
    }
}

#[tokio::test]
async fn settings_changes_are_recorded_warned_about_and_can_be_undone() {
    let t = ready_server().await;
    let limits = json!([{"key": "endpoint", "calls": 10, "renewal_period": "minute"}]);
    let mut body = create_body("hist", vec![openai_entity("gpt-4o", KEY)]);
    body["ai_gateway"] = json!({"rate_limits": limits});
    let (s, e) = t.post(SE, body).await;
    assert_eq!(s, StatusCode::OK, "{e}");

    // Replacing ai_gateway with a block that lacks rate_limits removes them, and says so.
    let resp = t
        .http
        .put(format!("{}{SE}/hist/ai-gateway", t.base))
        .bearer_auth(&t.token)
        .json(&json!({"usage_tracking_config": {"enabled": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let warning = resp.headers().get("warning").expect("a warning").to_str().unwrap().to_string();
    assert!(warning.starts_with("299 modelgate") && warning.contains("removed rate_limits"), "{warning}");

    let (_, h) = t.get(&format!("{SE}/hist/settings-history")).await;
    let change = h["changes"][0].clone();
    assert_eq!(change["field"], "ai_gateway", "{h}");
    assert_eq!(change["before"]["rate_limits"][0]["calls"], 10, "{change}");
    assert!(change["after"].get("rate_limits").is_none(), "{change}");
    assert_eq!(change["changed_by"], "admin");

    let (s, e) = t.post(&format!("{SE}/hist/settings:restore"), json!({"change_id": change["change_id"]})).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["ai_gateway"]["rate_limits"][0]["calls"], 10, "restored: {e}");

    // Tags and permissions too.
    let (s, _) = t
        .call(Method::PATCH, &format!("{SE}/hist/tags"), Some(json!({"add_tags": [{"key": "team", "value": "ml"}]})))
        .await;
    assert_eq!(s, StatusCode::OK);
    create_principal(&t, "Users", json!({"userName": "dev@example.com"})).await;
    let (_, ep) = t.get(&format!("{SE}/hist")).await;
    let perms = format!("/api/2.0/permissions/serving-endpoints/{}", ep["id"].as_str().unwrap());
    let grant = json!({"access_control_list": [{"user_name": "dev@example.com", "permission_level": "CAN_QUERY"}]});
    let (s, _) = t.call(Method::PATCH, &perms, Some(grant)).await;
    assert_eq!(s, StatusCode::OK);
    let (_, h) = t.get(&format!("{SE}/hist/settings-history")).await;
    let fields: Vec<&str> = h["changes"].as_array().unwrap().iter().map(|c| c["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["permissions", "tags", "ai_gateway", "ai_gateway"], "{h}");
    let permissions_change = h["changes"][0]["change_id"].clone();
    let (s, _) = t.post(&format!("{SE}/hist/settings:restore"), json!({"change_id": permissions_change})).await;
    assert_eq!(s, StatusCode::OK);
    let (_, acl) = t.get(&perms).await;
    assert!(!acl.to_string().contains("dev@example.com"), "the grant is undone: {acl}");

    let got = t.post(&format!("{SE}/hist/settings:restore"), json!({"change_id": 9999})).await;
    assert_error(&got, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", "no settings change 9999");
}
