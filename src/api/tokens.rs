//! Account-owned API tokens: `/accounts/{account_id}/tokens…`.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, put};
use serde::Deserialize;

use super::accounts::{Deleted, parse_direction};
use super::envelope::Success;
use super::extract::{ApiJson, ApiQuery, PageLimits, PageParams};
use super::token_request::TokenRequest;
use super::token_view::{TokenView, VerifyView};
use crate::app::AppState;
use crate::auth::operations::{TokensRead, TokensWrite};
use crate::auth::{Authorized, Presented, Principal};
use crate::domain::permission::holds_group;
use crate::domain::secret::{self, SecretKind};
use crate::domain::token::{ApiToken, Effect, TokenPolicy};
use crate::domain::{AccountId, Timestamp, TokenId};
use crate::error::ApiError;
use crate::store::tokens::TokenListing;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/accounts/{account_id}/tokens",
            get(list_tokens).post(create_token),
        )
        .route("/accounts/{account_id}/tokens/verify", get(verify_token))
        .route(
            "/accounts/{account_id}/tokens/{token_id}",
            get(get_token).put(update_token).delete(delete_token),
        )
        .route(
            "/accounts/{account_id}/tokens/{token_id}/value",
            put(roll_token),
        )
}

fn token_not_found() -> ApiError {
    ApiError::not_found(1003, "token not found")
}

/// A malformed token id cannot name a token, so it is simply not found.
fn parse_token_id(raw: &str) -> Result<TokenId, ApiError> {
    TokenId::parse(raw).ok_or_else(token_not_found)
}

/// A token may only manage grants its caller holds: it may not hand on a
/// permission group it lacks (create, update), nor take over a token that
/// holds one (update, roll, delete), since rolling such a token would give
/// the caller its secret.
fn ensure_caller_holds(
    principal: &Principal,
    account: &AccountId,
    policies: &[TokenPolicy],
) -> Result<(), ApiError> {
    let Principal::Token(caller) = principal else {
        return Ok(());
    };
    let exceeds = policies
        .iter()
        .filter(|p| p.effect == Effect::Allow)
        .flat_map(|p| p.permission_groups.iter())
        .any(|group| !holds_group(&caller.policies, account, group));
    if exceeds {
        return Err(ApiError::Forbidden);
    }
    Ok(())
}

/// <https://developers.cloudflare.com/api/resources/accounts/subresources/tokens/methods/create/>
async fn create_token(
    State(state): State<AppState>,
    caller: Authorized<TokensWrite>,
    ApiJson(body): ApiJson<TokenRequest>,
) -> Result<Success<TokenView>, ApiError> {
    let spec = body.into_spec(&caller.account)?;
    ensure_caller_holds(&caller.principal, &caller.account, &spec.policies)?;
    let now = Timestamp::now();
    let token = ApiToken {
        id: TokenId::generate(),
        account_id: caller.account,
        name: spec.name,
        status: spec.status,
        policies: spec.policies,
        condition: spec.condition,
        not_before: spec.not_before,
        expires_on: spec.expires_on,
        issued_on: now,
        modified_on: now,
        last_used_on: None,
    };
    let secret = secret::mint(SecretKind::AccountToken);
    state.store.create_token(&token, &secret.hash).await?;
    Ok(Success::ok(TokenView::with_value(
        &token,
        now,
        secret.value,
    )))
}

#[derive(Deserialize)]
pub struct ListTokensQuery {
    direction: Option<String>,
    include_expired: Option<bool>,
}

const TOKEN_PAGES: PageLimits = PageLimits {
    min_per_page: 5,
    max_per_page: 50,
    default_per_page: 20,
};

/// <https://developers.cloudflare.com/api/resources/accounts/subresources/tokens/methods/list/>
async fn list_tokens(
    State(state): State<AppState>,
    caller: Authorized<TokensRead>,
    ApiQuery(query): ApiQuery<ListTokensQuery>,
    ApiQuery(pages): ApiQuery<PageParams>,
) -> Result<Success<Vec<TokenView>>, ApiError> {
    let page = pages.resolve(&TOKEN_PAGES)?;
    let now = Timestamp::now();
    let listing = TokenListing {
        direction: parse_direction(query.direction.as_deref())?,
        include_expired: query.include_expired.unwrap_or(false),
        now,
    };
    let tokens = state
        .store
        .list_tokens(&caller.account, listing, page)
        .await?;
    Ok(Success::page(tokens.map(|t| TokenView::new(&t, now))))
}

