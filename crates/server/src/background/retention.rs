//! Retention: inference-table payloads past their endpoint's retention, usage records and audit records past the
//! server's, are deleted hourly.

use std::time::Duration;

use modelgate_core::now_ms;

use crate::state::AppState;
use crate::telemetry::inference::{DEFAULT_RETENTION_DAYS, enabled};

/// Deletes payloads past their endpoint's retention, now and then every hour. Payloads of
/// endpoints that no longer log (or no longer exist) are kept for the default retention.
pub async fn inference(app: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        // The leader deletes for every replica.
        if !app.cluster.is_leader() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                _ = stop.changed() => return,
            }
        }
        let now = now_ms();
        let day = 24 * 3600 * 1000;
        let mut logging = Vec::new();
        let snapshot = app.snapshot.load_full();
        for ep in snapshot.endpoints.values() {
            let Some(c) = enabled(ep.ai_gateway.as_ref()) else { continue };
            logging.push(ep.name.clone());
            let days = c.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS);
            if let Err(e) = app.inference.db.delete_older(Some(&ep.name), &[], now - days * day).await {
                tracing::warn!(endpoint = %ep.name, error = %e, "inference retention failed");
            }
        }
        if let Err(e) = app.inference.db.delete_older(None, &logging, now - DEFAULT_RETENTION_DAYS * day).await {
            tracing::warn!(error = %e, "inference retention failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// How long the audit log and the request log (usage records) are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Audit records.
    pub audit: Duration,
    /// Usage records, which are the request log and the source of usage reports and budgets.
    pub requests: Duration,
}

/// Deletes audit and usage records past their retention, now and then every hour.
pub async fn records(app: AppState, keep: Retention, mut stop: tokio::sync::watch::Receiver<bool>) {
    let cutoff = |d: Duration| now_ms() - i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    loop {
        // The leader deletes for every replica.
        if !app.cluster.is_leader() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                _ = stop.changed() => return,
            }
        }
        match app.store.delete_audit_before(cutoff(keep.audit)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "audit records past their retention deleted"),
            Err(e) => tracing::warn!(error = %e, "audit retention failed"),
        }
        match app.usage.db.delete_before(cutoff(keep.requests)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "usage records past their retention deleted"),
            Err(e) => tracing::warn!(error = %e, "usage retention failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.changed() => return,
        }
    }
}
