//! The immutable in-memory view the request path reads.
//!
//! Rebuilt from the store after every committed change and swapped in atomically
//! ([`crate::state::AppState::refresh`]), so authentication and (later) the data plane never
//! touch the database. Secrets referenced by endpoint configs are decrypted here and nowhere else
//! on the request path.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use modelgate_core::cipher::Cipher;
use modelgate_core::credentials;
use modelgate_core::permission::{Level, ScopePermission};
use modelgate_core::secret_ref::{self, SecretRef};
use modelgate_providers::{Adapter, Settings};
use modelgate_store::{ConfigRecord, PrincipalRecord, Store, StoreError, principal_kind};
use modelgate_wire::{AiGatewayConfig, EndpointCoreConfigInput, ExternalModel};

use crate::configs;

/// Who a request is from, as established by its token.
#[derive(Debug, Clone)]
pub struct Principal {
    /// SCIM id.
    pub id: String,
    /// userName, or a service principal's applicationId (recorded as creator of what it makes).
    pub user_name: String,
    /// Member of the built-in admins group, directly or through nested groups.
    pub is_admin: bool,
    /// Names of every group the principal belongs to, directly or through nested groups.
    pub groups: Arc<BTreeSet<String>>,
    /// Ids of the same groups.
    pub group_ids: Arc<BTreeSet<String>>,
    /// Token the request used (never the token value).
    pub token_id: String,
    /// ms since the epoch; `None` never expires.
    pub expires_at: Option<i64>,
    /// The token's own limits, if it has any.
    pub limits: Option<Arc<modelgate_wire::TokenLimits>>,
}

/// One served entity ready to receive traffic.
#[derive(Clone)]
pub struct LiveEntity {
    /// Served entity name.
    pub name: String,
    /// Provider config, plaintext credentials removed.
    pub external_model: Option<ExternalModel>,
    /// Share of traffic, 0 to 100.
    pub traffic_percentage: i64,
    /// The provider adapter, or why the entity cannot serve.
    pub adapter: Result<Arc<dyn Adapter>, String>,
    /// Backend-pool tier, if the endpoint uses pools.
    pub priority: Option<i64>,
    /// Share within the tier.
    pub weight: i64,
    /// A hash of the entity's provider config and credentials: when it changes, the entity is a
    /// new backend and its circuit breaker starts afresh.
    pub fingerprint: u64,
    /// Where its requests go, for messages: learnt from its first request (the host is fixed by
    /// the config), so later requests do not format it again.
    pub upstream: std::sync::OnceLock<Upstream>,
    /// For a hosted entity (a registered model version), its replicas: a query leases one.
    pub hosted: Option<Arc<crate::hosting::replicas::ReplicaSet>>,
    /// The registered model and version it names, if it names one.
    pub registered: Option<(String, String)>,
}

/// An endpoint's deprecation notice as the request path uses it.
#[derive(Debug)]
pub struct LiveDeprecation {
    /// From this instant (ms) answers carry the deprecation headers.
    pub notice_ms: i64,
    /// From this instant (ms) the endpoint answers 410, or forwards.
    pub sunset_ms: i64,
    /// The endpoint to use instead.
    pub replacement: Option<String>,
    /// What callers should know.
    pub message: Option<String>,
    /// At sunset, send queries to the replacement.
    pub forward: bool,
}

impl LiveDeprecation {
    fn of(d: &modelgate_wire::Deprecation) -> Option<LiveDeprecation> {
        let day = |s: &str| modelgate_core::period::day_of(s).map(|d| d * 86_400_000);
        Some(LiveDeprecation {
            notice_ms: day(&d.notice_date)?,
            sunset_ms: day(&d.sunset_date)?,
            replacement: d.replacement.clone(),
            message: d.message.clone(),
            forward: d.forward == Some(true),
        })
    }
}

/// The upstream of a served entity, as messages name it.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `host:port`, never the URL (it may carry credentials).
    pub host: String,
    /// `Served entity 'east' (openai at api.openai.com:443)`.
    pub label: Arc<str>,
}

