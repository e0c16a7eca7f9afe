//! Provisioned throughput billed by the band-hour: every interval, each throughput's band-time
//! since the last charge becomes one usage record (`billing: band`, no tokens, provider
//! `modelgate`), priced at the model's band price and counted against the endpoint's budgets.
//! The last charges are taken at shutdown, and when a config change retires a throughput.

use std::time::Duration;

use modelgate_store::{UsageRecord, billing};
use tokio::sync::watch;

use crate::state::AppState;

/// Charges every throughput's band-time until `stop`, then once more.
pub(crate) async fn run(app: AppState, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => bill(&app),
            _ = stop.changed() => break,
        }
    }
}

/// Writes one usage record per throughput that held bands since its last charge.
pub(crate) fn bill(app: &AppState) {
    let snapshot = app.snapshot.load();
    for t in app.hosting.throughputs() {
        let Some(charge) = t.charge() else { continue };
        let b = &t.billing;
        let ep = snapshot.endpoints.values().find(|e| e.id == b.endpoint_id);
        let cost = charge.band_seconds / 3600.0 * b.band_usd_per_hour;
        let endpoint_name = ep.map(|e| e.name.clone()).unwrap_or_else(|| b.endpoint_id.clone());
        let record = UsageRecord {
            request_id: uuid::Uuid::now_v7().to_string(),
            request_time: modelgate_core::now_ms(),
            endpoint_id: b.endpoint_id.clone(),
            endpoint_name: endpoint_name.clone(),
            served_entity: b.entity.clone(),
            provider: crate::gateway::settlement::HOSTED_PROVIDER.to_string(),
            model: b.model.clone(),
            requester: "modelgate".to_string(),
            status_code: 200,
            tags: ep.and_then(|e| e.tags.as_deref().map(str::to_string)),
            cost_usd: cost,
            billing: billing::BAND.to_string(),
            ..Default::default()
        };
        if let Some(ep) = ep {
            app.budgets.add(ep.target(), None, None, cost);
        }
        app.metrics.band_cost(&endpoint_name, &b.entity, cost);
        app.usage.record(record);
    }
}
