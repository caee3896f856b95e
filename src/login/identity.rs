//! What a signed-in browser or an application asks of Access: set the cookie
//! on the application's host, read the identity behind a token, sign out,
//! and fetch the keys that verify tokens.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::pages::{Page, error_page};
use super::{AUTH_COOKIE, LoginError, cookie, scheme};
use crate::app::AppState;
use crate::auth::app_token::{self, Rejection};
use crate::domain::activity::{Session, SessionNonce};
use crate::domain::app::AccessApp;
use crate::domain::{AccountId, Timestamp};
use crate::gate::{HeldKey, VerifiedToken};

/// The request's host as applications name it (see [`super::normal_host`]);
/// empty when it is no plain `host[:port]`.
pub(super) fn host_of(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .and_then(super::normal_host)
        .unwrap_or_default()
}

/// The application token a request carries: the `Cf-Access-Jwt-Assertion`
/// header (what a proxy forwards) or the `CF_Authorization` cookie.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("cf-access-jwt-assertion")
        .and_then(|v| v.to_str().ok())
        .or_else(|| cookie(headers, AUTH_COOKIE))
        .filter(|t| !t.is_empty())
}

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Token(#[from] Rejection),
    #[error("the session was revoked or has ended")]
    SessionEnded,
    #[error("tokens of this application were revoked")]
    AppRevoked,
    #[error("internal error")]
    Internal,
}

/// A token signed by one of our keys, current, for `audience` when given,
/// and issued by the team domain of the key's account.
pub async fn verify_token(
    state: &AppState,
    token: &str,
    audience: Option<&str>,
) -> Result<(Arc<VerifiedToken>, Arc<HeldKey>), Rejection> {
    let (verified, key) = state.gate.verify(&state.store, token, audience).await?;
    let account = AccountId::parse(&key.account_id).ok_or(Rejection::Unverifiable)?;
    let team = super::global::team(state, &account)
        .await
        .map_err(|_| Rejection::Unverifiable)?;
    if verified.claims.iss != team.url(state) {
        return Err(Rejection::Unverifiable);
    }
    Ok((verified, key))
}

/// A token that is genuine, current, for `expected` (when given), and whose
/// session and application have not been revoked since it was issued.
/// Decided from what the gate holds (see [`crate::gate`]).
pub async fn accept(
    state: &AppState,
    token: &str,
    expected: Option<&AccessApp>,
) -> Result<(Arc<VerifiedToken>, Arc<Session>), Refusal> {
    let (verified, _) = verify_token(state, token, expected.map(|a| a.aud.as_str())).await?;
    let claims = &verified.claims;
    // A global token (`type: org`) never opens an application by itself.
    if claims.kind != "app" {
        return Err(Refusal::Token(Rejection::Unverifiable));
    }
    let nonce = SessionNonce::parse(&claims.identity_nonce).ok_or(Refusal::SessionEnded)?;
    let session = state
        .gate
        .session(&state.store, &nonce)
        .await
        .map_err(|_| Refusal::Internal)?
        .ok_or(Refusal::SessionEnded)?;
    if !session.is_active(Timestamp::now()) {
        return Err(Refusal::SessionEnded);
    }
    for aud in &claims.aud {
        let revocation = state
            .gate
            .revocation(&state.store, aud)
            .await
            .map_err(|_| Refusal::Internal)?;
        // The application is gone, or revoked its tokens after this one was issued.
        let revoked = match revocation {
            None => true,
            Some(before) => before.is_some_and(|at| claims.iat * 1_000_000 < at.micros()),
        };
        if revoked {
            return Err(Refusal::AppRevoked);
        }
    }
    Ok((verified, session))
}

#[derive(Deserialize)]
pub struct AuthorizedQuery {
    token: String,
    redirect_url: String,
}

