//! What a user's logins left behind: active sessions, the last seen
//! identity and failed logins, under `/accounts/{account_id}/access/users/{user_id}/…`.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::access_users::{UserPath, load_user};
use super::envelope::Success;
use crate::app::AppState;
use crate::auth::Authorized;
use crate::auth::operations::UsersRead;
use crate::domain::Timestamp;
use crate::domain::activity::{
    FailedLogin, FailedLoginMetadata, Identity, Session, SessionApp, SessionNonce,
};
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    let user = "/accounts/{account_id}/access/users/{user_id}";
    Router::new()
        .route(
            &format!("{user}/active_sessions"),
            get(list_active_sessions),
        )
        .route(
            &format!("{user}/active_sessions/{{nonce}}"),
            get(get_active_session),
        )
        .route(
            &format!("{user}/last_seen_identity"),
            get(get_last_seen_identity),
        )
        .route(&format!("{user}/failed_logins"), get(list_failed_logins))
}

#[derive(Serialize)]
pub struct ActiveSessionView {
    expiration: i64,
    metadata: SessionMetadata,
    name: String,
}

#[derive(Serialize)]
pub struct SessionMetadata {
    apps: BTreeMap<String, SessionApp>,
    expires: i64,
    iat: i64,
    nonce: String,
    ttl: i64,
}

impl From<Session> for ActiveSessionView {
    fn from(session: Session) -> Self {
        let expires = session.expires_at.unix_seconds();
        Self {
            expiration: expires,
            metadata: SessionMetadata {
                ttl: session.ttl_seconds(),
                apps: session.apps,
                expires,
                iat: session.issued_at.unix_seconds(),
                nonce: session.nonce.as_str().to_string(),
            },
            name: session.name,
        }
    }
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/users/subresources/active_sessions/methods/list/>
async fn list_active_sessions(
    State(state): State<AppState>,
    caller: Authorized<UsersRead>,
    Path(path): Path<UserPath>,
) -> Result<Success<Vec<ActiveSessionView>>, ApiError> {
    let user = load_user(&state, &caller.account, &path.user_id).await?;
    let sessions = state
        .store
        .list_active_sessions(&caller.account, &user.id, Timestamp::now())
        .await?;
    Ok(Success::all(
        sessions.into_iter().map(ActiveSessionView::from).collect(),
    ))
}

#[derive(Serialize)]
pub struct SessionIdentityView {
    #[serde(flatten)]
    identity: Identity,
    #[serde(rename = "isActive")]
    is_active: bool,
}

impl SessionIdentityView {
    pub fn new(session: Session, now: Timestamp) -> Self {
        Self {
            is_active: session.is_active(now),
            identity: session.identity,
        }
    }
}

#[derive(Deserialize)]
struct SessionPath {
    #[allow(dead_code, reason = "validated by the Authorized extractor")]
    account_id: String,
    user_id: String,
    nonce: String,
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/users/subresources/active_sessions/methods/get/>
///
/// An expired or revoked session answers with `isActive: false` while its
/// record is kept.
async fn get_active_session(
    State(state): State<AppState>,
    caller: Authorized<UsersRead>,
    Path(path): Path<SessionPath>,
) -> Result<Success<SessionIdentityView>, ApiError> {
    let user = load_user(&state, &caller.account, &path.user_id).await?;
    let not_found = || ApiError::access_not_found("session not found");
    let nonce = SessionNonce::parse(&path.nonce).ok_or_else(not_found)?;
    let session = state
        .store
        .find_session(&caller.account, &user.id, &nonce)
        .await?
        .ok_or_else(not_found)?;
    Ok(Success::ok(SessionIdentityView::new(
        session,
        Timestamp::now(),
    )))
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/users/subresources/last_seen_identity/methods/get/>
async fn get_last_seen_identity(
    State(state): State<AppState>,
    caller: Authorized<UsersRead>,
    Path(path): Path<UserPath>,
) -> Result<Success<Identity>, ApiError> {
    let user = load_user(&state, &caller.account, &path.user_id).await?;
    let identity = state
        .store
        .find_last_identity(&caller.account, &user.id)
        .await?
        .ok_or_else(|| ApiError::access_not_found("no identity has been seen for this user yet"))?;
    Ok(Success::ok(identity))
}

#[derive(Serialize)]
pub struct FailedLoginView {
    expiration: i64,
    metadata: FailedLoginMetadata,
}

impl From<FailedLogin> for FailedLoginView {
    fn from(failure: FailedLogin) -> Self {
        Self {
            expiration: failure.expires_at.unix_seconds(),
            metadata: failure.metadata,
        }
    }
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/users/subresources/failed_logins/methods/list/>
async fn list_failed_logins(
    State(state): State<AppState>,
    caller: Authorized<UsersRead>,
    Path(path): Path<UserPath>,
) -> Result<Success<Vec<FailedLoginView>>, ApiError> {
    let user = load_user(&state, &caller.account, &path.user_id).await?;
    let failures = state
        .store
        .list_failed_logins(&caller.account, &user.id, Timestamp::now())
        .await?;
    Ok(Success::all(
        failures.into_iter().map(FailedLoginView::from).collect(),
    ))
}
