//! Alerting: rules evaluated in the background, and webhook notifications with one message when an
//! alert fires and one when it resolves, nothing in between.
//!
//! Rules and destinations are documents in the store. A fresh server gets the default rules, which
//! apply to every endpoint, new ones included: error rate above 5 % over 5 minutes, p95 latency
//! above 2 s over 5 minutes, not ready for a minute, a circuit breaker open, a budget threshold
//! crossed, and an endpoint-wide rate limit more than 90 % used.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use modelgate_store::{Document, Store, StoreError};
use modelgate_wire::{
    Alert, AlertDestination, AlertDestinationInput, AlertKind, AlertRule, AlertRuleInput, AlertStatus, ListAlerts,
};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;
use crate::telemetry::recent::{History, Totals};

/// Document kind of rules.
pub const RULE_KIND: &str = "alert_rule";
/// Document kind of destinations.
pub const DESTINATION_KIND: &str = "alert_destination";
const RESOLVED_KEPT: usize = 100;

/// The rules a fresh server starts with.
pub fn default_rules() -> Vec<AlertRuleInput> {
    let rule = |name: &str, kind: AlertKind, threshold: Option<f64>, window: Option<&str>| AlertRuleInput {
        name: name.into(),
        kind,
        endpoint: None,
        threshold,
        window: window.map(str::to_string),
        min_requests: matches!(kind, AlertKind::ErrorRate | AlertKind::LatencyP95).then_some(10),
        enabled: Some(true),
        destinations: None,
    };
    vec![
        rule("error-rate", AlertKind::ErrorRate, Some(0.05), Some("5m")),
        rule("latency-p95", AlertKind::LatencyP95, Some(2000.0), Some("5m")),
        rule("not-ready", AlertKind::NotReady, None, Some("1m")),
        rule("breaker-open", AlertKind::BreakerOpen, None, None),
        rule("budget-threshold", AlertKind::Budget, None, None),
        rule("rate-limit-usage", AlertKind::RateLimitUsage, Some(0.9), None),
        rule("deprecation", AlertKind::Deprecation, None, None),
    ]
}

/// Checks a rule; the error names the field.
pub fn validate_rule(r: &AlertRuleInput) -> Result<(), ApiError> {
    if let Some(p) = modelgate_core::names::endpoint_name_problem(&r.name) {
        return Err(ApiError::invalid("name", p));
    }
    if let Some(w) = &r.window {
        humantime::parse_duration(w).map_err(|e| ApiError::invalid("window", format!("'{w}': {e}")))?;
    }
    if let Some(t) = r.threshold
        && !(t.is_finite() && t >= 0.0)
    {
        return Err(ApiError::invalid("threshold", format!("must be a non-negative number, got {t}")));
    }
    Ok(())
}

/// Checks a destination; the error names the field.
pub fn validate_destination(d: &AlertDestinationInput) -> Result<(), ApiError> {
    if let Some(p) = modelgate_core::names::endpoint_name_problem(&d.name) {
        return Err(ApiError::invalid("name", p));
    }
    if modelgate_core::secret_ref::looks_like_ref(&d.url) {
        modelgate_core::secret_ref::parse(&d.url).map_err(|m| ApiError::invalid("url", m))?;
    } else {
        modelgate_core::outbound::parse_url(&d.url).map_err(|m| ApiError::invalid("url", m))?;
    }
    match d.format.as_deref() {
        None | Some("json") | Some("slack") | Some("teams") => Ok(()),
        Some(f) => Err(ApiError::invalid("format", format!("'{f}' is not json, slack or teams"))),
    }
}

