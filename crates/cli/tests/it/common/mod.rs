//! Shared by the CLI tests: `modelgate serve` as a child process that is stopped when dropped,
//! the client commands, a mock provider.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_modelgate");
pub const ADMIN: &str = "mgt_cli_test_admin_token_abcdefghijklmnop";

pub struct Serve {
    pub child: Child,
    pub host: String,
    /// Everything the server printed on stdout and stderr.
    pub output: Arc<Mutex<String>>,
}

/// A test that fails (or forgets) still stops its server.
impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

pub fn spawn_server(data: &Path, envs: &[(&str, &str)]) -> Serve {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data);
    cmd.env_remove("MODELGATE_TOKEN").env_remove("MODELGATE_ADMIN_TOKEN").env_remove("MODELGATE_MASTER_KEY");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn modelgate serve");
    let output = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = output.clone();
    std::thread::spawn(move || {
        // Line by line, so a test can watch the log while the server runs.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap_or_else(|e| e.into_inner()).push_str(&format!("{line}\n"));
        }
    });
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = output.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(addr) = line.strip_prefix("modelgate listening on ") {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let host = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("server did not start: {}", output.lock().unwrap()));
    Serve { child, host, output }
}

pub fn cli(host: &str, token: Option<&str>, args: &[&str], stdin: Option<&str>, config_file: &Path) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("MODELGATE_HOST", host)
        .env("MODELGATE_CONFIG_FILE", config_file)
        .env_remove("MODELGATE_TOKEN")
        .env_remove("DATABRICKS_HOST")
        .env_remove("DATABRICKS_TOKEN")
        .env_remove("MODELGATE_PROFILE");
    if let Some(t) = token {
        cmd.env("MODELGATE_TOKEN", t);
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().unwrap()
}

pub fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

pub fn ok(o: Output) -> String {
    let (out, err) = text(&o);
    assert!(o.status.success(), "command failed: {err}\n{out}");
    out
}

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("profiles.toml")
    }
}

pub fn sigterm(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

/// A mock provider on an ephemeral port inside `rt`.
pub fn mock_in(rt: &tokio::runtime::Runtime, options: modelgate_mock_upstream::Options) -> String {
    rt.block_on(async {
        let m = modelgate_mock_upstream::Mock::new(options);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(modelgate_mock_upstream::serve(listener, m));
        url
    })
}

/// An HTTP client for talking to the server directly.
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A server whose OpenAI is a fake on loopback (for as long as `rt` lives), with its admin token.
pub struct FakeOpenAi {
    /// Runs the fake; dropped last.
    pub rt: tokio::runtime::Runtime,
    /// The fake's base URL.
    pub mock: String,
    /// The server's scratch space (data directory, profiles file).
    pub env: Env,
    /// The server.
    pub server: Serve,
}

impl FakeOpenAi {
    /// Starts the fake and a server using it as OpenAI; with `secret`, the secret
    /// `llm/openai` exists too.
    pub fn start(secret: bool) -> FakeOpenAi {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let mock = mock_in(&rt, Default::default());
        let env = Env::new();
        let base_urls = format!("openai={mock}/v1");
        let server = spawn_server(
            &env.data(),
            &[("MODELGATE_ADMIN_TOKEN", ADMIN), ("MODELGATE_PROVIDER_BASE_URLS", &base_urls)],
        );
        if secret {
            ok(cli(&server.host, Some(ADMIN), &["secrets", "create-scope", "llm"], None, &env.config()));
            ok(cli(
                &server.host,
                Some(ADMIN),
                &["secrets", "put-secret", "llm", "openai"],
                Some("sk-fake-openai"),
                &env.config(),
            ));
        }
        FakeOpenAi { rt, mock, env, server }
    }

    /// Runs a client command as the admin.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&self.server.host, Some(ADMIN), args, None, &self.env.config())
    }
}
