//! The `modelgate` binary end to end: `serve` as a child process and the client commands.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

const ENDPOINT: &str = r#"{"name": "chat", "config": {"served_entities": [{"external_model": {"provider": "openai", "name": "gpt-4o-mini", "task": "llm/v1/chat", "openai_config": {"openai_api_key": "{{secrets/llm/openai}}"}}}]}, "tags": [{"key": "team", "value": "ml"}]}"#;

#[test]
fn quickstart_flow_with_the_cli_and_no_secret_leaks() {
    let env = Env::new();
    let secret_value = "sk-cli-secret-value-31337";
    let plaintext_value = "sk-plaintext-cli-4242";
    let server = spawn_server(&env.data(), &[("MODELGATE_ADMIN_TOKEN", ADMIN)]);
    let run = |args: &[&str], stdin: Option<&str>| cli(&server.host, Some(ADMIN), args, stdin, &env.config());
    let mut transcript = String::new();

    transcript += &ok(run(&["secrets", "create-scope", "llm"], None));
    transcript += &ok(run(&["secrets", "put-secret", "llm", "openai"], Some(&format!("{secret_value}\n"))));
    let listed = ok(run(&["secrets", "list-secrets", "llm"], None));
    assert!(listed.contains("openai"), "{listed}");
    transcript += &listed;

    let file = env.dir.path().join("chat.json");
    std::fs::write(&file, ENDPOINT).unwrap();
    let created = ok(run(&["serving-endpoints", "create", "--json", &format!("@{}", file.display())], None));
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    assert_eq!(created["state"]["ready"], "READY", "create waits for NOT_UPDATING: {created}");
    transcript += &created.to_string();

    // A closed pipe (`| head`) ends a command quietly, without a panic.
    let mut piped = Command::new(BIN)
        .args(["serving-endpoints", "list"])
        .env("MODELGATE_HOST", &server.host)
        .env("MODELGATE_TOKEN", ADMIN)
        .env("MODELGATE_CONFIG_FILE", env.config())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(piped.stdout.take());
    let closed = piped.wait_with_output().unwrap();
    let (_, err) = text(&closed);
    assert!(closed.status.success() && !err.contains("panicked"), "{err}");
    let yaml = ok(run(&["serving-endpoints", "get", "chat", "-o", "yaml"], None));
    assert!(yaml.contains("name: chat") && !yaml.trim_start().starts_with('{'), "{yaml}");

    let table = ok(run(&["serving-endpoints", "list"], None));
    assert!(table.contains("chat") && table.contains("READY") && table.contains("llm/v1/chat"), "{table}");
    let as_json = ok(run(&["serving-endpoints", "list", "--output", "json"], None));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&as_json).unwrap()["endpoints"][0]["name"], "chat");

    // A plaintext key in an update is accepted and never printed back.
    let update = format!(
        r#"{{"served_entities": [{{"external_model": {{"provider": "openai", "name": "gpt-4o", "task": "llm/v1/chat", "openai_config": {{"openai_api_key_plaintext": "{plaintext_value}"}}}}}}]}}"#
    );
    let updated = ok(run(&["serving-endpoints", "update-config", "chat", "--json", &update], None));
    assert!(updated.contains("\"config_version\": 2"), "{updated}");
    transcript += &updated;
    transcript += &ok(run(&["serving-endpoints", "config-versions", "chat"], None));
    transcript += &ok(run(&["serving-endpoints", "build-logs", "chat", "gpt-4o"], None));
    transcript += &ok(run(&["serving-endpoints", "logs", "chat", "gpt-4o"], None));
    let got = ok(run(&["serving-endpoints", "get", "chat"], None));
    transcript += &got;
    // `get` output applies back unchanged, and is no new version.
    let exported = env.dir.path().join("exported.json");
    std::fs::write(&exported, &got).unwrap();
    let applied =
        ok(run(&["serving-endpoints", "update-config", "chat", "--json", &format!("@{}", exported.display())], None));
    assert!(applied.contains("\"config_version\": 2"), "{applied}");
    let openapi = ok(run(&["serving-endpoints", "get-open-api", "chat"], None));
    assert!(openapi.contains("\"openapi\": \"3.0.3\""), "{openapi}");

    // Errors print the server's code and message and exit non-zero.
    let bad = run(&["serving-endpoints", "update-config", "chat", "--json", r#"{"served_entities": []}"#], None);
    let (_, err) = text(&bad);
    assert!(!bad.status.success());
    assert!(err.contains("INVALID_PARAMETER_VALUE: served_entities: at least one served entity is required"), "{err}");
    let missing = run(&["serving-endpoints", "get", "ghost"], None);
    assert!(!missing.status.success() && text(&missing).1.contains("RESOURCE_DOES_NOT_EXIST"));
    assert!(text(&missing).1.contains("Hint: `modelgate serving-endpoints list`"), "{}", text(&missing).1);

    // A failed update makes the waiting command fail and print the build log.
    let failing = r#"{"served_entities": [{"external_model": {"provider": "openai", "name": "o3", "task": "llm/v1/chat", "openai_config": {"openai_api_key": "{{secrets/llm/absent}}"}}}]}"#;
    let failed = run(&["serving-endpoints", "update-config", "chat", "--json", failing], None);
    let (_, err) = text(&failed);
    assert!(!failed.status.success());
    assert!(err.contains("{{secrets/llm/absent}}") && err.contains("UPDATE_FAILED"), "{err}");

    let rolled = ok(run(&["serving-endpoints", "rollback", "chat", "1"], None));
    let history = ok(run(&["serving-endpoints", "history", "chat"], None));
    let lines: Vec<&str> = history.lines().skip(1).collect();
    assert!(lines.first().is_some_and(|l| l.contains("openai/gpt-4o-mini") && l.contains("SUPERSEDED")), "{history}");
    assert!(lines.iter().any(|l| l.contains("openai/gpt-4o ") || l.ends_with("openai/gpt-4o 100%")), "{history}");
    assert!(lines.last().is_some_and(|l| l.contains("ACTIVE")), "{history}");
    assert!(rolled.contains("\"config_version\": 4") && rolled.contains("gpt-4o-mini"), "{rolled}");
    let stopped = ok(run(&["serving-endpoints", "stop", "chat"], None));
    assert!(stopped.contains("NOT_READY"));
    let listed = ok(run(&["serving-endpoints", "list"], None));
    assert!(
        listed.contains("STOPPED") && listed.contains("openai/gpt-4o-mini") && listed.contains("team=ml"),
        "{listed}"
    );
    assert!(!listed.contains("───"), "no rules between rows: {listed}");
    let listed = ok(run(&["serving-endpoints", "list", "-o", "json"], None));
    assert!(listed.contains("\"stopped\": true"), "{listed}");
    ok(run(&["serving-endpoints", "start", "chat"], None));
    ok(run(
        &["serving-endpoints", "patch", "chat", "--json", r#"{"add_tags": [{"key": "env", "value": "dev"}]}"#],
        None,
    ));
    ok(run(
        &["serving-endpoints", "put-ai-gateway", "chat", "--json", r#"{"usage_tracking_config": {"enabled": true}}"#],
        None,
    ));
    // Replacing the block warns about what it removed, and the history can undo it.
    let replaced = run(
        &["serving-endpoints", "put-ai-gateway", "chat", "--json", r#"{"fallback_config": {"enabled": false}}"#],
        None,
    );
    let (_, err) = text(&replaced);
    assert!(
        replaced.status.success()
            && err.contains("warning: put-ai-gateway replaces")
            && err.contains("usage_tracking_config"),
        "{err}"
    );
    let history = ok(run(&["serving-endpoints", "settings-history", "chat", "-o", "json"], None));
    let history: serde_json::Value = serde_json::from_str(&history).unwrap();
    let change = history["changes"][0]["change_id"].to_string();
    let restored = ok(run(&["serving-endpoints", "restore-settings", "chat", &change], None));
    assert!(restored.contains("usage_tracking_config"), "{restored}");
    ok(run(
        &[
            "serving-endpoints",
            "put",
            "chat",
            "--json",
            r#"{"rate_limits": [{"calls": 3, "renewal_period": "minute"}]}"#,
        ],
        None,
    ));

    // Tokens: create, use, list, revoke.
    let created = ok(run(&["tokens", "create", "--comment", "ci"], None));
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let new_token = created["token_value"].as_str().unwrap().to_string();
    let id = created["token_info"]["token_id"].as_str().unwrap().to_string();
    ok(cli(&server.host, Some(&new_token), &["serving-endpoints", "list"], None, &env.config()));
    let tokens = ok(run(&["tokens", "list"], None));
    assert!(tokens.contains(&id) && !tokens.contains(&new_token), "{tokens}");
    ok(run(&["tokens", "revoke", &id], None));
    let refused = cli(&server.host, Some(&new_token), &["serving-endpoints", "list"], None, &env.config());
    assert!(!refused.status.success() && text(&refused).1.contains("UNAUTHENTICATED"));

    // configure writes a profile that later commands use without MODELGATE_TOKEN.
    let configured = cli(&server.host, None, &["configure", "--host", &server.host], Some(ADMIN), &env.config());
    assert!(configured.status.success(), "{:?}", text(&configured));
    let mut cmd = Command::new(BIN);
    let via_profile = cmd
        .args(["serving-endpoints", "list"])
        .env("MODELGATE_CONFIG_FILE", env.config())
        .env_remove("MODELGATE_HOST")
        .env_remove("MODELGATE_TOKEN")
        .env_remove("DATABRICKS_HOST")
        .env_remove("DATABRICKS_TOKEN")
        .output()
        .unwrap();
    assert!(via_profile.status.success(), "{:?}", text(&via_profile));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(env.config()).unwrap().permissions().mode() & 0o777, 0o600);
    }

    ok(run(&["serving-endpoints", "delete", "chat"], None));

    // Stop with SIGTERM: a clean exit 0.
    let mut server = server;
    sigterm(&server.child);
    let status = wait_timeout(&mut server.child, Duration::from_secs(20)).expect("server exits after SIGTERM");
    let output = server.output.clone();
    assert!(status.success(), "exit status {status:?}");
    std::thread::sleep(Duration::from_millis(100));

    let server_output = output.lock().unwrap().clone();
    assert!(server_output.contains("request"), "server logged requests: {server_output}");
    for value in [secret_value, plaintext_value] {
        assert!(!server_output.contains(value), "the server output leaks a secret");
        assert!(!transcript.contains(value), "CLI output leaks a secret");
    }
    for entry in std::fs::read_dir(env.data()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for value in [secret_value, plaintext_value] {
            assert!(!bytes.windows(value.len()).any(|w| w == value.as_bytes()), "a secret is on disk in clear");
        }
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let env = Env::new();
    let mut server = spawn_server(&env.data(), &[("MODELGATE_ADMIN_TOKEN", ADMIN)]);
    let run = |host: &str, args: &[&str], stdin: Option<&str>| ok(cli(host, Some(ADMIN), args, stdin, &env.config()));
    run(&server.host, &["secrets", "create-scope", "llm"], None);
    run(&server.host, &["secrets", "put-secret", "llm", "openai", "--string-value", "sk-durable"], None);
    run(&server.host, &["serving-endpoints", "create", "--json", ENDPOINT], None);
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();

    let mut again = spawn_server(&env.data(), &[("MODELGATE_ADMIN_TOKEN", ADMIN)]);
    let got = run(&again.host, &["serving-endpoints", "get", "chat"], None);
    let got: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(got["state"]["ready"], "READY", "{got}");
    let value = run(&again.host, &["secrets", "get-secret", "llm", "openai"], None);
    assert_eq!(value.trim(), "sk-durable");
    again.child.kill().unwrap();
    again.child.wait().unwrap();
}

#[test]
fn first_start_prints_an_admin_token_once() {
    let env = Env::new();
    let mut first = spawn_server(&env.data(), &[]);
    std::thread::sleep(Duration::from_millis(200));
    let out = first.output.lock().unwrap().clone();
    let token =
        out.split_whitespace().find_map(|w| w.strip_prefix("MODELGATE_TOKEN=")).expect("token printed").to_string();
    ok(cli(&first.host, Some(&token), &["serving-endpoints", "list"], None, &env.config()));
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let mut second = spawn_server(&env.data(), &[]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!second.output.lock().unwrap().contains("MODELGATE_TOKEN="), "printed only on the first start");
    ok(cli(&second.host, Some(&token), &["serving-endpoints", "list"], None, &env.config()));
    second.child.kill().unwrap();
    second.child.wait().unwrap();
}

/// Runs `modelgate serve` expecting it to refuse to start; returns what it printed.
fn serve_refuses(data: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--data-dir"]).arg(data).args(args);
    cmd.env_remove("MODELGATE_TOKEN").env_remove("MODELGATE_ADMIN_TOKEN").env_remove("MODELGATE_MASTER_KEY");
    cmd.envs(envs.iter().copied());
    let mut child = Killed(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the server started instead of refusing");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    if let Some(mut p) = child.0.stdout.take() {
        p.read_to_string(&mut out).unwrap();
    }
    if let Some(mut p) = child.0.stderr.take() {
        p.read_to_string(&mut out).unwrap();
    }
    assert!(!status.success(), "{out}");
    out
}

/// Kills the child when dropped, pass or fail.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_failed_first_start_never_locks_the_admin_out() {
    let env = Env::new();
    // The port is taken: the first start fails before anything is created.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let out = serve_refuses(&env.data(), &["--listen", &port], &[]);
    assert!(out.contains("cannot listen on") && !out.contains("MODELGATE_TOKEN="), "{out}");

    // The next start that listens shows the token, with the host to use it with.
    let mut first = spawn_server(&env.data(), &[]);
    let out = first.output.lock().unwrap().clone();
    let token =
        out.split_whitespace().find_map(|w| w.strip_prefix("MODELGATE_TOKEN=")).expect("token printed").to_string();
    assert!(out.contains(&format!("export MODELGATE_HOST={}", first.host)), "{out}");
    ok(cli(&first.host, Some(&token), &["serving-endpoints", "list"], None, &env.config()));

    // A second server on the same data directory refuses, naming the first.
    let out = serve_refuses(&env.data(), &["--listen", "127.0.0.1:0"], &[]);
    assert!(out.contains("is in use by another modelgate server"), "{out}");
    ok(cli(&first.host, Some(&token), &["serving-endpoints", "list"], None, &env.config()));
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    // A weak admin token is refused, and not echoed.
    let out = serve_refuses(&env.data(), &["--listen", "127.0.0.1:0"], &[("MODELGATE_ADMIN_TOKEN", "letmein-please")]);
    assert!(out.contains("at least 32") && !out.contains("letmein-please"), "{out}");
}

#[test]
fn long_waits_show_progress_and_a_timed_out_wait_says_the_endpoint_is_still_deploying() {
    let env = Env::new();
    let mut server = spawn_server(&env.data(), &[("MODELGATE_ADMIN_TOKEN", ADMIN), ("MODELGATE_DEPLOY_DELAY", "4s")]);
    let run = |args: &[&str], stdin: Option<&str>| cli(&server.host, Some(ADMIN), args, stdin, &env.config());
    let _ = run(&["secrets", "create-scope", "llm"], None);
    ok(run(&["secrets", "put-secret", "llm", "openai"], Some("sk-wait")));
    let created = run(&["serving-endpoints", "create", "--json", ENDPOINT, "--timeout", "2s"], None);
    let (_, err) = text(&created);
    assert!(!created.status.success(), "{err}");
    assert!(err.contains("waiting for 'chat' to finish updating (1s)"), "progress after a second: {err}");
    assert!(
        err.contains("exists and is still deploying") && err.contains("modelgate serving-endpoints wait chat"),
        "{err}"
    );
    let waited = ok(run(&["serving-endpoints", "wait", "chat"], None));
    assert!(waited.contains("\"ready\": \"READY\""), "{waited}");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[test]
fn databrickscfg_profiles_select_the_server() {
    let env = Env::new();
    let server = spawn_server(&env.data(), &[("MODELGATE_ADMIN_TOKEN", ADMIN)]);
    let cfg = env.dir.path().join("databrickscfg");
    std::fs::write(
        &cfg,
        format!("[DEFAULT]\nhost = http://127.0.0.1:9\n\n[staging]\nhost = {}\ntoken = {ADMIN}\n", server.host),
    )
    .unwrap();
    let run = |extra: &[(&str, &str)], args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.args(args).env("DATABRICKS_CONFIG_FILE", &cfg).env("MODELGATE_CONFIG_FILE", env.config());
        for k in [
            "MODELGATE_HOST",
            "MODELGATE_TOKEN",
            "MODELGATE_PROFILE",
            "DATABRICKS_HOST",
            "DATABRICKS_TOKEN",
            "DATABRICKS_CONFIG_PROFILE",
        ] {
            cmd.env_remove(k);
        }
        cmd.envs(extra.iter().copied());
        cmd.output().unwrap()
    };
    ok(run(&[("DATABRICKS_CONFIG_PROFILE", "staging")], &["serving-endpoints", "list"]));
    ok(run(&[], &["--profile", "staging", "serving-endpoints", "list"]));
    let missing = run(&[("DATABRICKS_CONFIG_PROFILE", "prod")], &["serving-endpoints", "list"]);
    assert!(!missing.status.success() && text(&missing).1.contains("'prod'"), "{}", text(&missing).1);
}

#[test]
fn shell_completion_scripts_cover_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(BIN).args(["completion", shell]).output().unwrap();
        let (script, err) = text(&out);
        assert!(out.status.success(), "{shell}: {err}");
        for word in ["serving-endpoints", "requests", "settings-history", "output"] {
            assert!(script.contains(word), "{shell} completes {word}");
        }
    }
}

