//! The Cloudflare-shaped v4 API, one file per resource. Handlers stay thin:
//! they check input, call the store and shape the answer.

pub mod access_groups;
pub mod access_user_records;
pub mod access_users;
pub mod accounts;
pub mod apps;
pub mod envelope;
pub mod extract;
pub mod identity_providers;
mod keys;
mod organizations;
mod permission_groups;
pub mod policies;
mod revocation;
mod scim_listings;
pub mod service_tokens;
pub mod snapshots;
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
        .merge(access_users::router())
        .merge(access_user_records::router())
        .merge(identity_providers::router())
        .merge(policies::router())
        .merge(access_groups::router())
        .merge(apps::router())
        .merge(revocation::router())
        .merge(keys::router())
        .merge(organizations::router())
        .merge(scim_listings::router())
        .merge(service_tokens::router())
}
