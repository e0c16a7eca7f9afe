//! The `process` runtime: a replica is a program the version declares, started with a clean
//! environment, its own working directory and process group, and operating-system limits on
//! memory and open files (through `prlimit` where the machine has it). It listens on `PORT`; its
//! output lines are the served entity's logs. Stopping it signals the whole group, so nothing it
//! started outlives it, and dropping it kills the group as a last resort.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::runtime::{LogSink, Replica, ReplicaSpec, Runtime};

/// Where `prlimit` (util-linux) is looked for.
const PRLIMIT: &str = "/usr/bin/prlimit";
/// `PATH` of a replica that declares none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Longest output line kept (longer ones are cut).
const MAX_LINE: usize = 4096;

/// Starts programs on this machine.
pub struct ProcessRuntime {
    http: reqwest::Client,
}

impl ProcessRuntime {
    /// A runtime probing health with `http`.
    pub fn new(http: reqwest::Client) -> Self {
        ProcessRuntime { http }
    }
}

/// `arg` with `$PORT`/`${PORT}` and `$MODEL_PATH`/`${MODEL_PATH}` filled in.
fn fill(arg: &str, port: u16, model_path: &Path) -> String {
    let path = model_path.display().to_string();
    arg.replace("${PORT}", &port.to_string())
        .replace("$PORT", &port.to_string())
        .replace("${MODEL_PATH}", &path)
        .replace("$MODEL_PATH", &path)
}

/// Kills the process groups of replicas a previous run left running (it was killed before it
/// could stop them): every process whose working directory is under `work_root`, where only
/// replicas run. Returns how many groups were killed. Never this server's own group.
pub fn reap_orphans(work_root: &Path) -> usize {
    let Ok(root) = work_root.canonicalize() else { return 0 };
    let ours = nix::unistd::getpgrp();
    let mut groups = std::collections::HashSet::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else { continue };
        if !cwd.starts_with(&root) {
            continue;
        }
        if let Ok(group) = nix::unistd::getpgid(Some(Pid::from_raw(pid)))
            && group != ours
        {
            groups.insert(group);
        }
    }
    groups.into_iter().filter(|g| killpg(*g, Signal::SIGKILL).is_ok()).count()
}

/// A free loopback port (another program could take it before the replica binds it; the replica
/// then fails its health check and is started again on another).
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| format!("no free port: {e}"))
}

#[async_trait::async_trait]
impl Runtime for ProcessRuntime {
    async fn start(&self, spec: &ReplicaSpec, log: LogSink) -> Result<Arc<dyn Replica>, String> {
        let (program, args) = spec.command.split_first().ok_or("the version has no command")?;
        let port = free_port()?;
        let workdir = spec.work_root.join(format!("replica-{port}-{}", modelgate_core::token::random_hex(4)));
        std::fs::create_dir_all(&workdir).map_err(|e| format!("cannot create {}: {e}", workdir.display()))?;
        let argv: Vec<String> = std::iter::once(program.as_str())
            .chain(args.iter().map(String::as_str))
            .map(|a| fill(a, port, &spec.model_path))
            .collect();
        let limited = Path::new(PRLIMIT).is_file();
        let mut cmd = if limited {
            let mut c = Command::new(PRLIMIT);
            c.arg(format!("--as={}", spec.limits.memory_bytes))
                .arg(format!("--nofile={0}:{0}", spec.limits.open_files))
                .arg("--")
                .args(&argv);
            c
        } else {
            log("prlimit is not installed: the replica runs without memory and open-file limits");
            let mut c = Command::new(argv.first().map(String::as_str).unwrap_or_default());
            c.args(argv.iter().skip(1));
            c
        };
        cmd.env_clear()
            .env("PATH", DEFAULT_PATH)
            .env("HOME", &workdir)
            .envs(&spec.env)
            .env("PORT", port.to_string())
            .env("MODEL_PATH", &spec.model_path)
            .current_dir(&workdir)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| format!("cannot start {program}: {e}"))?;
        let pid = child.id().and_then(|id| i32::try_from(id).ok()).ok_or("the replica exited at once")?;
        for out in [child.stdout.take().map(pipe), child.stderr.take().map(pipe)].into_iter().flatten() {
            let log = log.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let cut = line
                        .char_indices()
                        .nth(MAX_LINE)
                        .map_or(line.as_str(), |(i, _)| line.get(..i).unwrap_or_default());
                    log(cut);
                }
            });
        }
        log(&format!("started {program} (pid {pid}) on port {port}"));
        Ok(Arc::new(ProcessReplica {
            base_url: format!("http://127.0.0.1:{port}"),
            group: Pid::from_raw(pid),
            child: tokio::sync::Mutex::new(child),
            exit: Mutex::new(None),
            workdir,
            http: self.http.clone(),
        }))
    }
}

