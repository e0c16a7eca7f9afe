//! `modelgate bundle` end to end: a bundle in a temporary git repository, a real server with a
//! fake OpenAI behind it.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::*;

fn write(root: &Path, file: &str, text: &str) {
    let path = root.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn chat(model: &str) -> String {
    format!(
        r#"{{"name": "docs-chat", "config": {{"served_entities": [{{"name": "main", "external_model": {{"provider": "openai", "name": "{model}",
            "task": "llm/v1/chat", "openai_config": {{"openai_api_key": "{{{{secrets/llm/openai}}}}"}}}}}}]}},
            "tags": [{{"key": "team", "value": "ml"}}]}}"#
    )
}

const EMBED: &str = r#"name: docs-embed
config:
  served_entities:
    - name: main
      external_model:
        provider: openai
        name: text-embedding-3-small
        task: llm/v1/embeddings
        openai_config:
          openai_api_key: "{{secrets/llm/openai}}"
ai_gateway:
  rate_limits:
    - {calls: 100, renewal_period: minute, key: endpoint}
permissions:
  - {level: CAN_QUERY, group_name: data}
"#;

#[test]
fn a_bundle_validates_plans_deploys_detects_drift_prunes_and_destroys() {
    let fake = FakeOpenAi::start(false);
    let (env, server) = (&fake.env, &fake.server);
    let repo = env.dir.path().join("endpoints-repo");
    std::fs::create_dir_all(&repo).unwrap();
    assert!(Command::new("git").arg("init").arg("-q").arg(&repo).status().unwrap().success());
    let run = |args: &[&str]| -> Output {
        let mut all = vec!["bundle"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--dir", repo.to_str().unwrap()]);
        cli(&server.host, Some(ADMIN), &all, None, &env.config())
    };
    let code = |o: &Output| o.status.code().unwrap_or(-1);
    ok(cli(&server.host, Some(ADMIN), &["secrets", "create-scope", "llm"], None, &env.config()));
    ok(cli(&server.host, Some(ADMIN), &["secrets", "put-secret", "llm", "openai"], Some("sk-bundle"), &env.config()));
    ok(cli(&server.host, Some(ADMIN), &["groups", "create", "data"], None, &env.config()));

    write(&repo, "configs/dev/chat.json", &chat("gpt-4o"));
    write(&repo, "configs/dev/embed.yaml", EMBED);
    let valid = run(&["validate", "-t", "dev"]);
    assert_eq!(code(&valid), 0, "{:?}", text(&valid));

    // On an empty server everything is a create, and changes pending exit 2.
    let planned = run(&["plan", "-t", "dev"]);
    let (out, err) = text(&planned);
    assert_eq!(code(&planned), 2, "{out}{err}");
    assert!(out.contains("create docs-chat") && out.contains("create docs-embed"), "{out}");

    let deployed = run(&["deploy", "-t", "dev", "--auto-approve"]);
    assert_eq!(code(&deployed), 0, "{:?}", text(&deployed));
    let got = ok(cli(&server.host, Some(ADMIN), &["serving-endpoints", "get", "docs-embed"], None, &env.config()));
    assert!(got.contains("\"READY\"") && got.contains("endpoints-repo:dev"), "{got}");
    let acl = ok(cli(
        &server.host,
        Some(ADMIN),
        &["permissions", "get", "serving-endpoints", "docs-embed"],
        None,
        &env.config(),
    ));
    assert!(
        acl.lines().any(|l| l.contains("data") && l.contains("CAN_QUERY")),
        "the bundle's permissions are applied: {acl}"
    );

    // Deployed: nothing to do, exit 0; deploying again changes nothing.
    let again = run(&["plan", "-t", "dev"]);
    assert_eq!(code(&again), 0, "{:?}", text(&again));
    assert!(text(&again).0.contains("unchanged docs-chat") && text(&again).0.contains("unchanged docs-embed"));
    assert_eq!(code(&run(&["deploy", "-t", "dev", "--auto-approve"])), 0);
    let versions = ok(cli(
        &server.host,
        Some(ADMIN),
        &["serving-endpoints", "config-versions", "docs-chat", "-o", "json"],
        None,
        &env.config(),
    ));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&versions).unwrap()["config_versions"].as_array().unwrap().len(),
        1
    );

    // One file edited: exactly that update, field by field.
    write(&repo, "configs/dev/chat.json", &chat("gpt-4o-mini"));
    let edited = run(&["plan", "-t", "dev", "-o", "json"]);
    assert_eq!(code(&edited), 2);
    let steps: serde_json::Value = serde_json::from_str(&text(&edited).0).unwrap();
    let chat_step = steps.as_array().unwrap().iter().find(|s| s["name"] == "docs-chat").unwrap();
    assert_eq!(chat_step["action"], "update");
    assert_eq!(
        chat_step["changes"],
        serde_json::json!(["config.served_entities[0].external_model.name: \"gpt-4o\" → \"gpt-4o-mini\""]),
        "{steps}"
    );
    assert_eq!(steps.as_array().unwrap().iter().find(|s| s["name"] == "docs-embed").unwrap()["action"], "unchanged");
    assert_eq!(code(&run(&["deploy", "-t", "dev", "--auto-approve"])), 0);
    assert_eq!(code(&run(&["plan", "-t", "dev"])), 0);

    // A change made on the server out of band shows as drift.
    let oob = r#"{"served_entities": [{"name": "main", "external_model": {"provider": "openai", "name": "gpt-4.1", "task": "llm/v1/chat", "openai_config": {"openai_api_key": "{{secrets/llm/openai}}"}}}]}"#;
    ok(cli(
        &server.host,
        Some(ADMIN),
        &["serving-endpoints", "update-config", "docs-chat", "--json", oob],
        None,
        &env.config(),
    ));
    let drifted = run(&["plan", "-t", "dev"]);
    assert!(
        text(&drifted).0.contains("drift: config changed on the server since the last deploy"),
        "{:?}",
        text(&drifted)
    );
    assert_eq!(code(&run(&["deploy", "-t", "dev", "--auto-approve"])), 0, "deploy puts the bundle's config back");

    // An endpoint of the same name made elsewhere is not taken over; --prune only deletes owned ones.
    ok(cli(
        &server.host,
        Some(ADMIN),
        &["serving-endpoints", "create", "manual", "--json", &chat("gpt-4o").replace("docs-chat", "manual")],
        None,
        &env.config(),
    ));
    std::fs::remove_file(repo.join("configs/dev/embed.yaml")).unwrap();
    let pruning = run(&["plan", "-t", "dev", "--prune"]);
    assert!(
        text(&pruning).0.contains("delete docs-embed") && !text(&pruning).0.contains("manual"),
        "{:?}",
        text(&pruning)
    );
    assert_eq!(code(&run(&["deploy", "-t", "dev", "--prune", "--auto-approve"])), 0);
    let listed = ok(cli(&server.host, Some(ADMIN), &["serving-endpoints", "list"], None, &env.config()));
    assert!(!listed.contains("docs-embed") && listed.contains("manual"), "{listed}");
    write(&repo, "configs/dev/manual.json", &chat("gpt-4o").replace("docs-chat", "manual"));
    let taken = run(&["plan", "-t", "dev"]);
    assert!(
        code(&taken) == 1 && text(&taken).1.contains("exists and is not managed by this bundle"),
        "{:?}",
        text(&taken)
    );
    std::fs::remove_file(repo.join("configs/dev/manual.json")).unwrap();

    // A failing deployment stops with the build log's reason.
    write(
        &repo,
        "configs/dev/broken.json",
        &chat("gpt-4o").replace("docs-chat", "docs-broken").replace("secrets/llm/openai", "secrets/llm/missing"),
    );
    let failed = run(&["deploy", "-t", "dev", "--auto-approve"]);
    assert_eq!(code(&failed), 1);
    assert!(
        text(&failed).1.contains("{{secrets/llm/missing}}") && text(&failed).1.contains("does not exist"),
        "{:?}",
        text(&failed)
    );
    std::fs::remove_file(repo.join("configs/dev/broken.json")).unwrap();

    let summary = ok(run(&["summary", "-t", "dev"]));
    assert!(summary.contains("docs-chat") && summary.contains("/serving-endpoints/docs-chat/invocations"), "{summary}");
    assert_eq!(code(&run(&["destroy", "-t", "dev", "--auto-approve"])), 0);
    let listed = ok(cli(&server.host, Some(ADMIN), &["serving-endpoints", "list"], None, &env.config()));
    assert!(!listed.contains("docs-chat") && !listed.contains("docs-broken") && listed.contains("manual"), "{listed}");
}

