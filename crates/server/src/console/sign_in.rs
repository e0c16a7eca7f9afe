//! Signing in, with a personal access token or (where the server enables it) a user name and
//! password, and signing out.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use modelgate_core::{password, token};
use serde::Deserialize;

use super::session::{
    Credential, PRE_SESSION_COOKIE, SESSION_COOKIE, Sessions, Throttle, cookie, same_origin, same_secret,
};
use super::{Viewer, layout, live, over_tls, page, refused_form, with_cookie};
use crate::state::AppState;

fn form(csrf: &str, passwords: bool, error: Option<&str>) -> Markup {
    html! {
        div.sign-in {
            h1 { "Sign in" }
            @if let Some(e) = error { div.error role="alert" { (e) } }
            form method="post" action="/console/sign-in" {
                label for="token" { "Personal access token" }
                input #token type="password" name="token" autocomplete="off" required autofocus;
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { "Sign in" }
                p.muted { "Create a token with " code { "modelgate tokens create" } "; the first admin token is printed when the server first starts." }
            }
            @if passwords {
                form method="post" action="/console/sign-in" {
                    h2 { "Or with a password" }
                    label for="user_name" { "User name" }
                    input #user_name type="text" name="user_name" autocomplete="username" required;
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password" required;
                    input type="hidden" name="csrf" value=(csrf);
                    button type="submit" { "Sign in with password" }
                    p.muted { "An admin sets your password with " code { "modelgate users set-password" } "." }
                }
            }
        }
    }
}

/// `GET /console/sign-in`: the form, and the cookie its CSRF token is checked against (double
/// submit: there is no session yet to hold it).
pub async fn form_page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let csrf = cookie(&headers, PRE_SESSION_COOKIE).filter(|c| c.len() == 48).unwrap_or_else(|| token::random_hex(24));
    let resp = page(StatusCode::OK, layout("Sign in", None, "", form(&csrf, app.console_password_sign_in, None)));
    with_cookie(resp, PRE_SESSION_COOKIE, &csrf, Some(3600), over_tls(&headers))
}

/// The sign-in forms: a token, or a user name and password.
#[derive(Deserialize)]
pub struct SignIn {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    user_name: Option<String>,
    #[serde(default)]
    password: Option<String>,
    csrf: String,
}

/// `POST /console/sign-in`.
pub async fn sign_in(
    State(app): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    Extension(throttle): Extension<Arc<Throttle>>,
    headers: HeaderMap,
    Form(f): Form<SignIn>,
) -> Response {
    let expected = cookie(&headers, PRE_SESSION_COOKIE).unwrap_or_default();
    if !same_origin(&headers) || expected.is_empty() || !same_secret(&expected, &f.csrf) {
        return refused_form(None);
    }
    let refuse = |status: StatusCode, why: &str| {
        page(status, layout("Sign in", None, "", form(&expected, app.console_password_sign_in, Some(why))))
    };
    let (credential, principal) = match (f.token, f.user_name, f.password) {
        (Some(t), _, _) => {
            let hash = token::hash(t.trim());
            let Some(principal) = app.snapshot.load().tokens.get(&hash).filter(|p| live(p.expires_at)).cloned() else {
                return refuse(StatusCode::UNAUTHORIZED, "That token is not valid (or has expired).");
            };
            (Credential::Token(hash), principal)
        }
        (None, Some(user_name), Some(pw)) if app.console_password_sign_in => {
            let user_name = user_name.trim().to_string();
            if let Some(ms) = throttle.locked_for(&user_name) {
                let minutes = (ms + 59_999) / 60_000;
                let why =
                    format!("Too many failed sign-ins for this user; try again in {minutes} min, or use a token.");
                return refuse(StatusCode::TOO_MANY_REQUESTS, &why);
            }
            let login = app.snapshot.load().passwords.get(&user_name).cloned();
            // An unknown name costs as much time as a wrong password, so timing tells nothing.
            let phc = login.as_ref().map_or_else(|| password::decoy().to_string(), |l| l.hash.to_string());
            let matched = tokio::task::spawn_blocking(move || password::verify(&pw, &phc)).await.unwrap_or(false);
            match login.filter(|_| matched) {
                Some(login) => {
                    throttle.succeeded(&user_name);
                    (Credential::Password { user_name, set_at: login.set_at }, login.principal)
                }
                None => {
                    throttle.failed(&user_name);
                    return refuse(StatusCode::UNAUTHORIZED, "That user name and password do not match.");
                }
            }
        }
        (None, Some(_), Some(_)) => {
            return refuse(StatusCode::BAD_REQUEST, "Password sign-in is not enabled on this server; use a token.");
        }
        _ => return refuse(StatusCode::BAD_REQUEST, "Give a token, or a user name and password."),
    };
    let (id, _) = sessions.start(credential);
    let mut resp = with_cookie(Redirect::to("/").into_response(), SESSION_COOKIE, &id, None, over_tls(&headers));
    // The audit log records who signed in.
    resp.extensions_mut().insert(principal);
    resp
}

/// A form that only carries the CSRF token.
#[derive(Deserialize)]
pub struct Csrf {
    /// The session's CSRF token.
    pub csrf: String,
}

/// `POST /console/sign-out`.
pub async fn sign_out(viewer: Viewer, headers: HeaderMap, Form(f): Form<Csrf>) -> Response {
    if let Some(refused) = viewer.refusal(&headers, &f.csrf) {
        return refused;
    }
    viewer.sessions.end(&viewer.session_id);
    let mut resp =
        with_cookie(Redirect::to("/console/sign-in").into_response(), SESSION_COOKIE, "", Some(0), viewer.tls);
    resp.extensions_mut().insert(viewer.principal);
    resp
}
