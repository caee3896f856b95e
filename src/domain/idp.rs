//! Identity providers: where users prove who they are.

use serde::{Deserialize, Serialize};

use super::{AccountId, IdpId, Timestamp};

/// Settings of a generic OpenID Connect provider.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcConfig {
    pub client_id: String,
    pub client_secret: String,
    pub auth_url: String,
    pub token_url: String,
    pub certs_url: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub claims: Vec<String>,
    #[serde(default)]
    pub email_claim_name: Option<String>,
    #[serde(default)]
    pub pkce_enabled: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum IdpConfig {
    /// A one-time PIN sent by e-mail.
    OneTimePin,
    Oidc(OidcConfig),
}

impl IdpConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            IdpConfig::OneTimePin => "onetimepin",
            IdpConfig::Oidc(_) => "oidc",
        }
    }
}

/// What a changed name or e-mail pushed over SCIM does to the Access user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityUpdate {
    #[default]
    Automatic,
    Reauth,
    NoAction,
}

impl IdentityUpdate {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityUpdate::Automatic => "automatic",
            IdentityUpdate::Reauth => "reauth",
            IdentityUpdate::NoAction => "no_action",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(raw.to_string())).ok()
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScimSettings {
    pub enabled: bool,
    /// Revoke the user's sessions when the provider deprovisions them.
    pub user_deprovision: bool,
    /// Also free their seat (requires `user_deprovision`).
    pub seat_deprovision: bool,
    pub identity_update: IdentityUpdate,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityProvider {
    pub id: IdpId,
    pub account_id: AccountId,
    pub name: String,
    pub config: IdpConfig,
    pub scim: ScimSettings,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
