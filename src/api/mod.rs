//! The Cloudflare-shaped v4 API, one file per resource. Handlers stay thin:
//! they check input, call the store and shape the answer.

pub mod accounts;
pub mod envelope;
pub mod extract;
mod permission_groups;
mod token_request;
mod token_view;
mod tokens;
mod user_tokens;

use axum::Router;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(accounts::router())
        .merge(tokens::router())
        .merge(permission_groups::router())
        .merge(user_tokens::router())
}
