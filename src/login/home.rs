//! `GET /`: what a person finds at accessd's own address, or at an
//! application's address that reaches accessd directly (as in the quick
//! start, with no proxy in front): whether they are signed in, and where
//! the API, the sign-in pages and the documentation are.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::identity::{accept, host_of};
use super::pages::{Page, escape};
use super::{AUTH_COOKIE, cookie};
use crate::app::AppState;

pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Page {
    let host = host_of(&headers);
    if let Ok(Some(app)) = state.gate.app_by_host(&state.store, &host).await {
        let signed_in = match cookie(&headers, AUTH_COOKIE).filter(|t| !t.is_empty()) {
            Some(token) => accept(&state, token, Some(&app)).await.ok(),
            None => None,
        };
        return match signed_in {
            Some((verified, _)) => Page::new(
                StatusCode::OK,
                "Signed in",
                format!(
                    "<p>You are signed in to <strong>{}</strong> as <strong>{}</strong>.</p>\n\
                     <p>This address reaches accessd itself. Behind a reverse proxy that asks \
                     accessd's forward-auth, this request would now go on to the application, \
                     with your identity in <code>Cf-Access-Jwt-Assertion</code> and \
                     <code>Cf-Access-Authenticated-User-Email</code>.</p>\n\
                     <p><a href=\"/cdn-cgi/access/get-identity\">Your identity</a> · \
                     <a href=\"/cdn-cgi/access/logout\">Sign out</a></p>",
                    escape(&app.name),
                    escape(&verified.claims.email)
                ),
            ),
            None => {
                let sign_in = match super::global::team(&state, &app.account_id).await {
                    Ok(team) => team.url(&state),
                    Err(_) => state.public_url.to_string(),
                };
                Page::new(
                    StatusCode::OK,
                    &app.name,
                    format!(
                        "<p>This address is protected by accessd, and you are not signed in.</p>\n\
                         <p><a href=\"{}/cdn-cgi/access/login/{}\">Sign in</a></p>",
                        escape(&sign_in),
                        escape(&app.domain)
                    ),
                )
            }
        };
    }
    Page::new(
        StatusCode::OK,
        "accessd",
        format!(
            "<p>accessd is running: self-hosted Zero Trust Access (users, sessions, \
             sign-in, forward-auth and SCIM) behind the Cloudflare v4 API.</p>\n<ul>\n\
             <li>API for the Cloudflare SDKs: <code>{url}/client/v4</code></li>\n\
             <li>Sign-in pages: <code>{url}/cdn-cgi/access/login/&lt;application domain&gt;</code></li>\n\
             <li>Forward-auth for nginx, Caddy and Traefik: <code>{url}/cdn-cgi/access/forward-auth</code></li>\n\
             <li>SCIM 2.0: <code>{url}/scim/v2/&lt;identity provider id&gt;</code></li>\n\
             </ul>\n<p>The README next to the source says how to protect a first application.</p>",
            url = escape(&state.public_url)
        ),
    )
}
