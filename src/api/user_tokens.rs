//! `/user/tokens/verify`: many tools call it first to check their credential.
//! The admin token is the only user-level token accessd has.

use axum::Router;
use axum::routing::get;

use super::envelope::Success;
use super::token_view::VerifyView;
use crate::app::AppState;
use crate::auth::{Authenticated, Principal};
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new().route("/user/tokens/verify", get(verify_user_token))
}

/// <https://developers.cloudflare.com/api/resources/user/subresources/tokens/methods/verify/>
///
/// An account-owned token is refused here, as Cloudflare does: it must be
/// verified at `/accounts/{account_id}/tokens/verify`.
async fn verify_user_token(caller: Authenticated) -> Result<Success<VerifyView>, ApiError> {
    match caller.principal {
        Principal::Admin { token_id } => Ok(Success::ok(VerifyView::admin(token_id))
            .with_message(10000, "This API Token is valid and active")),
        Principal::Token(_) => Err(ApiError::InvalidToken),
    }
}
