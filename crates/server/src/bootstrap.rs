//! First-start and every-start work: the data directory, the master key, the admin user.

use std::io::Write;
use std::path::{Path, PathBuf};

use modelgate_core::cipher::Cipher;
use modelgate_core::{now_ms, token};
use modelgate_store::{Location, PrincipalRecord, Store, StoreError, TokenRecord, principal_kind};

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
    /// A database could not be opened or migrated (a file corrupted, not a database or
    /// unreadable; a server that does not answer or refuses the credentials).
    #[error("{what} {at}: {source}")]
    Database {
        /// Which database: the control-plane, usage or inference-table database.
        what: &'static str,
        /// The file, or the URL without its password.
        at: String,
        /// What failed.
        source: StoreError,
    },
    /// A database URL cannot be used.
    #[error("{0}")]
    DatabaseUrl(String),
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
    /// The operator's foundation-model catalog could not be read or is invalid.
    #[error("foundation-model catalog {path}: {reason}")]
    FoundationCatalog {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The Redis URL cannot be used.
    #[error("{0}")]
    Redis(String),
    /// The trace export settings cannot be used.
    #[error("{0}")]
    Traces(String),
    /// Another server uses the data directory.
    #[error("{0}")]
    DataDirInUse(String),
    /// `MODELGATE_ADMIN_TOKEN` is too weak to accept.
    #[error("{0}")]
    AdminToken(String),
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

/// Where the three databases are: files in the data directory, or PostgreSQL.
pub struct DatabasePlaces {
    /// Configuration, identities, secrets, audit log.
    pub control: Location,
    /// Usage records (the request log).
    pub usage: Location,
    /// Inference-table payloads.
    pub inference: Location,
}

impl DatabasePlaces {
    /// From `--database-url` and `--log-database-url`; without them, the data directory's files.
    pub fn of(config: &crate::ServerConfig) -> Result<DatabasePlaces, StartError> {
        let url =
            |u: &Option<String>| u.as_deref().map(Location::postgres).transpose().map_err(StartError::DatabaseUrl);
        let (control, logs) = (url(&config.database_url)?, url(&config.log_database_url)?);
        let file = |name: &str| Location::Sqlite(config.data_dir.join(name));
        let logs = logs.or_else(|| control.clone());
        Ok(DatabasePlaces {
            control: control.unwrap_or_else(|| file(DB_FILE)),
            usage: logs.clone().unwrap_or_else(|| file(USAGE_DB_FILE)),
            inference: logs.unwrap_or_else(|| file(INFERENCE_DB_FILE)),
        })
    }
}
/// The admin user created on first start.
pub const ADMIN_USER: &str = "admin";
/// The built-in group whose members (direct or through nested groups) are admins.
pub const ADMINS_GROUP: &str = "admins";
/// The built-in group every user and service principal joins on creation.
pub const USERS_GROUP: &str = "users";
/// The built-in group whose members (and admins) may point endpoints at base URLs outside the
/// server's outbound allow-list (see docs/security.md).
pub const CUSTOM_BASE_URLS_GROUP: &str = "custom-base-urls";
/// Members may register model versions whose runtime starts a program on the server.
pub const MODEL_RUNNERS_GROUP: &str = "model-runners";
/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "modelgate.lock";
/// Fewest characters of an admin token given in `MODELGATE_ADMIN_TOKEN` (generated ones are longer).
pub const MIN_ADMIN_TOKEN_LEN: usize = 32;
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

/// The data directory's lock: held while a server uses it, released when dropped (or when the
/// process ends, however it ends).
#[derive(Debug)]
pub struct DirLock(#[allow(dead_code, reason = "held for its lock, never read")] std::fs::File);

/// Locks the data directory for this process, or explains who holds it.
pub fn lock(dir: &Path) -> Result<DirLock, StartError> {
    let path = dir.join(LOCK_FILE);
    let err = |source| StartError::DataDir { path: path.clone(), source };
    let mut file =
        std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(err)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let pid = holder.trim();
            let who = if pid.is_empty() { String::new() } else { format!(" (process {pid})") };
            return Err(StartError::DataDirInUse(format!(
                "data directory {} is in use by another modelgate server{who}; stop it, or give this one its own --data-dir",
                dir.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(err(e)),
    }
    // The holder's pid, for the message above; the lock, not the file's content, is what counts.
    let _ = file.set_len(0).and_then(|()| write!(file, "{}", std::process::id())).and_then(|()| file.flush());
    Ok(DirLock(file))
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
    database: &str,
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
                "{database} holds encrypted data but there is no master key: set MODELGATE_MASTER_KEY \
                 (every replica on one database needs the same key) or restore {}",
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
            "the master key from {source} does not decrypt the data in {database}; refusing to start (nothing was changed)"
        )));
    }
    Ok(cipher)
}