#[test]
fn client_errors_without_a_server_or_token() {
    let env = Env::new();
    let no_token = cli("http://127.0.0.1:9", None, &["serving-endpoints", "list"], None, &env.config());
    assert!(!no_token.status.success());
    assert!(text(&no_token).1.contains("no token"), "{:?}", text(&no_token));
    let unreachable = cli("http://127.0.0.1:9", Some("x"), &["serving-endpoints", "list"], None, &env.config());
    assert!(!unreachable.status.success());
    assert!(text(&unreachable).1.contains("cannot reach"), "{:?}", text(&unreachable));
}

#[test]
fn identities_and_token_management_from_the_cli() {
    let env = Env::new();
    let mut server = spawn_server(&env.data(), &[("MODELGATE_ADMIN_TOKEN", ADMIN)]);
    let run = |args: &[&str]| ok(cli(&server.host, Some(ADMIN), args, None, &env.config()));
    let json = |out: String| serde_json::from_str::<serde_json::Value>(&out).unwrap();

    let user = json(run(&["users", "create", "erin@example.com", "--display-name", "Erin"]));
    let user_id = user["id"].as_str().unwrap().to_string();
    let sp = json(run(&["service-principals", "create", "nightly batch", "--application-id", "batch-1"]));
    let group = json(run(&["groups", "create", "data", "--member", &user_id]));
    let group_id = group["id"].as_str().unwrap().to_string();
    run(&["groups", "add-member", &group_id, sp["id"].as_str().unwrap()]);
    // Names wherever ids are taken.
    run(&["groups", "create", "readers"]);
    run(&["groups", "add-member", "readers", "erin@example.com"]);
    run(&["groups", "add-member", "readers", "batch-1"]);
    let readers = json(run(&["groups", "get", "readers"]));
    assert_eq!(readers["members"].as_array().unwrap().len(), 2, "{readers}");
    run(&["groups", "remove-member", "readers", "erin@example.com"]);
    run(&["groups", "delete", "readers"]);
    let unknown = cli(&server.host, Some(ADMIN), &["groups", "get", "nobody-here"], None, &env.config());
    assert!(text(&unknown).1.contains("RESOURCE_DOES_NOT_EXIST"), "{}", text(&unknown).1);
    let table = run(&["groups", "list"]);
    assert!(table.contains("data") && table.contains("Erin") && table.contains("nightly batch"), "{table}");
    let users = run(&["users", "list", "--filter", "userName sw \"erin\""]);
    assert!(users.contains("erin@example.com") && users.contains("data"), "{users}");

    let token = json(run(&["tokens", "create", "--for-application-id", "batch-1", "--comment", "nightly"]));
    let value = token["token_value"].as_str().unwrap().to_string();
    let id = token["token_info"]["token_id"].as_str().unwrap().to_string();
    ok(cli(&server.host, Some(&value), &["serving-endpoints", "list"], None, &env.config()));
    let denied = cli(&server.host, Some(&value), &["users", "create", "mallory@example.com"], None, &env.config());
    assert!(!denied.status.success() && text(&denied).1.contains("PERMISSION_DENIED"), "{:?}", text(&denied));
    let all = run(&["tokens", "list", "--all"]);
    assert!(all.contains(&id) && all.contains("batch-1"), "{all}");
    // A token's own limits, set and shown.
    let limited = json(run(&[
        "tokens",
        "create",
        "--for-application-id",
        "batch-1",
        "--allow-endpoint",
        "chat",
        "--calls-per-minute",
        "10",
        "--budget-usd",
        "5",
        "--budget-action",
        "BLOCK",
    ]));
    let limits = &limited["token_info"]["limits"];
    assert_eq!(limits["allowed_endpoints"], serde_json::json!(["chat"]), "{limited}");
    assert_eq!(limits["rate_limits"][0]["calls"], 10);
    assert_eq!(
        (limits["budget"]["amount_usd"].as_f64(), limits["budget"]["period"].as_str()),
        (Some(5.0), Some("month"))
    );
    let limited_id = limited["token_info"]["token_id"].as_str().unwrap().to_string();
    let listed = run(&["tokens", "list", "--all"]).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(listed.contains("endpoints chat; 10 calls/min; $5.00/month BLOCK ($0.00 spent)"), "{listed}");
    let cleared = json(run(&["tokens", "set-limits", &limited_id]));
    assert!(cleared["token_info"].get("limits").is_none(), "{cleared}");
    run(&["tokens", "revoke", "--any-owner", &limited_id]);
    run(&["tokens", "revoke", "--any-owner", &id]);
    let refused = cli(&server.host, Some(&value), &["serving-endpoints", "list"], None, &env.config());
    assert!(text(&refused).1.contains("UNAUTHENTICATED"));

    // Endpoint permissions by name.
    ok(cli(&server.host, Some(ADMIN), &["secrets", "create-scope", "llm"], None, &env.config()));
    ok(cli(
        &server.host,
        Some(ADMIN),
        &["secrets", "put-secret", "llm", "openai", "--string-value", "sk"],
        None,
        &env.config(),
    ));
    run(&["serving-endpoints", "create", "--json", ENDPOINT]);
    let grant = r#"{"access_control_list": [{"group_name": "data", "permission_level": "CAN_QUERY"}]}"#;
    run(&["permissions", "update", "serving-endpoints", "chat", "--json", grant]);
    let acl = run(&["permissions", "get", "serving-endpoints", "chat"]);
    assert!(acl.contains("data") && acl.contains("CAN_QUERY") && acl.contains("admins"), "{acl}");
    assert!(run(&["permissions", "get-permission-levels", "serving-endpoints", "chat"]).contains("CAN_MANAGE"));

    run(&["secrets", "put-acl", "llm", "data", "READ"]);
    let acls = run(&["secrets", "list-acls", "llm"]);
    assert!(acls.contains("data") && acls.contains("READ") && acls.contains("MANAGE"), "{acls}");
    let audit = run(&["audit-log", "--since", "1h", "--jsonl"]);
    let lines: Vec<serde_json::Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().any(|e| e["path"] == "/api/2.0/secrets/acls/put" && e["principal"] == "admin"), "{audit}");
    assert!(lines.iter().any(|e| e["status"] == 403), "the refused create is in the log: {audit}");
    assert!(!audit.contains("\"sk\""), "secret values are not in the audit log");
    let table = run(&["audit-log", "--action", "PATCH"]);
    assert!(table.contains("PATCH") && !table.contains("DELETE"), "{table}");

    // A console password comes on standard input, never on the command line, and is never shown.
    let set = cli(
        &server.host,
        Some(ADMIN),
        &["users", "set-password", "erin@example.com"],
        Some("erin's long password\n"),
        &env.config(),
    );
    let (out, err) = text(&set);
    assert!(set.status.success() && out.contains("Password set."), "{out}{err}");
    assert!(!out.contains("long password") && !err.contains("long password"));
    assert!(!run(&["users", "get", &user_id]).contains("long password"));
    let short =
        cli(&server.host, Some(ADMIN), &["users", "set-password", "erin@example.com"], Some("short\n"), &env.config());
    assert!(
        !short.status.success() && text(&short).1.contains("password must be at least 12 characters"),
        "{:?}",
        text(&short)
    );
    assert!(
        ok(cli(
            &server.host,
            Some(ADMIN),
            &["users", "set-password", "--remove", "erin@example.com"],
            None,
            &env.config()
        ))
        .contains("Password removed.")
    );
    run(&["users", "set-active", &user_id, "false"]);
    assert!(run(&["users", "get", &user_id]).contains("\"active\": false"));
    run(&["users", "delete", &user_id]);
    let gone = cli(&server.host, Some(ADMIN), &["users", "get", &user_id], None, &env.config());
    assert!(!gone.status.success() && text(&gone).1.contains("RESOURCE_DOES_NOT_EXIST"));
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

