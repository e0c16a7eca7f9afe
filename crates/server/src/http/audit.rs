//! The audit log: every control-plane change (any non-GET under `/api/2.0/`) with who, which token
//! id, from where, what, a summary of the request body with secret values removed, and the
//! result; and every denied request (401 or 403, on any route) compactly: route, principal or
//! `anonymous`, address, status, never the body. Data-plane bodies (prompts) are never recorded.
//! Records are written before the answer leaves, so an acknowledged change is audited.
//!
//! The log cannot be used to fill the disk: denials are recorded at most
//! [`DENIALS_PER_ADDRESS`] times a minute per client address and [`DENIALS_PER_MINUTE`] times a
//! minute in all, a summary is at most [`MAX_SUMMARY_BYTES`], and records older than the
//! retention (`--audit-retention`) are deleted.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use modelgate_core::now_ms;
use modelgate_store::{AuditRecord, Store};
use serde_json::Value;

use crate::error::ErrorCode;
use crate::extract::RawBody;
use crate::snapshot::Principal;
use crate::telemetry::metrics::Metrics;

/// Longest request-body summary kept; a longer one is replaced by its size and top-level keys.
pub const MAX_SUMMARY_BYTES: usize = 8 * 1024;
/// Longest path kept (paths of denied requests are whatever the client sent).
const MAX_PATH_BYTES: usize = 512;
/// Denied requests recorded per client address per minute.
pub const DENIALS_PER_ADDRESS: u32 = 20;
/// Denied requests recorded per minute from all addresses together.
pub const DENIALS_PER_MINUTE: u32 = 300;
/// The name recorded for a request without a valid token.
pub const ANONYMOUS: &str = "anonymous";

/// Whether a field name says its value is a credential. Names are matched in lower case, as
/// substrings, so `openai_api_key`, `microsoft_entra_client_secret`, `OPENAI_API_KEY` (an
/// environment variable) and `token_plaintext` all count.
fn sensitive_key(key: &str) -> bool {
    const WORDS: [&str; 11] = [
        "secret",
        "password",
        "passwd",
        "api_key",
        "apikey",
        "access_key",
        "private_key",
        "credential",
        "plaintext",
        "string_value",
        "bytes_value",
    ];
    let k = key.to_ascii_lowercase();
    let token = k.contains("token") && !k.ends_with("token_id") && !k.ends_with("tokens");
    WORDS.iter().any(|w| k.contains(w)) || token || k == "authorization"
}

/// Whether a string looks like a credential whatever field it is in (a key pasted in the wrong
/// place): well-known key prefixes and PEM blocks.
fn looks_like_credential(s: &str) -> bool {
    const PREFIXES: [&str; 9] = ["sk-", "sk_", "mgt_", "dapi", "AKIA", "ASIA", "ghp_", "xox", "AIza"];
    let t = s.trim();
    t.contains("-----BEGIN") || (t.len() >= 16 && !t.contains(' ') && PREFIXES.iter().any(|p| t.starts_with(p)))
}

/// Replaces credentials in a request body with `***`: every value under a credential-like field
/// name (and every environment variable) unless it is exactly a `{{secrets/scope/key}}`
/// reference, whatever its JSON type, and any string that looks like a key, wherever it is.
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            // A SCIM patch names the field in `path` and carries it in `value`.
            let named_secret = map.get("path").and_then(Value::as_str).is_some_and(sensitive_key);
            for (k, val) in map.iter_mut() {
                if sensitive_key(k) || k == "environment_vars" || (named_secret && k == "value") {
                    redact_all(val);
                } else {
                    redact(val);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        Value::String(s) if looks_like_credential(s) => *v = Value::String("***".into()),
        _ => {}
    }
}

