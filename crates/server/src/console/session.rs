//! Console sessions: a random id in an `HttpOnly`, `SameSite=Strict` cookie, mapped in memory to
//! the credential the user signed in with (the token's hash, so revoking the token ends the
//! session; or the user and when their password was set, so changing it ends the session) and a
//! CSRF token that every form carries. Sessions end after `TTL` or at sign-out, and with the
//! process. Failed password sign-ins are counted per user name, which locks the name for a while.

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

/// What a session signed in with.
#[derive(Clone, Debug, PartialEq)]
pub enum Credential {
    /// A personal access token, by its hash.
    Token(String),
    /// A user's password, as it was when the session started.
    Password {
        /// The user name.
        user_name: String,
        /// When the password was set, ms.
        set_at: i64,
    },
}

/// One signed-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    /// What it signed in with.
    pub credential: Credential,
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
    /// Starts a session; returns its id.
    pub fn start(&self, credential: Credential) -> (String, Session) {
        let id = token::random_hex(32);
        let session = Session { credential, csrf: token::random_hex(24), expires_at: now_ms() + TTL_MS };
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

/// Failed password sign-ins that lock a user name.
const MAX_FAILURES: u32 = 5;
/// How long failures count, and how long a name stays locked.
const LOCK_MS: i64 = 15 * 60 * 1000;
/// Most user names tracked (the oldest are dropped first).
const MAX_TRACKED: usize = 10_000;

/// Failed password sign-ins per user name: after [`MAX_FAILURES`] within [`LOCK_MS`], the name is
/// refused for [`LOCK_MS`] whatever the password, which stops guessing at the price of letting
/// someone lock a user out of password sign-in for a while (tokens still work).
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, (u32, i64)>>,
}

impl Throttle {
    fn key(user_name: &str) -> String {
        user_name.trim().to_lowercase()
    }

    /// How long `user_name` stays locked, ms (`None`: it may try).
    pub fn locked_for(&self, user_name: &str) -> Option<i64> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let (count, since) = map.get(&Self::key(user_name)).copied()?;
        let left = since + LOCK_MS - now_ms();
        (count >= MAX_FAILURES && left > 0).then_some(left)
    }

    /// Counts a failed sign-in of `user_name`.
    pub fn failed(&self, user_name: &str) {
        let now = now_ms();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (_, since)| *since + LOCK_MS > now);
        if map.len() >= MAX_TRACKED
            && let Some(oldest) = map.iter().min_by_key(|(_, (_, since))| *since).map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        let entry = map.entry(Self::key(user_name)).or_insert((0, now));
        entry.0 += 1;
        if entry.0 >= MAX_FAILURES {
            // The lock runs from the failure that reached the limit.
            entry.1 = now;
        }
    }

    /// Forgets the failures of a user who signed in.
    pub fn succeeded(&self, user_name: &str) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(&Self::key(user_name));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_locks_after_the_allowed_failures_and_a_success_clears_them() {
        let t = Throttle::default();
        for _ in 0..MAX_FAILURES - 1 {
            t.failed("Dev@Example.com");
        }
        assert_eq!(t.locked_for("dev@example.com"), None);
        t.succeeded("dev@example.com");
        for _ in 0..MAX_FAILURES {
            t.failed("dev@example.com ");
        }
        let left = t.locked_for("DEV@example.com").expect("locked");
        assert!(left > LOCK_MS - 5_000 && left <= LOCK_MS, "{left}");
        assert_eq!(t.locked_for("someone@example.com"), None, "other names are not locked");
    }
}
