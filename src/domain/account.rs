//! Accounts: the tenant boundary. Every other record belongs to exactly one.

use super::{AccountId, Timestamp};

pub const MAX_NAME_CHARS: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountType {
    Standard,
    Enterprise,
}

impl AccountType {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::Standard => "standard",
            AccountType::Enterprise => "enterprise",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "standard" => Some(AccountType::Standard),
            "enterprise" => Some(AccountType::Enterprise),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccountSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abuse_contact_email: Option<String>,
    #[serde(default)]
    pub enforce_twofactor: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub account_type: AccountType,
    pub settings: AccountSettings,
    pub created_on: Timestamp,
}

/// A display name: trimmed, non-empty, at most 100 characters.
pub fn parse_name(raw: &str) -> Result<String, &'static str> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        Err("must not be empty")
    } else if trimmed.chars().count() > MAX_NAME_CHARS {
        Err("must be at most 100 characters")
    } else {
        Ok(trimmed.to_string())
    }
}
