//! The web console, served by the same binary at `/`: server-rendered pages (no build step, a
//! few kilobytes of CSS and JavaScript embedded in the binary) that show what the API shows,
//! exactly as the signed-in principal may see it. Every page and action calls the API's own
//! handlers with the signed-in principal, so the console can never allow more than the API does.
//!
//! Sign-in takes a personal access token, or (where the server enables it) the user name and
//! password of a user whose password an admin set; the session lives in an `HttpOnly`, `SameSite=Strict` cookie and every form carries
//! a CSRF token.

mod charts;
mod endpoints;
mod identity;
mod metrics;
mod operations;
mod playground;
mod session;
mod sign_in;
mod usage;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use maud::{DOCTYPE, Markup, html};
use modelgate_core::now_ms;

use crate::error::ApiError;
use crate::snapshot::Principal;
use crate::state::AppState;
use session::{Credential, SESSION_COOKIE, Session, Sessions, Throttle, cookie, same_origin, same_secret, set_cookie};

const CSS: &str = include_str!("../../console/console.css");
const JS: &str = include_str!("../../console/console.js");
const ICON: &str = include_str!("../../console/favicon.svg");

/// The console's routes; they sit outside the API's bearer-token check and use the session.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(endpoints::list_page))
        .route("/console/sign-in", get(sign_in::form_page).post(sign_in::sign_in))
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/endpoints/{name}", get(endpoints::page))
        .route("/console/endpoints/{name}/metrics", get(metrics::fragment))
        .route("/console/endpoints/{name}/{action}", post(endpoints::action))
        .route("/console/playground", get(playground::page))
        .route("/console/playground/{name}", post(playground::query))
        .route("/console/usage", get(usage::page))
        .route("/console/operations", get(operations::page))
        .route("/console/identity", get(identity::page))
        .route("/console/assets/{file}", get(asset))
        .layer(Extension(Arc::new(Sessions::default())))
        .layer(Extension(Arc::new(Throttle::default())))
}

/// The signed-in principal of a console request, and its session. As an extractor it answers a
/// request without a live session with the sign-in page (or 401 for the page script's fetches).
pub struct Viewer {
    principal: Arc<Principal>,
    session_id: String,
    session: Session,
    sessions: Arc<Sessions>,
    /// Whether the browser reached us over TLS (cookies are then `Secure`).
    tls: bool,
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let Some(sessions) = parts.extensions.get::<Arc<Sessions>>().cloned() else {
            return Err(StatusCode::INTERNAL_SERVER_ERROR.into_response());
        };
        let signed_in = cookie(&parts.headers, SESSION_COOKIE).and_then(|id| {
            let session = sessions.get(&id)?;
            // A revoked or expired token, a changed password, or a deactivated user ends the session.
            match principal_of(app, &session.credential) {
                Some(principal) => Some((principal, id, session)),
                None => {
                    sessions.end(&id);
                    None
                }
            }
        });
        match signed_in {
            Some((principal, session_id, session)) => {
                Ok(Viewer { principal, session_id, session, sessions, tls: over_tls(&parts.headers) })
            }
            // The page's own fetches (playground, chart refresh) get a status, not the sign-in page.
            None if parts.headers.contains_key("x-csrf-token") || parts.headers.contains_key("x-console-fetch") => {
                Err((StatusCode::UNAUTHORIZED, "Your session ended; sign in again.").into_response())
            }
            None => Err(Redirect::to("/console/sign-in").into_response()),
        }
    }
}

impl Viewer {
    /// The refusal of a form (or a fetch) that does not carry this session's CSRF token or comes
    /// from another site; `None` when it passes.
    fn refusal(&self, headers: &HeaderMap, csrf: &str) -> Option<Response> {
        if same_origin(headers) && same_secret(&self.session.csrf, csrf) {
            return None;
        }
        Some(refused_form(Some(self)))
    }

    /// Whether the principal is a workspace admin.
    fn is_admin(&self) -> bool {
        self.principal.is_admin
    }

    /// The principal and its identity as an API handler takes them.
    fn caller(&self) -> Extension<Arc<Principal>> {
        Extension(self.principal.clone())
    }
}

