//! Rules of the model registry: names, runtimes and what a version must declare.

use std::collections::BTreeMap;

use crate::validate::ValidationError;

/// How a version's replicas run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// A program modelgate starts and proxies to (an OpenAI-compatible or MLflow scoring server).
    Process,
    /// A sentence-embedding model run inside the server.
    Embedded,
}

impl Runtime {
    /// Every runtime, as named in the API.
    pub const ALL: [&'static str; 2] = ["process", "embedded"];

    /// The runtime named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "process" => Some(Runtime::Process),
            "embedded" => Some(Runtime::Embedded),
            _ => None,
        }
    }

    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Process => "process",
            Runtime::Embedded => "embedded",
        }
    }

    /// Whether registering a version of it runs a program of the registrant's choosing on the
    /// server (an admin right).
    pub fn runs_code(self) -> bool {
        self == Runtime::Process
    }
}

/// The task of a version that speaks the MLflow scoring protocol (our extension).
pub const SCORING: &str = "mlflow/scoring";

/// Files an embedded model's directory must hold (a BERT-family sentence-embedding model).
pub const EMBEDDED_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];
/// Most arguments of a command.
pub const MAX_ARGS: usize = 256;
/// Longest argument.
pub const MAX_ARG_BYTES: usize = 4096;

fn err(path: &str, message: impl Into<String>) -> ValidationError {
    ValidationError { path: path.into(), message: message.into() }
}

/// A registered model's name: one to three dot-separated parts (`team.models.churn`, `churn`) of
/// letters, digits, `_` and `-`, at most 255 characters.
pub fn check_name(name: &str) -> Result<(), ValidationError> {
    let parts: Vec<&str> = name.split('.').collect();
    let part_ok = |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if name.len() > 255 || parts.len() > 3 || !parts.iter().all(part_ok) {
        return Err(err(
            "name",
            format!(
                "'{name}' is not a model name: use one to three dot-separated parts of letters, digits, '_' and '-' \
                 (e.g. team.models.churn), at most 255 characters"
            ),
        ));
    }
    Ok(())
}

/// What a version declares, checked: the runtime, its task (defaulted), and a command exactly
/// when the runtime runs one. Returns the runtime and the task.
pub fn check_version(
    runtime: &str,
    task: Option<&str>,
    command: Option<&[String]>,
    env: Option<&BTreeMap<String, String>>,
) -> Result<(Runtime, String), ValidationError> {
    let rt = Runtime::parse(runtime)
        .ok_or_else(|| err("runtime", format!("'{runtime}' is not one of {}", Runtime::ALL.join(", "))))?;
    let task = match (rt, task) {
        (_, Some(t)) if crate::validate::TASKS.contains(&t) || t == SCORING => t.to_string(),
        (_, Some(t)) => {
            return Err(err("task", format!("'{t}' is not one of {}, {SCORING}", crate::validate::TASKS.join(", "))));
        }
        (Runtime::Process, None) => "llm/v1/chat".to_string(),
        (Runtime::Embedded, None) => "llm/v1/embeddings".to_string(),
    };
    if rt == Runtime::Embedded && task != "llm/v1/embeddings" {
        return Err(err("task", "the embedded runtime serves llm/v1/embeddings only"));
    }
    match (rt, command) {
        (Runtime::Process, None | Some([])) => {
            return Err(err("command", "the process runtime needs a command: the program and its arguments"));
        }
        (Runtime::Process, Some(args)) => {
            if args.len() > MAX_ARGS {
                return Err(err("command", format!("has {} arguments; at most {MAX_ARGS}", args.len())));
            }
            for (i, a) in args.iter().enumerate() {
                if a.len() > MAX_ARG_BYTES || a.contains('\0') || (i == 0 && a.trim().is_empty()) {
                    return Err(err(
                        &format!("command[{i}]"),
                        format!("must be a non-empty argument without NUL bytes, at most {MAX_ARG_BYTES} bytes"),
                    ));
                }
            }
        }
        (Runtime::Embedded, Some(_)) => {
            return Err(err("command", "the embedded runtime runs inside the server and takes no command"));
        }
        (Runtime::Embedded, None) => {}
    }
    crate::validate::environment_vars(env, "").map_err(|e| ValidationError {
        path: e.path.trim_start_matches('.').replace("environment_vars", "env"),
        message: e.message,
    })?;
    Ok((rt, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_have_one_to_three_parts() {
        for ok in ["churn", "team.models.churn", "a-b_c.d"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a..b", "a.b.c.d", "a b", "team/models", ".x", &"x".repeat(256)] {
            assert_eq!(check_name(bad).unwrap_err().path, "name", "{bad}");
        }
    }

    #[test]
    fn a_version_declares_what_its_runtime_needs() {
        let cmd = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let serve = cmd(&["python", "serve.py"]);
        assert_eq!(check_version("process", None, Some(&serve), None), Ok((Runtime::Process, "llm/v1/chat".into())));
        let embeddings = check_version("process", Some("llm/v1/embeddings"), Some(&serve), None).unwrap();
        assert_eq!(embeddings.1, "llm/v1/embeddings");
        assert_eq!(check_version("embedded", None, None, None), Ok((Runtime::Embedded, "llm/v1/embeddings".into())));
        assert_eq!(check_version("embedded", Some("llm/v1/chat"), None, None).unwrap_err().path, "task");
        assert_eq!(check_version("process", Some("vision"), Some(&serve), None).unwrap_err().path, "task");
        assert_eq!(check_version("process", Some(SCORING), Some(&serve), None).unwrap().1, SCORING);
        assert_eq!(check_version("docker", None, None, None).unwrap_err().path, "runtime");
        assert_eq!(check_version("process", None, None, None).unwrap_err().path, "command");
        assert_eq!(check_version("process", None, Some(&cmd(&[""])), None).unwrap_err().path, "command[0]");
        assert_eq!(check_version("process", None, Some(&cmd(&["a", "b\0c"])), None).unwrap_err().path, "command[1]");
        assert_eq!(check_version("embedded", None, Some(&cmd(&["x"])), None).unwrap_err().path, "command");
        let env = BTreeMap::from([("BAD-NAME".to_string(), "x".to_string())]);
        assert_eq!(check_version("embedded", None, None, Some(&env)).unwrap_err().path, "env.BAD-NAME");
        let env = BTreeMap::from([("KEY".to_string(), "{{secrets/only-scope}}".to_string())]);
        assert_eq!(check_version("embedded", None, None, Some(&env)).unwrap_err().path, "env.KEY");
    }
}
