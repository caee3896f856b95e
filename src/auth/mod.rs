//! Who is calling and what they may do.
//!
//! [`identify`] turns the credential headers into a [`Principal`];
//! [`Authorized`] is the extractor handlers put in their signature to demand a
//! permission on the account named in the path; [`Authenticated`] is for the
//! few operations that are not scoped to one account.

pub mod app_token;
mod credentials;
mod extract;
pub mod operations;
pub mod service_token;
pub mod signing_key;

pub use credentials::{Principal, identify};
pub use extract::{Admin, Authenticated, Authorized, Presented, client_ip};
pub use operations::Operation;