/// Creates the default rules when the store has no rule at all (a fresh server).
pub async fn install_defaults(store: &dyn Store) -> Result<(), ApiError> {
    // Which defaults were ever installed: a default added by a newer release is installed once,
    // and one the operator deleted does not come back.
    const INSTALLED: &str = "alert_default_rules";
    let existing = store.list_documents(RULE_KIND).await?;
    let mut installed: Vec<String> = match store.get_meta(INSTALLED).await? {
        Some(list) => list.split(',').map(str::to_string).collect(),
        // Before this was recorded, the first six defaults were installed with the first rules.
        None if !existing.is_empty() => default_rules().iter().take(6).map(|r| r.name.clone()).collect(),
        None => Vec::new(),
    };
    for r in default_rules() {
        if installed.contains(&r.name) || existing.iter().any(|d| d.name == r.name) {
            continue;
        }
        let doc = Document {
            kind: RULE_KIND.into(),
            id: modelgate_core::token::random_hex(16),
            name: r.name.clone(),
            body: serde_json::to_string(&r).map_err(|e| ApiError::Internal(e.to_string()))?,
            updated_at: modelgate_core::now_ms(),
        };
        match store.put_document(&doc).await {
            // Another replica, starting at the same time, installed it.
            Ok(()) | Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
        installed.push(r.name.clone());
    }
    store.put_meta(INSTALLED, &installed.join(",")).await?;
    Ok(())
}

/// Every rule in the store.
pub async fn rules(store: &dyn Store) -> Result<Vec<AlertRule>, ApiError> {
    Ok(store
        .list_documents(RULE_KIND)
        .await?
        .into_iter()
        .filter_map(|d| serde_json::from_str(&d.body).ok().map(|input| AlertRule { rule_id: d.id, input }))
        .collect())
}

/// A destination as the API shows it: a literal webhook URL is a credential (anyone holding a
/// Slack or Teams webhook URL can post), so only its scheme and host are shown; a secret
/// reference is shown as is.
pub fn masked(mut d: AlertDestination) -> AlertDestination {
    if modelgate_core::secret_ref::parse(&d.input.url).is_err() {
        d.input.url = match url::Url::parse(&d.input.url) {
            Ok(u) => format!("{}/***", u.origin().ascii_serialization()),
            Err(_) => "***".into(),
        };
    }
    d
}

/// The webhook URL of a destination: the literal URL, or the value of the secret it references
/// (read when the alert is sent, so rotating the secret takes effect at once).
async fn webhook_url(app: &AppState, raw: &str) -> Result<url::Url, String> {
    let text = match modelgate_core::secret_ref::parse(raw) {
        Err(_) => raw.to_string(),
        Ok(r) => {
            let record = app
                .store
                .get_secret(&r.scope, &r.key)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("the secret {r} does not exist"))?;
            let value = app
                .cipher
                .open(&crate::configs::secret_context(&r.scope, &r.key), &record.value)
                .map_err(|_| format!("the secret {r} does not decrypt"))?;
            String::from_utf8(value).map_err(|_| format!("the secret {r} is not text"))?.trim().to_string()
        }
    };
    modelgate_core::outbound::parse_url(&text).map_err(|m| format!("the webhook URL {m}"))
}

/// Every destination in the store.
pub async fn destinations(store: &dyn Store) -> Result<Vec<AlertDestination>, ApiError> {
    Ok(store
        .list_documents(DESTINATION_KIND)
        .await?
        .into_iter()
        .filter_map(|d| {
            serde_json::from_str(&d.body).ok().map(|input| AlertDestination { destination_id: d.id, input })
        })
        .collect())
}

/// What is firing, and what resolved lately.
#[derive(Default)]
pub struct AlertState {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    firing: BTreeMap<String, Alert>,
    resolved: VecDeque<Alert>,
    /// Since when a `not_ready` condition has held, by alert id.
    pending: HashMap<String, i64>,
    /// Snapshots of the per-endpoint statistics, for windowed rules; begun at the first evaluation.
    history: Option<History>,
}

impl AlertState {
    /// Firing alerts, and recently resolved ones (newest first).
    pub fn snapshot(&self) -> (Vec<Alert>, Vec<Alert>) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (inner.firing.values().cloned().collect(), inner.resolved.iter().cloned().collect())
    }
}

fn window_ms(rule: &AlertRuleInput, default: &str) -> i64 {
    let w = rule.window.as_deref().unwrap_or(default);
    humantime::parse_duration(w).map_or(300_000, |d| d.as_millis() as i64)
}

