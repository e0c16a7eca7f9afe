//! Where the client commands find the server and the token.
//!
//! Order: `--host`/`--token` flags (or `MODELGATE_HOST`/`MODELGATE_TOKEN`), then the profile named
//! by `--profile` (in modelgate's profiles file, else in `~/.databrickscfg`), then
//! `DATABRICKS_HOST`/`DATABRICKS_TOKEN`, then the `~/.databrickscfg` profile named by
//! `DATABRICKS_CONFIG_PROFILE`, then the `default` profile written by `modelgate configure`, then
//! the `DEFAULT` profile of `~/.databrickscfg`, then `http://127.0.0.1:8080` for the host. That is
//! how the Databricks CLI reads them, so one `~/.databrickscfg` serves both.

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

/// `DATABRICKS_CONFIG_FILE`, else `~/.databrickscfg`.
fn databrickscfg_path() -> Option<PathBuf> {
    std::env::var_os("DATABRICKS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".databrickscfg")))
}

/// The `host` and `token` of every profile of a Databricks config file (INI: `[name]` sections of
/// `key = value` lines; `#` and `;` start comments). Only these two keys matter here, so a
/// dozen lines do rather than an INI library.
fn parse_databrickscfg(text: &str) -> BTreeMap<String, Profile> {
    let mut out: BTreeMap<String, Profile> = BTreeMap::new();
    let mut section: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.trim().to_string());
            continue;
        }
        let (Some(name), Some((key, value))) = (&section, line.split_once('=')) else { continue };
        let profile = out.entry(name.clone()).or_default();
        let value = Some(value.trim().to_string()).filter(|v| !v.is_empty());
        match key.trim() {
            "host" => profile.host = value,
            "token" => profile.token = value,
            _ => {}
        }
    }
    out
}

/// The profiles of `~/.databrickscfg` (none when it does not exist).
fn databrickscfg() -> Result<BTreeMap<String, Profile>, CliError> {
    let Some(p) = databrickscfg_path() else { return Ok(BTreeMap::new()) };
    match std::fs::read_to_string(&p) {
        Ok(text) => Ok(parse_databrickscfg(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(CliError::Usage(format!("{}: {e}", p.display()))),
    }
}

/// Resolves host and token.
pub fn resolve(
    host: Option<String>,
    token: Option<String>,
    profile: Option<&str>,
) -> Result<(String, String), CliError> {
    let file = load()?;
    let cfg = databrickscfg()?;
    let named = match profile {
        Some(name) => Some(file.profiles.get(name).or_else(|| cfg.get(name)).cloned().ok_or_else(|| {
            let cfg_path = databrickscfg_path().map(|p| p.display().to_string()).unwrap_or_default();
            CliError::Usage(format!("no profile '{name}' in {} or {cfg_path}", path().display()))
        })?),
        None => None,
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let databricks_profile = match env("DATABRICKS_CONFIG_PROFILE") {
        Some(name) => Some(cfg.get(&name).cloned().ok_or_else(|| {
            CliError::Usage(format!("DATABRICKS_CONFIG_PROFILE names '{name}', which is not in ~/.databrickscfg"))
        })?),
        None => None,
    };
    let default = file.profiles.get("default").cloned().unwrap_or_default();
    let cfg_default = cfg.get("DEFAULT").cloned().unwrap_or_default();
    let host = host
        .or_else(|| named.as_ref().and_then(|p| p.host.clone()))
        .or_else(|| env("DATABRICKS_HOST"))
        .or_else(|| databricks_profile.as_ref().and_then(|p| p.host.clone()))
        .or(default.host)
        .or(cfg_default.host)
        .unwrap_or_else(|| DEFAULT_HOST.to_string());
    let token = token
        .or_else(|| named.as_ref().and_then(|p| p.token.clone()))
        .or_else(|| env("DATABRICKS_TOKEN"))
        .or_else(|| databricks_profile.as_ref().and_then(|p| p.token.clone()))
        .or(default.token)
        .or(cfg_default.token)
        .ok_or_else(|| {
            CliError::Usage(
                "no token: pass --token, set MODELGATE_TOKEN, run 'modelgate configure', or add a profile to \
                 ~/.databrickscfg"
                    .into(),
            )
        })?;
    let host = if host.contains("://") { host } else { format!("https://{host}") };
    Ok((host.trim_end_matches('/').to_string(), token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn databrickscfg_profiles_are_read_as_the_databricks_cli_reads_them() {
        let text = "; comment\n[DEFAULT]\nhost = https://a.example.com\ntoken = t-a\n\n[staging]\n# note\nhost=http://127.0.0.1:9\ntoken= t-s \nauth_type = pat\n";
        let p = parse_databrickscfg(text);
        assert_eq!(p.get("DEFAULT").and_then(|p| p.host.as_deref()), Some("https://a.example.com"));
        assert_eq!(p.get("staging").and_then(|p| p.token.as_deref()), Some("t-s"));
        assert_eq!(p.get("staging").and_then(|p| p.host.as_deref()), Some("http://127.0.0.1:9"));
        assert!(!p.contains_key("prod"));
    }
}