/// Records the key check on a fresh database (after migration).
pub async fn remember_key(store: &dyn Store, cipher: &Cipher) -> Result<(), StartError> {
    if store.get_meta("key_check").await?.is_none() {
        let sealed =
            cipher.seal_text(KEY_CHECK_CONTEXT, "modelgate").map_err(|e| StartError::MasterKey(e.to_string()))?;
        // Replicas starting at once on a new shared database: the first key wins, the others stop.
        let held = store.init_meta("key_check", &sealed).await?;
        if cipher.open_text(KEY_CHECK_CONTEXT, &held).is_err() {
            return Err(StartError::MasterKey(
                "another replica started on this database with a different master key; give every replica the \
                 same MODELGATE_MASTER_KEY"
                    .into(),
            ));
        }
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
    Ok(store.init_meta("workspace_id", &id).await?)
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
    match store.create_principal(&p).await {
        Ok(()) => Ok(p),
        // Another replica created it meanwhile.
        Err(StoreError::AlreadyExists(_)) => {
            store.find_principal(kind, name).await?.ok_or_else(|| StoreError::NotFound(format!("{kind} {name}")))
        }
        Err(e) => Err(e),
    }
}

/// Ensures the `admins` group and the `admin` user in it exist, and that the admin has a token.
/// Returns a newly generated token the first time, for the caller to print once; with
/// `from_env`, makes that token valid instead.
pub async fn admin(store: &dyn Store, from_env: Option<&str>) -> Result<Option<String>, StartError> {
    let group = ensure_principal(store, principal_kind::GROUP, ADMINS_GROUP).await?;
    let everyone = ensure_principal(store, principal_kind::GROUP, USERS_GROUP).await?;
    ensure_principal(store, principal_kind::GROUP, CUSTOM_BASE_URLS_GROUP).await?;
    ensure_principal(store, principal_kind::GROUP, MODEL_RUNNERS_GROUP).await?;
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
        limits: None,
    };
    if let Some(value) = from_env {
        if value.chars().count() < MIN_ADMIN_TOKEN_LEN {
            return Err(StartError::AdminToken(format!(
                "MODELGATE_ADMIN_TOKEN is {} characters long; use at least {MIN_ADMIN_TOKEN_LEN} random ones \
                 (for example the output of `openssl rand -hex 24`)",
                value.chars().count()
            )));
        }
        let hash = token::hash(value);
        let tokens = store.list_tokens(Some(&user.id)).await?;
        if !tokens.iter().any(|t| t.token_hash == hash) {
            if tokens.iter().any(|t| t.token_id == ENV_TOKEN_ID) {
                store.delete_token(ENV_TOKEN_ID, None).await?;
            }
            match store.insert_token(&record(value, ENV_TOKEN_ID.into(), "from MODELGATE_ADMIN_TOKEN")).await {
                // Another replica, starting at the same time, stored it first.
                Err(StoreError::AlreadyExists(_)) => {}
                other => other?,
            }
        }
        return Ok(None);
    }
    match store.get_meta(ADMIN_TOKEN_ISSUED).await?.as_deref().map(|v| v.strip_prefix(PENDING)) {
        // Shown (the value is when).
        Some(None) => return Ok(None),
        // Issued but never shown (the start failed, or the process died, before it was printed):
        // nobody knows it, so it is replaced by one that will be shown.
        Some(Some(token_id)) => {
            store.delete_token(token_id, None).await.or_else(|e| match e {
                StoreError::NotFound(_) => Ok(()),
                other => Err(other),
            })?;
        }
        None => {}
    }
    let value = token::generate();
    let token_id = token::random_hex(16);
    store.insert_token(&record(&value, token_id.clone(), "admin token created on first start")).await?;
    store.put_meta(ADMIN_TOKEN_ISSUED, &format!("{PENDING}{token_id}")).await?;
    Ok(Some(value))
}

/// Meta key: when the generated admin token was shown, or `pending:<token id>` until it is.
const ADMIN_TOKEN_ISSUED: &str = "admin_token_issued";
const PENDING: &str = "pending:";

/// Records that the generated admin token was shown, so the next start does not replace it.
pub async fn admin_token_shown(store: &dyn Store) -> Result<(), StoreError> {
    store.put_meta(ADMIN_TOKEN_ISSUED, &now_ms().to_string()).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use modelgate_store::SqliteStore;

    async fn store(dir: &Path) -> SqliteStore {
        let s = SqliteStore::open(&dir.join(DB_FILE)).await.unwrap();
        s.migrate().await.unwrap();
        s
    }

    #[tokio::test]
    async fn an_admin_token_never_shown_is_replaced_on_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path()).await;
        let first = admin(&s, None).await.unwrap().expect("a first token");
        // The start died before printing it: the next start issues another and drops the first.
        let second = admin(&s, None).await.unwrap().expect("a new token, since nobody saw the first");
        assert_ne!(first, second);
        let hashes: Vec<String> = s.list_tokens(None).await.unwrap().into_iter().map(|t| t.token_hash).collect();
        assert!(!hashes.contains(&token::hash(&first)), "the unseen token no longer works");
        assert!(hashes.contains(&token::hash(&second)));
        admin_token_shown(&s).await.unwrap();
        assert_eq!(admin(&s, None).await.unwrap(), None, "once shown, never again");
        assert!(s.list_tokens(None).await.unwrap().iter().any(|t| t.token_hash == token::hash(&second)));
    }

    #[tokio::test]
    async fn a_short_admin_token_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path()).await;
        let err = admin(&s, Some("hunter2-hunter2")).await.unwrap_err().to_string();
        assert!(err.contains("at least 32") && !err.contains("hunter2"), "{err}");
        assert!(admin(&s, Some(&"x".repeat(MIN_ADMIN_TOKEN_LEN))).await.unwrap().is_none());
    }

    #[test]
    fn a_data_directory_is_locked_by_one_server() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap();
        let err = lock(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("in use by another modelgate server") && err.contains(&std::process::id().to_string()),
            "{err}"
        );
        drop(held);
        lock(dir.path()).expect("free again once released");
    }
}
