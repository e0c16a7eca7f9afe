//! Console sessions: a random id in an `HttpOnly`, `SameSite=Strict` cookie, mapped in memory to
//! the hash of the token the user signed in with (so revoking the token ends the session) and a
//! CSRF token that every form carries. Sessions end after `TTL` or at sign-out, and with the
//! process.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::HeaderMap;
use modelgate_core::{now_ms, token};

/// The session cookie.
pub const SESSION_COOKIE: &str = "mg_session";
/// The cookie that protects the sign-in form before there is a session (double submit).
pub const PRE_SESSION_COOKIE: &str = "mg_csrf";
/// How long a session lasts.
const TTL_MS: i64 = 12 * 3600 * 1000;
/// Most sessions kept (the oldest are dropped first).
const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    /// Hash of the token it signed in with.
    pub token_hash: String,
    /// What its forms must carry.
    pub csrf: String,
    /// When it ends, ms.
    pub expires_at: i64,
}

/// Every session of this process.
#[derive(Default)]
pub struct Sessions {
    inner: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session for a token; returns its id.
    pub fn start(&self, token_hash: String) -> (String, Session) {
        let id = token::random_hex(32);
        let session = Session { token_hash, csrf: token::random_hex(24), expires_at: now_ms() + TTL_MS };
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_ms();
        map.retain(|_, s| s.expires_at > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.expires_at).map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(id.clone(), session.clone());
        (id, session)
    }

    /// The live session with this id.
    pub fn get(&self, id: &str) -> Option<Session> {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id).filter(|s| s.expires_at > now_ms()).cloned()
    }

    /// Ends a session.
    pub fn end(&self, id: &str) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, path `/`, `Secure` over TLS.
pub fn set_cookie(name: &str, value: &str, max_age_secs: Option<i64>, secure: bool) -> String {
    let mut c = cookie::Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(secure);
    if let Some(age) = max_age_secs {
        c = c.max_age(cookie::time::Duration::seconds(age));
    }
    c.build().to_string()
}

/// Whether a state-changing request comes from this origin: a browser sends `Origin` (or
/// `Sec-Fetch-Site`) with every cross-site POST, so a request that names another origin is
/// refused. (The CSRF token is checked besides.)
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    let Some(origin) = headers.get(axum::http::header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = headers.get(axum::http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    origin.split_once("://").is_some_and(|(_, authority)| authority == host)
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