#[test]
fn validate_names_every_problem_with_its_file_and_field() {
    let env = Env::new();
    let repo = env.dir.path().join("repo");
    let entity = |extra: &str| {
        format!(
            r#"{{"name": "a", "external_model": {{"provider": "openai", "name": "gpt-4o", "task": "llm/v1/chat", "openai_config": {{"openai_api_key": "{{{{secrets/llm/openai}}}}"{extra}}}}}}}"#
        )
    };
    let files = [
        ("bad-name.json", format!(r#"{{"name": "has space", "config": {{"served_entities": [{}]}}}}"#, entity(""))),
        (
            "bad-field.json",
            format!(r#"{{"name": "f", "config": {{"served_entities": [{}]}}}}"#, entity(r#", "colour": "red""#)),
        ),
        (
            "bad-secret.json",
            format!(
                r#"{{"name": "s", "config": {{"served_entities": [{}]}}}}"#,
                entity("").replace("{{secrets/llm/openai}}", "sk-literal")
            ),
        ),
        (
            "bad-traffic.json",
            format!(
                r#"{{"name": "t", "config": {{"served_entities": [{}], "traffic_config": {{"routes": [{{"served_entity_name": "a", "traffic_percentage": 60}}]}}}}}}"#,
                entity("")
            ),
        ),
        (
            "bad-limit.json",
            format!(
                r#"{{"name": "l", "config": {{"served_entities": [{}]}}, "ai_gateway": {{"rate_limits": [{{"calls": 5, "renewal_period": "hour"}}]}}}}"#,
                entity("")
            ),
        ),
        (
            "bad-type.json",
            format!(r#"{{"name": "y", "config": {{"served_entities": [{}]}}, "tags": {{"team": "ml"}}}}"#, entity("")),
        ),
        (
            "bad-permission.json",
            format!(
                r#"{{"name": "p", "config": {{"served_entities": [{}]}}, "permissions": [{{"level": "CAN_EAT", "group_name": "data"}}]}}"#,
                entity("")
            ),
        ),
        ("not-json.json", "{\"name\": ".to_string()),
    ];
    for (name, text) in &files {
        write(&repo, &format!("configs/dev/{name}"), text);
    }
    let err = validation_refused(
        "http://127.0.0.1:9",
        None,
        &repo,
        &env,
        &[
            "configs/dev/bad-name.json:name: invalid endpoint name",
            "configs/dev/bad-field.json:config.served_entities[0].external_model.openai_config.colour: unknown field",
            "configs/dev/bad-secret.json:config.served_entities[0].external_model.openai_config.openai_api_key:",
            "configs/dev/bad-traffic.json:config.traffic_config.routes:",
            "configs/dev/bad-limit.json:ai_gateway.rate_limits[0].renewal_period:",
            "configs/dev/bad-type.json:tags:",
            "configs/dev/bad-permission.json:permissions[0].level:",
            "configs/dev/not-json.json: line 1",
        ],
    );
    assert_eq!(err.lines().count(), files.len(), "one line per problem:\n{err}");
}

#[test]
fn a_databricks_asset_bundle_deploys_with_its_targets_variables_and_includes() {
    let fake = FakeOpenAi::start(true);
    let (env, server) = (&fake.env, &fake.server);
    ok(cli(&server.host, Some(ADMIN), &["groups", "create", "data"], None, &env.config()));
    let repo = env.dir.path().join("dab");
    write(
        &repo,
        "databricks.yml",
        &format!(
            r#"bundle:
  name: serving
variables:
  model:
    description: the chat model
    default: gpt-4o
include:
  - resources/*.yml
targets:
  dev:
    default: true
    workspace:
      host: {host}
    variables:
      model: gpt-4o-mini
  prod:
    workspace:
      host: https://gw.example.com
"#,
            host = server.host
        ),
    );
    write(
        &repo,
        "resources/chat.yml",
        r#"resources:
  model_serving_endpoints:
    chat:
      name: ${bundle.target}-chat
      config:
        served_entities:
          - name: main
            external_model:
              provider: openai
              name: ${var.model}
              task: llm/v1/chat
              openai_config:
                openai_api_key: "{{secrets/llm/openai}}"
      tags:
        - {key: bundle, value: "${bundle.name}"}
      permissions:
        - {level: CAN_QUERY, group_name: data}
"#,
    );
    // No --host and no MODELGATE_HOST: the default target's workspace.host is the server.
    let run = |args: &[&str]| -> Output {
        let mut cmd = Command::new(BIN);
        cmd.arg("bundle").args(args).args(["--dir", repo.to_str().unwrap()]);
        cmd.env("MODELGATE_TOKEN", ADMIN).env("MODELGATE_CONFIG_FILE", env.config());
        for k in
            ["MODELGATE_HOST", "DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE", "MODELGATE_PROFILE"]
        {
            cmd.env_remove(k);
        }
        cmd.output().unwrap()
    };
    let code = |o: &Output| o.status.code().unwrap_or(-1);
    assert_eq!(code(&run(&["validate"])), 0, "{:?}", text(&run(&["validate"])));
    let planned = run(&["plan"]);
    assert_eq!(code(&planned), 2, "{:?}", text(&planned));
    assert!(text(&planned).0.contains("create dev-chat"), "{:?}", text(&planned));
    assert_eq!(code(&run(&["deploy", "--auto-approve"])), 0);
    let got = ok(cli(&server.host, Some(ADMIN), &["serving-endpoints", "get", "dev-chat"], None, &env.config()));
    assert!(
        got.contains("gpt-4o-mini") && got.contains("serving:dev"),
        "the target's variable and the bundle's name: {got}"
    );
    assert_eq!(code(&run(&["plan"])), 0);
    // --var overrides the target's value: exactly that change.
    let overridden = run(&["plan", "--var", "model=gpt-4o"]);
    assert_eq!(code(&overridden), 2);
    assert!(
        text(&overridden).0.contains("external_model.name: \"gpt-4o-mini\" → \"gpt-4o\""),
        "{:?}",
        text(&overridden)
    );

    // An undefined variable is named with its file and field.
    write(
        &repo,
        "resources/typo.yml",
        "resources:\n  model_serving_endpoints:\n    typo:\n      name: ${var.modle}\n      config: {served_entities: []}\n",
    );
    let bad = run(&["validate"]);
    assert_eq!(code(&bad), 1);
    assert!(
        text(&bad)
            .1
            .contains("resources/typo.yml:resources.model_serving_endpoints.typo.name: ${var.modle} is not defined"),
        "{:?}",
        text(&bad)
    );
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn the_gitops_example_deploys_with_its_ci_script() {
    let fake = FakeOpenAi::start(true);
    let (env, server) = (&fake.env, &fake.server);
    let repo = env.dir.path().join("gitops");
    copy_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/gitops"), &repo);
    let bin_dir = Path::new(BIN).parent().unwrap();
    let ci = |args: &[&str]| -> Output {
        Command::new(repo.join("ci.sh"))
            .args(args)
            .env("PATH", format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default()))
            .env("MODELGATE_HOST", &server.host)
            .env("MODELGATE_TOKEN", ADMIN)
            .env("MODELGATE_CONFIG_FILE", env.config())
            .output()
            .unwrap()
    };
    let planned = ci(&["dev"]);
    assert!(planned.status.success() && text(&planned).0.contains("changes pending for dev"), "{:?}", text(&planned));
    let deployed = ci(&["dev", "deploy"]);
    assert!(deployed.status.success(), "{:?}", text(&deployed));
    assert!(
        text(&deployed).0.contains("chat-dev") && text(&deployed).0.contains("embeddings-dev"),
        "{:?}",
        text(&deployed)
    );
    let again = ci(&["dev", "deploy"]);
    assert!(again.status.success() && text(&again).0.contains("no changes for dev"), "{:?}", text(&again));
    let prod = ci(&["prod"]);
    assert!(prod.status.success() && text(&prod).0.contains("create chat"), "{:?}", text(&prod));
}

#[test]
fn validate_checks_what_the_files_name_against_the_server() {
    let env = Env::new();
    let server = spawn_server(&env.data(), &[("MODELGATE_ADMIN_TOKEN", ADMIN)]);
    ok(cli(&server.host, Some(ADMIN), &["secrets", "create-scope", "llm"], None, &env.config()));
    ok(cli(&server.host, Some(ADMIN), &["secrets", "put-secret", "llm", "openai"], Some("sk-online"), &env.config()));
    ok(cli(
        &server.host,
        Some(ADMIN),
        &["policy", "set", "--json", r#"{"required_tags": ["cost_center"]}"#],
        None,
        &env.config(),
    ));
    let repo = env.dir.path().join("repo");
    let body = r#"{"name": "online", "budget_policy_id": "no-such-policy",
        "config": {"served_entities": [{"name": "a", "external_model": {"provider": "openai", "name": "gpt-4o", "task": "llm/v1/chat",
            "openai_config": {"openai_api_key": "{{secrets/llm/missing}}"}}}]},
        "ai_gateway": {"rate_limits": [{"key": "user_group", "principal": "ghosts", "calls": 5, "renewal_period": "minute"}]},
        "permissions": [{"level": "CAN_QUERY", "user_name": "nobody@example.com"}]}"#;
    write(&repo, "configs/dev/online.json", body);
    validation_refused(
        &server.host,
        Some(ADMIN),
        &repo,
        &env,
        &[
            "configs/dev/online.json:tags: workspace policy required_tags: the tags cost_center are required",
            "configs/dev/online.json:config.served_entities[0].external_model.openai_config.openai_api_key: {{secrets/llm/missing}}: no secret 'missing' in scope 'llm'",
            "configs/dev/online.json:ai_gateway.rate_limits[0].principal: no principal named 'ghosts' exists",
            "configs/dev/online.json:permissions[0].user_name: 'nobody@example.com' does not exist",
            "configs/dev/online.json:budget_policy_id: no budget policy 'no-such-policy' exists",
        ],
    );
}

#[test]
fn a_bundle_deploys_the_workspace_policy_before_its_endpoints() {
    let fake = FakeOpenAi::start(true);
    let (env, server) = (&fake.env, &fake.server);
    let repo = env.dir.path().join("repo");
    write(
        &repo,
        "workspace-policy.yaml",
        "required_tags: [team]\nenvironments:\n  dev:\n    allowed_models: [gpt-4o]\n",
    );
    write(
        &repo,
        "configs/dev/chat.json",
        &chat("gpt-4o").replace(
            r#"{"key": "team", "value": "ml"}"#,
            r#"{"key": "team", "value": "ml"}, {"key": "environment", "value": "dev"}"#,
        ),
    );
    let run = |args: &[&str]| -> Output {
        let mut all = vec!["bundle"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--dir", repo.to_str().unwrap()]);
        cli(&server.host, Some(ADMIN), &all, None, &env.config())
    };
    let planned = run(&["plan", "-t", "dev"]);
    assert_eq!(planned.status.code(), Some(2));
    assert!(
        text(&planned).0.contains("update workspace-policy") && text(&planned).0.contains("required_tags"),
        "{:?}",
        text(&planned)
    );
    assert_eq!(run(&["deploy", "-t", "dev", "--auto-approve"]).status.code(), Some(0));
    let policy = ok(cli(&server.host, Some(ADMIN), &["policy", "get"], None, &env.config()));
    assert!(policy.contains("\"team\""), "{policy}");
    let again = run(&["plan", "-t", "dev"]);
    assert_eq!(again.status.code(), Some(0), "{:?}", text(&again));
    assert!(text(&again).0.contains("unchanged workspace-policy"));
    // A model the policy does not allow in dev is found by validate, with the server's policy.
    write(
        &repo,
        "configs/dev/chat.json",
        &chat("gpt-4o-mini").replace(
            r#"{"key": "team", "value": "ml"}"#,
            r#"{"key": "team", "value": "ml"}, {"key": "environment", "value": "dev"}"#,
        ),
    );
    let bad = run(&["validate", "-t", "dev"]);
    assert!(
        bad.status.code() == Some(1) && text(&bad).1.contains("workspace policy allowed_models"),
        "{:?}",
        text(&bad)
    );
}

/// Runs `bundle validate -t dev` on `repo` against `host`, expects exit 1 and every `expected`
/// line in its errors; returns them.
fn validation_refused(host: &str, token: Option<&str>, repo: &std::path::Path, env: &Env, expected: &[&str]) -> String {
    let out =
        cli(host, token, &["bundle", "validate", "-t", "dev", "--dir", repo.to_str().unwrap()], None, &env.config());
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for e in expected {
        assert!(err.contains(e), "missing `{e}` in:\n{err}");
    }
    err
}