/// One endpoint as the request path sees it.
#[derive(Clone)]
pub struct LiveEndpoint {
    /// 32-hex id.
    pub id: String,
    /// Endpoint name.
    pub name: String,
    /// Stopped endpoints refuse queries.
    pub stopped: bool,
    /// Task of the external models.
    pub task: Option<String>,
    /// Active config version, if any.
    pub config_version: Option<i64>,
    /// Entities of the active config.
    pub entities: Vec<LiveEntity>,
    /// AI Gateway policies.
    pub ai_gateway: Option<AiGatewayConfig>,
    /// Direct permission grants: principal id and level.
    pub grants: Vec<(String, Level)>,
    /// Rate limits: `ai_gateway.rate_limits` plus the legacy `rate_limits`.
    pub rate_limits: Vec<modelgate_wire::AiGatewayRateLimit>,
    /// `ai_gateway.cache_config`, when the cache is on.
    pub cache: Option<Arc<crate::policy::cache::LiveCache>>,
    /// Compiled `ai_gateway.guardrails`, when any is on.
    pub guardrails: Option<Arc<crate::policy::guardrails::Policy>>,
    /// The endpoint's tags as a JSON object (`{"team": "ml"}`), for usage records.
    pub tags: Option<Arc<str>>,
    /// The same tags as a map, for budget scopes.
    pub tag_map: BTreeMap<String, String>,
    /// The budget policy the endpoint names.
    pub budget_policy_id: Option<String>,
    /// Its deprecation notice, with the dates in ms.
    pub deprecation: Option<Arc<LiveDeprecation>>,
    /// Why the endpoint must not serve even though a version is active: a stored policy (or the
    /// active config) that does not parse. Serving without it would skip its guardrails or limits.
    pub unservable: Option<String>,
}

impl Principal {
    /// The principal as the policies see it.
    pub fn caller(&self) -> crate::policy::Caller<'_> {
        crate::policy::Caller { id: &self.id, name: &self.user_name, groups: &self.groups, token_id: &self.token_id }
    }
}

impl LiveEndpoint {
    /// The endpoint as the policies see it.
    pub fn target(&self) -> crate::policy::Target<'_> {
        crate::policy::Target {
            id: &self.id,
            name: &self.name,
            rate_limits: &self.rate_limits,
            budget_policy_id: self.budget_policy_id.as_deref(),
            tags: &self.tag_map,
        }
    }
}

/// A user who may sign in to the console with a password.
#[derive(Clone)]
pub struct PasswordLogin {
    /// The user, as a request signed in this way acts (`token_id` is [`PASSWORD_SESSION`]).
    pub principal: Arc<Principal>,
    /// Argon2id PHC string.
    pub hash: Arc<str>,
    /// When it was set, ms: a session started before the password changed no longer holds.
    pub set_at: i64,
}

/// The `token_id` of a principal signed in with a password (audit records show it).
pub const PASSWORD_SESSION: &str = "console-password";

/// Everything the request path needs, immutable.
#[derive(Default)]
pub struct Snapshot {
    /// Principals by token hash.
    pub tokens: HashMap<String, Arc<Principal>>,
    /// Active users with a console password, by user name.
    pub passwords: HashMap<String, PasswordLogin>,
    /// Principal names by id (for listings).
    pub principal_names: HashMap<String, String>,
    /// Endpoints by name.
    pub endpoints: HashMap<String, Arc<LiveEndpoint>>,
    /// For each referenced secret, the endpoints (active or pending configs) and entities using it.
    pub secret_users: HashMap<SecretRef, Vec<(String, String)>>,
    /// Scope grants: scope → (principal id, permission).
    pub scope_acls: HashMap<String, Vec<(String, ScopePermission)>>,
    /// The replica sets the active configs serve from (the others are stopped).
    pub hosted_keys: HashSet<crate::hosting::SetKey>,
}

/// Secret references in a config's credential fields and environment variables, with the
/// entity that uses each.
pub fn secret_refs(config: &EndpointCoreConfigInput) -> BTreeSet<(SecretRef, String)> {
    let mut out = BTreeSet::new();
    for e in config.served_entities.iter().flatten() {
        let name = e.name.clone().unwrap_or_default();
        if let Some(m) = &e.external_model {
            for slot in credentials::slots(&mut m.clone()) {
                if let Some(r) = slot.reference.as_deref().and_then(|r| secret_ref::parse(r).ok()) {
                    out.insert((r, name.clone()));
                }
            }
        }
        for v in e.environment_vars.iter().flat_map(|m| m.values()) {
            if let Ok(r) = secret_ref::parse(v) {
                out.insert((r, name.clone()));
            }
        }
    }
    out
}

