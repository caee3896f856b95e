//! `GET /cdn-cgi/access/forward-auth`: a reverse proxy asks whether a
//! request may pass, and accessd answers as nginx `auth_request`, Caddy
//! `forward_auth` and Traefik `forwardAuth` expect.
//!
//! The proxy names the original request with `X-Original-URL` and
//! `X-Original-Method` (nginx) or `X-Forwarded-Proto`, `-Host`, `-Uri` and
//! `-Method` (Caddy, Traefik). A pass is 200 with `Cf-Access-Jwt-Assertion`
//! and `Cf-Access-Authenticated-User-Email` for the upstream. Without a
//! usable credential, nginx (which cannot pass a redirect on) gets 401 with
//! a `Location` to sign in; the others get a 302 there for a browser
//! navigation and 401 otherwise. A policy refusal is 403.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::complete::{Failure, record_failure};
use super::decide::{Outcome, Subject, decide};
use super::identity::accept;
use super::{AUTH_COOKIE, client_address, client_country, cookie, normal_host};
use crate::app::AppState;
use crate::auth::app_token::{self, AppClaims};
use crate::auth::service_token::authenticate_request;
use crate::domain::Timestamp;
use crate::domain::app::AccessApp;
use crate::domain::policy::Decision;
use crate::domain::service_token::ServiceToken;
use crate::store::throttle::{Claim, Limit};

const JWT_HEADER: &str = "cf-access-jwt-assertion";
/// Failed logins written for one user, application and reason.
const REFUSAL_RECORDS: Limit = Limit {
    per_window: 1,
    window_seconds: 60,
};
const EMAIL_HEADER: &str = "cf-access-authenticated-user-email";

/// How the proxy named the request, which decides how a refusal is shaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    /// nginx: never a 3xx.
    Nginx,
    /// Caddy, Traefik: the auth response goes to the client as it is.
    PassThrough,
}

#[derive(Debug)]
struct Original {
    style: Style,
    url: String,
    host: String,
    path: String,
    browser: bool,
}

fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The path an upstream will serve for `raw`, for matching applications:
/// percent-decoded, empty segments dropped. Paths an upstream may resolve
/// differently than accessd would (dot segments, backslashes, encoded
/// slashes or dots) are refused outright: `None`. Browsers never send them.
fn normal_path(raw: &str) -> Option<String> {
    let lower = raw.to_ascii_lowercase();
    if raw.contains('\\') || ["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e)) {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let segments: Vec<&str> = decoded.split('/').filter(|s| !s.is_empty()).collect();
    if segments
        .iter()
        .any(|s| *s == "." || *s == ".." || s.contains('\\'))
    {
        return None;
    }
    Some(format!("/{}", segments.join("/")))
}

/// The request the proxy asks about, from either family of headers.
fn original(headers: &HeaderMap) -> Option<Original> {
    let (style, scheme, host, uri, method) = match text(headers, "x-original-url") {
        Some(url) => {
            let (scheme, rest) = url.split_once("://")?;
            let (host, uri) = rest.find('/').map_or((rest, "/"), |at| rest.split_at(at));
            let method = text(headers, "x-original-method").unwrap_or("GET");
            (Style::Nginx, scheme, host, uri, method)
        }
        None => (
            Style::PassThrough,
            text(headers, "x-forwarded-proto").unwrap_or("http"),
            text(headers, "x-forwarded-host")?,
            text(headers, "x-forwarded-uri").unwrap_or("/"),
            text(headers, "x-forwarded-method").unwrap_or("GET"),
        ),
    };
    if !matches!(scheme, "http" | "https") || host.is_empty() || !uri.starts_with('/') {
        return None;
    }
    let path = normal_path(uri.split(['?', '#']).next().unwrap_or("/"))?;
    let navigation = method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD");
    let wants_html = text(headers, "accept").is_some_and(|a| a.contains("text/html"));
    let scripted =
        text(headers, "x-requested-with").is_some_and(|v| v.eq_ignore_ascii_case("XMLHttpRequest"));
    Some(Original {
        style,
        url: format!("{scheme}://{host}{uri}"),
        host: normal_host(host)?,
        path,
        browser: navigation && wants_html && !scripted,
    })
}

fn answer(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "err": message }))).into_response()
}

