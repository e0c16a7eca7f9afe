//! First-start and every-start work: the data directory, the master key, the admin user.

use std::io::Write;
use std::path::{Path, PathBuf};

use modelgate_core::cipher::Cipher;
use modelgate_core::{now_ms, token};
use modelgate_store::{PrincipalRecord, Store, StoreError, TokenRecord, principal_kind};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be created or read.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The master key is missing, malformed or does not match the data.
    #[error("{0}")]
    MasterKey(String),
    /// The upstream HTTP client could not be built.
    #[error("cannot build the upstream HTTP client: {0}")]
    HttpClient(reqwest::Error),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A database file could not be opened or migrated (corrupted, not a database, unreadable).
    #[error("{what} {path}: {source}")]
    Database {
        /// Which database: the control-plane, usage or inference-table database.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What failed.
        source: StoreError,
    },
    /// A file holding secrets is readable by other users.
    #[error("{0}")]
    InsecurePermissions(String),
    /// The price table override file could not be read or is invalid.
    #[error("price table {path}: {reason}")]
    PriceTable {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
}

/// Name of the key file inside the data directory.
pub const KEY_FILE: &str = "master.key";
/// Name of the inference-table database file inside the data directory.
pub const INFERENCE_DB_FILE: &str = "inference.db";
/// Name of the usage database file inside the data directory.
pub const USAGE_DB_FILE: &str = "usage.db";
/// Name of the database file inside the data directory.
pub const DB_FILE: &str = "modelgate.db";
/// The admin user created on first start.
pub const ADMIN_USER: &str = "admin";
/// The built-in group whose members (direct or through nested groups) are admins.
pub const ADMINS_GROUP: &str = "admins";
/// The built-in group every user and service principal joins on creation.
pub const USERS_GROUP: &str = "users";
/// The built-in group whose members (and admins) may point endpoints at base URLs outside the
/// server's outbound allow-list (see docs/security.md).
pub const CUSTOM_BASE_URLS_GROUP: &str = "custom-base-urls";
/// Token id of the token taken from `MODELGATE_ADMIN_TOKEN`.
const ENV_TOKEN_ID: &str = "admin-env";
/// Plaintext sealed into `meta.key_check` to recognise the right master key.
const KEY_CHECK_CONTEXT: &str = "key-check";

/// Creates the data directory (owner-only) if needed; an existing one that other users can read
/// is tightened to owner-only, with a warning, and so are the database files in it (they hold the
/// audit log, usage and logged prompts).
pub fn data_dir(path: &Path) -> Result<(), StartError> {
    let err = |source| StartError::DataDir { path: path.to_path_buf(), source };
    std::fs::create_dir_all(path).map_err(err)?;
    #[cfg(unix)]
    {
        tighten(path, 0o700).map_err(err)?;
        for name in [DB_FILE, USAGE_DB_FILE, INFERENCE_DB_FILE] {
            for suffix in ["", "-wal", "-shm"] {
                let file = path.join(format!("{name}{suffix}"));
                if file.exists() {
                    tighten(&file, 0o600).map_err(|source| StartError::DataDir { path: file.clone(), source })?;
                }
            }
        }
    }
    Ok(())
}

/// Sets `mode` on `path` if group or others have any access, saying so.
#[cfg(unix)]
fn tighten(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if current & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            from = format!("{current:o}"),
            to = format!("{mode:o}"),
            "other users could read this; tightened its permissions"
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Refuses a master key file that group or others can read, unless `allow` (then warns).
pub fn check_key_file(path: &Path, allow: bool) -> Result<(), StartError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(path) else { return Ok(()) };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            let msg = format!(
                "the master key file {} can be read by other users (mode {mode:o}); run `chmod 600 {}`, \
                 or start with --allow-insecure-key-file to accept it",
                path.display(),
                path.display()
            );
            if !allow {
                return Err(StartError::InsecurePermissions(msg));
            }
            tracing::warn!("{msg}");
        }
    }
    #[cfg(not(unix))]
    let _ = (path, allow);
    Ok(())
}