/// A child's output as one reader type.
fn pipe(r: impl tokio::io::AsyncRead + Send + Unpin + 'static) -> Box<dyn tokio::io::AsyncRead + Send + Unpin> {
    Box::new(r)
}

/// One running program.
struct ProcessReplica {
    base_url: String,
    /// Its process group (its pid: it leads the group).
    group: Pid,
    child: tokio::sync::Mutex<Child>,
    /// How it ended, once it has.
    exit: Mutex<Option<String>>,
    workdir: PathBuf,
    http: reqwest::Client,
}

impl ProcessReplica {
    fn record_exit(&self, status: std::process::ExitStatus) -> String {
        let how = match status.code() {
            Some(c) => format!("exited with status {c}"),
            None => "was killed by a signal".to_string(),
        };
        *self.exit.lock().unwrap_or_else(|e| e.into_inner()) = Some(how.clone());
        how
    }
}

#[async_trait::async_trait]
impl Replica for ProcessReplica {
    fn base_url(&self) -> &str {
        &self.base_url
    }

    async fn healthy(&self, timeout: Duration) -> bool {
        if self.exited().is_some() {
            return false;
        }
        let probe = self.http.get(format!("{}/health", self.base_url)).timeout(timeout).send().await;
        probe.is_ok_and(|r| r.status().as_u16() < 500)
    }

    fn exited(&self) -> Option<String> {
        if let Some(how) = self.exit.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Some(how);
        }
        let mut child = self.child.try_lock().ok()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                drop(child);
                Some(self.record_exit(status))
            }
            _ => None,
        }
    }

    async fn stop(&self, grace: Duration) {
        let _ = killpg(self.group, Signal::SIGTERM);
        let mut child = self.child.lock().await;
        let status = match tokio::time::timeout(grace, child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                let _ = killpg(self.group, Signal::SIGKILL);
                child.wait().await.ok()
            }
        };
        // Whatever else the program left in its group goes too.
        let _ = killpg(self.group, Signal::SIGKILL);
        drop(child);
        if let Some(s) = status {
            self.record_exit(s);
        }
        let _ = std::fs::remove_dir_all(&self.workdir);
    }
}

