//! Access service tokens: `/accounts/{account_id}/access/service_tokens…`,
//! and reading the credentials a request presents.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::envelope::Success;
use super::extract::{AccessJson, AccessQuery, PageLimits, PageParams};
use crate::app::AppState;
use crate::auth::Authorized;
use crate::auth::operations::{ServiceTokensRead, ServiceTokensWrite};
use crate::domain::service_token::{
    self, DEFAULT_DURATION, NewServiceToken, ServiceToken, ServiceTokenId, StoredServiceToken,
};
use crate::domain::{AccountId, Timestamp};
use crate::error::{ApiError, Family};
use crate::store::service_tokens::{ServiceTokenFilter, next_version};

pub fn router() -> Router<AppState> {
    let base = "/accounts/{account_id}/access/service_tokens";
    Router::new()
        .route(base, get(list_tokens).post(create_token))
        .route(
            &format!("{base}/{{service_token_id}}"),
            get(get_token).put(update_token).delete(delete_token),
        )
        .route(
            &format!("{base}/{{service_token_id}}/refresh"),
            post(refresh_token),
        )
        .route(
            &format!("{base}/{{service_token_id}}/rotate"),
            post(rotate_token),
        )
}

fn invalid(pointer: &str, message: impl Into<String>) -> ApiError {
    ApiError::field(pointer, message).in_family(Family::Access)
}

fn token_not_found() -> ApiError {
    ApiError::access_not_found("service token not found")
}

fn changed_meanwhile() -> ApiError {
    ApiError::conflict(
        12131,
        "access.api.error.conflict: the service token was changed by another request \
         while this one ran; read it again and retry",
    )
}

/// The longest grace period a rotated-out secret may get, as the dashboard allows.
const MAX_GRACE_SECONDS: i64 = 30 * 24 * 3600;
const MAX_NAME_CHARS: usize = 350;

#[derive(Serialize)]
struct ServiceTokenView {
    id: ServiceTokenId,
    client_id: String,
    name: String,
    duration: String,
    enabled: bool,
    expires_at: Option<Timestamp>,
    client_secret_version: i64,
    previous_client_secret_expires_at: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
    last_seen_at: Option<Timestamp>,
    /// Only when a secret was just minted: on create and rotate (and an
    /// update that raised `client_secret_version`).
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

impl ServiceTokenView {
    fn new(token: ServiceToken, client_secret: Option<String>, now: Timestamp) -> Self {
        Self {
            id: token.id,
            client_id: token.client_id,
            name: token.name,
            duration: token.duration,
            enabled: token.enabled,
            expires_at: token.expires_at,
            client_secret_version: token.client_secret_version,
            // Shown while a rotated-out secret still works.
            previous_client_secret_expires_at: token
                .previous_client_secret_expires_at
                .filter(|until| *until > now),
            created_at: token.created_at,
            updated_at: token.updated_at,
            last_seen_at: token.last_seen_at,
            client_secret,
        }
    }
}

/// The body of create and update; update takes every field as optional.
/// Read-only fields of a fetched token are accepted and ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    name: Option<String>,
    duration: Option<String>,
    enabled: Option<bool>,
    client_secret_version: Option<serde_json::Number>,
    previous_client_secret_expires_at: Option<String>,
    #[serde(default, rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(default, rename = "client_id")]
    _client_id: Option<IgnoredAny>,
    #[serde(default, rename = "expires_at")]
    _expires_at: Option<IgnoredAny>,
    #[serde(default, rename = "created_at")]
    _created_at: Option<IgnoredAny>,
    #[serde(default, rename = "updated_at")]
    _updated_at: Option<IgnoredAny>,
    #[serde(default, rename = "last_seen_at")]
    _last_seen_at: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    previous_client_secret_expires_at: Option<String>,
}

fn check_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(
            "/name",
            format!("name must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(name.to_string())
}

/// The expiry a `duration` gives from `now`, after checking it.
fn expiry_for(raw: &str, now: Timestamp) -> Result<Option<Timestamp>, ApiError> {
    let parsed = service_token::parse_duration(raw).map_err(|why| invalid("/duration", why))?;
    Ok(service_token::expiry(now, parsed))
}

/// `client_secret_version`: a whole number from 1 (the SDKs send a float).
fn check_version(raw: &serde_json::Number) -> Result<i64, ApiError> {
    let whole = raw
        .as_i64()
        .or_else(|| raw.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64));
    whole
        .filter(|v| (1..=i64::from(i32::MAX)).contains(v))
        .ok_or_else(|| {
            invalid(
                "/client_secret_version",
                "client_secret_version must be a whole number from 1",
            )
        })
}

const GRACE_POINTER: &str = "/previous_client_secret_expires_at";

