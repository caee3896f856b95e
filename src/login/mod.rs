//! The sign-in flow Cloudflare Access runs at `/cdn-cgi/access/*`: the login
//! page of an application, the one-time PIN by e-mail, the hand-over of the
//! application token to the application's host as the `CF_Authorization`
//! cookie, and the endpoints around it (`get-identity`, `logout`, `certs`).
//!
//! These pages are for browsers, not the v4 API: HTML, no envelope. Forms are
//! protected by a double-submit CSRF token whose cookie is `SameSite=Strict`,
//! so a form posted from another site arrives without it and is refused.

mod complete;
mod decide;
mod forward_auth;
mod global;
mod home;
mod identity;
mod oidc;
mod oidc_provider;
mod otp;
pub mod pages;
mod throttle;

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::domain::app::AccessApp;
use crate::domain::idp::{IdentityProvider, IdpConfig};
use crate::error::ApiError;
use crate::store::PageRequest;
use crate::store::idps::IdpFilter;
use pages::{Page, error_page};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home::home))
        .route("/cdn-cgi/access/login/{*domain}", get(login_page))
        .route("/cdn-cgi/access/otp/send", post(otp::send_code))
        .route("/cdn-cgi/access/otp/verify", post(otp::verify_code))
        .route("/cdn-cgi/access/oidc/start", get(oidc::start))
        .route("/cdn-cgi/access/callback", get(oidc::callback))
        .route("/cdn-cgi/access/authorized", get(identity::authorized))
        .route("/cdn-cgi/access/get-identity", get(identity::get_identity))
        .route(
            "/cdn-cgi/access/logout",
            get(identity::logout).post(identity::logout),
        )
        .route("/cdn-cgi/access/certs", get(identity::certs))
        .route(
            "/cdn-cgi/access/forward-auth",
            any(forward_auth::forward_auth),
        )
}

const CSRF_COOKIE: &str = "accessd_csrf";
pub const AUTH_COOKIE: &str = "CF_Authorization";

/// A failure of the sign-in pages, shown as a page.
pub struct LoginError(Page);

impl From<ApiError> for LoginError {
    fn from(err: ApiError) -> Self {
        if let ApiError::Unavailable(cause) = &err {
            tracing::warn!(%cause, "sign-in page met a busy database; asked to retry");
            return LoginError(
                error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Busy",
                    "The service is busy for a moment. Try again in a second.",
                )
                .with_retry_after(1),
            );
        }
        if let ApiError::Internal(cause) = &err {
            tracing::error!(%cause, "sign-in failed");
        }
        LoginError(error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "Please try again in a moment.",
        ))
    }
}

impl From<crate::store::StoreError> for LoginError {
    fn from(err: crate::store::StoreError) -> Self {
        LoginError::from(ApiError::from(err))
    }
}

impl From<Page> for LoginError {
    fn from(page: Page) -> Self {
        LoginError(page)
    }
}

impl axum::response::IntoResponse for LoginError {
    fn into_response(self) -> axum::response::Response {
        self.0.into_response()
    }
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn is_https(state: &AppState) -> bool {
    state.public_url.starts_with("https://")
}

pub fn scheme(state: &AppState) -> &'static str {
    if is_https(state) { "https" } else { "http" }
}

fn csrf_cookie(state: &AppState, value: &str) -> String {
    let secure = if is_https(state) { "; Secure" } else { "" };
    format!(
        "{CSRF_COOKIE}={value}; Path=/cdn-cgi/access; HttpOnly; SameSite=Strict; Max-Age=3600{secure}"
    )
}

/// The CSRF token of this browser, or a new one (set as a cookie by the page).
fn csrf_token(headers: &HeaderMap) -> (String, bool) {
    match cookie(headers, CSRF_COOKIE)
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        Some(existing) => (existing.to_string(), false),
        None => (crate::domain::TokenId::generate().to_string(), true),
    }
}

/// The origin (`scheme://host[:port]`) of the public URL, as browsers send it
/// in `Origin`.
fn public_origin(state: &AppState) -> &str {
    let url: &str = &state.public_url;
    let authority_start = url.find("://").map_or(0, |at| at + 3);
    match url[authority_start..].find('/') {
        Some(path_start) => &url[..authority_start + path_start],
        None => url,
    }
}

/// Whether `origin` is one of the sign-in pages' own: the public URL's, or
/// a team domain's (an organization's `auth_domain`, where its sign-in lives).
async fn is_sign_in_origin(state: &AppState, origin: &str) -> Result<bool, LoginError> {
    if origin.eq_ignore_ascii_case(public_origin(state)) {
        return Ok(true);
    }
    let Some(host) = origin
        .strip_prefix(scheme(state))
        .and_then(|rest| rest.strip_prefix("://"))
        .and_then(normal_host)
    else {
        return Ok(false);
    };
    Ok(state
        .store
        .find_organization_by_domain(&host)
        .await?
        .is_some())
}

/// Refuses a form whose CSRF field does not match this browser's cookie, or
/// that a browser says comes from any other origin than the sign-in pages'
/// own (an opaque `null` origin included: sandboxed frames send it).
async fn check_csrf(
    state: &AppState,
    headers: &HeaderMap,
    submitted: &str,
) -> Result<(), LoginError> {
    let refused = || {
        LoginError(error_page(
            StatusCode::FORBIDDEN,
            "Request refused",
            "This form was not sent from this sign-in page. Open the application again to sign in.",
        ))
    };
    if let Some(origin) = headers
        .get(axum::http::header::ORIGIN)
        .map(|v| v.to_str().unwrap_or_default())
        && !is_sign_in_origin(state, origin).await?
    {
        return Err(refused());
    }
    let Some(expected) = cookie(headers, CSRF_COOKIE) else {
        return Err(refused());
    };
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(submitted.as_bytes())) {
        return Err(refused());
    }
    Ok(())
}