impl Snapshot {
    /// (endpoint id, entity name) and config fingerprint of every served entity.
    pub fn entity_fingerprints(&self) -> impl Iterator<Item = ((String, String), u64)> + '_ {
        self.endpoints
            .values()
            .flat_map(|ep| ep.entities.iter().map(|e| ((ep.id.clone(), e.name.clone()), e.fingerprint)))
    }

    /// The names of the principals in `group` (nested groups included) that can call: those with a
    /// token or a console password.
    pub fn members_of(&self, group: &str) -> Vec<String> {
        let callers = self.tokens.values().chain(self.passwords.values().map(|p| &p.principal));
        let names: BTreeSet<&str> =
            callers.filter(|p| p.groups.contains(group)).map(|p| p.user_name.as_str()).collect();
        names.into_iter().map(str::to_string).collect()
    }

    /// Every token with a budget of its own: its id and budget.
    pub fn token_budgets(&self) -> Vec<(&str, &modelgate_wire::TokenBudget)> {
        self.tokens
            .values()
            .filter_map(|p| p.limits.as_ref()?.budget.as_ref().map(|b| (p.token_id.as_str(), b)))
            .collect()
    }

    /// Every endpoint as the policies see it.
    pub fn targets(&self) -> Vec<crate::policy::Target<'_>> {
        self.endpoints.values().map(|e| e.target()).collect()
    }

    /// Reads the whole control-plane state and builds a snapshot.
    pub async fn build(
        store: &dyn Store,
        cipher: &Cipher,
        providers: &Settings,
        hosting: &crate::hosting::Hosting,
    ) -> Result<Snapshot, StoreError> {
        let principals: HashMap<String, PrincipalRecord> =
            store.list_principals(None).await?.into_iter().map(|p| (p.id.clone(), p)).collect();
        let mut parents: HashMap<String, Vec<String>> = HashMap::new();
        for m in store.list_memberships().await? {
            parents.entry(m.member_id).or_default().push(m.group_id);
        }
        // Every group a principal is in, through nesting: (ids, names). `ids` doubles as the
        // visited set, which also stops cycles.
        let groups_of = |id: &str| -> (BTreeSet<String>, BTreeSet<String>) {
            let mut ids = BTreeSet::new();
            let mut stack = vec![id.to_string()];
            while let Some(cur) = stack.pop() {
                for g in parents.get(&cur).into_iter().flatten() {
                    if ids.insert(g.clone()) {
                        stack.push(g.clone());
                    }
                }
            }
            let names = ids.iter().filter_map(|g| principals.get(g)).map(|p| p.name.clone()).collect();
            (ids, names)
        };
        let principal = |p: &PrincipalRecord,
                         token_id: String,
                         expires_at: Option<i64>,
                         limits: Option<Arc<modelgate_wire::TokenLimits>>| {
            let (group_ids, groups) = groups_of(&p.id);
            Arc::new(Principal {
                group_ids: Arc::new(group_ids),
                id: p.id.clone(),
                user_name: p.name.clone(),
                is_admin: groups.contains(crate::bootstrap::ADMINS_GROUP),
                groups: Arc::new(groups),
                token_id,
                expires_at,
                limits,
            })
        };
        let mut tokens = HashMap::new();
        for t in store.list_tokens(None).await? {
            let Some(p) = principals.get(&t.principal_id).filter(|p| p.active) else { continue };
            // Limits that no longer parse lock the token out of the data plane rather than lifting them.
            let limits = t.limits.as_deref().map(|l| {
                Arc::new(serde_json::from_str(l).unwrap_or_else(|e| {
                    tracing::error!(token = %t.token_id, error = %e, "stored token limits do not parse; the token may query nothing");
                    modelgate_wire::TokenLimits { allowed_endpoints: Some(Vec::new()), ..Default::default() }
                }))
            });
            tokens.insert(t.token_hash, principal(p, t.token_id, t.expires_at, limits));
        }
        let mut passwords = HashMap::new();
        for pw in store.list_passwords().await? {
            let Some(p) = principals.get(&pw.principal_id).filter(|p| p.active && p.kind == principal_kind::USER)
            else {
                continue;
            };
            let login = PasswordLogin {
                principal: principal(p, PASSWORD_SESSION.into(), None, None),
                hash: pw.hash.into(),
                set_at: pw.updated_at,
            };
            passwords.insert(p.name.clone(), login);
        }
        let principal_names = principals.iter().map(|(id, p)| (id.clone(), p.name.clone())).collect();

        let secrets = configs::secret_values(store, cipher).await?;
        for (r, why) in secrets.iter().filter_map(|(r, v)| v.as_ref().err().map(|why| (r, why))) {
            tracing::warn!(secret = %r, "secret {why}; skipped");
        }

        let mut grants: HashMap<String, Vec<(String, Level)>> = HashMap::new();
        for g in store.list_endpoint_permissions().await? {
            if let Some(level) = Level::parse(&g.level) {
                grants.entry(g.endpoint_id).or_default().push((g.principal_id, level));
            }
        }
        let mut endpoints = HashMap::new();
        let mut secret_users: HashMap<SecretRef, Vec<(String, String)>> = HashMap::new();
        let versions = crate::hosting::entity::load_versions(store).await?;
        let mut hosted_keys = HashSet::new();
        for e in store.list_endpoints().await? {
            // A policy that does not parse closes the endpoint instead of vanishing.
            let mut broken = Vec::new();
            let ai_gateway: Option<AiGatewayConfig> =
                stored_policy(&e.name, "ai_gateway", e.ai_gateway.as_deref(), &mut broken);
            let legacy: Vec<modelgate_wire::RateLimit> =
                stored_policy(&e.name, "rate_limits", e.rate_limits.as_deref(), &mut broken).unwrap_or_default();
            let tag_list: Vec<modelgate_wire::EndpointTag> =
                stored_policy(&e.name, "tags", Some(&e.tags), &mut broken).unwrap_or_default();
            let deprecation: Option<modelgate_wire::Deprecation> =
                stored_policy(&e.name, "deprecation", e.deprecation.as_deref(), &mut broken);
            let deprecation = match deprecation.as_ref().map(LiveDeprecation::of) {
                Some(None) => {
                    broken.push("its stored deprecation has a date that does not parse".into());
                    None
                }
                Some(Some(d)) => Some(Arc::new(d)),
                None => None,
            };
            let mut live = LiveEndpoint {
                id: e.id.clone(),
                name: e.name.clone(),
                stopped: e.stopped,
                task: e.task.clone(),
                config_version: e.active_version,
                entities: Vec::new(),
                ai_gateway,
                grants: grants.remove(&e.id).unwrap_or_default(),
                rate_limits: Vec::new(),
                guardrails: None,
                cache: None,
                tags: tags_object(&tag_list),
                tag_map: tag_list.iter().map(|t| (t.key.clone(), t.value.clone().unwrap_or_default())).collect(),
                budget_policy_id: e.budget_policy_id.clone(),
                deprecation,
                unservable: None,
            };
            live.guardrails = live
                .ai_gateway
                .as_ref()
                .and_then(|g| g.guardrails.as_ref())
                .and_then(crate::policy::guardrails::Policy::compile)
                .map(Arc::new);
            live.cache =
                crate::policy::cache::LiveCache::of(&e.id, e.active_version, live.ai_gateway.as_ref()).map(Arc::new);
            live.rate_limits = live.ai_gateway.iter().flat_map(|g| g.rate_limits.iter().flatten().cloned()).collect();
            live.rate_limits.extend(legacy.into_iter().map(|l| modelgate_wire::AiGatewayRateLimit {
                renewal_period: l.renewal_period,
                calls: Some(l.calls),
                tokens: None,
                key: l.key,
                principal: None,
            }));
            for version in [e.active_version, e.pending_version].into_iter().flatten() {
                let Some(record) = store.get_config(&e.id, version).await? else {
                    continue;
                };
                let Ok(config) = configs::parse_stored(&record) else {
                    tracing::error!(endpoint = %e.name, version, "stored config does not parse; skipped");
                    if Some(version) == e.active_version {
                        broken.push(format!("its active config version {version} does not parse"));
                    }
                    continue;
                };
                for (r, entity) in secret_refs(&config) {
                    secret_users.entry(r).or_default().push((e.name.clone(), entity));
                }
                if Some(version) == e.active_version {
                    let hosted = Hosted { hosting, versions: &versions, keys: &mut hosted_keys };
                    live.entities = live_entities(&record, config, cipher, &secrets, providers, hosted);
                }
            }
            if !broken.is_empty() {
                live.unservable = Some(broken.join("; "));
            }
            endpoints.insert(e.name.clone(), Arc::new(live));
        }
        let mut scope_acls: HashMap<String, Vec<(String, ScopePermission)>> = HashMap::new();
        for a in store.list_scope_acls().await? {
            if let Some(p) = ScopePermission::parse(&a.permission) {
                scope_acls.entry(a.scope).or_default().push((a.principal_id, p));
            }
        }
        Ok(Snapshot { tokens, passwords, principal_names, endpoints, secret_users, scope_acls, hosted_keys })
    }
}