/// A condition that holds now.
struct Finding {
    id: String,
    endpoint: Option<String>,
    subject: Option<String>,
    value: f64,
    threshold: f64,
    message: String,
}

/// Evaluates every rule once; returns the alerts that fired and resolved.
async fn evaluate(
    app: &AppState,
    alerts: &AlertState,
) -> Result<(Vec<(AlertRule, Alert)>, Vec<(AlertRule, Alert)>), ApiError> {
    let now = modelgate_core::now_ms();
    let snapshot = app.snapshot.load_full();
    let mut found: Vec<(AlertRule, Finding)> = Vec::new();
    let all_rules = rules(app.store.as_ref()).await?;
    let recent = app.metrics.recent();
    let names: std::collections::HashSet<&str> = snapshot.endpoints.values().map(|e| e.name.as_str()).collect();
    recent.retain(|name| names.contains(name));
    let totals = recent.totals();
    let longest = all_rules
        .iter()
        .filter(|r| matches!(r.input.kind, AlertKind::ErrorRate | AlertKind::LatencyP95))
        .map(|r| window_ms(&r.input, "5m"))
        .max()
        .unwrap_or(0);
    // Only this loop evaluates, so the history can leave the lock while the rules are read.
    let taken = alerts.inner.lock().unwrap_or_else(|e| e.into_inner()).history.take();
    let mut history = taken.unwrap_or_else(|| History::new(now));
    let zero = Totals::default();
    // Alerts whose window reaches back before the statistics began (a restart): a firing one
    // stays firing until a whole window of fresh data says otherwise.
    let mut undecided = std::collections::HashSet::new();
    for rule in all_rules.iter().cloned() {
        let r = &rule.input;
        if r.enabled == Some(false) {
            continue;
        }
        let endpoints: Vec<_> = snapshot
            .endpoints
            .values()
            .filter(|e| r.endpoint.as_deref().is_none_or(|n| n == e.name))
            .cloned()
            .collect();
        let id = |ep: &str, subject: &str| format!("{}:{ep}:{subject}", rule.rule_id);
        match r.kind {
            AlertKind::ErrorRate | AlertKind::LatencyP95 => {
                let since = now - window_ms(r, "5m");
                let min = r.min_requests.unwrap_or(10);
                for ep in &endpoints {
                    // Replicas of a shared database: every replica's queries, from the shared
                    // usage records; one server: its own statistics, kept in memory.
                    let (requests, errors, p95) = if app.cluster.is_shared() {
                        match app.usage.db.summary(&ep.name, since).await {
                            Ok(w) => (w.requests.max(0) as u64, w.errors.max(0) as u64, w.p95_ms),
                            Err(e) => {
                                tracing::warn!(endpoint = %ep.name, error = %e, "alert statistics unavailable");
                                undecided.insert(id(&ep.name, ""));
                                continue;
                            }
                        }
                    } else {
                        if !history.covers(since) {
                            undecided.insert(id(&ep.name, ""));
                        }
                        let s = history.window(&ep.name, totals.get(&ep.name).unwrap_or(&zero), since);
                        (s.requests, s.errors, s.quantile_ms(0.95))
                    };
                    if requests < min.max(1) as u64 {
                        continue;
                    }
                    let (value, threshold, what) = if r.kind == AlertKind::ErrorRate {
                        (errors as f64 / requests as f64, r.threshold.unwrap_or(0.05), "error rate")
                    } else {
                        (p95.unwrap_or(0.0), r.threshold.unwrap_or(2000.0), "p95 latency")
                    };
                    if value > threshold {
                        let shown = |v: f64| {
                            if r.kind == AlertKind::ErrorRate {
                                format!("{:.1} %", v * 100.0)
                            } else {
                                format!("{v:.0} ms")
                            }
                        };
                        found.push((
                            rule.clone(),
                            Finding {
                                id: id(&ep.name, ""),
                                endpoint: Some(ep.name.clone()),
                                subject: None,
                                value,
                                threshold,
                                message: format!(
                                    "Endpoint '{}': {what} {} over the last {} is above {} ({} queries).",
                                    ep.name,
                                    shown(value),
                                    r.window.as_deref().unwrap_or("5m"),
                                    shown(threshold),
                                    requests
                                ),
                            },
                        ));
                    }
                }
            }
            AlertKind::NotReady => {
                for ep in endpoints.iter().filter(|e| e.config_version.is_none() && !e.stopped) {
                    found.push((
                        rule.clone(),
                        Finding {
                            id: id(&ep.name, ""),
                            endpoint: Some(ep.name.clone()),
                            subject: None,
                            value: 1.0,
                            threshold: window_ms(r, "1m") as f64,
                            message: format!("Endpoint '{}' is not ready: it has no working config.", ep.name),
                        },
                    ));
                }
            }
            AlertKind::Deprecation => {
                const WEEK_MS: i64 = 7 * 24 * 3600 * 1000;
                for ep in &endpoints {
                    let Some(d) = &ep.deprecation else { continue };
                    let day = |ms: i64| {
                        let t = humantime::format_rfc3339(
                            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
                        )
                        .to_string();
                        t.get(..10).unwrap_or(&t).to_string()
                    };
                    let instead =
                        d.replacement.as_ref().map(|r| format!("; callers should move to '{r}'")).unwrap_or_default();
                    let mut finding = |subject: &str, message: String| {
                        found.push((
                            rule.clone(),
                            Finding {
                                id: id(&ep.name, subject),
                                endpoint: Some(ep.name.clone()),
                                subject: Some(subject.to_string()),
                                value: 1.0,
                                threshold: 1.0,
                                message,
                            },
                        ));
                    };
                    if now >= d.notice_ms {
                        finding(
                            "notice",
                            format!(
                                "Endpoint '{}' is deprecated and retires on {}{instead}.",
                                ep.name,
                                day(d.sunset_ms)
                            ),
                        );
                    }
                    if now >= d.sunset_ms - WEEK_MS {
                        finding(
                            "sunset",
                            format!(
                                "Endpoint '{}' retires on {}, a week from now or less{instead}.",
                                ep.name,
                                day(d.sunset_ms)
                            ),
                        );
                    }
                }
            }
            AlertKind::BreakerOpen => {
                let t = std::time::Instant::now();
                for ep in &endpoints {
                    for e in &ep.entities {
                        if app.breakers.status(&ep.id, &e.name, t).refusing() {
                            found.push((rule.clone(), Finding {
                                id: id(&ep.name, &e.name),
                                endpoint: Some(ep.name.clone()),
                                subject: Some(e.name.clone()),
                                value: 1.0,
                                threshold: 1.0,
                                message: format!(
                                    "Endpoint '{}': the circuit breaker of served entity '{}' is open after repeated failures.",
                                    ep.name, e.name
                                ),
                            }));
                        }
                    }
                }
            }
            AlertKind::Budget => {
                // Budget policies, then tokens' own budgets (named `token <id>`).
                for p in app.budgets.list(&snapshot.targets()).into_iter().chain(app.budgets.token_budgets()) {
                    let Some(spend) = &p.spend else { continue };
                    let thresholds =
                        p.input.alert_thresholds.clone().unwrap_or(crate::policy::budgets::DEFAULT_THRESHOLDS.to_vec());
                    for t in thresholds.into_iter().filter(|t| spend.percent >= *t) {
                        found.push((
                            rule.clone(),
                            Finding {
                                id: id("", &format!("{}:{t}", p.policy_id)),
                                endpoint: None,
                                subject: Some(format!("{} at {t} %", p.input.name)),
                                value: spend.percent,
                                threshold: t,
                                message: format!(
                                    "{} has used {:.1} % (${:.4} of ${:.2}) this {}; threshold {t} % crossed.",
                                    match p.policy_id.strip_prefix("token:") {
                                        Some(token) => format!("The budget of token {token}"),
                                        None => format!("Budget policy '{}'", p.input.name),
                                    },
                                    spend.percent,
                                    spend.spent_usd,
                                    p.input.amount_usd,
                                    p.input.period
                                ),
                            },
                        ));
                    }
                }
            }
            AlertKind::RateLimitUsage => {
                let threshold = r.threshold.unwrap_or(0.9);
                let secs = (now / 1000) as u64;
                for ep in &endpoints {
                    for (what, used, limit) in
                        crate::policy::ratelimit::endpoint_usage(&app.counters, ep.target(), secs).await
                    {
                        let value = if limit == 0 { 1.0 } else { used as f64 / limit as f64 };
                        if value > threshold {
                            found.push((rule.clone(), Finding {
                                id: id(&ep.name, &what),
                                endpoint: Some(ep.name.clone()),
                                subject: Some(what.clone()),
                                value,
                                threshold,
                                message: format!(
                                    "Endpoint '{}': rate limit of {what} is {:.0} % used this minute ({used} of {limit}).",
                                    ep.name,
                                    value * 100.0
                                ),
                            }));
                        }
                    }
                }
            }
        }
    }

    history.record(now, totals, longest);
    let mut inner = alerts.inner.lock().unwrap_or_else(|e| e.into_inner());
    inner.history = Some(history);
    let mut fired = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (rule, f) in found {
        seen.insert(f.id.clone());
        if inner.firing.contains_key(&f.id) {
            continue;
        }
        if rule.input.kind == AlertKind::NotReady {
            // Deployments take a moment: only a condition that lasts its window fires.
            let since = *inner.pending.entry(f.id.clone()).or_insert(now);
            if now - since < f.threshold as i64 {
                continue;
            }
        }
        let alert = Alert {
            alert_id: f.id.clone(),
            state: AlertStatus::Firing,
            rule_id: rule.rule_id.clone(),
            rule_name: rule.input.name.clone(),
            kind: rule.input.kind,
            endpoint: f.endpoint,
            subject: f.subject,
            value: f.value,
            threshold: f.threshold,
            message: f.message,
            fired_at: now,
            resolved_at: None,
        };
        inner.firing.insert(f.id, alert.clone());
        fired.push((rule, alert));
    }
    inner.pending.retain(|k, _| seen.contains(k));
    let gone: Vec<String> =
        inner.firing.keys().filter(|k| !seen.contains(*k) && !undecided.contains(*k)).cloned().collect();
    let mut resolved = Vec::new();
    for k in gone {
        if let Some(mut a) = inner.firing.remove(&k) {
            a.state = AlertStatus::Resolved;
            a.resolved_at = Some(now);
            inner.resolved.push_front(a.clone());
            inner.resolved.truncate(RESOLVED_KEPT);
            let rule = all_rules.iter().find(|r| r.rule_id == a.rule_id).cloned().unwrap_or_else(|| AlertRule {
                rule_id: a.rule_id.clone(),
                input: AlertRuleInput {
                    name: a.rule_name.clone(),
                    kind: a.kind,
                    endpoint: None,
                    threshold: None,
                    window: None,
                    min_requests: None,
                    enabled: None,
                    destinations: None,
                },
            });
            resolved.push((rule, a));
        }
    }
    Ok((fired, resolved))
}