/// Everything under a credential field: each value but references, `null` and booleans.
fn redact_all(v: &mut Value) {
    match v {
        Value::Object(map) => map.values_mut().for_each(redact_all),
        Value::Array(a) => a.iter_mut().for_each(redact_all),
        Value::Null | Value::Bool(_) => {}
        Value::String(s) if modelgate_core::secret_ref::parse(s).is_ok() => {}
        other => *other = Value::String("***".into()),
    }
}

/// The summary of a change's body: redacted JSON, at most [`MAX_SUMMARY_BYTES`]. A body that is not
/// a JSON object is described, not stored.
pub fn summarize(bytes: &[u8]) -> Option<String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(bytes) else {
        return Some(serde_json::json!({"_body": format!("not a JSON object ({} bytes)", bytes.len())}).to_string());
    };
    let mut v = Value::Object(std::mem::take(&mut map));
    redact(&mut v);
    let text = v.to_string();
    if text.len() <= MAX_SUMMARY_BYTES {
        return Some(text);
    }
    let keys: Vec<&String> = v.as_object().map(|m| m.keys().take(50).collect()).unwrap_or_default();
    Some(serde_json::json!({"_truncated": format!("{} bytes", bytes.len()), "_keys": keys}).to_string())
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
    .map(|o| truncate(&o, 300))
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

fn is_change(method: &Method, path: &str) -> bool {
    // The console's actions on endpoints are changes too, and its sign-ins and sign-outs are
    // recorded (the forms' bodies never are: they are not read into the record).
    method != Method::GET
        && method != Method::HEAD
        && (path.starts_with("/api/2.0/")
            || path.starts_with("/console/endpoints/")
            || path == "/console/sign-in"
            || path == "/console/sign-out")
}

/// Limits how many denied requests are recorded, per address and in all, per minute.
pub struct DenialLimiter {
    inner: Mutex<Denials>,
}

struct Denials {
    window: Instant,
    total: u32,
    by_address: HashMap<IpAddr, u32>,
}

impl Default for DenialLimiter {
    fn default() -> Self {
        DenialLimiter { inner: Mutex::new(Denials { window: Instant::now(), total: 0, by_address: HashMap::new() }) }
    }
}

impl DenialLimiter {
    /// Whether one more denial from `address` may be recorded now.
    pub fn allow(&self, address: Option<IpAddr>, now: Instant) -> bool {
        let mut d = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if now.duration_since(d.window) >= Duration::from_secs(60) {
            d.window = now;
            d.total = 0;
            d.by_address.clear();
        }
        if d.total >= DENIALS_PER_MINUTE {
            return false;
        }
        let key = address.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let seen = d.by_address.entry(key).or_insert(0);
        if *seen >= DENIALS_PER_ADDRESS {
            return false;
        }
        *seen += 1;
        d.total += 1;
        true
    }
}

/// What the audit layer writes to, and how many denials it still takes this minute.
#[derive(Clone)]
pub struct AuditLog {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    denials: Arc<DenialLimiter>,
}

impl AuditLog {
    /// An audit log writing to `store`, counting the denials it leaves out in `metrics`.
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        AuditLog { store, metrics, denials: Arc::default() }
    }
}

