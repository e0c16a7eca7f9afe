//! The control-plane store on SQLite or PostgreSQL.
//!
//! One set of statements serves both engines: they are written in the SQL both accept (`$n`
//! placeholders, `ON CONFLICT`, `RETURNING`, BIGINT-compatible integers) and compiled once per
//! engine by [`store_on!`]; what differs lives in [`Dialect`].
//!
//! On SQLite, writes go through a pool of exactly one connection, which serialises them inside the
//! process: SQLite allows one writer at a time anyway, and this way a read-then-write transaction
//! never fails with `SQLITE_BUSY` when it upgrades its lock. Reads use a separate pool and, thanks
//! to WAL, never wait for the writer. `synchronous = FULL` makes every acknowledged commit durable.
//! On PostgreSQL, reads and writes share one pool; read-modify-write transactions lock the row they
//! change (`SELECT ... FOR UPDATE`), so replicas writing at once never lose an update.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Database, Pool, Postgres, Row, Sqlite};

use crate::dialect::Dialect;
use crate::records::config_status::{ACTIVE, FAILED, SUPERSEDED};
use crate::*;

/// The [`Store`] on one database engine: [`SqliteStore`] or [`PostgresStore`].
pub struct SqlStore<DB: Database> {
    writer: Pool<DB>,
    reader: Pool<DB>,
}

impl<DB: Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        SqlStore { writer: self.writer.clone(), reader: self.reader.clone() }
    }
}

/// The embedded store: one SQLite file.
pub type SqliteStore = SqlStore<Sqlite>;

/// The store of a scaled-out install: a PostgreSQL database that every replica shares.
pub type PostgresStore = SqlStore<Postgres>;

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// The tables that hold grants on objects.
#[derive(Clone, Copy)]
enum Grants {
    Endpoints,
    Models,
}

impl Grants {
    /// (table, column naming the object): fixed names, never input.
    fn table(self) -> (&'static str, &'static str) {
        match self {
            Grants::Endpoints => ("endpoint_permissions", "endpoint_id"),
            Grants::Models => ("model_permissions", "model_id"),
        }
    }
}

fn model_missing(name: &str) -> StoreError {
    StoreError::NotFound(format!("Registered model '{name}' does not exist."))
}

fn endpoint_missing(name: &str) -> StoreError {
    StoreError::NotFound(format!("Endpoint with name '{name}' does not exist."))
}

fn scope_missing(scope: &str) -> StoreError {
    StoreError::NotFound(format!("Scope '{scope}' does not exist."))
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`. Does not migrate: callers first
    /// check that their master key matches the data, then call [`Store::migrate`].
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        Self::with_options(options).await
    }

    /// Opens a private in-memory database (tests).
    pub async fn in_memory() -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        // One shared connection: each in-memory connection would be its own database.
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
        Ok(Self { writer: pool.clone(), reader: pool })
    }

    async fn with_options(options: SqliteConnectOptions) -> Result<Self> {
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        let reader = SqlitePoolOptions::new().max_connections(4).connect_with(options.read_only(true)).await?;
        Ok(Self { writer, reader })
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`). Does not
    /// migrate, for the same reason as [`SqliteStore::open`].
    pub async fn connect(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = crate::dialect::postgres_pool(options, 16).await?;
        Ok(Self { writer: pool.clone(), reader: pool })
    }
}