fn parse_instant(raw: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse(raw).ok_or_else(|| {
        invalid(
            GRACE_POINTER,
            "must be an RFC 3339 date-time such as 2030-01-01T00:00:00Z",
        )
    })
}

/// Until when a rotated-out secret keeps working: `None` when the caller
/// gives no time or one already past (it stops at once).
fn grace_end(raw: Option<&str>, now: Timestamp) -> Result<Option<Timestamp>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let until = parse_instant(raw)?;
    if until > now.plus_seconds(MAX_GRACE_SECONDS) {
        return Err(invalid(
            GRACE_POINTER,
            "a previous secret may keep working for at most 30 days",
        ));
    }
    Ok((until > now).then_some(until))
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/service_tokens/methods/create/>
async fn create_token(
    State(state): State<AppState>,
    caller: Authorized<ServiceTokensWrite>,
    AccessJson(body): AccessJson<TokenRequest>,
) -> Result<Success<ServiceTokenView>, ApiError> {
    let now = Timestamp::now();
    let name = check_name(body.name.as_deref().unwrap_or_default())?;
    let duration = body
        .duration
        .unwrap_or_else(|| DEFAULT_DURATION.to_string());
    let expires_at = expiry_for(&duration, now)?;
    let version = body
        .client_secret_version
        .as_ref()
        .map(check_version)
        .transpose()?
        .unwrap_or(1);
    // A new token has no previous secret: the field (which the SDKs send,
    // often years ahead) is only checked to be a date-time.
    if let Some(raw) = body.previous_client_secret_expires_at.as_deref() {
        parse_instant(raw)?;
    }
    let new = NewServiceToken {
        account_id: caller.account,
        name,
        duration,
        expires_at,
        enabled: body.enabled.unwrap_or(true),
        client_secret_version: version,
    };
    let (stored, secret) = StoredServiceToken::issue(new, now);
    state.store.create_service_token(&stored).await?;
    Ok(Success::created(ServiceTokenView::new(
        stored.token,
        Some(secret),
        now,
    )))
}

#[derive(Deserialize)]
struct ListQuery {
    name: Option<String>,
    search: Option<String>,
}

const TOKEN_PAGES: PageLimits = PageLimits {
    min_per_page: 1,
    max_per_page: 1000,
    default_per_page: 100,
};

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/service_tokens/methods/list/>
async fn list_tokens(
    State(state): State<AppState>,
    caller: Authorized<ServiceTokensRead>,
    AccessQuery(query): AccessQuery<ListQuery>,
    AccessQuery(pages): AccessQuery<PageParams>,
) -> Result<Success<Vec<ServiceTokenView>>, ApiError> {
    let page = pages
        .resolve(&TOKEN_PAGES)
        .map_err(|e| e.in_family(Family::Access))?;
    let filter = ServiceTokenFilter {
        name: query.name,
        search: query.search,
    };
    let tokens = state
        .store
        .list_service_tokens(&caller.account, &filter, page)
        .await?;
    let now = Timestamp::now();
    Ok(Success::page(crate::store::Page {
        items: tokens
            .items
            .into_iter()
            .map(|t| ServiceTokenView::new(t, None, now))
            .collect(),
        request: tokens.request,
        total_count: tokens.total_count,
    }))
}

#[derive(Deserialize)]
struct TokenPath {
    #[allow(dead_code, reason = "validated by the Authorized extractor")]
    account_id: String,
    service_token_id: String,
}

