//! The CLI examples of docs/cli.md and of the feature pages (gitops, inventory, standards,
//! requests, health, usage, budgets, inference tables, alerts) run as written, in order, against a server
//! (with a fake OpenAI behind it), so the documentation cannot drift from the program. Every line of a `sh`
//! block that starts with `modelgate` (or pipes into it) is run by bash in a scratch directory
//! holding the files the examples name; it must exit 0. A line ending in `# not run: REASON` is
//! skipped (it would touch the user's home, or another host).

use std::process::Command;

use crate::common::*;

/// Whether a shell line leaves a single quote open (a `# comment` outside quotes ends it).
fn quote_left_open(line: &str, mut open: bool) -> bool {
    let mut prev = ' ';
    for c in line.chars() {
        match c {
            '\'' => open = !open,
            '#' if !open && prev.is_whitespace() => return false,
            _ => {}
        }
        prev = c;
    }
    open
}

/// The commands of the `sh` blocks of a markdown file, in order.
fn examples(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_sh = false;
    // A command whose single quotes are still open goes on on the next lines (a JSON body).
    let mut open: Option<String> = None;
    for line in markdown.lines() {
        let t = line.trim();
        if let Some(mut cmd) = open.take() {
            cmd.push('\n');
            cmd.push_str(line);
            if quote_left_open(line, true) {
                open = Some(cmd);
            } else {
                out.push(cmd);
            }
            continue;
        }
        if t.starts_with("```") {
            in_sh = !in_sh && t == "```sh";
            continue;
        }
        let runs_modelgate = t.starts_with("modelgate ") || t.contains("| modelgate ");
        if in_sh && runs_modelgate && !t.contains("# not run") {
            if quote_left_open(t, false) {
                open = Some(t.to_string());
            } else {
                out.push(t.to_string());
            }
        }
    }
    out
}

/// The policy of docs/standards.md, taken from the page itself.
fn standards_policy() -> String {
    let page =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/standards.md"))
            .unwrap();
    let start = page.find("```json\n").unwrap() + "```json\n".len();
    let end = start + page[start..].find("```").unwrap();
    page[start..end].to_string()
}

#[test]
fn the_cli_examples_in_the_docs_run_as_written() {
    let fake = FakeOpenAi::start(false);
    let (env, server, mock) = (&fake.env, &fake.server, &fake.mock);
    let work = env.dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    // The files the examples name.
    let entity = r#"{"external_model": {"provider": "openai", "name": "gpt-4o", "task": "llm/v1/chat", "openai_config": {"openai_api_key": "{{secrets/llm/openai}}"}}}"#;
    let files = [
        ("chat.json", format!(r#"{{"name": "chat", "config": {{"served_entities": [{entity}]}}}}"#)),
        ("config-only.json", format!(r#"{{"served_entities": [{entity}]}}"#)),
        (
            "acl.json",
            r#"{"access_control_list": [{"group_name": "data", "permission_level": "CAN_QUERY"}]}"#.to_string(),
        ),
        ("key.bin", "binary-key-material".to_string()),
        ("churn/serve.py", "print('a model server')".to_string()),
        ("p.json", r#"{"name": "ml-monthly", "period": "month", "amount_usd": 800, "action": "BLOCK"}"#.to_string()),
        ("policy.json", standards_policy()),
        ("prices.json", "{}".to_string()),
        (
            "budget.json",
            r#"{"name": "ml-monthly", "period": "month", "amount_usd": 900, "action": "ALERT"}"#.to_string(),
        ),
        (
            "backends.yaml",
            format!(
                "backends:\n  - backendId: local\n    backendType: external\n    endpoint: {mock}/v1\n    authScheme: token\n    token: \"{{{{secrets/llm/openai}}}}\"\n    supportedModels: [gpt-4o-mini]\n"
            ),
        ),
        (
            "backends.json",
            format!(
                r#"[{{"backendId": "local", "backendType": "external", "endpoint": "{mock}/v1", "authScheme": "token", "token": "{{{{secrets/llm/openai}}}}", "supportedModels": ["gpt-4o-mini"]}}]"#
            ),
        ),
    ];
    for (name, text) in files {
        let path = work.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    crate::bundle::copy_tree(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/gitops"),
        &work.join("gitops"),
    );
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let mut failures = Vec::new();
    let mut commands = Vec::new();
    for page in [
        "cli.md",
        "gitops.md",
        "inventory.md",
        "standards.md",
        "requests.md",
        "health.md",
        "usage.md",
        "budgets.md",
        "inference-tables.md",
        "alerts.md",
        "caching.md",
    ] {
        commands.extend(examples(&std::fs::read_to_string(docs.join(page)).unwrap()));
    }
    assert!(commands.len() > 45, "the examples were found: {commands:?}");
    for command in &commands {
        let out = Command::new("bash")
            .args(["-c", command])
            .current_dir(&work)
            .env("PATH", &path)
            .env("HOME", &work)
            .env("MODELGATE_HOST", &server.host)
            .env("MODELGATE_TOKEN", ADMIN)
            .env("OPENAI_API_KEY", "sk-docs-example-key")
            .env("SLACK_WEBHOOK", "https://hooks.slack.com/services/T0/B0/docs")
            .env("MODELGATE_CONFIG_FILE", env.config())
            .env_remove("DATABRICKS_HOST")
            .env_remove("DATABRICKS_TOKEN")
            .env_remove("DATABRICKS_CONFIG_PROFILE")
            .output()
            .unwrap();
        if !out.status.success() {
            let (o, e) = text(&out);
            failures.push(format!("$ {command}\n{e}{o}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} examples failed:\n\n{}",
        failures.len(),
        commands.len(),
        failures.join("\n")
    );
}

#[test]
fn every_serve_flag_is_documented() {
    let help = Command::new(BIN).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let docs =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/server.md")).unwrap();
    let client_flags = ["--host", "--token", "--profile", "--output", "--help"];
    let flags: Vec<&str> = help
        .lines()
        .filter_map(|l| l.trim_start().split([' ', ',', '=', '<']).find(|w| w.starts_with("--")))
        .filter(|f| !client_flags.contains(f))
        .collect();
    assert!(flags.len() > 20, "flags found in --help: {flags:?}");
    let missing: Vec<&&str> = flags.iter().filter(|f| !docs.contains(**f)).collect();
    assert!(missing.is_empty(), "flags of modelgate serve missing from docs/server.md: {missing:?}");
}