async fn app_by_domain(state: &AppState, domain: &str) -> Result<AccessApp, LoginError> {
    let domain = crate::domain::app::parse_domain(domain).unwrap_or_default();
    state
        .store
        .find_app_by_domain(&domain)
        .await?
        .ok_or_else(|| {
            LoginError(error_page(
                StatusCode::NOT_FOUND,
                "Unknown application",
                "No application is protected at this address.",
            ))
        })
}

/// Where to go after signing in: a URL on one of the application's hosts.
/// Anything else is refused, so the login cannot be used as an open redirect.
fn checked_redirect(
    state: &AppState,
    app: &AccessApp,
    raw: Option<&str>,
) -> Result<String, LoginError> {
    let default = format!("{}://{}/", scheme(state), app.domain);
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(default);
    };
    let host = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))
        .map(|rest| {
            rest.split(['/', '?', '#'])
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase()
        });
    match host {
        Some(host)
            if !host.contains('@')
                && !host.contains('\\')
                && app.hostnames().contains(&host.as_str()) =>
        {
            Ok(raw.to_string())
        }
        _ => Err(LoginError(error_page(
            StatusCode::BAD_REQUEST,
            "Invalid redirect",
            "The address to return to is not part of this application.",
        ))),
    }
}

/// The identity providers `app` lets its users sign in with.
async fn allowed_providers(
    state: &AppState,
    app: &AccessApp,
) -> Result<Vec<IdentityProvider>, LoginError> {
    let all = state
        .store
        .list_idps(
            &app.account_id,
            IdpFilter::default(),
            PageRequest {
                page: 1,
                per_page: 1000,
            },
        )
        .await?;
    Ok(all
        .items
        .into_iter()
        .filter(|idp| {
            app.settings.allowed_idps.is_empty() || app.settings.allowed_idps.contains(&idp.id)
        })
        .collect())
}

/// The application's one-time PIN provider, when it allows one.
async fn pin_provider(
    state: &AppState,
    app: &AccessApp,
) -> Result<Option<IdentityProvider>, LoginError> {
    Ok(allowed_providers(state, app)
        .await?
        .into_iter()
        .find(|idp| idp.config == IdpConfig::OneTimePin))
}

#[derive(Deserialize)]
pub struct LoginQuery {
    redirect_url: Option<String>,
}

/// `GET /cdn-cgi/access/login/{app-domain}?redirect_url=…`
/// A host as applications name it: lowercase, without a trailing dot or a
/// default port; `None` for anything that is no `host[:port]`.
pub fn normal_host(raw: &str) -> Option<String> {
    let raw = raw.to_ascii_lowercase();
    let (name, port) = match raw.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (name, Some(port)),
        Some(_) => return None,
        None => (raw.as_str(), None),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    let name_ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    let port = match port {
        None | Some("80") | Some("443") => None,
        Some(digits) => Some(digits.parse::<u16>().ok().filter(|p| *p > 0)?),
    };
    name_ok.then(|| match port {
        Some(port) => format!("{name}:{port}"),
        None => name.to_string(),
    })
}

/// The client's address: the peer's, or, when the peer is a trusted proxy,
/// the last address in `X-Forwarded-For` that is not one.
pub fn client_address(state: &AppState, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let peer = peer.to_canonical();
    let trusted = |ip: &IpAddr| state.trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect();
    forwarded
        .iter()
        .rev()
        .find(|ip| !trusted(ip))
        .copied()
        .unwrap_or(peer)
}

/// The client's two-letter country, from the header a trusted proxy sets.
pub fn client_country(state: &AppState, headers: &HeaderMap) -> Option<String> {
    state
        .country_header
        .as_deref()
        .and_then(|name| headers.get(name))
        .and_then(|v| v.to_str().ok())
        .map(|c| c.trim().to_ascii_uppercase())
        .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()))
}

/// The sign-in page of an application, or straight on to it when the
/// browser's global session already admits it.
async fn login_page(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(domain): Path<String>,
    Query(query): Query<LoginQuery>,
    headers: HeaderMap,
) -> Result<Response, LoginError> {
    let app = app_by_domain(&state, &domain).await?;
    let redirect = checked_redirect(&state, &app, query.redirect_url.as_deref())?;
    let country = client_country(&state, &headers);
    let ip = client_address(&state, peer.ip(), &headers);
    if let Some(onward) =
        global::continue_session(&state, &app, &headers, ip, country, &redirect).await?
    {
        return Ok(onward);
    }
    let providers = allowed_providers(&state, &app).await?;
    let has_pin = providers
        .iter()
        .any(|idp| idp.config == IdpConfig::OneTimePin);
    let oidc: Vec<(String, String)> = providers
        .iter()
        .filter(|idp| matches!(idp.config, IdpConfig::Oidc(_)))
        .map(|idp| (idp.id.to_string(), idp.name.clone()))
        .collect();
    if !has_pin && oidc.is_empty() {
        return Err(LoginError(error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "No sign-in method",
            "This application has no identity provider that can sign you in here. Ask its administrator.",
        )));
    }
    let (csrf, fresh) = csrf_token(&headers);
    let mut body = String::new();
    if !oidc.is_empty() {
        body.push_str(&pages::provider_links(&oidc, &app.domain, &redirect));
    }
    if has_pin {
        body.push_str(&pages::email_form(
            &app.name,
            &app.domain,
            &redirect,
            &csrf,
            None,
        ));
    }
    let page = Page::new(StatusCode::OK, &format!("Sign in to {}", app.name), body);
    Ok(if fresh {
        page.with_cookie(csrf_cookie(&state, &csrf))
    } else {
        page
    }
    .into_response())
}