/// Implements [`Store`] on `SqlStore<$db>`; the engine's differences come from [`Dialect`].
macro_rules! store_on {
    ($db:ty) => {
        impl SqlStore<$db> {
            /// Writes `(principal id, level)` grants on one object in one transaction; `replace` removes the
            /// object's other grants first.
            async fn write_grants<'a>(
                pool: &Pool<$db>,
                kind: Grants,
                object_id: &str,
                grants: impl Iterator<Item = (&'a str, &'a str)>,
                replace: bool,
            ) -> Result<()> {
                let (table, column) = kind.table();
                let mut tx = pool.begin().await?;
                if replace {
                    sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE {column} = $1")))
                        .bind(object_id)
                        .execute(&mut *tx)
                        .await?;
                }
                let upsert = format!(
                    "INSERT INTO {table} ({column}, principal_id, level) VALUES ($1, $2, $3) \
                     ON CONFLICT ({column}, principal_id) DO UPDATE SET level = excluded.level"
                );
                for (principal_id, level) in grants {
                    sqlx::query(sqlx::AssertSqlSafe(upsert.clone()))
                        .bind(object_id)
                        .bind(principal_id)
                        .bind(level)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn insert_config(tx: &mut sqlx::Transaction<'_, $db>, c: &ConfigRecord) -> Result<()> {
                sqlx::query(
                    "INSERT INTO endpoint_configs (endpoint_id, version, config, creator, created_at, status, build_log) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&c.endpoint_id)
                .bind(c.version)
                .bind(&c.config)
                .bind(&c.creator)
                .bind(c.created_at)
                .bind(&c.status)
                .bind(&c.build_log)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            async fn set_config_status(
                tx: &mut sqlx::Transaction<'_, $db>,
                endpoint_id: &str,
                version: i64,
                status: &str,
                build_log: &str,
            ) -> Result<()> {
                sqlx::query("UPDATE endpoint_configs SET status = $1, build_log = $2 WHERE endpoint_id = $3 AND version = $4")
                    .bind(status)
                    .bind(build_log)
                    .bind(endpoint_id)
                    .bind(version)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }
        }

        #[async_trait]
        impl Store for SqlStore<$db> {
            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.reader).await?;
                Ok(())
            }

            async fn close(&self) {
                self.writer.close().await;
                self.reader.close().await;
            }

            async fn migrate(&self) -> Result<()> {
                <$db as Dialect>::control_migrator().run(&self.writer).await?;
                Ok(())
            }

            async fn get_meta(&self, key: &str) -> Result<Option<String>> {
                let exists = sqlx::query(<$db as Dialect>::TABLE_EXISTS).bind("meta").fetch_optional(&self.writer).await?;
                if exists.is_none() {
                    return Ok(None);
                }
                let row = sqlx::query("SELECT value FROM meta WHERE key = $1").bind(key).fetch_optional(&self.writer).await?;
                Ok(row.map(|r| r.get::<String, _>(0)))
            }

            async fn put_meta(&self, key: &str, value: &str) -> Result<()> {
                sqlx::query(
                    "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .bind(key)
                .bind(value)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn init_meta(&self, key: &str, value: &str) -> Result<String> {
                sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                    .bind(key)
                    .bind(value)
                    .execute(&self.writer)
                    .await?;
                Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1").bind(key).fetch_one(&self.writer).await?)
            }

            async fn create_principal(&self, p: &PrincipalRecord) -> Result<()> {
                sqlx::query(
                    "INSERT INTO principals (id, kind, name, display_name, active, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&p.id)
                .bind(&p.kind)
                .bind(&p.name)
                .bind(&p.display_name)
                .bind(p.active)
                .bind(p.created_at)
                .execute(&self.writer)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::AlreadyExists(format!("A {} named '{}' already exists.", p.kind.replace('_', " "), p.name))
                    } else {
                        e.into()
                    }
                })?;
                Ok(())
            }

            async fn get_principal(&self, id: &str) -> Result<Option<PrincipalRecord>> {
                Ok(sqlx::query_as("SELECT * FROM principals WHERE id = $1").bind(id).fetch_optional(&self.reader).await?)
            }

            async fn find_principal(&self, kind: &str, name: &str) -> Result<Option<PrincipalRecord>> {
                Ok(sqlx::query_as("SELECT * FROM principals WHERE kind = $1 AND name = $2")
                    .bind(kind)
                    .bind(name)
                    .fetch_optional(&self.reader)
                    .await?)
            }

            async fn list_principals(&self, kind: Option<&str>) -> Result<Vec<PrincipalRecord>> {
                Ok(sqlx::query_as("SELECT * FROM principals WHERE ($1 IS NULL OR kind = $2) ORDER BY name, id")
                    .bind(kind)
                    .bind(kind)
                    .fetch_all(&self.reader)
                    .await?)
            }

            async fn update_principal(&self, p: &PrincipalRecord) -> Result<()> {
                let done = sqlx::query("UPDATE principals SET display_name = $1, active = $2 WHERE id = $3")
                    .bind(&p.display_name)
                    .bind(p.active)
                    .bind(&p.id)
                    .execute(&self.writer)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("Principal '{}' does not exist.", p.id)));
                }
                Ok(())
            }

            async fn delete_principal(&self, id: &str) -> Result<()> {
                let done = sqlx::query("DELETE FROM principals WHERE id = $1").bind(id).execute(&self.writer).await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("Principal '{id}' does not exist.")));
                }
                Ok(())
            }

            async fn set_password(&self, principal_id: &str, hash: Option<&str>, at: i64) -> Result<()> {
                let Some(hash) = hash else {
                    sqlx::query("DELETE FROM principal_passwords WHERE principal_id = $1")
                        .bind(principal_id)
                        .execute(&self.writer)
                        .await?;
                    return Ok(());
                };
                sqlx::query(
                    "INSERT INTO principal_passwords (principal_id, hash, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (principal_id) DO UPDATE SET hash = excluded.hash, updated_at = excluded.updated_at",
                )
                .bind(principal_id)
                .bind(hash)
                .bind(at)
                .execute(&self.writer)
                .await
                .map_err(|e| {
                    if e.as_database_error().is_some_and(|d| d.is_foreign_key_violation()) {
                        StoreError::NotFound(format!("Principal '{principal_id}' does not exist."))
                    } else {
                        e.into()
                    }
                })?;
                Ok(())
            }

            async fn list_passwords(&self) -> Result<Vec<PasswordRecord>> {
                Ok(sqlx::query_as("SELECT * FROM principal_passwords").fetch_all(&self.reader).await?)
            }

            async fn create_model(&self, m: &ModelRecord, owner_id: &str) -> Result<()> {
                let mut tx = self.writer.begin().await?;
                sqlx::query(
                    "INSERT INTO registered_models (id, name, description, creator, created_at, updated_at, latest_version) \
                     VALUES ($1, $2, $3, $4, $5, $6, 0)",
                )
                .bind(&m.id)
                .bind(&m.name)
                .bind(&m.description)
                .bind(&m.creator)
                .bind(m.created_at)
                .bind(m.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::AlreadyExists(format!("Registered model '{}' already exists.", m.name))
                    } else {
                        e.into()
                    }
                })?;
                sqlx::query("INSERT INTO model_permissions (model_id, principal_id, level) VALUES ($1, $2, 'CAN_MANAGE')")
                    .bind(&m.id)
                    .bind(owner_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn get_model(&self, name: &str) -> Result<Option<ModelRecord>> {
                Ok(sqlx::query_as("SELECT * FROM registered_models WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.reader)
                    .await?)
            }

            async fn list_models(&self) -> Result<Vec<ModelRecord>> {
                Ok(sqlx::query_as("SELECT * FROM registered_models ORDER BY name").fetch_all(&self.reader).await?)
            }

            async fn delete_model(&self, name: &str) -> Result<()> {
                let done = sqlx::query("DELETE FROM registered_models WHERE name = $1").bind(name).execute(&self.writer).await?;
                if done.rows_affected() == 0 {
                    return Err(model_missing(name));
                }
                Ok(())
            }

            async fn add_model_version(&self, v: &ModelVersionRecord) -> Result<ModelVersionRecord> {
                let mut tx = self.writer.begin().await?;
                let number: Option<i64> = sqlx::query_scalar(
                    "UPDATE registered_models SET latest_version = latest_version + 1, updated_at = $1 WHERE id = $2 \
                     RETURNING latest_version",
                )
                .bind(v.created_at)
                .bind(&v.model_id)
                .fetch_optional(&mut *tx)
                .await?;
                let number =
                    number.ok_or_else(|| StoreError::NotFound(format!("Registered model '{}' does not exist.", v.model_id)))?;
                let numbered = ModelVersionRecord { version: number, ..v.clone() };
                sqlx::query(
                    "INSERT INTO model_versions (model_id, version, source, runtime, task, command, env, content_hash, \
                     description, creator, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(&numbered.model_id)
                .bind(numbered.version)
                .bind(&numbered.source)
                .bind(&numbered.runtime)
                .bind(&numbered.task)
                .bind(&numbered.command)
                .bind(&numbered.env)
                .bind(&numbered.content_hash)
                .bind(&numbered.description)
                .bind(&numbered.creator)
                .bind(numbered.created_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(numbered)
            }

            async fn list_model_versions(&self, model_id: &str) -> Result<Vec<ModelVersionRecord>> {
                Ok(sqlx::query_as("SELECT * FROM model_versions WHERE model_id = $1 ORDER BY version DESC")
                    .bind(model_id)
                    .fetch_all(&self.reader)
                    .await?)
            }

            async fn list_all_model_versions(&self) -> Result<Vec<ModelVersionRecord>> {
                Ok(sqlx::query_as("SELECT * FROM model_versions").fetch_all(&self.reader).await?)
            }

            async fn delete_model_version(&self, model_id: &str, version: i64) -> Result<()> {
                let done = sqlx::query("DELETE FROM model_versions WHERE model_id = $1 AND version = $2")
                    .bind(model_id)
                    .bind(version)
                    .execute(&self.writer)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("Model version {version} does not exist.")));
                }
                Ok(())
            }

            async fn list_model_permissions(&self) -> Result<Vec<ModelPermissionRecord>> {
                Ok(sqlx::query_as("SELECT * FROM model_permissions ORDER BY model_id, principal_id")
                    .fetch_all(&self.reader)
                    .await?)
            }

            async fn write_model_permissions(
                &self,
                model_id: &str,
                grants: &[ModelPermissionRecord],
                replace: bool,
            ) -> Result<()> {
                let grants = grants.iter().map(|g| (g.principal_id.as_str(), g.level.as_str()));
                Self::write_grants(&self.writer, Grants::Models, model_id, grants, replace).await
            }

            async fn list_memberships(&self) -> Result<Vec<MembershipRecord>> {
                Ok(sqlx::query_as("SELECT * FROM group_members ORDER BY group_id, member_id").fetch_all(&self.reader).await?)
            }

            async fn add_member(&self, group_id: &str, member_id: &str) -> Result<()> {
                sqlx::query("INSERT INTO group_members (group_id, member_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(group_id)
                    .bind(member_id)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn remove_member(&self, group_id: &str, member_id: &str) -> Result<()> {
                sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND member_id = $2")
                    .bind(group_id)
                    .bind(member_id)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn insert_token(&self, t: &TokenRecord) -> Result<()> {
                sqlx::query(
                    "INSERT INTO tokens (token_id, token_hash, principal_id, comment, created_by, created_at, expires_at, \
                     limits) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&t.token_id)
                .bind(&t.token_hash)
                .bind(&t.principal_id)
                .bind(&t.comment)
                .bind(&t.created_by)
                .bind(t.created_at)
                .bind(t.expires_at)
                .bind(&t.limits)
                .execute(&self.writer)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::AlreadyExists(format!("token '{}' already exists", t.token_id))
                    } else {
                        e.into()
                    }
                })?;
                Ok(())
            }

            async fn list_tokens(&self, principal_id: Option<&str>) -> Result<Vec<TokenRecord>> {
                let rows = match principal_id {
                    Some(u) => {
                        sqlx::query_as("SELECT * FROM tokens WHERE principal_id = $1 ORDER BY created_at, token_id")
                            .bind(u)
                            .fetch_all(&self.reader)
                            .await?
                    }
                    None => {
                        sqlx::query_as("SELECT * FROM tokens ORDER BY created_at, token_id").fetch_all(&self.reader).await?
                    }
                };
                Ok(rows)
            }

            async fn delete_token(&self, token_id: &str, owner: Option<&str>) -> Result<()> {
                let done = sqlx::query("DELETE FROM tokens WHERE token_id = $1 AND ($2 IS NULL OR principal_id = $3)")
                    .bind(token_id)
                    .bind(owner)
                    .bind(owner)
                    .execute(&self.writer)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("Token '{token_id}' does not exist.")));
                }
                Ok(())
            }

            async fn set_token_limits(&self, token_id: &str, limits: Option<&str>) -> Result<()> {
                let done = sqlx::query("UPDATE tokens SET limits = $1 WHERE token_id = $2")
                    .bind(limits)
                    .bind(token_id)
                    .execute(&self.writer)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("Token '{token_id}' does not exist.")));
                }
                Ok(())
            }

            async fn create_endpoint(&self, e: &EndpointRecord, c: &ConfigRecord, owner_id: &str) -> Result<()> {
                let mut tx = self.writer.begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO endpoints (id, name, creator, created_at, updated_at, task, description, budget_policy_id, \
                     route_optimized, tags, ai_gateway, rate_limits, email_notifications, telemetry_config, config_update, \
                     stopped, latest_version, active_version, pending_version, pending_since, deprecation) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
                )
                .bind(&e.id)
                .bind(&e.name)
                .bind(&e.creator)
                .bind(e.created_at)
                .bind(e.updated_at)
                .bind(&e.task)
                .bind(&e.description)
                .bind(&e.budget_policy_id)
                .bind(e.route_optimized)
                .bind(&e.tags)
                .bind(&e.ai_gateway)
                .bind(&e.rate_limits)
                .bind(&e.email_notifications)
                .bind(&e.telemetry_config)
                .bind(&e.config_update)
                .bind(e.stopped)
                .bind(e.latest_version)
                .bind(e.active_version)
                .bind(e.pending_version)
                .bind(e.pending_since)
                .bind(&e.deprecation)
                .execute(&mut *tx)
                .await;
                match inserted {
                    Err(err) if is_unique_violation(&err) => {
                        return Err(StoreError::AlreadyExists(format!("Endpoint with name '{}' already exists.", e.name)));
                    }
                    other => other?,
                };
                Self::insert_config(&mut tx, c).await?;
                sqlx::query("INSERT INTO endpoint_permissions (endpoint_id, principal_id, level) VALUES ($1, $2, 'CAN_MANAGE')")
                    .bind(&e.id)
                    .bind(owner_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_endpoint_permissions(&self) -> Result<Vec<EndpointPermissionRecord>> {
                Ok(sqlx::query_as("SELECT * FROM endpoint_permissions ORDER BY endpoint_id, principal_id")
                    .fetch_all(&self.reader)
                    .await?)
            }

            async fn write_endpoint_permissions(
                &self,
                endpoint_id: &str,
                grants: &[EndpointPermissionRecord],
                replace: bool,
            ) -> Result<()> {
                let grants = grants.iter().map(|g| (g.principal_id.as_str(), g.level.as_str()));
                Self::write_grants(&self.writer, Grants::Endpoints, endpoint_id, grants, replace).await
            }

            async fn get_endpoint(&self, name: &str) -> Result<Option<EndpointRecord>> {
                Ok(sqlx::query_as("SELECT * FROM endpoints WHERE name = $1").bind(name).fetch_optional(&self.reader).await?)
            }

            async fn get_endpoint_by_id(&self, id: &str) -> Result<Option<EndpointRecord>> {
                Ok(sqlx::query_as("SELECT * FROM endpoints WHERE id = $1").bind(id).fetch_optional(&self.reader).await?)
            }

            async fn list_endpoints(&self) -> Result<Vec<EndpointRecord>> {
                Ok(sqlx::query_as("SELECT * FROM endpoints ORDER BY name").fetch_all(&self.reader).await?)
            }

            async fn delete_endpoint(&self, name: &str) -> Result<()> {
                let done = sqlx::query("DELETE FROM endpoints WHERE name = $1").bind(name).execute(&self.writer).await?;
                if done.rows_affected() == 0 {
                    return Err(endpoint_missing(name));
                }
                Ok(())
            }

            async fn update_endpoint(&self, name: &str, mutation: EndpointMutation) -> Result<EndpointRecord> {
                let mut tx = self.writer.begin().await?;
                let mut e: EndpointRecord = sqlx::query_as(<$db as Dialect>::ENDPOINT_FOR_UPDATE)
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| endpoint_missing(name))?;
                let new_config = mutation(&mut e)?;
                sqlx::query(
                    "UPDATE endpoints SET updated_at = $1, task = $2, description = $3, budget_policy_id = $4, route_optimized = $5, \
                     tags = $6, ai_gateway = $7, rate_limits = $8, email_notifications = $9, telemetry_config = $10, \
                     config_update = $11, stopped = $12, latest_version = $13, active_version = $14, pending_version = $15, \
                     pending_since = $16, deprecation = $17 WHERE id = $18",
                )
                .bind(e.updated_at)
                .bind(&e.task)
                .bind(&e.description)
                .bind(&e.budget_policy_id)
                .bind(e.route_optimized)
                .bind(&e.tags)
                .bind(&e.ai_gateway)
                .bind(&e.rate_limits)
                .bind(&e.email_notifications)
                .bind(&e.telemetry_config)
                .bind(&e.config_update)
                .bind(e.stopped)
                .bind(e.latest_version)
                .bind(e.active_version)
                .bind(e.pending_version)
                .bind(e.pending_since)
                .bind(&e.deprecation)
                .bind(&e.id)
                .execute(&mut *tx)
                .await?;
                if let Some(c) = new_config {
                    Self::insert_config(&mut tx, &c).await?;
                }
                tx.commit().await?;
                Ok(e)
            }

            async fn finish_deployment(&self, endpoint_id: &str, version: i64, outcome: &DeployOutcome) -> Result<bool> {
                let mut tx = self.writer.begin().await?;
                let pending: Option<Option<i64>> = sqlx::query(<$db as Dialect>::PENDING_VERSION_FOR_UPDATE)
                    .bind(endpoint_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| r.get(0));
                if pending != Some(Some(version)) {
                    return Ok(false);
                }
                let now = modelgate_core::now_ms();
                match outcome {
                    DeployOutcome::Ready { task, build_log } => {
                        sqlx::query("UPDATE endpoint_configs SET status = $1 WHERE endpoint_id = $2 AND status = $3")
                            .bind(SUPERSEDED)
                            .bind(endpoint_id)
                            .bind(ACTIVE)
                            .execute(&mut *tx)
                            .await?;
                        Self::set_config_status(&mut tx, endpoint_id, version, ACTIVE, build_log).await?;
                        sqlx::query(
                            "UPDATE endpoints SET active_version = $1, pending_version = NULL, pending_since = NULL, \
                             config_update = 'NOT_UPDATING', task = $2, updated_at = $3 WHERE id = $4",
                        )
                        .bind(version)
                        .bind(task)
                        .bind(now)
                        .bind(endpoint_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    DeployOutcome::Failed { build_log } => {
                        Self::set_config_status(&mut tx, endpoint_id, version, FAILED, build_log).await?;
                        sqlx::query(
                            "UPDATE endpoints SET pending_version = NULL, pending_since = NULL, \
                             config_update = 'UPDATE_FAILED', updated_at = $1 WHERE id = $2",
                        )
                        .bind(now)
                        .bind(endpoint_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn record_setting_changes(&self, changes: &[SettingChange]) -> Result<()> {
                let mut tx = self.writer.begin().await?;
                for c in changes {
                    sqlx::query(
                        "INSERT INTO endpoint_settings_history (endpoint_id, field, before, after, changed_by, changed_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&c.endpoint_id)
                    .bind(&c.field)
                    .bind(&c.before)
                    .bind(&c.after)
                    .bind(&c.changed_by)
                    .bind(c.changed_at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn list_setting_changes(&self, endpoint_id: &str) -> Result<Vec<SettingChange>> {
                Ok(sqlx::query_as("SELECT * FROM endpoint_settings_history WHERE endpoint_id = $1 ORDER BY change_id DESC")
                    .bind(endpoint_id)
                    .fetch_all(&self.reader)
                    .await?)
            }

            async fn list_configs(&self, endpoint_id: &str) -> Result<Vec<ConfigRecord>> {
                Ok(sqlx::query_as("SELECT * FROM endpoint_configs WHERE endpoint_id = $1 ORDER BY version DESC")
                    .bind(endpoint_id)
                    .fetch_all(&self.reader)
                    .await?)
            }

            async fn get_config(&self, endpoint_id: &str, version: i64) -> Result<Option<ConfigRecord>> {
                Ok(sqlx::query_as("SELECT * FROM endpoint_configs WHERE endpoint_id = $1 AND version = $2")
                    .bind(endpoint_id)
                    .bind(version)
                    .fetch_optional(&self.reader)
                    .await?)
            }

            async fn create_scope(&self, s: &ScopeRecord) -> Result<()> {
                sqlx::query("INSERT INTO secret_scopes (name, creator, created_at) VALUES ($1, $2, $3)")
                    .bind(&s.name)
                    .bind(&s.creator)
                    .bind(s.created_at)
                    .execute(&self.writer)
                    .await
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            StoreError::AlreadyExists(format!("Scope '{}' already exists.", s.name))
                        } else {
                            e.into()
                        }
                    })?;
                Ok(())
            }

            async fn delete_scope(&self, name: &str) -> Result<()> {
                let done = sqlx::query("DELETE FROM secret_scopes WHERE name = $1").bind(name).execute(&self.writer).await?;
                if done.rows_affected() == 0 {
                    return Err(scope_missing(name));
                }
                Ok(())
            }

            async fn list_scopes(&self) -> Result<Vec<ScopeRecord>> {
                Ok(sqlx::query_as("SELECT * FROM secret_scopes ORDER BY name").fetch_all(&self.reader).await?)
            }

            async fn put_secret(&self, s: &SecretRecord, max_per_scope: usize) -> Result<()> {
                let mut tx = self.writer.begin().await?;
                let scope =
                    sqlx::query(<$db as Dialect>::SCOPE_FOR_UPDATE).bind(&s.scope).fetch_optional(&mut *tx).await?;
                if scope.is_none() {
                    return Err(scope_missing(&s.scope));
                }
                let row = sqlx::query(
                    "SELECT COUNT(*), COALESCE(SUM(CASE WHEN key = $1 THEN 1 ELSE 0 END), 0) FROM secrets WHERE scope = $2",
                )
                .bind(&s.key)
                .bind(&s.scope)
                .fetch_one(&mut *tx)
                .await?;
                let (count, exists): (i64, i64) = (row.get(0), row.get(1));
                if exists == 0 && count as usize >= max_per_scope {
                    return Err(StoreError::LimitExceeded(format!(
                        "Scope '{}' already holds {count} secrets; the limit is {max_per_scope}.",
                        s.scope
                    )));
                }
                sqlx::query(
                    "INSERT INTO secrets (scope, key, value, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value, updated_by = excluded.updated_by, \
                     updated_at = excluded.updated_at",
                )
                .bind(&s.scope)
                .bind(&s.key)
                .bind(&s.value)
                .bind(&s.updated_by)
                .bind(s.updated_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn get_secret(&self, scope: &str, key: &str) -> Result<Option<SecretRecord>> {
                Ok(sqlx::query_as("SELECT * FROM secrets WHERE scope = $1 AND key = $2")
                    .bind(scope)
                    .bind(key)
                    .fetch_optional(&self.reader)
                    .await?)
            }

            async fn list_secrets(&self, scope: &str) -> Result<Vec<SecretRecord>> {
                let exists =
                    sqlx::query("SELECT 1 FROM secret_scopes WHERE name = $1").bind(scope).fetch_optional(&self.reader).await?;
                if exists.is_none() {
                    return Err(scope_missing(scope));
                }
                Ok(sqlx::query_as("SELECT * FROM secrets WHERE scope = $1 ORDER BY key")
                    .bind(scope)
                    .fetch_all(&self.reader)
                    .await?)
            }

            async fn delete_secret(&self, scope: &str, key: &str) -> Result<()> {
                let done = sqlx::query("DELETE FROM secrets WHERE scope = $1 AND key = $2")
                    .bind(scope)
                    .bind(key)
                    .execute(&self.writer)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("Secret '{key}' does not exist in scope '{scope}'.")));
                }
                Ok(())
            }

            async fn append_audit(&self, r: &AuditRecord) -> Result<()> {
                sqlx::query(
                    "INSERT INTO audit_log (at, principal, principal_id, token_id, address, method, path, object, summary, status, error_code) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(r.at)
                .bind(&r.principal)
                .bind(&r.principal_id)
                .bind(&r.token_id)
                .bind(&r.address)
                .bind(&r.method)
                .bind(&r.path)
                .bind(&r.object)
                .bind(&r.summary)
                .bind(r.status)
                .bind(&r.error_code)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn delete_audit_before(&self, before: i64) -> Result<u64> {
                // In batches, so the writer lock is never held for long.
                let mut total = 0;
                loop {
                    let n = sqlx::query(
                        "DELETE FROM audit_log WHERE seq IN (SELECT seq FROM audit_log WHERE at < $1 ORDER BY at LIMIT 5000)",
                    )
                    .bind(before)
                    .execute(&self.writer)
                    .await?
                    .rows_affected();
                    total += n;
                    if n < 5000 {
                        return Ok(total);
                    }
                }
            }

            async fn put_document(&self, d: &Document) -> Result<()> {
                sqlx::query(
                    "INSERT INTO documents (kind, id, name, body, updated_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (kind, id) DO UPDATE SET name = excluded.name, body = excluded.body, updated_at = excluded.updated_at",
                )
                .bind(&d.kind)
                .bind(&d.id)
                .bind(&d.name)
                .bind(&d.body)
                .bind(d.updated_at)
                .execute(&self.writer)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::AlreadyExists(format!("A {} named '{}' already exists.", d.kind.replace('_', " "), d.name))
                    } else {
                        e.into()
                    }
                })?;
                Ok(())
            }

            async fn list_documents(&self, kind: &str) -> Result<Vec<Document>> {
                let rows = sqlx::query("SELECT kind, id, name, body, updated_at FROM documents WHERE kind = $1 ORDER BY name")
                    .bind(kind)
                    .fetch_all(&self.reader)
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|r| Document { kind: r.get(0), id: r.get(1), name: r.get(2), body: r.get(3), updated_at: r.get(4) })
                    .collect())
            }

            async fn delete_document(&self, kind: &str, id: &str) -> Result<bool> {
                let done = sqlx::query("DELETE FROM documents WHERE kind = $1 AND id = $2")
                    .bind(kind)
                    .bind(id)
                    .execute(&self.writer)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
                Ok(sqlx::query_as(
                    "SELECT * FROM audit_log WHERE ($1 IS NULL OR at >= $2) AND ($3 IS NULL OR at < $4) AND ($5 IS NULL OR principal = $6) \
                     AND ($7 IS NULL OR object = $8) AND ($9 IS NULL OR method = $10) ORDER BY seq DESC LIMIT $11",
                )
                .bind(q.since)
                .bind(q.since)
                .bind(q.until)
                .bind(q.until)
                .bind(&q.principal)
                .bind(&q.principal)
                .bind(&q.object)
                .bind(&q.object)
                .bind(&q.method)
                .bind(&q.method)
                .bind(q.limit)
                .fetch_all(&self.reader)
                .await?)
            }

            async fn list_scope_acls(&self) -> Result<Vec<ScopeAclRecord>> {
                Ok(sqlx::query_as("SELECT * FROM scope_acls ORDER BY scope, principal_id").fetch_all(&self.reader).await?)
            }

            async fn put_scope_acl(&self, a: &ScopeAclRecord) -> Result<()> {
                sqlx::query(
                    "INSERT INTO scope_acls (scope, principal_id, permission) VALUES ($1, $2, $3) \
                     ON CONFLICT (scope, principal_id) DO UPDATE SET permission = excluded.permission",
                )
                .bind(&a.scope)
                .bind(&a.principal_id)
                .bind(&a.permission)
                .execute(&self.writer)
                .await
                .map_err(|e| match &e {
                    sqlx::Error::Database(d) if d.is_foreign_key_violation() => scope_missing(&a.scope),
                    _ => e.into(),
                })?;
                Ok(())
            }

            async fn delete_scope_acl(&self, scope: &str, principal_id: &str) -> Result<()> {
                let done = sqlx::query("DELETE FROM scope_acls WHERE scope = $1 AND principal_id = $2")
                    .bind(scope)
                    .bind(principal_id)
                    .execute(&self.writer)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("No ACL for that principal on scope '{scope}'.")));
                }
                Ok(())
            }

            async fn all_secrets(&self) -> Result<Vec<SecretRecord>> {
                Ok(sqlx::query_as("SELECT * FROM secrets ORDER BY scope, key").fetch_all(&self.reader).await?)
            }
        }
    };
}

store_on!(Sqlite);
store_on!(Postgres);
