//! Active health checks: every served entity of an endpoint with `health_check_config.enabled`
//! gets a minimal query every `interval_seconds`. The result shows in the entity's state (so an
//! endpoint whose credentials are refused says so rather than READY with every query failing)
//! and feeds its circuit breaker: a success closes it, an unreachable or failing upstream counts
//! as a failed query.

use std::time::{Duration, Instant};

use modelgate_core::now_ms;

use crate::gateway::probe::{counts_against_breaker, probe};
use crate::state::AppState;

/// How often the checker looks for entities that are due.
const TICK: Duration = Duration::from_secs(5);
/// Interval when the config gives none.
const DEFAULT_INTERVAL_SECONDS: u64 = 60;

/// Runs until `stop` changes.
pub async fn run(app: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        check_due(&app).await;
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Probes, together, every entity whose check is due.
pub async fn check_due(app: &AppState) {
    let snap = app.snapshot.load_full();
    let now = now_ms();
    let mut due = Vec::new();
    for ep in snap.endpoints.values() {
        let Some(cfg) = ep.ai_gateway.as_ref().and_then(|g| g.health_check_config.as_ref()).filter(|c| c.enabled)
        else {
            continue;
        };
        if ep.stopped || ep.config_version.is_none() {
            continue;
        }
        let every = cfg.interval_seconds.unwrap_or(DEFAULT_INTERVAL_SECONDS) as i64 * 1000;
        for entity in &ep.entities {
            let last = app.health.get(&ep.id, &entity.name).map_or(i64::MIN, |h| h.checked_at);
            if now.saturating_sub(last) >= every {
                due.push((ep.clone(), entity));
            }
        }
    }
    let probes = due.iter().map(|(ep, entity)| async move { (ep, probe(app, ep, entity).await) });
    for (ep, health) in futures::future::join_all(probes).await {
        if health.ok {
            app.breakers.success(&ep.id, &health.name);
        } else if counts_against_breaker(&health) && app.breakers.failure(&ep.id, &health.name, None, Instant::now()) {
            app.events.push(&ep.id, &health.name, "circuit breaker opened after failed health checks");
        }
        let was_ok = app.health.get(&ep.id, &health.name).map(|h| h.ok);
        if was_ok != Some(health.ok) {
            let line = match (&health.message, health.ok) {
                (_, true) => format!("health check passed in {:.0} ms", health.latency_ms),
                (Some(m), false) => format!("health check failed: {m}"),
                (None, false) => "health check failed".to_string(),
            };
            app.events.push(&ep.id, &health.name, line);
        }
        app.health.record(&ep.id, health);
    }
}