/// No usable credential: on to the sign-in page of the application, on
/// its account's team domain.
async fn sign_in(
    state: &AppState,
    app: &AccessApp,
    original: &Original,
) -> Result<Response, crate::error::ApiError> {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("redirect_url", &original.url)
        .finish();
    let team = super::global::team(state, &app.account_id).await?;
    let location = format!(
        "{}/cdn-cgi/access/login/{}?{query}",
        team.url(state),
        app.domain
    );
    let status = if original.style == Style::PassThrough && original.browser {
        StatusCode::FOUND
    } else {
        StatusCode::UNAUTHORIZED
    };
    let mut response = answer(status, "sign in to use this application");
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

fn passes(token: Option<&str>, email: Option<&str>) -> Response {
    let mut response = StatusCode::OK.into_response();
    for (name, value) in [(JWT_HEADER, token), (EMAIL_HEADER, email)] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// The token an upstream receives for a request a service token made: as
/// Cloudflare's, `common_name` is the Client ID and `sub` is empty, so the
/// upstream can verify it like any other against `/cdn-cgi/access/certs`.
/// One is minted per half of its lifetime and handed out meanwhile.
async fn service_token_jwt(
    state: &AppState,
    app: &AccessApp,
    policy: &crate::domain::policy::AccessPolicy,
    token: &ServiceToken,
) -> Result<Arc<str>, crate::error::ApiError> {
    let now = Timestamp::now();
    let lifetime = super::complete::app_token_seconds(app, policy);
    let mint = async {
        let team = super::global::team(state, &app.account_id).await?;
        let claims = AppClaims {
            aud: vec![app.aud.clone()],
            email: String::new(),
            exp: now.plus_seconds(lifetime).unix_seconds(),
            iat: now.unix_seconds(),
            nbf: now.unix_seconds(),
            iss: team.url(state),
            kind: "app".to_string(),
            identity_nonce: String::new(),
            sub: String::new(),
            country: String::new(),
            common_name: Some(token.client_id.clone()),
        };
        let key = app_token::signing_key(&state.store, &app.account_id).await?;
        Ok((
            app_token::mint(&key, &claims)?,
            now.plus_seconds(lifetime / 2),
        ))
    };
    let key = (
        app.id.to_string(),
        token.id.to_string(),
        policy.id.to_string(),
    );
    Ok(state.gate.minted(key, now, mint).await?)
}

/// The application token a request carries, in the order a proxy sees them.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    text(headers, "cf-access-token")
        .or_else(|| text(headers, JWT_HEADER))
        .or_else(|| cookie(headers, AUTH_COOKIE).filter(|t| !t.is_empty()))
}

pub async fn forward_auth(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    match check(&state, peer.ip(), &headers).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn check(
    state: &AppState,
    peer: IpAddr,
    headers: &HeaderMap,
) -> Result<Response, crate::error::ApiError> {
    let Some(original) = original(headers) else {
        return Ok(answer(
            StatusCode::BAD_REQUEST,
            "name the original request with X-Original-URL, or X-Forwarded-Host and X-Forwarded-Uri, \
             with a plain host and a path without dot segments, backslashes or encoded slashes",
        ));
    };
    // accessd answers its own pages on every protected host.
    if original.path.starts_with("/cdn-cgi/access/") {
        return Ok(passes(None, None));
    }
    let Some(app) = state
        .gate
        .app_for_path(&state.store, &original.host, &original.path)
        .await?
    else {
        // The proxy routed it here by hostname, whatever the port: a host an
        // application protects under another port is refused, not let by.
        let hostname = original.host.split(':').next().unwrap_or_default();
        if state
            .gate
            .claimed_under_another_port(&state.store, &original.host, hostname)
            .await?
        {
            return Ok(answer(
                StatusCode::FORBIDDEN,
                "this host is protected under another address; use that one",
            ));
        }
        // No application protects this address: Access does not gate it.
        return Ok(passes(None, None));
    };
    let ip = client_address(state, peer, headers);
    let country = client_country(state, headers);
    let now = Timestamp::now();

    match authenticate_request(
        &state.gate,
        &state.store,
        &app.account_id,
        headers,
        None,
        now,
    )
    .await?
    {
        Err(refusal) => {
            tracing::info!(?refusal, app = %app.id, "service token refused at forward-auth");
            return Ok(answer(
                StatusCode::UNAUTHORIZED,
                "the service token was refused",
            ));
        }
        Ok(Some(token)) => {
            let subject = Subject {
                service_token: Some(token.id.clone()),
                country,
                ..Subject::default()
            };
            return Ok(match decide(state, &app, &subject, ip).await? {
                Outcome::Admitted(policy) => {
                    let jwt = service_token_jwt(state, &app, &policy, &token).await?;
                    passes(Some(&jwt), None)
                }
                Outcome::Refused(reason) => {
                    tracing::info!(reason, app = %app.id, "service token refused by policy");
                    answer(StatusCode::FORBIDDEN, "no policy admits this service token")
                }
            });
        }
        Ok(None) => {}
    }

    if let Some(token) = presented_token(headers)
        && let Ok((verified, session)) = accept(state, token, Some(&app)).await
    {
        let claims = &verified.claims;
        let subject = Subject {
            email: Some(claims.email.clone()),
            idp_id: Some(session.identity.idp.id.clone()),
            service_token: None,
            country,
        };
        let reason = match decide(state, &app, &subject, ip).await? {
            Outcome::Admitted(_) => return Ok(passes(Some(token), Some(&claims.email))),
            Outcome::Refused(reason) => reason,
        };
        // A refused client may keep asking, once per page and asset: one
        // failed login per user, application and reason a minute is the
        // record, not one row per request.
        let key = format!("forward-auth-refusal:{}:{}:{reason}", app.id, claims.sub);
        if state
            .store
            .claim_throttle(&key, REFUSAL_RECORDS, now)
            .await?
            == Claim::Granted
        {
            let failure = Failure {
                app: &app,
                email: &claims.email,
                reason,
                ip,
            };
            if record_failure(state, failure, false).await.is_err() {
                tracing::warn!("could not record a refusal at forward-auth");
            }
        }
        return Ok(answer(
            StatusCode::FORBIDDEN,
            "your identity is not allowed to use this application",
        ));
    }

    // Nobody signed in: only a Bypass policy lets the request through.
    let anonymous = Subject {
        country,
        ..Subject::default()
    };
    if decide(state, &app, &anonymous, ip)
        .await?
        .admitted()
        .is_some_and(|policy| policy.decision == Decision::Bypass)
    {
        return Ok(passes(None, None));
    }
    sign_in(state, &app, &original).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_str(value) {
                map.append(*name, value);
            }
        }
        map
    }

    #[test]
    fn paths_are_matched_as_upstreams_serve_them_or_refused() {
        for (raw, normal) in [
            ("/admin", "/admin"),
            ("//admin//x", "/admin/x"),
            ("/%61dmin", "/admin"),
            ("/a+b", "/a+b"),
            ("/", "/"),
        ] {
            assert_eq!(normal_path(raw).as_deref(), Some(normal), "{raw}");
        }
        for ambiguous in [
            "/public/../admin/x",
            "/a/./b",
            "/pub/%2e%2e/admin",
            "/pub%2f..%2fadmin",
            "/api/1\\..\\..\\cdn-cgi\\access\\x",
            "/api/%5c..",
            "/%2E",
        ] {
            assert_eq!(normal_path(ambiguous), None, "{ambiguous}");
        }
    }

    #[test]
    fn hosts_are_spelt_one_way() {
        for (raw, normal) in [
            ("Wiki.Example.com", Some("wiki.example.com")),
            ("wiki.example.com.:8080", Some("wiki.example.com:8080")),
            ("wiki.example.com:443", Some("wiki.example.com")),
            ("wiki.example.com:08080", Some("wiki.example.com:8080")),
            ("wiki.example.com:1:2", None),
            ("wiki.example.com:0", None),
            ("wiki.example.com:x", None),
            ("wiki example.com", None),
            ("", None),
        ] {
            assert_eq!(normal_host(raw).as_deref(), normal, "{raw}");
        }
    }

    #[test]
    fn both_proxy_families_name_the_request() {
        let nginx = original(&headers(&[
            ("x-original-url", "https://Wiki.Example.com:443/docs/a?b=1"),
            ("x-original-method", "GET"),
        ]));
        let nginx = nginx.map(|o| (o.style, o.host, o.path, o.url));
        assert_eq!(
            nginx,
            Some((
                Style::Nginx,
                "wiki.example.com".to_string(),
                "/docs/a".to_string(),
                "https://Wiki.Example.com:443/docs/a?b=1".to_string()
            ))
        );
        let caddy = original(&headers(&[
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "app.localhost:8080"),
            ("x-forwarded-uri", "/x"),
            ("accept", "text/html,application/xhtml+xml"),
        ]));
        let caddy = caddy.map(|o| (o.style, o.host, o.browser));
        assert_eq!(
            caddy,
            Some((Style::PassThrough, "app.localhost:8080".to_string(), true))
        );
        for bad in [
            headers(&[("x-original-url", "ftp://x/")]),
            headers(&[("x-original-url", "no-scheme")]),
            headers(&[("x-forwarded-uri", "/x")]),
        ] {
            assert!(original(&bad).is_none());
        }
    }
}