/// The webhook body for a destination's format.
pub fn payload(format: &str, a: &Alert) -> Value {
    let firing = a.state == AlertStatus::Firing;
    let title = format!(
        "[{}] {}{}",
        a.state,
        a.rule_name,
        a.endpoint.as_deref().map(|e| format!(" on {e}")).unwrap_or_default()
    );
    match format {
        "slack" => {
            json!({"text": format!("{} {title}\n{}", if firing { ":rotating_light:" } else { ":white_check_mark:" }, a.message)})
        }
        "teams" => json!({
            "@type": "MessageCard", "@context": "https://schema.org/extensions",
            "themeColor": if firing { "D93F0B" } else { "2EB67D" },
            "summary": title, "title": title, "text": a.message,
        }),
        _ => json!({"status": a.state, "alert": a}),
    }
}

async fn notify(app: &AppState, rule: &AlertRule, alert: &Alert) {
    let Ok(all) = destinations(app.store.as_ref()).await else { return };
    for d in
        all.into_iter().filter(|d| rule.input.destinations.as_ref().is_none_or(|ids| ids.contains(&d.destination_id)))
    {
        let body = payload(d.input.format.as_deref().unwrap_or("json"), alert);
        let http = app.http.clone();
        let url = match webhook_url(app, &d.input.url).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(destination = %d.input.name, error = %e, "alert webhook not sent");
                continue;
            }
        };
        // Webhook URLs are credentials: logs name the host only.
        let host = url.host_str().unwrap_or_default().to_string();
        tokio::spawn(async move {
            for attempt in 0..3u64 {
                let sent = http.post(url.clone()).timeout(Duration::from_secs(5)).json(&body).send().await;
                match sent {
                    Ok(r) if r.status().is_success() => return,
                    Ok(r) => {
                        tracing::warn!(destination = %d.input.name, %host, status = %r.status(), "alert webhook refused")
                    }
                    Err(e) => {
                        let error = modelgate_providers::entra::without_url(&e);
                        tracing::warn!(destination = %d.input.name, %host, %error, "alert webhook failed")
                    }
                }
                tokio::time::sleep(Duration::from_millis(500 * (attempt + 1))).await;
            }
        });
    }
}