/// Records what must be audited. Sits outside authentication so refusals are seen too.
pub async fn record(State(log): State<AuditLog>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = truncate(req.uri().path(), MAX_PATH_BYTES);
    let change = is_change(&method, &path);
    let ip = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());

    let resp = next.run(req).await;
    let status = resp.status();
    let denied = status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN;
    if !change && !denied {
        return resp;
    }
    if denied && !log.denials.allow(ip, Instant::now()) {
        log.metrics.shed("audit_denials");
        return resp;
    }
    let principal = resp.extensions().get::<Arc<Principal>>().cloned();
    // Only an authenticated change's body was read (and handed back on the answer); denials keep
    // no body, so a refused caller cannot store anything.
    let body = resp.extensions().get::<RawBody>().filter(|_| !denied).map(|b| b.0.clone());
    let parsed = body.as_deref().and_then(|b| serde_json::from_slice::<Value>(b).ok()).filter(Value::is_object);
    let entry = AuditRecord {
        seq: 0,
        at: now_ms(),
        principal: Some(principal.as_ref().map_or_else(|| ANONYMOUS.to_string(), |p| p.user_name.clone())),
        principal_id: principal.as_ref().map(|p| p.id.clone()),
        token_id: principal.as_ref().map(|p| p.token_id.clone()),
        address: ip.map(|a| a.to_string()),
        object: object(&path, parsed.as_ref()),
        method: truncate(method.as_str(), 16),
        summary: body.as_deref().and_then(summarize),
        path,
        status: i64::from(status.as_u16()),
        error_code: resp.extensions().get::<ErrorCode>().map(|c| c.code.to_string()),
    };
    if let Err(e) = log.store.append_audit(&entry).await {
        tracing::error!(error = %e, method = %entry.method, path = %entry.path, "could not write an audit record");
    }
    resp
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

    #[test]
    fn redaction_does_not_depend_on_the_shape() {
        // A literal key typed into a reference field.
        let mut b = json!({"openai_config": {"openai_api_key": "literal-key-value-1234"}});
        redact(&mut b);
        assert_eq!(b["openai_config"]["openai_api_key"], "***");
        // A secret value sent as an array, or an object.
        let mut b = json!({"scope": "s", "key": "k", "string_value": ["secret-in-array"], "bytes_value": {"x": "y"}});
        redact(&mut b);
        assert!(!b.to_string().contains("secret-in-array") && !b.to_string().contains("\"y\""), "{b}");
        // A SCIM patch of a password carries it under `value`; other patches stay readable.
        let mut b = json!({"Operations": [{"op": "replace", "path": "password", "value": "correct horse battery"},
            {"op": "replace", "path": "displayName", "value": "Dev"}]});
        redact(&mut b);
        assert_eq!(
            (b["Operations"][0]["value"].as_str(), b["Operations"][1]["value"].as_str()),
            (Some("***"), Some("Dev"))
        );
        // Environment variables whatever their names; references stay.
        let mut b = json!({"environment_vars": {"DB_PASS": "hunter2", "KEY": "{{secrets/a/b}}"}});
        redact(&mut b);
        assert_eq!(b["environment_vars"]["DB_PASS"], "***");
        assert_eq!(b["environment_vars"]["KEY"], "{{secrets/a/b}}");
        // A key pasted anywhere.
        let mut b =
            json!({"description": "sk-proj-abcdefghijklmnopqrstuvwxyz", "tags": [{"key": "team", "value": "ml"}]});
        redact(&mut b);
        assert_eq!(b["description"], "***");
        assert_eq!(b["tags"][0]["key"], "team");
        // Not an object: described, not stored.
        let s = summarize(br#"["sk-not-stored-anywhere"]"#).unwrap();
        assert!(!s.contains("sk-not") && s.contains("not a JSON object"), "{s}");
        // Capped.
        let big = json!({"description": "x".repeat(20_000), "name": "n"}).to_string();
        let s = summarize(big.as_bytes()).unwrap();
        assert!(s.len() < 200 && s.contains("_truncated"), "{s}");
    }

    #[test]
    fn denials_are_limited_per_address_and_in_all() {
        let l = DenialLimiter::default();
        let now = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..DENIALS_PER_ADDRESS {
            assert!(l.allow(Some(a), now));
        }
        assert!(!l.allow(Some(a), now), "per address");
        assert!(l.allow(Some("10.0.0.2".parse().unwrap()), now), "another address still counts");
        assert!(l.allow(Some(a), now + Duration::from_secs(61)), "a new minute");
        let l = DenialLimiter::default();
        let mut recorded = 0;
        for i in 0..1000u32 {
            if l.allow(Some(IpAddr::from(i.to_be_bytes())), now) {
                recorded += 1;
            }
        }
        assert_eq!(recorded, DENIALS_PER_MINUTE, "in all");
    }
}