/// Who a session's credential stands for now, if it still holds.
fn principal_of(app: &AppState, credential: &Credential) -> Option<Arc<Principal>> {
    let snapshot = app.snapshot.load();
    match credential {
        Credential::Token(hash) => snapshot.tokens.get(hash).filter(|p| live(p.expires_at)).cloned(),
        Credential::Password { user_name, set_at } => snapshot
            .passwords
            .get(user_name)
            .filter(|login| app.console_password_sign_in && login.set_at == *set_at)
            .map(|login| login.principal.clone()),
    }
}

/// The 403 page of a form that failed its CSRF or origin check.
fn refused_form(who: Option<&Viewer>) -> Response {
    let message = "This form expired or came from another site; open the page again.";
    page(StatusCode::FORBIDDEN, layout("Refused", who, "", html! { div.error role="alert" { (message) } }))
}

/// Whether the browser's connection is TLS: modelgate itself listens in plain HTTP, so that is
/// what a TLS-terminating proxy in front says. (A forged header only makes cookies stricter.)
fn over_tls(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok());
    let forwarded = headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()).unwrap_or_default();
    forwarded_proto.is_some_and(|p| p.eq_ignore_ascii_case("https"))
        || forwarded.to_ascii_lowercase().contains("proto=https")
}

/// `resp` setting the cookie `name` (`max_age` 0 removes it).
fn with_cookie(mut resp: Response, name: &str, value: &str, max_age_secs: Option<i64>, tls: bool) -> Response {
    if let Ok(v) = HeaderValue::from_str(&set_cookie(name, value, max_age_secs, tls)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// Headers every page carries: no framing, no sniffing, scripts and styles from here only.
fn page(status: StatusCode, body: Markup) -> Response {
    let mut resp = (status, body.into_string()).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The sections of the navigation: (key, path, label, admins only).
const SECTIONS: [(&str, &str, &str, bool); 5] = [
    ("endpoints", "/", "Endpoints", false),
    ("playground", "/console/playground", "Playground", false),
    ("usage", "/console/usage", "Cost and usage", false),
    ("operations", "/console/operations", "Operations", false),
    ("identity", "/console/identity", "Identity", true),
];

fn layout(title: &str, who: Option<&Viewer>, current: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · modelgate" }
                link rel="stylesheet" href="/console/assets/console.css";
                link rel="icon" href="/console/assets/favicon.svg" type="image/svg+xml";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    a.brand href="/" { "modelgate" }
                    @if let Some(v) = who {
                        nav aria-label="Sections" {
                            @for (key, path, label, admins) in SECTIONS {
                                @if !admins || v.is_admin() {
                                    a href=(path) aria-current=[(current == key).then_some("page")] { (label) }
                                }
                            }
                        }
                        form method="post" action="/console/sign-out" {
                            input type="hidden" name="csrf" value=(v.session.csrf);
                            span.muted { (v.principal.user_name) " " }
                            button.quiet type="submit" { "Sign out" }
                        }
                    }
                }
                main #main { (content) }
                script src="/console/assets/console.js" defer {}
            }
        }
    }
}

/// A page of `viewer`'s console.
fn console_page(viewer: &Viewer, title: &str, current: &str, content: Markup) -> Response {
    page(StatusCode::OK, layout(title, Some(viewer), current, content))
}

/// An API error as a page, with the API's status and message as they are.
fn error_page(viewer: &Viewer, title: &str, current: &str, e: &ApiError) -> Response {
    page(e.status_and_code().0, layout(title, Some(viewer), current, api_error(e)))
}

/// An API answer's error as the API gives it: its code and message.
fn api_error(e: &ApiError) -> Markup {
    html! { div.error role="alert" { (e.status_and_code().1) ": " (e.to_string()) } }
}

/// A time in ms as `YYYY-MM-DD HH:MM:SS` (UTC).
fn date(ms: i64) -> String {
    let t =
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64))
            .to_string();
    t.replace('T', " ").trim_end_matches('Z').to_string()
}

/// Whether a credential of this session still holds at `now`.
fn live(expires_at: Option<i64>) -> bool {
    expires_at.is_none_or(|t| t > now_ms())
}

/// `GET /console/assets/{file}`: the embedded stylesheet, script and icon.
async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        "favicon.svg" => (ICON, "image/svg+xml"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}