/// Document kind and id of the saved alert state.
const STATE_KIND: &str = "alert_state";
const STATE_ID: &str = "current";

/// Saves what is firing (and the recently resolved), so a restart neither repeats a FIRING message
/// nor forgets an alert that is still to resolve.
async fn persist(app: &AppState, alerts: &AlertState) -> Result<(), ApiError> {
    let (firing, resolved) = alerts.snapshot();
    let body =
        serde_json::to_string(&ListAlerts { firing, resolved }).map_err(|e| ApiError::Internal(e.to_string()))?;
    let doc = Document {
        kind: STATE_KIND.into(),
        id: STATE_ID.into(),
        name: STATE_ID.into(),
        body,
        updated_at: modelgate_core::now_ms(),
    };
    Ok(app.store.put_document(&doc).await?)
}

/// What is firing and what resolved lately, as the evaluator last saved it (it saves after every
/// change).
pub async fn current(store: &dyn Store) -> Result<ListAlerts, ApiError> {
    match store.list_documents(STATE_KIND).await?.into_iter().find(|d| d.id == STATE_ID) {
        None => Ok(ListAlerts { firing: Vec::new(), resolved: Vec::new() }),
        Some(doc) => serde_json::from_str(&doc.body).map_err(|e| ApiError::Internal(e.to_string())),
    }
}