impl Drop for ProcessReplica {
    fn drop(&mut self) {
        // A replica dropped without stop (a panic, an aborted task): its group must not outlive it.
        if self.exit.lock().map(|e| e.is_none()).unwrap_or(true) {
            let _ = killpg(self.group, Signal::SIGKILL);
        }
        let _ = std::fs::remove_dir_all(&self.workdir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replicas_a_killed_server_left_are_reaped_with_their_groups() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("replica-1");
        std::fs::create_dir_all(&dir).unwrap();
        // A replica that started a child of its own, both in the replica's group.
        let mut orphan =
            Command::new("sh").args(["-c", "sleep 300 & wait"]).current_dir(&dir).process_group(0).spawn().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let mut bystander =
            Command::new("sleep").arg("300").current_dir(elsewhere.path()).process_group(0).spawn().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(reap_orphans(root.path()), 1, "one group");
        let status = tokio::time::timeout(Duration::from_secs(5), orphan.wait()).await.unwrap().unwrap();
        assert!(status.code().is_none(), "killed by a signal: {status:?}");
        assert!(bystander.try_wait().unwrap().is_none(), "a process elsewhere is left alone");
        bystander.kill().await.unwrap();
        assert_eq!(reap_orphans(&root.path().join("missing")), 0);
    }

    #[test]
    fn placeholders_are_filled_without_a_shell() {
        let p = Path::new("/models/m");
        assert_eq!(fill("--port=$PORT", 8123, p), "--port=8123");
        assert_eq!(fill("${MODEL_PATH}/w.bin", 1, p), "/models/m/w.bin");
        assert_eq!(fill("$(rm -rf /); `x`", 1, p), "$(rm -rf /); `x`", "no shell expansion");
    }

    #[tokio::test]
    async fn a_replica_gets_only_its_environment_and_is_stopped_with_its_group() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("seen");
        // A program that records its environment and starts a grandchild, then waits.
        let script = format!("env > {0}; sleep 300 & echo $! > {0}.child; wait", out.display());
        let spec = ReplicaSpec {
            command: vec!["/bin/sh".into(), "-c".into(), script],
            env: [("DECLARED".to_string(), "yes".to_string())].into(),
            model_path: root.path().to_path_buf(),
            work_root: root.path().join("work"),
            limits: Default::default(),
        };
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let log: LogSink = Arc::new(move |l: &str| sink.lock().unwrap().push(l.to_string()));
        let _ = rustls::crypto::ring::default_provider().install_default();
        let replica = ProcessRuntime::new(reqwest::Client::new()).start(&spec, log).await.unwrap();
        let child_file = root.path().join("seen.child");
        for _ in 0..100 {
            if child_file.exists() && std::fs::read_to_string(&child_file).unwrap().trim().parse::<i32>().is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let env = std::fs::read_to_string(&out).unwrap();
        assert!(env.contains("DECLARED=yes") && env.contains("PORT=") && env.contains("MODEL_PATH="), "{env}");
        // `cargo test` runs this test with CARGO_PKG_NAME in its environment: the replica must not see it.
        assert!(std::env::var("CARGO_PKG_NAME").is_ok());
        assert!(!env.contains("CARGO_PKG_NAME="), "the server's environment is not passed on: {env}");
        assert!(replica.exited().is_none());
        let grandchild: i32 = std::fs::read_to_string(&child_file).unwrap().trim().parse().unwrap();
        replica.stop(Duration::from_secs(2)).await;
        assert!(replica.exited().is_some());
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Gone, or a zombie waiting for whoever adopted it to reap it: not running either way.
        let state = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
        let running =
            state.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()).is_some_and(|s| s != "Z");
        assert!(!running, "the whole group is stopped: {state}");
        assert!(lines.lock().unwrap().iter().any(|l| l.starts_with("started /bin/sh")));
    }

    #[tokio::test]
    async fn a_replica_runs_under_its_memory_and_open_file_limits() {
        assert!(Path::new(PRLIMIT).is_file(), "this test needs util-linux's prlimit, which the machines have");
        let root = tempfile::tempdir().unwrap();
        let seen = root.path().join("limits");
        let script = format!("echo $(ulimit -n) $(ulimit -v) > {}; sleep 300", seen.display());
        let spec = ReplicaSpec {
            command: vec!["/bin/sh".into(), "-c".into(), script],
            env: Default::default(),
            model_path: root.path().to_path_buf(),
            work_root: root.path().join("work"),
            limits: super::super::runtime::ReplicaLimits { memory_bytes: 512 << 20, open_files: 123 },
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let log: LogSink = Arc::new(|_: &str| {});
        let replica = ProcessRuntime::new(reqwest::Client::new()).start(&spec, log).await.unwrap();
        for _ in 0..100 {
            if std::fs::read_to_string(&seen).is_ok_and(|s| s.ends_with('\n')) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        replica.stop(Duration::from_secs(2)).await;
        // `ulimit -v` is in KiB.
        assert_eq!(std::fs::read_to_string(&seen).unwrap().trim(), format!("123 {}", 512 * 1024));
    }
}
