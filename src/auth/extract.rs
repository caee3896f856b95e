use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, OriginalUri, RawPathParams};
use axum::http::request::Parts;

use super::{Operation, Principal, identify};
use crate::app::AppState;
use crate::domain::permission::policies_grant;
use crate::domain::{AccountId, Timestamp};
use crate::error::ApiError;

/// A caller whose credential is valid and usable, with no account in question.
pub struct Authenticated {
    pub principal: Principal,
}

/// A caller allowed to perform `Op` on `account`, the account named in the path.
pub struct Authorized<Op> {
    pub principal: Principal,
    pub account: AccountId,
    operation: PhantomData<Op>,
}

/// The client's address; an IPv4 client seen through an IPv6 socket
/// (`::ffff:a.b.c.d`) is reported as IPv4 so address rules match it.
pub fn client_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| {
            info.0.ip().to_canonical()
        })
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = identify(state, &parts.headers).await?;
        let now = Timestamp::now();
        principal.ensure_usable(now, client_ip(parts))?;
        record_use(state, &principal, now).await;
        Ok(Self { principal })
    }
}

/// Reads `{account_id}` from the matched path; a malformed one is a routing error.
pub async fn account_in_path(parts: &mut Parts) -> Result<AccountId, ApiError> {
    let path = parts.extensions.get::<OriginalUri>().map_or_else(
        || parts.uri.path().to_string(),
        |uri| uri.path().to_string(),
    );
    let invalid = || ApiError::InvalidIdentifier { path: path.clone() };
    let params = RawPathParams::from_request_parts(parts, &())
        .await
        .map_err(|_| invalid())?;
    params
        .iter()
        .find(|(name, _)| *name == "account_id")
        .and_then(|(_, value)| AccountId::parse(value))
        .ok_or_else(invalid)
}

impl<Op: Operation> FromRequestParts<AppState> for Authorized<Op> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Authenticated { principal } = Authenticated::from_request_parts(parts, state).await?;
        let account = account_in_path(parts).await?;
        match &principal {
            Principal::Admin { .. } => {
                if !state.gate.account_exists(&state.store, &account).await? {
                    return Err(ApiError::not_found(1003, "account not found"));
                }
            }
            Principal::Token(token) => {
                // A foreign account, a missing group and an explicit deny all
                // answer alike, so the answer does not reveal which accounts exist.
                let permitted = token.account_id == account
                    && !Op::GROUPS.is_empty()
                    && policies_grant(&token.policies, &account, Op::GROUPS);
                if !permitted {
                    return Err(ApiError::Forbidden);
                }
            }
        }
        Ok(Self {
            principal,
            account,
            operation: PhantomData,
        })
    }
}

async fn record_use(state: &AppState, principal: &Principal, now: Timestamp) {
    if let Principal::Token(token) = principal
        && let Err(err) = state.gate.api_token_used(&state.store, token, now).await
    {
        // Losing a last-used stamp must not fail the request it belongs to.
        tracing::warn!(%err, "could not record token use");
    }
}

/// The operator, for operations outside any one account (creating accounts).
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Authenticated::from_request_parts(parts, state)
            .await?
            .principal
        {
            Principal::Admin { .. } => Ok(Admin),
            Principal::Token(_) => Err(ApiError::Forbidden),
        }
    }
}

/// Whoever presents a recognised credential, usable or not, with the account
/// named in the path: what token verification needs to report a status.
pub struct Presented {
    pub principal: Principal,
    pub account: AccountId,
    pub ip: IpAddr,
}

impl FromRequestParts<AppState> for Presented {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = identify(state, &parts.headers).await?;
        let account = account_in_path(parts).await?;
        Ok(Self {
            principal,
            account,
            ip: client_ip(parts),
        })
    }
}