const BACKENDS: &str = r#"
backends:
  - backendId: sweden
    backendType: azure-openai
    endpoint: MOCK
    authScheme: apiKey
    apiKey: "{{secrets/azure/sweden}}"
    supportedModels: [gpt-4o, {name: gpt-4o-mini, deployment: mini-prod}]
    priority: 1
  - backendId: france
    backendType: ai-foundry
    endpoint: MOCK
    authScheme: managedIdentity
    tenantId: tenant-1
    clientId: app-1
    clientSecret: "{{secrets/azure/sp}}"
    supportedModels: [gpt-4o]
    priority: 1
  - backendId: onprem
    backendType: external
    endpoint: MOCK/v1
    authScheme: token
    token: "{{secrets/vllm/token}}"
    supportedModels: [gpt-4o]
    priority: 2
"#;

#[test]
fn backends_import_pools_each_model_across_its_backends() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mock, mock_url) = rt.block_on(async {
        let m = modelgate_mock_upstream::Mock::new(Default::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(modelgate_mock_upstream::serve(listener, m.clone()));
        (m, url)
    });
    let env = Env::new();
    let entra = format!("microsoft-entra={mock_url}");
    let server = spawn_server(
        &env.data(),
        &[("MODELGATE_ADMIN_TOKEN", ADMIN), ("MODELGATE_PROVIDER_BASE_URLS", entra.as_str())],
    );
    let run = |args: &[&str], stdin: Option<&str>| cli(&server.host, Some(ADMIN), args, stdin, &env.config());
    for (scope, key, value) in
        [("azure", "sweden", "az-key"), ("azure", "sp", "entra-secret"), ("vllm", "token", "tok")]
    {
        let _ = run(&["secrets", "create-scope", scope], None);
        ok(run(&["secrets", "put-secret", scope, key], Some(value)));
    }
    let file = env.dir.path().join("backends.yaml");
    std::fs::write(&file, BACKENDS.replace("MOCK", &mock_url)).unwrap();
    let path = file.to_str().unwrap();

    let plan = ok(run(&["backends", "import", path, "--dry-run"], None));
    assert!(plan.contains("would create") && plan.contains("gpt-4o-mini"), "{plan}");
    let (_, list) = text(&run(&["serving-endpoints", "list", "-o", "json"], None));
    assert!(!list.contains("gpt-4o"), "a dry run changes nothing: {list}");

    let applied = ok(run(&["backends", "import", path, "-o", "json"], None));
    let applied: serde_json::Value = serde_json::from_str(&applied).unwrap();
    let actions: Vec<&str> =
        applied["endpoints"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["created", "created"], "{applied}");

    // Both priority-1 backends share gpt-4o; the priority-2 one waits for them to fail.
    let served = rt.block_on(async {
        let http = reqwest::Client::new();
        for _ in 0..100 {
            let e: serde_json::Value = http
                .get(format!("{}/api/2.0/serving-endpoints/gpt-4o", server.host))
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if e["state"]["ready"] == "READY" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut served = std::collections::BTreeMap::<String, usize>::new();
        for _ in 0..40 {
            let r = http
                .post(format!("{}/v1/chat/completions", server.host))
                .bearer_auth(ADMIN)
                .json(&serde_json::json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            *served.entry(r.headers()["served-model-name"].to_str().unwrap().to_string()).or_default() += 1;
        }
        served
    });
    assert!(
        served.get("sweden").is_some_and(|n| *n >= 5) && served.get("france").is_some_and(|n| *n >= 5),
        "{served:?}"
    );
    assert!(!served.contains_key("onprem"), "{served:?}");
    let paths: Vec<String> = mock.requests.lock().unwrap().iter().map(|r| r.path.clone()).collect();
    assert!(paths.iter().any(|p| p == "/tenant-1/oauth2/v2.0/token"), "managedIdentity used Entra client credentials");
    assert!(paths.iter().all(|p| p != "/v1/chat/completions"), "onprem is only a fallback");

    let again = ok(run(&["backends", "import", path], None));
    assert_eq!(again.matches("unchanged").count(), 2, "a second import changes nothing: {again}");
    let fewer = BACKENDS
        .replace("MOCK", &mock_url)
        .replace("supportedModels: [gpt-4o]\n    priority: 2", "supportedModels: [other]\n    priority: 2");
    std::fs::write(&file, fewer).unwrap();
    let changed = ok(run(&["backends", "import", path], None));
    assert!(changed.contains("updated") && changed.contains("created"), "{changed}");

    std::fs::write(&file, "backends:\n  - backendId: x\n    backendType: azure-openai\n    endpoint: http://h\n    authScheme: apiKey\n    apiKey: sk-plain\n    supportedModels: [m]\n").unwrap();
    let bad = run(&["backends", "import", path], None);
    let (_, err) = text(&bad);
    assert!(!bad.status.success() && err.contains("backend 'x': apiKey") && err.contains("secret reference"), "{err}");
    assert!(!err.contains("sk-plain"), "the bad value is not echoed: {err}");
}

#[test]
fn no_usage_record_is_lost_on_sigterm_under_load() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let options = modelgate_mock_upstream::Options { delay: Duration::from_millis(20), ..Default::default() };
    let mock_url = mock_in(&rt, options);
    let env = Env::new();
    let mut server = spawn_server(&env.data(), &[("MODELGATE_ADMIN_TOKEN", ADMIN)]);
    let run = |host: &str, args: &[&str], stdin: Option<&str>| cli(host, Some(ADMIN), args, stdin, &env.config());
    let _ = run(&server.host, &["secrets", "create-scope", "llm"], None);
    ok(run(&server.host, &["secrets", "put-secret", "llm", "k"], Some("sk-load")));
    let endpoint = format!(
        r#"{{"name": "load", "config": {{"served_entities": [{{"external_model": {{"provider": "openai", "name": "gpt-4o",
            "task": "llm/v1/chat", "openai_config": {{"openai_api_key": "{{{{secrets/llm/k}}}}", "openai_api_base": "{mock_url}/v1"}}}}}}]}},
            "tags": [{{"key": "team", "value": "ml"}}]}}"#
    );
    ok(run(&server.host, &["serving-endpoints", "create", "--json", &endpoint], None));

    // 16 clients send queries until the server is gone; SIGTERM lands in the middle.
    let host = server.host.clone();
    let load = rt.spawn(async move {
        let http = reqwest::Client::new();
        let clients = (0..16).map(|_| {
            let (http, host) = (http.clone(), host.clone());
            tokio::spawn(async move {
                let mut answered = 0u64;
                loop {
                    let sent = http
                        .post(format!("{host}/serving-endpoints/load/invocations"))
                        .bearer_auth(ADMIN)
                        .json(&serde_json::json!({"messages": [{"role": "user", "content": "hi"}]}))
                        .send()
                        .await;
                    let Ok(r) = sent else { return answered };
                    if r.bytes().await.is_err() {
                        return answered;
                    }
                    answered += 1;
                }
            })
        });
        let mut total = 0;
        for c in wait_all(clients.collect()).await {
            total += c;
        }
        total
    });
    std::thread::sleep(Duration::from_millis(1500));
    sigterm(&server.child);
    let status = wait_timeout(&mut server.child, Duration::from_secs(30)).expect("server exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    let answered = rt.block_on(load).unwrap();
    assert!(answered > 50, "load was running: {answered}");

    let server = spawn_server(&env.data(), &[("MODELGATE_ADMIN_TOKEN", ADMIN)]);
    let report = ok(run(&server.host, &["usage", "report", "--group-by", "endpoint,tag.team", "-o", "json"], None));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["rows"][0]["requests"], answered, "one record per answered query: {report}");
    assert_eq!(report["rows"][0]["tag.team"], "ml");

    let csv = ok(run(
        &server.host,
        &["usage", "report", "--group-by", "endpoint", "--bucket", "day", "--format", "csv"],
        None,
    ));
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("bucket,endpoint,requests,errors,input_tokens,output_tokens,cost_usd"));
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!((row[1], row[2]), ("load", answered.to_string().as_str()));
    let table = ok(run(&server.host, &["usage", "report", "--group-by", "model"], None));
    assert!(table.contains("gpt-4o") && table.contains("price table builtin-"), "{table}");
    // The admin token made every query: its own report holds them all.
    let mine = ok(run(&server.host, &["usage", "report", "--mine", "--group-by", "endpoint", "-o", "json"], None));
    let mine: serde_json::Value = serde_json::from_str(&mine).unwrap();
    assert_eq!((mine["mine"].as_bool(), mine["rows"][0]["requests"].as_u64()), (Some(true), Some(answered)), "{mine}");
    let summary = ok(run(&server.host, &["serving-endpoints", "get-metrics", "load"], None));
    assert!(
        summary.contains("WINDOW") && summary.contains("5m") && summary.contains(&format!("({answered})")),
        "{summary}"
    );
    let bad = run(&server.host, &["usage", "report", "--group-by", "colour"], None);
    let (_, err) = text(&bad);
    assert!(!bad.status.success() && err.contains("'colour' is not a dimension"), "{err}");
}