async fn load(
    state: &AppState,
    account: &AccountId,
    raw: &str,
) -> Result<StoredServiceToken, ApiError> {
    let id = ServiceTokenId::parse(raw).ok_or_else(token_not_found)?;
    state
        .store
        .find_service_token(account, &id)
        .await?
        .ok_or_else(token_not_found)
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/service_tokens/methods/get/>
async fn get_token(
    State(state): State<AppState>,
    caller: Authorized<ServiceTokensRead>,
    Path(path): Path<TokenPath>,
) -> Result<Success<ServiceTokenView>, ApiError> {
    let stored = load(&state, &caller.account, &path.service_token_id).await?;
    Ok(Success::ok(ServiceTokenView::new(
        stored.token,
        None,
        Timestamp::now(),
    )))
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/service_tokens/methods/update/>
///
/// Absent fields stay as they are. A new `duration` counts from now. A
/// higher `client_secret_version` rotates the secret (the new one is in the
/// answer); `previous_client_secret_expires_at` moves the end of a pending
/// rotation's grace period, either way.
async fn update_token(
    State(state): State<AppState>,
    caller: Authorized<ServiceTokensWrite>,
    Path(path): Path<TokenPath>,
    AccessJson(body): AccessJson<TokenRequest>,
) -> Result<Success<ServiceTokenView>, ApiError> {
    let now = Timestamp::now();
    let stored = load(&state, &caller.account, &path.service_token_id).await?;
    let read_version = stored.token.updated_at;
    let mut token = stored.token.clone();
    if let Some(name) = &body.name {
        token.name = check_name(name)?;
    }
    if let Some(duration) = body.duration {
        token.expires_at = expiry_for(&duration, now)?;
        token.duration = duration;
    }
    if let Some(enabled) = body.enabled {
        token.enabled = enabled;
    }
    let version = match &body.client_secret_version {
        Some(raw) => check_version(raw)?,
        None => token.client_secret_version,
    };
    if version < token.client_secret_version {
        return Err(invalid(
            "/client_secret_version",
            format!(
                "client_secret_version may only grow; it is {}",
                token.client_secret_version
            ),
        ));
    }
    let grace_given = body.previous_client_secret_expires_at.is_some();
    let grace = grace_end(body.previous_client_secret_expires_at.as_deref(), now)?;
    token.updated_at = next_version(&stored.token, now);
    if version > token.client_secret_version {
        token.client_secret_version = version;
        token.previous_client_secret_expires_at = grace;
        return rotate(&state, token, read_version, now)
            .await
            .map(Success::ok);
    }
    if grace_given && stored.previous_secret_hash.is_some() {
        // A time already past ends the grace period now.
        token.previous_client_secret_expires_at = Some(grace.unwrap_or(now));
    }
    if !state
        .store
        .save_service_token(&token, read_version, None)
        .await?
    {
        return Err(changed_meanwhile());
    }
    Ok(Success::ok(ServiceTokenView::new(token, None, now)))
}

/// Saves `token` with a new secret; the secret it had keeps working until
/// `token.previous_client_secret_expires_at`.
async fn rotate(
    state: &AppState,
    token: ServiceToken,
    read_version: Timestamp,
    now: Timestamp,
) -> Result<ServiceTokenView, ApiError> {
    let secret = service_token::mint_client_secret();
    if !state
        .store
        .save_service_token(&token, read_version, Some(&secret.hash))
        .await?
    {
        return Err(changed_meanwhile());
    }
    Ok(ServiceTokenView::new(token, Some(secret.value), now))
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/service_tokens/methods/rotate/>
async fn rotate_token(
    State(state): State<AppState>,
    caller: Authorized<ServiceTokensWrite>,
    Path(path): Path<TokenPath>,
    AccessJson(body): AccessJson<RotateRequest>,
) -> Result<Success<ServiceTokenView>, ApiError> {
    let now = Timestamp::now();
    let stored = load(&state, &caller.account, &path.service_token_id).await?;
    let mut token = stored.token.clone();
    token.previous_client_secret_expires_at =
        grace_end(body.previous_client_secret_expires_at.as_deref(), now)?;
    token.client_secret_version = token.client_secret_version.saturating_add(1);
    token.updated_at = next_version(&stored.token, now);
    rotate(&state, token, stored.token.updated_at, now)
        .await
        .map(Success::ok)
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/service_tokens/methods/refresh/>
///
/// The token now expires one `duration` from now.
async fn refresh_token(
    State(state): State<AppState>,
    caller: Authorized<ServiceTokensWrite>,
    Path(path): Path<TokenPath>,
) -> Result<Success<ServiceTokenView>, ApiError> {
    let now = Timestamp::now();
    let stored = load(&state, &caller.account, &path.service_token_id).await?;
    let mut token = stored.token.clone();
    let duration = service_token::parse_duration(&token.duration)
        .map_err(|why| ApiError::Internal(format!("stored service token duration: {why}")))?;
    token.expires_at = service_token::expiry(now, duration);
    token.updated_at = next_version(&stored.token, now);
    if !state
        .store
        .save_service_token(&token, stored.token.updated_at, None)
        .await?
    {
        return Err(changed_meanwhile());
    }
    Ok(Success::ok(ServiceTokenView::new(token, None, now)))
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/service_tokens/methods/delete/>
///
/// Answers with the deleted token, as Cloudflare does.
async fn delete_token(
    State(state): State<AppState>,
    caller: Authorized<ServiceTokensWrite>,
    Path(path): Path<TokenPath>,
) -> Result<Success<ServiceTokenView>, ApiError> {
    let stored = load(&state, &caller.account, &path.service_token_id).await?;
    if !state
        .store
        .delete_service_token(&caller.account, &stored.token.id)
        .await?
    {
        return Err(token_not_found());
    }
    Ok(Success::ok(ServiceTokenView::new(
        stored.token,
        None,
        Timestamp::now(),
    )))
}
