//! Retention: inference-table payloads past their endpoint's retention, and audit records past the
//! server's, are deleted hourly.

use std::time::Duration;

use modelgate_core::now_ms;

use crate::state::AppState;
use crate::telemetry::inference::{DEFAULT_RETENTION_DAYS, enabled};

/// Deletes payloads past their endpoint's retention, now and then every hour. Payloads of
/// endpoints that no longer log (or no longer exist) are kept for the default retention.
pub async fn inference(app: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
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

/// Deletes audit records older than `retention`, now and then every hour.
pub async fn audit(app: AppState, retention: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let before = now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        match app.store.delete_audit_before(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "audit records past their retention deleted"),
            Err(e) => tracing::warn!(error = %e, "audit retention failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.changed() => return,
        }
    }
}