/// Finds the master key (environment, then key file, then a new key file on a fresh data
/// directory) and checks that it opens the existing data. Nothing is written unless the data
/// directory is fresh.
pub async fn master_key(
    store: &dyn Store,
    dir: &Path,
    from_env: Option<&str>,
    allow_insecure_key_file: bool,
) -> Result<Cipher, StartError> {
    let key_check = store.get_meta("key_check").await?;
    let key_path = dir.join(KEY_FILE);
    let key_text = match from_env {
        Some(k) => k.to_string(),
        None if key_path.exists() => {
            check_key_file(&key_path, allow_insecure_key_file)?;
            std::fs::read_to_string(&key_path)
                .map_err(|source| StartError::DataDir { path: key_path.clone(), source })?
        }
        None if key_check.is_some() => {
            return Err(StartError::MasterKey(format!(
                "{} holds encrypted data but there is no master key: set MODELGATE_MASTER_KEY or restore {}",
                dir.display(),
                key_path.display()
            )));
        }
        None => {
            let text = Cipher::generate_key_text().map_err(|e| StartError::MasterKey(e.to_string()))?;
            write_private(&key_path, &text).map_err(|source| StartError::DataDir { path: key_path.clone(), source })?;
            tracing::info!(path = %key_path.display(), "generated a new master key");
            text
        }
    };
    let source = if from_env.is_some() { "MODELGATE_MASTER_KEY".to_string() } else { key_path.display().to_string() };
    let key = Cipher::parse_key(&key_text).map_err(|e| StartError::MasterKey(format!("{source}: {e}")))?;
    let cipher = Cipher::new(&key);
    if let Some(check) = key_check
        && cipher.open_text(KEY_CHECK_CONTEXT, &check).is_err()
    {
        return Err(StartError::MasterKey(format!(
            "the master key from {source} does not decrypt the data in {}; refusing to start (nothing was changed)",
            dir.display()
        )));
    }
    Ok(cipher)
}

/// Records the key check on a fresh database (after migration).
pub async fn remember_key(store: &dyn Store, cipher: &Cipher) -> Result<(), StartError> {
    if store.get_meta("key_check").await?.is_none() {
        let sealed =
            cipher.seal_text(KEY_CHECK_CONTEXT, "modelgate").map_err(|e| StartError::MasterKey(e.to_string()))?;
        store.put_meta("key_check", &sealed).await?;
    }
    Ok(())
}

/// The installation's stable workspace id.
pub async fn workspace_id(store: &dyn Store) -> Result<String, StartError> {
    if let Some(id) = store.get_meta("workspace_id").await? {
        return Ok(id);
    }
    // Databricks workspace ids are decimal; 15 digits from random bytes.
    let hex = token::random_hex(8);
    let id = (u64::from_str_radix(&hex, 16).unwrap_or(1) % 900_000_000_000_000 + 100_000_000_000_000).to_string();
    store.put_meta("workspace_id", &id).await?;
    Ok(id)
}

/// The principal of `kind` named `name`, created if missing.
pub async fn ensure_principal(store: &dyn Store, kind: &str, name: &str) -> Result<PrincipalRecord, StoreError> {
    if let Some(p) = store.find_principal(kind, name).await? {
        return Ok(p);
    }
    let p = PrincipalRecord {
        id: token::random_digits(16),
        kind: kind.into(),
        name: name.into(),
        display_name: name.into(),
        active: true,
        created_at: now_ms(),
    };
    store.create_principal(&p).await?;
    Ok(p)
}

/// Ensures the `admins` group and the `admin` user in it exist, and that the admin has a token.
/// Returns a newly generated token the first time, for the caller to print once; with
/// `from_env`, makes that token valid instead.
pub async fn admin(store: &dyn Store, from_env: Option<&str>) -> Result<Option<String>, StartError> {
    let group = ensure_principal(store, principal_kind::GROUP, ADMINS_GROUP).await?;
    let everyone = ensure_principal(store, principal_kind::GROUP, USERS_GROUP).await?;
    ensure_principal(store, principal_kind::GROUP, CUSTOM_BASE_URLS_GROUP).await?;
    let user = ensure_principal(store, principal_kind::USER, ADMIN_USER).await?;
    store.add_member(&group.id, &user.id).await?;
    store.add_member(&everyone.id, &user.id).await?;
    let record = |value: &str, id: String, comment: &str| TokenRecord {
        token_id: id,
        token_hash: token::hash(value),
        principal_id: user.id.clone(),
        comment: comment.into(),
        created_by: user.id.clone(),
        created_at: now_ms(),
        expires_at: None,
    };
    if let Some(value) = from_env {
        let hash = token::hash(value);
        let tokens = store.list_tokens(Some(&user.id)).await?;
        if !tokens.iter().any(|t| t.token_hash == hash) {
            if tokens.iter().any(|t| t.token_id == ENV_TOKEN_ID) {
                store.delete_token(ENV_TOKEN_ID, None).await?;
            }
            store.insert_token(&record(value, ENV_TOKEN_ID.into(), "from MODELGATE_ADMIN_TOKEN")).await?;
        }
        return Ok(None);
    }
    if store.get_meta("admin_token_issued").await?.is_some() {
        return Ok(None);
    }
    let value = token::generate();
    store.insert_token(&record(&value, token::random_hex(16), "admin token created on first start")).await?;
    store.put_meta("admin_token_issued", &now_ms().to_string()).await?;
    Ok(Some(value))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}
