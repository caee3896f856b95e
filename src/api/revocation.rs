//! Ending sessions and freeing seats: `organizations/revoke_user` and `seats`.

use axum::Router;
use axum::extract::State;
use axum::routing::{patch, post};
use serde::{Deserialize, Serialize};

use super::envelope::Success;
use super::extract::{AccessJson, AccessQuery};
use crate::app::AppState;
use crate::auth::Authorized;
use crate::auth::operations::{RevokeUsers, SeatsWrite};
use crate::domain::{SeatId, Timestamp, UserId};
use crate::error::{ApiError, Family};
use crate::store::users::{SeatChange, SeatRecord};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/accounts/{account_id}/access/organizations/revoke_user",
            post(revoke_user),
        )
        .route("/accounts/{account_id}/access/seats", patch(update_seats))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeUserRequest {
    email: String,
    user_uid: Option<String>,
    #[allow(
        dead_code,
        reason = "accessd enrols no devices; accepted for SDK compatibility"
    )]
    devices: Option<bool>,
    /// The TypeScript SDK's spelling of `devices`.
    #[allow(
        dead_code,
        reason = "accessd enrols no devices; accepted for SDK compatibility"
    )]
    body_devices: Option<bool>,
    #[allow(
        dead_code,
        reason = "accessd runs no WARP sessions; accepted for SDK compatibility"
    )]
    warp_session_reauth: Option<bool>,
}

#[derive(Deserialize)]
pub struct RevokeUserQuery {
    #[allow(
        dead_code,
        reason = "accessd enrols no devices; accepted for SDK compatibility"
    )]
    devices: Option<bool>,
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/organizations/methods/revoke_users/>
///
/// Ends every session of the user (the seat stays). `result` is false when
/// no user has that e-mail.
async fn revoke_user(
    State(state): State<AppState>,
    caller: Authorized<RevokeUsers>,
    AccessQuery(_query): AccessQuery<RevokeUserQuery>,
    AccessJson(body): AccessJson<RevokeUserRequest>,
) -> Result<Success<bool>, ApiError> {
    let Some(user) = state
        .store
        .find_user_by_email(&caller.account, &body.email)
        .await?
    else {
        return Ok(Success::ok(false));
    };
    if let Some(raw) = &body.user_uid
        && UserId::parse(raw).as_ref() != Some(&user.id)
    {
        return Err(ApiError::field(
            "/user_uid",
            "user_uid does not belong to the user with this email",
        )
        .in_family(Family::Access));
    }
    state
        .store
        .revoke_user_sessions(&user.id, Timestamp::now())
        .await?;
    Ok(Success::ok(true))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeatRequest {
    access_seat: bool,
    gateway_seat: bool,
    seat_uid: String,
    #[allow(
        dead_code,
        reason = "read-only; accepted so a fetched seat can be sent back"
    )]
    created_at: Option<serde_json::Value>,
    #[allow(
        dead_code,
        reason = "read-only; accepted so a fetched seat can be sent back"
    )]
    updated_at: Option<serde_json::Value>,
}

#[derive(Serialize)]
pub struct SeatView {
    access_seat: bool,
    created_at: Timestamp,
    gateway_seat: bool,
    seat_uid: SeatId,
    updated_at: Timestamp,
}

impl From<SeatRecord> for SeatView {
    fn from(seat: SeatRecord) -> Self {
        Self {
            access_seat: seat.access,
            created_at: seat.created_at,
            gateway_seat: seat.gateway,
            seat_uid: seat.seat_uid,
            updated_at: seat.updated_at,
        }
    }
}

/// Seats one request may change, all in one transaction.
const MAX_SEATS_PER_REQUEST: usize = 1_000;

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/seats/methods/edit/>
///
/// All changes or none. Both flags false removes the user from their seat and
/// ends their sessions; the next login takes a seat again.
async fn update_seats(
    State(state): State<AppState>,
    caller: Authorized<SeatsWrite>,
    AccessJson(body): AccessJson<Vec<SeatRequest>>,
) -> Result<Success<Vec<SeatView>>, ApiError> {
    if body.len() > MAX_SEATS_PER_REQUEST {
        return Err(ApiError::field(
            "",
            format!("at most {MAX_SEATS_PER_REQUEST} seats may be changed in one request"),
        )
        .in_family(Family::Access));
    }
    let mut changes = Vec::with_capacity(body.len());
    for (i, seat) in body.iter().enumerate() {
        let seat_uid = SeatId::parse(&seat.seat_uid).ok_or_else(|| {
            ApiError::field(&format!("/{i}/seat_uid"), "seat_uid must be a UUID")
                .in_family(Family::Access)
        })?;
        changes.push(SeatChange {
            seat_uid,
            access: seat.access_seat,
            gateway: seat.gateway_seat,
        });
    }
    match state
        .store
        .update_seats(&caller.account, &changes, Timestamp::now())
        .await?
    {
        Ok(seats) => Ok(Success::all(
            seats.into_iter().map(SeatView::from).collect(),
        )),
        Err(missing) => Err(ApiError::access_not_found(&format!(
            "seat {missing} not found; nothing was changed"
        ))),
    }
}