/// What building hosted entities needs, and where their sets' keys are collected.
struct Hosted<'a> {
    hosting: &'a crate::hosting::Hosting,
    versions: &'a crate::hosting::entity::ModelVersions,
    keys: &'a mut HashSet<crate::hosting::SetKey>,
}

fn live_entities(
    record: &ConfigRecord,
    config: EndpointCoreConfigInput,
    cipher: &Cipher,
    secrets: &configs::SecretValues,
    providers: &Settings,
    hosted: Hosted<'_>,
) -> Vec<LiveEntity> {
    // Whether the config's author may read a scope was checked when it deployed.
    let anyone = |_: &SecretRef, _: &str| Ok(());
    let traffic: HashMap<String, i64> = config
        .traffic_config
        .iter()
        .flat_map(|t| t.routes.iter().flatten())
        .filter_map(|r| {
            r.served_entity_name.clone().or_else(|| r.served_model_name.clone()).map(|n| (n, r.traffic_percentage))
        })
        .collect();
    config
        .served_entities
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            let (priority, weight) = (e.priority, e.weight.unwrap_or(1));
            // A registered model version: served by its replica set.
            let set = (e.external_model.is_none() && e.entity_name.is_some()).then(|| {
                crate::hosting::entity::resolve(hosted.hosting, &record.endpoint_id, &e, hosted.versions, secrets)
            });
            let registered = e.entity_name.clone().map(|n| (n, e.entity_version.clone().unwrap_or_default()));
            let name = e.name.unwrap_or_default();
            let mut fingerprint = fingerprint_keys().build_hasher();
            let external_model = e.external_model.map(|mut m| {
                let credentials =
                    configs::resolve_credentials(&m, &record.endpoint_id, cipher, secrets, &anyone).values;
                let adapter = modelgate_providers::build(&m, &credentials, providers);
                credentials::strip_plaintext(&mut m);
                serde_json::to_string(&m).unwrap_or_default().hash(&mut fingerprint);
                for (slot, value) in &credentials {
                    (slot, value.expose()).hash(&mut fingerprint);
                }
                (m, adapter)
            });
            let (external_model, adapter, hosted_set) = match (external_model, set) {
                (Some((m, adapter)), _) => (Some(m), adapter, None),
                (None, Some(Ok(r))) => {
                    hosted.keys.insert(r.key);
                    (None, Err("a hosted entity is served by its replicas".to_string()), Some(r.set))
                }
                (None, Some(Err(why))) => (None, Err(why), None),
                (None, None) => (None, Err("this served entity is not an external model".to_string()), None),
            };
            LiveEntity {
                fingerprint: fingerprint.finish(),
                upstream: std::sync::OnceLock::new(),
                adapter,
                priority,
                weight,
                traffic_percentage: traffic.get(&name).copied().unwrap_or(0),
                name,
                external_model,
                hosted: hosted_set,
                registered,
            }
        })
        .collect()
}

