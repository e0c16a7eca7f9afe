//! Signing in with a personal access token, and signing out.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use modelgate_core::token;
use serde::Deserialize;

use super::session::{PRE_SESSION_COOKIE, SESSION_COOKIE, Sessions, cookie, same_origin, same_secret};
use super::{Viewer, layout, live, over_tls, page, with_cookie};
use crate::state::AppState;

fn form(csrf: &str, error: Option<&str>) -> Markup {
    html! {
        form.sign-in method="post" action="/console/sign-in" {
            h1 { "Sign in" }
            @if let Some(e) = error { div.error role="alert" { (e) } }
            label for="token" { "Personal access token" }
            input #token type="password" name="token" autocomplete="off" required autofocus;
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" { "Sign in" }
            p.muted { "Create a token with " code { "modelgate tokens create" } "; the first admin token is printed when the server first starts." }
        }
    }
}

/// `GET /console/sign-in`: the form, and the cookie its CSRF token is checked against (double
/// submit: there is no session yet to hold it).
pub async fn form_page(headers: HeaderMap) -> Response {
    let csrf = cookie(&headers, PRE_SESSION_COOKIE).filter(|c| c.len() == 48).unwrap_or_else(|| token::random_hex(24));
    let resp = page(StatusCode::OK, layout("Sign in", None, "", form(&csrf, None)));
    with_cookie(resp, PRE_SESSION_COOKIE, &csrf, Some(3600), over_tls(&headers))
}

/// The sign-in form.
#[derive(Deserialize)]
pub struct SignIn {
    token: String,
    csrf: String,
}

/// `POST /console/sign-in`.
pub async fn sign_in(
    State(app): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Form(f): Form<SignIn>,
) -> Response {
    let expected = cookie(&headers, PRE_SESSION_COOKIE).unwrap_or_default();
    if !same_origin(&headers) || expected.is_empty() || !same_secret(&expected, &f.csrf) {
        let message = "This form expired or came from another site; open the page again.";
        return page(
            StatusCode::FORBIDDEN,
            layout("Sign in", None, "", html! { div.error role="alert" { (message) } }),
        );
    }
    let hash = token::hash(f.token.trim());
    if !app.snapshot.load().tokens.get(&hash).is_some_and(|p| live(p.expires_at)) {
        let body = layout("Sign in", None, "", form(&expected, Some("That token is not valid (or has expired).")));
        return page(StatusCode::UNAUTHORIZED, body);
    }
    let (id, _) = sessions.start(hash);
    with_cookie(Redirect::to("/").into_response(), SESSION_COOKIE, &id, None, over_tls(&headers))
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
    with_cookie(Redirect::to("/console/sign-in").into_response(), SESSION_COOKIE, "", Some(0), viewer.tls)
}