async fn wait_all(handles: Vec<tokio::task::JoinHandle<u64>>) -> Vec<u64> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap_or(0));
    }
    out
}

#[test]
fn inference_table_query_and_export_to_jsonl_and_parquet() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mock_url = mock_in(&rt, Default::default());
    let env = Env::new();
    let server = spawn_server(&env.data(), &[("MODELGATE_ADMIN_TOKEN", ADMIN)]);
    let run = |args: &[&str], stdin: Option<&str>| cli(&server.host, Some(ADMIN), args, stdin, &env.config());
    let _ = run(&["secrets", "create-scope", "llm"], None);
    ok(run(&["secrets", "put-secret", "llm", "k"], Some("sk-inf")));
    let endpoint = format!(
        r#"{{"name": "logged", "config": {{"served_entities": [{{"name": "a", "external_model": {{"provider": "openai", "name": "gpt-4o",
            "task": "llm/v1/chat", "openai_config": {{"openai_api_key": "{{{{secrets/llm/k}}}}", "openai_api_base": "{mock_url}/v1"}}}}}}]}},
            "ai_gateway": {{"inference_table_config": {{"enabled": true, "catalog_name": "main", "schema_name": "logs", "max_payload_bytes": 400}}}}}}"#
    );
    ok(run(&["serving-endpoints", "create", "--json", &endpoint], None));
    let host = server.host.clone();
    rt.block_on(async move {
        let http = reqwest::Client::new();
        // The failing one goes last: its retries open the breaker for what would follow.
        for text in ["hello", &"big ".repeat(200), "__status_500__"] {
            http.post(format!("{host}/serving-endpoints/logged/invocations"))
                .bearer_auth(ADMIN)
                .json(&serde_json::json!({"messages": [{"role": "user", "content": text}]}))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
        }
    });

    let table = ok(run(&["inference-table", "query", "logged", "--since", "1h"], None));
    assert!(
        table.contains("STATUS") && table.contains("hello") && table.contains("MAX_REQUEST_SIZE_EXCEEDED"),
        "{table}"
    );
    let failed = ok(run(&["inference-table", "query", "logged", "--status", "5xx", "-o", "json"], None));
    let failed: serde_json::Value = serde_json::from_str(&failed).unwrap();
    assert_eq!(failed["records"].as_array().unwrap().len(), 1, "{failed}");

    // The server log says why the failed query failed, at warn.
    let log = server.output.lock().unwrap().clone();
    assert!(
        log.lines().any(|l| l.contains("WARN") && l.contains("request failed") && l.contains("answered HTTP 500")),
        "{log}"
    );
    assert!(!log.contains("sk-inf"), "no credential in the log");

    // A health test of every served entity.
    let tested = ok(run(&["serving-endpoints", "test", "logged"], None));
    assert!(tested.contains("127.0.0.1:") && tested.matches("yes").count() == 3, "{tested}");

    // The request log says why the failed query failed.
    let log = ok(run(&["requests", "list", "--endpoint", "logged", "--status", "error"], None));
    assert!(log.contains("(upstream 500)") && log.contains("Served entity 'a'"), "{log}");
    assert_eq!(log.matches("logged").count(), 1, "only the failed query: {log}");
    let listed = ok(run(&["requests", "list", "-o", "json", "--since", "1h"], None));
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["requests"].as_array().unwrap().len(), 3, "{listed}");
    let id = listed["requests"][0]["request_id"].as_str().unwrap();
    let one: serde_json::Value = serde_json::from_str(&ok(run(&["requests", "get", id], None))).unwrap();
    assert_eq!(one["request_id"], id);
    let bad = run(&["requests", "list", "--status", "teapot"], None);
    assert!(!bad.status.success() && text(&bad).1.contains("status"), "{}", text(&bad).1);

    let jsonl = env.dir.path().join("out.jsonl");
    ok(run(&["inference-table", "export", "logged", "--out", jsonl.to_str().unwrap()], None));
    assert_eq!(std::fs::read_to_string(&jsonl).unwrap().lines().count(), 3);

    let pq = env.dir.path().join("out.parquet");
    ok(run(&["inference-table", "export", "logged", "--format", "parquet", "--out", pq.to_str().unwrap()], None));
    let reader = SerializedFileReader::new(std::fs::File::open(&pq).unwrap()).unwrap();
    assert_eq!(reader.metadata().file_metadata().num_rows(), 3);
    let mut statuses = Vec::new();
    let mut saw_null_request_with_error = false;
    for row in reader.get_row_iter(None).unwrap() {
        let row = row.unwrap();
        let fields: std::collections::HashMap<String, Field> =
            row.get_column_iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if let Field::Int(s) = fields["status_code"] {
            statuses.push(s);
        }
        assert!(matches!(fields["request_date"], Field::Date(_)));
        assert!(matches!(fields["request_time"], Field::TimestampMillis(_)));
        if matches!(fields["request"], Field::Null) {
            let codes = format!("{:?}", fields["logging_error_codes"]);
            saw_null_request_with_error = codes.contains("MAX_REQUEST_SIZE_EXCEEDED");
        }
    }
    statuses.sort();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 2, "{statuses:?}");
    assert!(statuses.iter().any(|s| *s >= 500), "{statuses:?}");
    assert!(saw_null_request_with_error, "the oversized request is null with its logging error code");

    // Budgets from the CLI: create, attach, list with spend, detach, delete.
    let created = ok(run(
        &[
            "budgets",
            "create",
            "--json",
            r#"{"name": "logged-daily", "period": "day", "amount_usd": 5, "action": "BLOCK"}"#,
        ],
        None,
    ));
    let id = serde_json::from_str::<serde_json::Value>(&created).unwrap()["policy_id"].as_str().unwrap().to_string();
    ok(run(&["budgets", "attach", "logged", "logged-daily"], None));
    let list = ok(run(&["budgets", "list"], None));
    assert!(list.contains("logged-daily") && list.contains("endpoints logged") && list.contains("BLOCK"), "{list}");
    let refused = run(&["budgets", "delete", &id], None);
    assert!(!refused.status.success() && text(&refused).1.contains("INVALID_STATE"), "{}", text(&refused).1);
    ok(run(&["budgets", "attach", "logged", "--none"], None));
    ok(run(&["budgets", "delete", "logged-daily"], None));
    let _ = id;

    let rules = ok(run(&["alerts", "rules"], None));
    for name in ["error-rate", "latency-p95", "not-ready", "breaker-open", "budget-threshold", "rate-limit-usage"] {
        assert!(rules.contains(name), "default rule {name}: {rules}");
    }
    // A partial update by name changes only what it gives.
    let before: serde_json::Value = serde_json::from_str(&ok(run(&["alerts", "rules", "-o", "json"], None))).unwrap();
    let rule = |v: &serde_json::Value| {
        v["rules"].as_array().unwrap().iter().find(|r| r["name"] == "error-rate").unwrap().clone()
    };
    ok(run(&["alerts", "update-rule", "error-rate", "--json", r#"{"enabled": false}"#], None));
    let after: serde_json::Value = serde_json::from_str(&ok(run(&["alerts", "rules", "-o", "json"], None))).unwrap();
    let (b, a) = (rule(&before), rule(&after));
    assert_eq!(a["enabled"], false, "{a}");
    assert_eq!(
        (a["threshold"].clone(), a["window"].clone(), a["kind"].clone()),
        (b["threshold"].clone(), b["window"].clone(), b["kind"].clone())
    );
    let firing = ok(run(&["alerts", "list", "-o", "json"], None));
    assert!(serde_json::from_str::<serde_json::Value>(&firing).unwrap()["firing"].is_array());
    ok(run(
        &[
            "alerts",
            "create-destination",
            "--json",
            r#"{"name": "oncall", "url": "http://127.0.0.1:9/hook", "format": "slack"}"#,
        ],
        None,
    ));
    assert!(ok(run(&["alerts", "destinations"], None)).contains("oncall"));

    // Queries from the CLI, whole and streamed.
    let body = r#"{"messages": [{"role": "user", "content": "from the cli"}]}"#;
    let answer = ok(run(&["serving-endpoints", "query", "logged", "--json", body], None));
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "echo: from the cli", "{answer}");
    let body = r#"{"messages": [{"role": "user", "content": "streamed words"}], "stream": true}"#;
    let streamed = ok(run(&["serving-endpoints", "query", "logged", "--json", body], None));
    let lines: Vec<&str> = streamed.lines().collect();
    assert_eq!(lines.last(), Some(&"[DONE]"), "{streamed}");
    assert!(lines.len() > 3 && lines.iter().any(|l| l.contains("\"streamed \"")), "one chunk per line: {streamed}");
}