/// `GET /cdn-cgi/access/authorized?token=…&redirect_url=…` on the
/// application's host: stores the token as that host's `CF_Authorization`
/// cookie and continues to the page the user asked for.
pub async fn authorized(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<AuthorizedQuery>,
) -> Result<Response, LoginError> {
    let host = host_of(&headers);
    let refused = |why: &str| LoginError(error_page(StatusCode::FORBIDDEN, "Sign-in failed", why));
    let app = state
        .gate
        .app_by_host(&state.store, &host)
        .await?
        .ok_or_else(|| refused("No application is protected at this address."))?;
    let (verified, _) = accept(&state, &query.token, Some(&app))
        .await
        .map_err(|e| refused(&format!("The sign-in could not be completed: {e}.")))?;
    let claims = &verified.claims;
    let same_host = query
        .redirect_url
        .strip_prefix(&format!("{}://{host}", scheme(&state)))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'));
    if !same_host {
        return Err(refused("The address to return to is not on this host."));
    }
    let max_age = (claims.exp - Timestamp::now().unix_seconds()).max(0);
    let path = if app.settings.path_cookie_attribute {
        app.domain
            .split_once('/')
            .map_or("/".to_string(), |(_, p)| format!("/{p}"))
    } else {
        "/".to_string()
    };
    let same_site = match app.settings.same_site_cookie_attribute.as_deref() {
        Some("strict") => "Strict",
        Some("none") => "None",
        _ => "Lax",
    };
    let mut cookie = format!(
        "{AUTH_COOKIE}={}; Path={path}; Max-Age={max_age}; SameSite={same_site}",
        query.token
    );
    if app.settings.http_only_cookie_attribute {
        cookie.push_str("; HttpOnly");
    }
    if scheme(&state) == "https" || same_site == "None" {
        cookie.push_str("; Secure");
    }
    let mut response =
        (StatusCode::FOUND, [(header::LOCATION, query.redirect_url)]).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(response)
}

fn unauthorized(message: &str) -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({ "err": message }))).into_response()
}

/// `GET /cdn-cgi/access/get-identity` on an application's host: the identity
/// behind the caller's token, which must be for that application. A host no
/// application claims has no audience to check a token against, so it
/// answers no identity at all.
pub async fn get_identity(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = presented_token(&headers) else {
        return unauthorized("no CF_Authorization cookie or Cf-Access-Jwt-Assertion header");
    };
    let host = host_of(&headers);
    let app = match state.gate.app_by_host(&state.store, &host).await {
        Ok(Some(app)) => app,
        Ok(None) => return unauthorized("no application is protected at this host"),
        Err(err) => return crate::error::ApiError::from(err).into_response(),
    };
    match accept(&state, token, Some(&app)).await {
        Ok((_, session)) => (StatusCode::OK, Json(&session.identity)).into_response(),
        Err(refusal) => unauthorized(&refusal.to_string()),
    }
}

/// `/cdn-cgi/access/logout`: ends the session everywhere and clears the cookie here.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Page, LoginError> {
    if let Some(token) = presented_token(&headers)
        && let Ok((verified, _)) = verify_token(&state, token, None).await
        && let Some(nonce) = SessionNonce::parse(&verified.claims.identity_nonce)
    {
        state.store.revoke_session(&nonce, Timestamp::now()).await?;
    }
    let secure = if scheme(&state) == "https" {
        "; Secure"
    } else {
        ""
    };
    Ok(Page::new(
        StatusCode::OK,
        "Signed out",
        "<p>You are signed out of every application.</p>".to_string(),
    )
    .with_cookie(format!(
        "{AUTH_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}"
    )))
}

/// `GET /cdn-cgi/access/certs`: the public keys that verify application
/// tokens, as JWKs (`keys`) and as self-signed certificates (`public_cert`
/// for the signing key, `public_certs` for all) of the account whose
/// application owns the host. On a host no application owns, an empty key
/// set: one account's keys are never listed to another's visitors.
pub async fn certs(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, LoginError> {
    let host = host_of(&headers);
    let owner = match state.gate.app_by_host(&state.store, &host).await? {
        Some(app) => Some(app.account_id.clone()),
        // A team domain speaks for its organization's account.
        None => state
            .store
            .find_organization_by_domain(&host)
            .await?
            .map(|org| org.account_id),
    };
    let keys = match owner {
        Some(account) => app_token::verifying_keys(&state.store, &account).await?,
        None => Vec::new(),
    };
    let jwks: Vec<_> = keys.iter().map(app_token::jwk).collect();
    let pem =
        |k: &crate::store::keys::StoredKey| json!({ "kid": k.kid, "cert": k.certificate_pem });
    let current = keys.iter().find(|k| k.retired_at.is_none()).map(pem);
    let all: Vec<_> = keys.iter().map(pem).collect();
    let body = json!({ "keys": jwks, "public_cert": current, "public_certs": all });
    Ok((
        StatusCode::OK,
        [(header::CACHE_CONTROL, "max-age=60")],
        Json(body),
    )
        .into_response())
}
