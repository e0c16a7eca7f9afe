//! `GET /api/2.0/audit-log` (admins): the audit log, newest first. What it records:
//! [`crate::http::audit`].

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use modelgate_store::AuditQuery;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::access::require_admin;
use crate::error::ApiResult;
use crate::extract::ApiQuery;
use crate::snapshot::Principal;
use crate::state::AppState;

/// Query of `GET /api/2.0/audit-log`.
#[derive(Deserialize, Default)]
pub struct AuditParams {
    /// From, ms since the epoch.
    since: Option<i64>,
    /// Until, ms since the epoch.
    until: Option<i64>,
    principal: Option<String>,
    object: Option<String>,
    /// HTTP method.
    action: Option<String>,
    /// Most records (default 1000, at most 10000).
    limit: Option<i64>,
}

/// One record as the API shows it.
#[derive(Serialize)]
pub struct AuditEntry {
    seq: i64,
    timestamp: i64,
    principal: Option<String>,
    principal_id: Option<String>,
    token_id: Option<String>,
    address: Option<String>,
    action: String,
    path: String,
    object: Option<String>,
    summary: Option<Value>,
    status: i64,
    error_code: Option<String>,
}

/// Response of `GET /api/2.0/audit-log`.
#[derive(Serialize)]
pub struct AuditResponse {
    entries: Vec<AuditEntry>,
}

/// `GET /api/2.0/audit-log` (admins): newest first.
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Arc<Principal>>,
    ApiQuery(q): ApiQuery<AuditParams>,
) -> ApiResult<Json<AuditResponse>> {
    require_admin(&caller, "read the audit log")?;
    let query = AuditQuery {
        since: q.since,
        until: q.until,
        principal: q.principal,
        object: q.object,
        method: q.action.map(|a| a.to_ascii_uppercase()),
        limit: q.limit.unwrap_or(1000).clamp(1, 10_000),
    };
    let entries = app
        .store
        .query_audit(&query)
        .await?
        .into_iter()
        .map(|r| AuditEntry {
            seq: r.seq,
            timestamp: r.at,
            principal: r.principal,
            principal_id: r.principal_id,
            token_id: r.token_id,
            address: r.address,
            action: r.method,
            path: r.path,
            object: r.object,
            summary: r.summary.and_then(|s| serde_json::from_str(&s).ok()),
            status: r.status,
            error_code: r.error_code,
        })
        .collect();
    Ok(Json(AuditResponse { entries }))
}
