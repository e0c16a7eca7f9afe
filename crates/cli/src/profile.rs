//! Where the client commands find the server and the token.
//!
//! Order: `--host`/`--token` flags (or `MODELGATE_HOST`/`MODELGATE_TOKEN`), then the profile named
//! by `--profile`, then `DATABRICKS_HOST`/`DATABRICKS_TOKEN`, then the `default` profile written by
//! `modelgate configure`, then `http://127.0.0.1:8080` for the host.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::CliError;

/// Host used when nothing else names one.
pub const DEFAULT_HOST: &str = "http://127.0.0.1:8080";

/// One saved connection.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Profile {
    /// Server URL.
    pub host: Option<String>,
    /// Bearer token.
    pub token: Option<String>,
}

/// The profiles file.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ProfilesFile {
    /// Profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// `MODELGATE_CONFIG_FILE`, else `$XDG_CONFIG_HOME/modelgate/profiles.toml`, else
/// `~/.config/modelgate/profiles.toml`.
pub fn path() -> PathBuf {
    if let Some(p) = std::env::var_os("MODELGATE_CONFIG_FILE") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("modelgate").join("profiles.toml")
}

/// Reads the profiles file; a missing file is empty.
pub fn load() -> Result<ProfilesFile, CliError> {
    let p = path();
    match std::fs::read_to_string(&p) {
        Ok(text) => toml::from_str(&text).map_err(|e| CliError::Usage(format!("{}: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ProfilesFile::default()),
        Err(e) => Err(CliError::Usage(format!("{}: {e}", p.display()))),
    }
}

/// Writes the profiles file, readable by its owner only.
pub fn save(file: &ProfilesFile) -> Result<PathBuf, CliError> {
    let p = path();
    let io = |e: std::io::Error| CliError::Usage(format!("{}: {e}", p.display()));
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let text = toml::to_string(file).map_err(|e| CliError::Usage(e.to_string()))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    let mut f = opts.open(&p).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    Ok(p)
}

/// Resolves host and token.
pub fn resolve(
    host: Option<String>,
    token: Option<String>,
    profile: Option<&str>,
) -> Result<(String, String), CliError> {
    let file = load()?;
    let named = match profile {
        Some(name) => Some(
            file.profiles
                .get(name)
                .cloned()
                .ok_or_else(|| CliError::Usage(format!("no profile '{name}' in {}", path().display())))?,
        ),
        None => None,
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let default = file.profiles.get("default").cloned().unwrap_or_default();
    let host = host
        .or_else(|| named.as_ref().and_then(|p| p.host.clone()))
        .or_else(|| env("DATABRICKS_HOST"))
        .or(default.host)
        .unwrap_or_else(|| DEFAULT_HOST.to_string());
    let token = token
        .or_else(|| named.as_ref().and_then(|p| p.token.clone()))
        .or_else(|| env("DATABRICKS_TOKEN"))
        .or(default.token)
        .ok_or_else(|| {
            CliError::Usage("no token: pass --token, set MODELGATE_TOKEN, or run 'modelgate configure'".into())
        })?;
    let host = if host.contains("://") { host } else { format!("https://{host}") };
    Ok((host.trim_end_matches('/').to_string(), token))
}
