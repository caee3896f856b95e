//! Plain types and rules of accessd: identifiers, timestamps, accounts, API
//! tokens and the permission-group catalog. Nothing here knows about HTTP or
//! SQL, so the same rules serve the v4 API, the CLI and the store.

pub mod access_group;
pub mod account;
pub mod activity;
pub mod app;
pub mod duration;
pub mod idp;
pub mod ids;
pub mod organization;
pub mod permission;
pub mod policy;
pub mod secret;
pub mod service_token;
pub mod time;
pub mod token;
pub mod user;

pub use ids::{AccessPolicyId, AccountId, AppId, IdpId, PolicyId, SeatId, TokenId, UserId};
pub use time::Timestamp;
