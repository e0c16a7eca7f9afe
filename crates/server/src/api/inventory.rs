//! The endpoint inventory (our extension): `GET /api/2.0/inventory`. One row per endpoint the
//! caller may view, with its owner, state, use and cost, and flags that say what deserves a
//! look: duplicates of another endpoint, unused ones, proofs of concept left behind.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use modelgate_core::now_ms;
use modelgate_store::EndpointRecord;
use modelgate_wire::{ConfigUpdate, Inventory, InventoryEntry, InventoryFlag};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::snapshot::Principal;
use crate::state::AppState;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// Query of `GET /api/2.0/inventory`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryParams {
    /// An endpoint with no query for this many days is `unused` (default 30).
    unused_days: Option<i64>,
    /// A proof of concept untouched for this many days is flagged `poc` (default 30).
    poc_days: Option<i64>,
}

/// Names that mark an experiment.
const POC_WORDS: [&str; 7] = ["poc", "test", "tmp", "temp", "demo", "sandbox", "experiment"];

fn state_of(e: &EndpointRecord) -> String {
    let update = ConfigUpdate::parse(&e.config_update).unwrap_or(ConfigUpdate::NotUpdating);
    match (e.stopped, e.active_version.is_some(), update) {
        (true, _, _) => "Not ready (stopped)",
        (false, true, ConfigUpdate::InProgress) => "Ready (updating)",
        (false, true, ConfigUpdate::UpdateFailed | ConfigUpdate::UpdateCanceled) => "Ready (update failed)",
        (false, true, _) => "Ready",
        (false, false, ConfigUpdate::InProgress) => "Not ready (updating)",
        (false, false, _) => "Not ready (update failed)",
    }
    .to_string()
}

fn tag(tags: &[modelgate_wire::EndpointTag], keys: &[&str]) -> Option<String> {
    tags.iter().find(|t| keys.contains(&t.key.as_str())).and_then(|t| t.value.clone())
}

/// `GET /api/2.0/inventory`.
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    ApiQuery(p): ApiQuery<InventoryParams>,
) -> ApiResult<Json<Inventory>> {
    let unused_days = p.unused_days.unwrap_or(30);
    let poc_days = p.poc_days.unwrap_or(30);
    for (field, v) in [("unused_days", unused_days), ("poc_days", poc_days)] {
        if !(1..=3650).contains(&v) {
            return Err(ApiError::invalid(field, "must be 1 to 3650 days"));
        }
    }
    Ok(Json(inventory(&app, &caller, unused_days, poc_days).await?))
}