/// Keys of the entity fingerprints: random per process, so a fingerprint says nothing about a
/// credential outside it.
fn fingerprint_keys() -> &'static std::hash::RandomState {
    static KEYS: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    KEYS.get_or_init(std::hash::RandomState::new)
}

/// A stored policy field of an endpoint, parsed; one that does not parse is logged and added to
/// `broken`, which keeps the endpoint from serving.
fn stored_policy<T: serde::de::DeserializeOwned>(
    endpoint: &str,
    field: &str,
    json: Option<&str>,
    broken: &mut Vec<String>,
) -> Option<T> {
    match serde_json::from_str(json?) {
        Ok(v) => Some(v),
        Err(err) => {
            tracing::error!(endpoint, field, error = %err, "stored policy does not parse; the endpoint refuses queries");
            broken.push(format!("its stored {field} does not parse ({err})"));
            None
        }
    }
}

/// `[{"key": "team", "value": "ml"}]` as `{"team": "ml"}`; `None` without tags.
fn tags_object(list: &[modelgate_wire::EndpointTag]) -> Option<Arc<str>> {
    if list.is_empty() {
        return None;
    }
    let map: serde_json::Map<String, serde_json::Value> = list
        .iter()
        .map(|t| (t.key.clone(), t.value.clone().map_or(serde_json::Value::Null, serde_json::Value::String)))
        .collect();
    Some(Arc::from(serde_json::Value::Object(map).to_string()))
}
