use std::net::IpAddr;

use axum::http::HeaderMap;

use crate::app::AppState;
use crate::domain::secret::{self, SecretHash, SecretKind};
use crate::domain::token::ApiToken;
use crate::domain::{Timestamp, TokenId};
use crate::error::ApiError;

/// The holder of a recognised credential.
#[derive(Debug, Clone)]
pub enum Principal {
    /// The operator's admin token: passes every permission check.
    Admin { token_id: TokenId },
    /// An account-owned API token, whatever its status; see [`Principal::ensure_usable`].
    Token(Box<ApiToken>),
}

impl Principal {
    /// Refuses a token that is disabled, expired, not yet valid or used from
    /// an address outside its condition, all with the same answer.
    pub fn ensure_usable(&self, now: Timestamp, ip: IpAddr) -> Result<(), ApiError> {
        match self {
            Principal::Admin { .. } => Ok(()),
            Principal::Token(token) if token.usable(now, ip) => Ok(()),
            Principal::Token(_) => Err(ApiError::InvalidToken),
        }
    }
}

/// Reads the credential headers and finds whose they are. The checks run in
/// the order Cloudflare's gateway uses: presence, then syntax, then the secret.
///
/// A well-formed Bearer token wins when X-Auth headers come with it, since the
/// TypeScript SDK sends every credential it was configured with.
pub async fn identify(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let authorization = headers.get(axum::http::header::AUTHORIZATION);
    let auth_key = headers.get("x-auth-key");
    let auth_email = headers.get("x-auth-email");
    let service_key = headers.get("x-auth-user-service-key");

    if let Some(value) = authorization {
        let bearer = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|secret| secret::has_token_shape(secret))
            .ok_or(ApiError::MalformedAuthorization)?;
        return find_bearer(state, bearer).await;
    }
    if auth_key.is_some() || auth_email.is_some() {
        let key_ok = auth_key
            .and_then(|v| v.to_str().ok())
            .is_some_and(|k| k.len() == 37 && k.bytes().all(|b| b.is_ascii_hexdigit()));
        let email_ok = auth_email
            .and_then(|v| v.to_str().ok())
            .is_some_and(|e| e.contains('@') && !e.contains(char::is_whitespace));
        if !key_ok || !email_ok {
            return Err(ApiError::MalformedAuthKey {
                key: !key_ok,
                email: !email_ok,
            });
        }
        // accessd has no global API keys; a well-formed pair is simply unknown.
        return Err(ApiError::UnknownAuthKey);
    }
    if service_key.is_some() {
        return Err(ApiError::InvalidToken);
    }
    Err(ApiError::MissingCredentials)
}

async fn find_bearer(state: &AppState, bearer: &str) -> Result<Principal, ApiError> {
    let hash = SecretHash::of(bearer);
    if secret::kind_of(bearer) == Some(SecretKind::AccountToken) {
        if !secret::is_plausible(bearer) {
            return Err(ApiError::InvalidToken);
        }
        return match state.gate.api_token(&state.store, &hash).await? {
            Some(token) => Ok(Principal::Token(Box::new(ApiToken::clone(&token)))),
            None => Err(ApiError::InvalidToken),
        };
    }
    match state.gate.admin_token(&state.store).await? {
        Some(admin) if admin.hash.matches(&hash) => Ok(Principal::Admin {
            token_id: admin.id.clone(),
        }),
        _ => Err(ApiError::InvalidToken),
    }
}
