//! SCIM 2.0 (RFC 7643, RFC 7644): what identity providers push.

pub mod error;
pub mod filter;
pub mod patch;
