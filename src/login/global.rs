//! The global session: one sign-in opens every application its policies
//! admit. A sign-in leaves a global token (`type: org`) in the
//! `CF_Authorization` cookie of the sign-in pages' host; the next
//! application's sign-in page finds it, checks the session behind it and the
//! application's policies, and hands over a token without asking for a code.
//! The session's `apps` grows with each application it opens. Revoking the
//! user, signing out or freeing their seat ends the session and with it the
//! global token.

use std::net::IpAddr;

use axum::http::HeaderMap;
use axum::response::Response;

use super::complete::{Asker, Handover, admit, app_token_seconds, hand_over, session_app};
use super::identity::verify_token;
use super::{AUTH_COOKIE, LoginError, cookie, scheme};
use crate::app::AppState;
use crate::auth::app_token::{self, AppClaims};
use crate::domain::activity::SessionNonce;
use crate::domain::app::AccessApp;
use crate::domain::organization::DEFAULT_SESSION_SECONDS;
use crate::domain::{AccountId, IdpId, Timestamp};
use crate::store::StoreResult;

const GLOBAL_KIND: &str = "org";

/// What an account's organization says of its global sessions.
pub struct Team {
    /// The team domain: the organization's `auth_domain`, else the host of
    /// the public URL. It is the audience of the global token.
    pub domain: String,
    /// How long a global session lasts.
    pub session_seconds: i64,
}

impl Team {
    /// `scheme://team-domain`: where the account's sign-in pages, global
    /// cookie and OpenID callback live, and the `iss` of its tokens.
    pub fn url(&self, state: &AppState) -> String {
        format!("{}://{}", scheme(state), self.domain)
    }
}

/// The account's [`Team`], from held state.
pub async fn team(state: &AppState, account: &AccountId) -> StoreResult<Team> {
    if let Some(org) = state.gate.organization(&state.store, account).await? {
        return Ok(Team {
            session_seconds: org.session_seconds(),
            domain: org.auth_domain.clone(),
        });
    }
    let url: &str = &state.public_url;
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
    Ok(Team {
        domain: authority
            .split('/')
            .next()
            .unwrap_or(authority)
            .to_ascii_lowercase(),
        session_seconds: DEFAULT_SESSION_SECONDS,
    })
}

pub struct GlobalToken<'a> {
    pub user_id: &'a str,
    pub email: &'a str,
    pub nonce: &'a SessionNonce,
    pub expires_at: Timestamp,
}

/// The `Set-Cookie` value that carries the global token on the sign-in host.
/// `SameSite=Lax`: the cookie only has to ride top-level navigations to the
/// sign-in pages.
pub async fn session_cookie(
    state: &AppState,
    app: &AccessApp,
    team: &Team,
    token: &GlobalToken<'_>,
) -> Result<String, LoginError> {
    let now = Timestamp::now();
    let claims = AppClaims {
        aud: vec![team.domain.clone()],
        email: token.email.to_string(),
        exp: token.expires_at.unix_seconds(),
        iat: now.unix_seconds(),
        nbf: now.unix_seconds(),
        iss: team.url(state),
        kind: GLOBAL_KIND.to_string(),
        identity_nonce: token.nonce.as_str().to_string(),
        sub: token.user_id.to_string(),
        country: String::new(),
        common_name: None,
    };
    let key = app_token::signing_key(&state.store, &app.account_id).await?;
    let jwt = app_token::mint(&key, &claims)?;
    let max_age = (token.expires_at.unix_seconds() - now.unix_seconds()).max(0);
    let secure = if scheme(state) == "https" {
        "; Secure"
    } else {
        ""
    };
    Ok(format!(
        "{AUTH_COOKIE}={jwt}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
}

/// Where the sign-in page for `app` may skip the code: the browser holds a
/// global token of `app`'s account whose session is live, and the
/// application's policies admit its identity now. `None` shows the form.
pub async fn continue_session(
    state: &AppState,
    app: &AccessApp,
    headers: &HeaderMap,
    ip: IpAddr,
    country: Option<String>,
    redirect_url: &str,
) -> Result<Option<Response>, LoginError> {
    let Some(token) = cookie(headers, AUTH_COOKIE).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let team = team(state, &app.account_id).await?;
    let Ok((verified, key)) = verify_token(state, token, Some(&team.domain)).await else {
        return Ok(None);
    };
    let claims = &verified.claims;
    if claims.kind != GLOBAL_KIND || key.account_id != app.account_id.as_str() {
        return Ok(None);
    }
    let Some(nonce) = SessionNonce::parse(&claims.identity_nonce) else {
        return Ok(None);
    };
    let now = Timestamp::now();
    let session = match state.store.find_session_by_nonce(&nonce).await? {
        Some(session) if session.is_active(now) && session.account_id == app.account_id => session,
        _ => return Ok(None),
    };
    // An application that allows only some identity providers opens only
    // for a session proven by one of them.
    let proven_by = IdpId::parse(&session.identity.idp.id);
    let allowed = &app.settings.allowed_idps;
    if !allowed.is_empty() && !proven_by.is_some_and(|idp| allowed.contains(&idp)) {
        return Ok(None);
    }
    let asker = Asker {
        email: &claims.email,
        ip,
        country: country.clone(),
        idp_id: &session.identity.idp.id,
    };
    let policy = admit(state, app, &asker).await?;
    let expires_at = now.plus_seconds(app_token_seconds(app, &policy));
    let (_, record) = session_app(app);
    if !state
        .store
        .join_session(&nonce, app.id.as_str(), &record, expires_at, now)
        .await?
    {
        return Ok(None);
    }
    let response = hand_over(
        state,
        Handover {
            app,
            user_id: &claims.sub,
            email: &claims.email,
            nonce: &nonce,
            issued_at: now,
            expires_at,
            country,
            redirect_url,
        },
    )
    .await?;
    Ok(Some(response))
}