async fn load(state: &AppState, account: &AccountId, raw_id: &str) -> Result<ApiToken, ApiError> {
    let id = parse_token_id(raw_id)?;
    state
        .store
        .find_token(account, &id)
        .await?
        .ok_or_else(token_not_found)
}

/// Why a write guarded by the version the permission check read did not
/// apply: the token is gone, or another request changed it first.
async fn changed_meanwhile(state: &AppState, token: &ApiToken) -> ApiError {
    match state.store.find_token(&token.account_id, &token.id).await {
        Ok(Some(_)) => ApiError::conflict(
            1001,
            "the token was changed by another request while this one ran; read it again and retry",
        ),
        Ok(None) => token_not_found(),
        Err(err) => err.into(),
    }
}

#[derive(Deserialize)]
pub struct TokenPath {
    #[allow(dead_code, reason = "validated by the Authorized extractor")]
    account_id: String,
    token_id: String,
}

/// <https://developers.cloudflare.com/api/resources/accounts/subresources/tokens/methods/get/>
async fn get_token(
    State(state): State<AppState>,
    caller: Authorized<TokensRead>,
    Path(path): Path<TokenPath>,
) -> Result<Success<TokenView>, ApiError> {
    let token = load(&state, &caller.account, &path.token_id).await?;
    Ok(Success::ok(TokenView::new(&token, Timestamp::now())))
}

/// <https://developers.cloudflare.com/api/resources/accounts/subresources/tokens/methods/update/>
async fn update_token(
    State(state): State<AppState>,
    caller: Authorized<TokensWrite>,
    Path(path): Path<TokenPath>,
    ApiJson(body): ApiJson<TokenRequest>,
) -> Result<Success<TokenView>, ApiError> {
    let mut token = load(&state, &caller.account, &path.token_id).await?;
    ensure_caller_holds(&caller.principal, &caller.account, &token.policies)?;
    let checked_version = token.modified_on;
    let spec = body.into_spec(&caller.account)?;
    ensure_caller_holds(&caller.principal, &caller.account, &spec.policies)?;
    let now = Timestamp::now();
    token.name = spec.name;
    token.status = spec.status;
    token.policies = spec.policies;
    token.condition = spec.condition;
    token.not_before = spec.not_before;
    token.expires_on = spec.expires_on;
    token.modified_on = now;
    if !state.store.replace_token(&token, checked_version).await? {
        return Err(changed_meanwhile(&state, &token).await);
    }
    Ok(Success::ok(TokenView::new(&token, now)))
}

/// <https://developers.cloudflare.com/api/resources/accounts/subresources/tokens/methods/delete/>
async fn delete_token(
    State(state): State<AppState>,
    caller: Authorized<TokensWrite>,
    Path(path): Path<TokenPath>,
) -> Result<Success<Deleted<TokenId>>, ApiError> {
    let token = load(&state, &caller.account, &path.token_id).await?;
    ensure_caller_holds(&caller.principal, &caller.account, &token.policies)?;
    if !state.store.delete_token(&token, token.modified_on).await? {
        return Err(changed_meanwhile(&state, &token).await);
    }
    Ok(Success::ok(Deleted { id: token.id }))
}

/// <https://developers.cloudflare.com/api/resources/accounts/subresources/tokens/subresources/value/methods/update/>
async fn roll_token(
    State(state): State<AppState>,
    caller: Authorized<TokensWrite>,
    Path(path): Path<TokenPath>,
) -> Result<Success<String>, ApiError> {
    let token = load(&state, &caller.account, &path.token_id).await?;
    ensure_caller_holds(&caller.principal, &caller.account, &token.policies)?;
    let secret = secret::mint(SecretKind::AccountToken);
    let rolled = state
        .store
        .roll_token_secret(&token, token.modified_on, &secret.hash, Timestamp::now())
        .await?;
    if !rolled {
        return Err(changed_meanwhile(&state, &token).await);
    }
    Ok(Success::ok(secret.value))
}

/// <https://developers.cloudflare.com/api/resources/accounts/subresources/tokens/methods/verify/>
///
/// Unlike every other operation, verify answers for a disabled or expired
/// token too, reporting its true status.
async fn verify_token(caller: Presented) -> Result<Success<VerifyView>, ApiError> {
    let view = match caller.principal {
        Principal::Admin { token_id } => VerifyView::admin(token_id),
        Principal::Token(token) => {
            if token.account_id != caller.account {
                return Err(ApiError::Forbidden);
            }
            if !token.condition.admits(caller.ip) {
                return Err(ApiError::InvalidToken);
            }
            VerifyView::new(&token, Timestamp::now())
        }
    };
    Ok(Success::ok(view).with_message(10000, "This API Token is valid and active"))
}
