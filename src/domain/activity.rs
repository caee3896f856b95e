//! What logins leave behind: sessions, the identity captured at each login,
//! and failed attempts. The identity's field names are those of the wire
//! (two of them camelCase), since it is stored and served as one document.

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::user::UserId;
use super::{AccountId, Timestamp};

/// A global session's identifier: 16 alphanumerics, the JWT's `identity_nonce`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionNonce(String);

impl SessionNonce {
    pub fn generate() -> Self {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rngs::OsRng;
        Self(
            (0..16)
                .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
                .collect(),
        )
    }

    pub fn parse(raw: &str) -> Option<Self> {
        (!raw.is_empty() && raw.len() <= 64 && raw.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Identity {
    pub account_id: String,
    pub auth_status: String,
    pub common_name: String,
    pub device_id: String,
    pub device_sessions: BTreeMap<String, DeviceSession>,
    #[serde(rename = "devicePosture")]
    pub device_posture: BTreeMap<String, DevicePosture>,
    pub email: String,
    pub geo: Geo,
    pub iat: i64,
    pub idp: IdpRef,
    pub ip: String,
    pub is_gateway: bool,
    pub is_warp: bool,
    pub mtls_auth: MtlsAuth,
    pub service_token_id: String,
    pub service_token_status: bool,
    pub user_uuid: String,
    pub version: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceSession {
    pub last_authenticated: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DevicePosture {
    pub id: String,
    pub check: PostureCheck,
    pub data: serde_json::Value,
    pub description: String,
    pub error: String,
    pub rule_name: String,
    pub success: bool,
    pub timestamp: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PostureCheck {
    pub exists: bool,
    pub path: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Geo {
    pub country: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IdpRef {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MtlsAuth {
    pub auth_status: String,
    pub cert_issuer_dn: String,
    pub cert_issuer_ski: String,
    pub cert_presented: bool,
    pub cert_serial: String,
}

impl Default for MtlsAuth {
    fn default() -> Self {
        Self {
            auth_status: "NONE".to_string(),
            cert_issuer_dn: String::new(),
            cert_issuer_ski: String::new(),
            cert_presented: false,
            cert_serial: String::new(),
        }
    }
}

/// One application a session was used for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionApp {
    pub hostname: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub uid: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub nonce: SessionNonce,
    pub account_id: AccountId,
    pub user_id: UserId,
    /// The user's name (or e-mail) at login.
    pub name: String,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    /// Applications used from this session, keyed by application id.
    pub apps: BTreeMap<String, SessionApp>,
    pub identity: Identity,
}

impl Session {
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }

    pub fn ttl_seconds(&self) -> i64 {
        self.expires_at.unix_seconds() - self.issued_at.unix_seconds()
    }
}

/// The metadata Cloudflare shows for a failed login, plus why it failed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FailedLoginMetadata {
    pub app_name: String,
    pub aud: String,
    /// RFC 3339 with milliseconds, as Cloudflare writes it.
    pub datetime: String,
    pub ray_id: String,
    pub user_email: String,
    pub user_uuid: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedLogin {
    pub account_id: AccountId,
    pub user_id: UserId,
    pub occurred_at: Timestamp,
    /// When the record is purged.
    pub expires_at: Timestamp,
    pub metadata: FailedLoginMetadata,
}

/// A Ray ID: 16 hex characters identifying one request.
pub fn new_ray_id() -> String {
    let bytes: [u8; 8] = rand::rngs::OsRng.r#gen();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_serialises_with_the_wire_names() {
        let json = serde_json::to_value(Identity::default()).unwrap_or_default();
        assert!(json.get("devicePosture").is_some());
        assert!(json.get("device_posture").is_none());
        assert_eq!(json["idp"], serde_json::json!({"id": "", "type": ""}));
        assert_eq!(json["mtls_auth"]["auth_status"], "NONE");
    }

    #[test]
    fn nonces_are_sixteen_alphanumerics() {
        let nonce = SessionNonce::generate();
        assert_eq!(nonce.as_str().len(), 16);
        assert_eq!(SessionNonce::parse(nonce.as_str()), Some(nonce));
        assert!(SessionNonce::parse("has space").is_none());
    }
}
