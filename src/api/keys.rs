//! The signing-key configuration: `/accounts/{account_id}/access/keys`.
//! Cloudflare publishes no permission group for it; accessd guards it with
//! the organization group (read to look, write to change or rotate).

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::envelope::Success;
use super::extract::AccessJson;
use crate::app::AppState;
use crate::auth::Authorized;
use crate::auth::app_token::{self, Rotation};
use crate::auth::operations::{IdpsRead, IdpsWrite};
use crate::domain::{AccountId, Timestamp};
use crate::error::{ApiError, Family};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/accounts/{account_id}/access/keys",
            get(get_keys).put(update_keys),
        )
        .route(
            "/accounts/{account_id}/access/keys/rotate",
            post(rotate_keys),
        )
}

#[derive(Serialize)]
pub struct KeysView {
    days_until_next_rotation: i64,
    key_rotation_interval_days: i64,
    last_key_rotation_at: Timestamp,
}

async fn view(state: &AppState, account: &AccountId) -> Result<KeysView, ApiError> {
    let key = app_token::signing_key(&state.store, account).await?;
    let interval = state.store.key_rotation_days(account).await?;
    let age_days = (Timestamp::now().unix_seconds() - key.created_at.unix_seconds()) / 86_400;
    Ok(KeysView {
        days_until_next_rotation: (interval - age_days).max(0),
        key_rotation_interval_days: interval,
        last_key_rotation_at: key.created_at,
    })
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/keys/methods/get/>
async fn get_keys(
    State(state): State<AppState>,
    caller: Authorized<IdpsRead>,
) -> Result<Success<KeysView>, ApiError> {
    Ok(Success::ok(view(&state, &caller.account).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysRequest {
    key_rotation_interval_days: i64,
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/keys/methods/update/>
async fn update_keys(
    State(state): State<AppState>,
    caller: Authorized<IdpsWrite>,
    AccessJson(body): AccessJson<KeysRequest>,
) -> Result<Success<KeysView>, ApiError> {
    if !(21..=365).contains(&body.key_rotation_interval_days) {
        return Err(ApiError::field(
            "/key_rotation_interval_days",
            "must be between 21 and 365 days",
        )
        .in_family(Family::Access));
    }
    state
        .store
        .set_key_rotation_days(&caller.account, body.key_rotation_interval_days)
        .await?;
    Ok(Success::ok(view(&state, &caller.account).await?))
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/keys/methods/rotate/>
///
/// The new key signs from now on; the previous one keeps verifying for a week.
/// A rotation within a minute of the previous one is refused with 429 and
/// `Retry-After`.
async fn rotate_keys(
    State(state): State<AppState>,
    caller: Authorized<IdpsWrite>,
) -> Result<Success<KeysView>, ApiError> {
    match app_token::rotate_on_request(&state.store, &caller.account).await? {
        Rotation::Rotated(_) => Ok(Success::ok(view(&state, &caller.account).await?)),
        Rotation::TooSoon {
            retry_after_seconds,
        } => Err(ApiError::TooManyRequests {
            retry_after_seconds: u64::try_from(retry_after_seconds).unwrap_or(1),
            message: format!(
                "access.api.error.rate_limited: keys were rotated less than {} seconds ago",
                app_token::MIN_SECONDS_BETWEEN_ROTATIONS
            ),
        }),
    }
}