/// The inventory as `caller` may see it (the console shows it too).
pub async fn inventory(app: &AppState, caller: &Principal, unused_days: i64, poc_days: i64) -> ApiResult<Inventory> {
    let now = now_ms();
    let (month_start, _) = modelgate_core::period::Period::Month.bounds(now);
    let policy = super::standards::load(app).await?;
    let snapshot = app.snapshot.load_full();
    app.usage.flush().await;
    let mut rows = Vec::new();
    // Entity fingerprints (provider config and credentials) → endpoints serving them.
    let mut backends: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for ep in snapshot.endpoints.values() {
        for e in &ep.entities {
            backends.entry(e.fingerprint).or_default().push(ep.name.clone());
        }
    }
    for e in app.store.list_endpoints().await? {
        let Some(live) = snapshot.endpoints.get(&e.name).filter(|ep| crate::access::level_of(caller, ep).is_some())
        else {
            continue;
        };
        let tags = super::render::tags(&e);
        let first = live.entities.first();
        let external = first.and_then(|x| x.external_model.as_ref());
        let activity = app.usage.db.activity(&e.name, now - 30 * DAY_MS, month_start).await?;
        let mut flags = Vec::new();
        let mut twins: Vec<&String> = live
            .entities
            .iter()
            .filter_map(|x| backends.get(&x.fingerprint))
            .flatten()
            .filter(|n| **n != e.name)
            .collect();
        twins.sort();
        twins.dedup();
        if external.is_some() && !twins.is_empty() {
            let names: Vec<&str> = twins.iter().map(|n| n.as_str()).collect();
            flags.push(InventoryFlag {
                flag: "duplicate".into(),
                reason: format!("serves the same provider, model, task and credentials as {}", names.join(", ")),
            });
        }
        let idle_since = activity.last_request.unwrap_or(e.created_at);
        if now - idle_since >= unused_days * DAY_MS {
            let reason = match activity.last_request {
                Some(_) => format!("no query in the last {} days", (now - idle_since) / DAY_MS),
                None => format!("never queried since it was created {} days ago", (now - e.created_at) / DAY_MS),
            };
            flags.push(InventoryFlag { flag: "unused".into(), reason });
        }
        let lower = e.name.to_ascii_lowercase();
        let poc_tag = tags.iter().any(|t| t.key.eq_ignore_ascii_case("poc"));
        let poc_name = lower.split(['-', '_', '.']).find(|w| POC_WORDS.contains(w));
        if (poc_tag || poc_name.is_some()) && now - e.updated_at >= poc_days * DAY_MS {
            let why = if poc_tag {
                "tagged poc".to_string()
            } else {
                format!("named like an experiment ('{}')", poc_name.unwrap_or_default())
            };
            flags.push(InventoryFlag {
                flag: "poc".into(),
                reason: format!("{why} and untouched for {} days", (now - e.updated_at) / DAY_MS),
            });
        }
        let deprecation: Option<modelgate_wire::Deprecation> =
            e.deprecation.as_deref().and_then(|j| serde_json::from_str(j).ok());
        if let (Some(d), Some(live_d)) = (&deprecation, &live.deprecation)
            && now >= live_d.notice_ms
        {
            let instead = d.replacement.as_ref().map(|r| format!("; use {r}")).unwrap_or_default();
            let reason = if now >= live_d.sunset_ms {
                format!("retired on {}{instead}", d.sunset_date)
            } else {
                format!("sunset on {}{instead}", d.sunset_date)
            };
            flags.push(InventoryFlag { flag: "deprecated".into(), reason });
        }
        if let Some(policy) = &policy {
            let entities: Vec<(String, String)> = live
                .entities
                .iter()
                .filter_map(|x| x.external_model.as_ref().map(|m| (m.provider.clone(), m.name.clone())))
                .collect();
            let facts = modelgate_core::standards::Facts { name: &e.name, tags: &live.tag_map, entities: &entities };
            let broken: Vec<String> = modelgate_core::standards::violations(policy, &facts)
                .into_iter()
                .map(|(rule, m)| format!("{rule}: {m}"))
                .collect();
            if !broken.is_empty() {
                flags.push(InventoryFlag { flag: "breaks_policy".into(), reason: broken.join("; ") });
            }
        }
        let registered = first.and_then(|x| x.registered.clone());
        let entity_model =
            registered.as_ref().map(|(m, _)| m.clone()).or_else(|| first.map(|x| x.name.clone())).unwrap_or_default();
        rows.push(InventoryEntry {
            name: e.name.clone(),
            kind: if external.is_some() {
                "external".into()
            } else if entity_model.starts_with("system.ai.") {
                "foundation".into()
            } else {
                "custom".into()
            },
            model: external.map(|m| m.name.clone()).unwrap_or(entity_model),
            model_version: registered.map(|(_, v)| v).filter(|v| !v.is_empty()),
            // A registered version is served by this server's own replicas.
            provider: external.map(|m| m.provider.clone()).unwrap_or_else(|| "modelgate".into()),
            task: e.task.clone(),
            environment: tag(&tags, &["environment", "env"]),
            owner: e.creator.clone(),
            team: tag(&tags, &["team"]),
            created: e.created_at,
            last_updated: e.updated_at,
            state: state_of(&e),
            budget_policy_id: e.budget_policy_id.clone(),
            spend_this_month_usd: activity.month_cost_usd,
            last_query: activity.last_request,
            queries_30d: activity.requests,
            cost_30d_usd: activity.cost_usd,
            deprecation,
            flags,
        });
    }
    Ok(Inventory { generated_at: now, endpoints: rows })
}
