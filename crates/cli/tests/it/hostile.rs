//! The real binary against hostile load: its memory stays bounded under oversized upstream answers
//! and slow clients, and webhook URLs (credentials) never reach its log.

use std::time::{Duration, Instant};

use crate::common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024
}

fn endpoint_at(mock_url: &str) -> String {
    format!(
        r#"{{"name": "big", "config": {{"served_entities": [{{"external_model": {{"provider": "openai", "name": "gpt-4o",
            "task": "llm/v1/chat", "openai_config": {{"openai_api_key": "{{{{secrets/llm/k}}}}", "openai_api_base": "{mock_url}/v1"}}}}}}]}}}}"#
    )
}

/// A server (started with `envs` set, and no retries) whose endpoint `big` is answered by a mock
/// provider, created with the CLI.
fn server_with_endpoint(envs: &[(&str, &str)]) -> (tokio::runtime::Runtime, Env, Serve) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mock_url = mock_in(&rt, Default::default());
    let env = Env::new();
    let mut all = vec![("MODELGATE_ADMIN_TOKEN", ADMIN), ("MODELGATE_UPSTREAM_RETRIES", "0")];
    all.extend_from_slice(envs);
    let server = spawn_server(&env.data(), &all);
    let run = |args: &[&str]| ok(cli(&server.host, Some(ADMIN), args, None, &env.config()));
    run(&["secrets", "create-scope", "llm"]);
    run(&["secrets", "put-secret", "llm", "k", "--string-value", "sk-hostile-0123"]);
    run(&["serving-endpoints", "create", "--json", &endpoint_at(&mock_url)]);
    (rt, env, server)
}

#[test]
fn memory_stays_bounded_under_oversized_answers_and_slow_clients() {
    let (rt, _env, server) = server_with_endpoint(&[
        ("MODELGATE_MAX_UPSTREAM_BODY", "8MiB"),
        ("MODELGATE_BODY_READ_TIMEOUT", "1s"),
        ("MODELGATE_LOG_LEVEL", "warn"),
    ]);
    let pid = server.child.id();
    let host = server.host.clone();
    let ask = |content: &'static str| {
        let host = host.clone();
        async move {
            let body = serde_json::json!({"messages": [{"role": "user", "content": content}]});
            let r = http()
                .post(format!("{host}/serving-endpoints/big/invocations"))
                .bearer_auth(ADMIN)
                .json(&body)
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    };
    assert_eq!(rt.block_on(ask("hello")), 200);
    let baseline = rss_mib(pid);

    // Four answers of 300 MiB each, at once: each is refused past 8 MiB.
    let statuses = rt.block_on(async { futures::future::join_all((0..4).map(|_| ask("__huge_300__"))).await });
    assert_eq!(statuses, [502; 4]);
    let after_answers = rss_mib(pid);
    assert!(after_answers < baseline + 100, "RSS grew from {baseline} MiB to {after_answers} MiB");

    // 500 authenticated clients that send a tenth of their body and stop.
    let addr = host.trim_start_matches("http://").to_string();
    let started = Instant::now();
    let answers = rt.block_on(async move {
        let mut slow = Vec::new();
        for _ in 0..500 {
            let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let head = format!(
                "POST /api/2.0/secrets/put HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\
                 Content-Length: 1000000\r\n\r\n{}",
                "x".repeat(100_000)
            );
            s.write_all(head.as_bytes()).await.unwrap();
            slow.push(s);
        }
        let reads = slow.into_iter().map(|mut s| async move {
            let mut out = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
            String::from_utf8_lossy(&out).into_owned()
        });
        futures::future::join_all(reads).await
    });
    let timed_out = answers.iter().filter(|a| a.starts_with("HTTP/1.1 408")).count();
    assert_eq!(timed_out, 500, "every slow client got its 408 and lost the connection");
    assert!(started.elapsed() < Duration::from_secs(9), "they were cut off after the body timeout");
    let after_slow = rss_mib(pid);
    assert!(after_slow < baseline + 150, "RSS grew from {baseline} MiB to {after_slow} MiB");
    assert_eq!(rt.block_on(ask("still here")), 200);
}

#[test]
fn webhook_urls_stay_out_of_the_log() {
    let (rt, env, server) =
        server_with_endpoint(&[("MODELGATE_ALERT_INTERVAL", "200ms"), ("MODELGATE_BREAKER_FAILURES", "1")]);
    // Nothing listens on port 9: every delivery fails and is logged.
    let hook = "http://127.0.0.1:9/services/T000/B000/hook-credential-path";
    let destination = format!(r#"{{"name": "ops", "url": "{hook}"}}"#);
    ok(cli(&server.host, Some(ADMIN), &["alerts", "create-destination", "--json", &destination], None, &env.config()));
    let host = server.host.clone();
    rt.block_on(async move {
        http()
            .post(format!("{host}/serving-endpoints/big/invocations"))
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({"messages": [{"role": "user", "content": "__status_500__"}]}))
            .send()
            .await
            .unwrap();
    });
    let start = Instant::now();
    while !server.output.lock().unwrap().contains("alert webhook failed") {
        assert!(start.elapsed() < Duration::from_secs(20), "no delivery was tried: {}", server.output.lock().unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = server.output.lock().unwrap().clone();
    assert!(log.contains("127.0.0.1"), "the host is named: {log}");
    assert!(!log.contains("hook-credential-path"), "the webhook URL leaked into the log: {log}");
}
