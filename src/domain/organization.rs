//! An account's Zero Trust organization: its team domain, where sign-in and
//! the global session live, and the lifetime of that session.

use serde_json::{Map, Value};

use crate::domain::{AccountId, Timestamp};

/// The global session lasts this long unless the organization says otherwise.
pub const DEFAULT_SESSION_SECONDS: i64 = 24 * 3600;

#[derive(Clone, Debug, PartialEq)]
pub struct Organization {
    pub account_id: AccountId,
    /// The team domain: a host (and optional port), lowercase.
    pub auth_domain: String,
    pub name: String,
    /// Go-style duration of the global session.
    pub session_duration: Option<String>,
    /// Every other setting, as validated JSON fields.
    pub settings: Map<String, Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Organization {
    /// Seconds a global session lasts.
    pub fn session_seconds(&self) -> i64 {
        self.session_duration
            .as_deref()
            .and_then(|raw| crate::domain::duration::parse(raw).ok())
            .and_then(|d| i64::try_from(d.as_secs()).ok())
            .filter(|s| *s > 0)
            .unwrap_or(DEFAULT_SESSION_SECONDS)
    }
}
