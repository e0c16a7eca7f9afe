//! The audit log: every control-plane change (any non-GET under `/api/2.0/`) and every denied
//! request (401 or 403, on any route), with who, which token id, from where, what, a summary of the
//! request body with secret values removed, and the result. Data-plane bodies (prompts) are never
//! recorded. Records are written before the answer leaves, so an acknowledged change is audited.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use modelgate_core::now_ms;
use modelgate_store::{AuditQuery, AuditRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::require_admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::snapshot::Principal;
use crate::state::AppState;

/// Keys whose values never reach the audit log.
const SECRET_KEYS: &[&str] = &["string_value", "bytes_value", "token_value", "client_secret", "password"];

/// Replaces secret values in a request body with `***`.
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if SECRET_KEYS.contains(&k.as_str()) || k.ends_with("_plaintext") {
                    *val = Value::String("***".into());
                } else {
                    redact(val);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

/// What a request acts on, from its path and body.
fn object(path: &str, body: Option<&Value>) -> Option<String> {
    let field = |k: &str| body.and_then(|b| b.get(k)).and_then(Value::as_str).map(str::to_string);
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["api", "2.0", "serving-endpoints"] => field("name").map(|n| format!("serving-endpoint:{n}")),
        ["api", "2.0", "serving-endpoints", name, ..] => Some(format!("serving-endpoint:{name}")),
        ["api", "2.0", "permissions", "serving-endpoints", id, ..] => Some(format!("serving-endpoint:{id}")),
        ["api", "2.0", "secrets", ..] => match (field("scope"), field("key")) {
            (Some(s), Some(k)) => Some(format!("secret:{s}/{k}")),
            (Some(s), None) => Some(format!("secret-scope:{s}")),
            _ => None,
        },
        ["api", "2.0", "preview", "scim", "v2", kind, id] => Some(format!("{}:{id}", kind.to_lowercase())),
        ["api", "2.0", "preview", "scim", "v2", kind] => {
            field("userName").or_else(|| field("displayName")).map(|n| format!("{}:{n}", kind.to_lowercase()))
        }
        ["api", "2.0", "token-management", "tokens", id] => Some(format!("token:{id}")),
        ["api", "2.0", "token", ..] => field("token_id").map(|t| format!("token:{t}")),
        ["serving-endpoints", name, "invocations"] => Some(format!("serving-endpoint:{name}")),
        _ => None,
    }
}

/// Records what must be audited. Sits outside authentication so refusals are seen too.
pub async fn record(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let change = method != Method::GET && method != Method::HEAD && path.starts_with("/api/2.0/");
    let address = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());

    // Control-plane bodies are small; keep a copy for the summary and hand the request on.
    let (req, body) = if change {
        let (parts, body) = req.into_parts();
        let bytes = match to_bytes(body, crate::routes::MAX_BODY_BYTES).await {
            Ok(b) => b,
            Err(_) => return ApiError::BadRequest("the request body is too large".into()).into_response(),
        };
        let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
        (Request::from_parts(parts, Body::from(bytes)), parsed)
    } else {
        (req, None)
    };

    let resp = next.run(req).await;
    let status = resp.status();
    if !change && status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
        return resp;
    }

    // Error answers are small JSON; read the code and pass the body on unchanged.
    let (resp, error_code) = if status.is_client_error() || status.is_server_error() {
        let (parts, body) = resp.into_parts();
        let bytes = to_bytes(body, 1 << 20).await.unwrap_or_default();
        let code =
            serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| v["error_code"].as_str().map(str::to_string));
        (Response::from_parts(parts, Body::from(bytes)), code)
    } else {
        (resp, None)
    };

    let principal = resp.extensions().get::<Arc<Principal>>().cloned();
    let summary = body.map(|mut b| {
        redact(&mut b);
        b.to_string()
    });
    let entry = AuditRecord {
        seq: 0,
        at: now_ms(),
        principal: principal.as_ref().map(|p| p.user_name.clone()),
        principal_id: principal.as_ref().map(|p| p.id.clone()),
        token_id: principal.as_ref().map(|p| p.token_id.clone()),
        address,
        object: object(&path, summary.as_deref().and_then(|s| serde_json::from_str::<Value>(s).ok()).as_ref()),
        method: method.to_string(),
        path,
        summary,
        status: i64::from(status.as_u16()),
        error_code,
    };
    if let Err(e) = app.store.append_audit(&entry).await {
        tracing::error!(error = %e, method = %entry.method, path = %entry.path, "could not write an audit record");
    }
    resp
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_secret_values_and_names_objects() {
        let mut b = json!({"scope": "s", "key": "k", "string_value": "sk-1", "config": {"served_entities": [
            {"external_model": {"openai_config": {"openai_api_key_plaintext": "sk-2", "openai_api_key": "{{secrets/s/k}}"}}}]}});
        redact(&mut b);
        let text = b.to_string();
        assert!(!text.contains("sk-1") && !text.contains("sk-2") && text.contains("{{secrets/s/k}}"), "{text}");
        assert_eq!(object("/api/2.0/secrets/put", Some(&b)).as_deref(), Some("secret:s/k"));
        assert_eq!(object("/api/2.0/serving-endpoints/chat/config", None).as_deref(), Some("serving-endpoint:chat"));
        assert_eq!(
            object("/api/2.0/serving-endpoints", Some(&json!({"name": "x"}))).as_deref(),
            Some("serving-endpoint:x")
        );
    }
}