/// Takes back the state saved before a restart.
async fn restore(app: &AppState, alerts: &AlertState) -> Result<(), ApiError> {
    let saved = current(app.store.as_ref()).await?;
    let mut inner = alerts.inner.lock().unwrap_or_else(|e| e.into_inner());
    inner.firing = saved.firing.into_iter().map(|a| (a.alert_id.clone(), a)).collect();
    inner.resolved = saved.resolved.into();
    Ok(())
}

/// Evaluates the rules every `interval` until the server stops.
pub async fn run(app: AppState, interval: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    let alerts = AlertState::default();
    let mut leading = false;
    loop {
        // One replica evaluates and notifies (the leader, see `cluster`); one that starts to lead
        // takes over what the previous leader saved, so nothing is announced twice.
        if !app.cluster.is_leader() {
            leading = false;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                _ = stop.changed() => return,
            }
        }
        if !leading {
            if let Err(e) = restore(&app, &alerts).await {
                tracing::warn!(error = %e, "could not read the alerts that were firing before");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stop.changed() => return,
                }
            }
            leading = true;
        }
        match evaluate(&app, &alerts).await {
            Ok((fired, resolved)) => {
                if (!fired.is_empty() || !resolved.is_empty())
                    && let Err(e) = persist(&app, &alerts).await
                {
                    tracing::warn!(error = %e, "could not save the firing alerts");
                }
                for (rule, a) in fired.iter().chain(resolved.iter()) {
                    tracing::info!(alert = %a.alert_id, state = %a.state, "{}", a.message);
                    notify(&app, rule, a).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "alert evaluation failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}
