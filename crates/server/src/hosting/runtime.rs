//! The one interface every runtime implements: start a replica of a model version, say where it
//! listens, probe its health, stop it. The replica sets and the data plane see only this, so a
//! cluster runtime (Kubernetes Deployments, say) is another implementation of [`Runtime`], not a
//! change to either.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where a replica's output lines go (its served entity's `logs`).
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// What a replica runs.
#[derive(Clone)]
pub struct ReplicaSpec {
    /// The program and its arguments; `$PORT` and `$MODEL_PATH` are filled in per replica.
    pub command: Vec<String>,
    /// The whole environment of the process (declared variables with secrets resolved); nothing
    /// of the server's own environment is passed on.
    pub env: BTreeMap<String, String>,
    /// The version's source directory.
    pub model_path: PathBuf,
    /// Where replicas get their working directories.
    pub work_root: PathBuf,
    /// Resource limits of each replica.
    pub limits: ReplicaLimits,
}

impl std::fmt::Debug for ReplicaSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The environment holds resolved secrets: only its names are printed.
        f.debug_struct("ReplicaSpec")
            .field("command", &self.command)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("model_path", &self.model_path)
            .finish_non_exhaustive()
    }
}

/// Limits the operating system enforces on a replica.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaLimits {
    /// Address space, bytes.
    pub memory_bytes: u64,
    /// Open files.
    pub open_files: u64,
}

impl Default for ReplicaLimits {
    fn default() -> Self {
        ReplicaLimits { memory_bytes: 8 << 30, open_files: 4096 }
    }
}

/// A started replica.
#[async_trait::async_trait]
pub trait Replica: Send + Sync {
    /// The base URL it serves on (`http://127.0.0.1:PORT`).
    fn base_url(&self) -> &str;
    /// Whether it answers HTTP now (any status below 500 at `/health`), within `timeout`.
    async fn healthy(&self, timeout: Duration) -> bool;
    /// Whether it has exited, with how (`exited with status 1`), if it has.
    fn exited(&self) -> Option<String>;
    /// Stops it: a polite signal, then, after `grace`, a kill of everything it started.
    async fn stop(&self, grace: Duration);
}

/// Starts replicas of one kind.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync {
    /// Starts one replica of `spec`, its output going to `log`. Returns once the process runs;
    /// whether it serves is for [`Replica::healthy`] to say.
    async fn start(&self, spec: &ReplicaSpec, log: LogSink) -> Result<Arc<dyn Replica>, String>;
}
