//! Account-owned API tokens: their policies, conditions and life cycle.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{AccountId, PolicyId, Timestamp, TokenId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
}

/// The value under one resource key: `"*"`, or a nested map of zone keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ResourceGrant {
    #[serde(with = "star")]
    All,
    Nested(BTreeMap<String, String>),
}

mod star {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("*")
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
        match String::deserialize(d)?.as_str() {
            "*" => Ok(()),
            other => Err(D::Error::custom(format!("expected \"*\", got {other:?}"))),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPolicy {
    pub id: PolicyId,
    pub effect: Effect,
    /// Permission-group ids from the catalog.
    pub permission_groups: Vec<String>,
    pub resources: BTreeMap<String, ResourceGrant>,
}

/// `condition.request_ip`: when `allow` is non-empty the client address must
/// fall inside it, and `deny` carves exceptions out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpCondition {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

impl IpCondition {
    pub fn admits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let allowed = self.allow.is_empty() || self.allow.iter().any(|net| net.contains(&ip));
        allowed && !self.deny.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

/// The status a client may set; `expired` is derived from `expires_on`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredStatus {
    Active,
    Disabled,
}

impl StoredStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StoredStatus::Active => "active",
            StoredStatus::Disabled => "disabled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "active" => Some(StoredStatus::Active),
            "disabled" => Some(StoredStatus::Disabled),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenStatus {
    Active,
    Disabled,
    Expired,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiToken {
    pub id: TokenId,
    pub account_id: AccountId,
    pub name: String,
    pub status: StoredStatus,
    pub policies: Vec<TokenPolicy>,
    pub condition: IpCondition,
    pub not_before: Option<Timestamp>,
    pub expires_on: Option<Timestamp>,
    pub issued_on: Timestamp,
    pub modified_on: Timestamp,
    pub last_used_on: Option<Timestamp>,
}

impl ApiToken {
    /// The status reported to clients: an expired token says so, whatever its stored status.
    pub fn status_at(&self, now: Timestamp) -> TokenStatus {
        if self.expires_on.is_some_and(|end| now >= end) {
            TokenStatus::Expired
        } else if self.status == StoredStatus::Disabled {
            TokenStatus::Disabled
        } else {
            TokenStatus::Active
        }
    }

    /// Whether the token may authenticate a request from `ip` at `now`.
    pub fn usable(&self, now: Timestamp, ip: IpAddr) -> bool {
        self.status_at(now) == TokenStatus::Active
            && self.not_before.is_none_or(|start| now >= start)
            && self.condition.admits(ip)
    }
}

/// Everything a client chooses about a token, validated; used by create and replace.
#[derive(Clone, Debug)]
pub struct TokenSpec {
    pub name: String,
    pub status: StoredStatus,
    pub policies: Vec<TokenPolicy>,
    pub condition: IpCondition,
    pub not_before: Option<Timestamp>,
    pub expires_on: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(raw: &str) -> IpNet {
        raw.parse().unwrap_or_else(|_| panic!("{raw} is a CIDR"))
    }

    fn ip(raw: &str) -> IpAddr {
        raw.parse().unwrap_or_else(|_| panic!("{raw} is an IP"))
    }

    #[test]
    fn condition_allow_then_carve_out() {
        let c = IpCondition {
            allow: vec![net("10.0.0.0/8")],
            deny: vec![net("10.0.0.1/32")],
        };
        assert!(c.admits(ip("10.1.2.3")));
        assert!(!c.admits(ip("10.0.0.1")));
        assert!(!c.admits(ip("192.168.1.1")));
        assert!(c.admits(ip("::ffff:10.1.2.3")));
        assert!(IpCondition::default().admits(ip("203.0.113.9")));
    }

    #[test]
    fn resources_round_trip_through_json() {
        let raw = r#"{"com.cloudflare.api.account.abc":"*","com.cloudflare.api.account.def":{"com.cloudflare.api.account.zone.*":"*"}}"#;
        let parsed: BTreeMap<String, ResourceGrant> = serde_json::from_str(raw).unwrap_or_default();
        assert_eq!(parsed.len(), 2);
        assert_eq!(serde_json::to_string(&parsed).ok().as_deref(), Some(raw));
        assert!(
            serde_json::from_str::<BTreeMap<String, ResourceGrant>>(r#"{"a":"read"}"#).is_err()
        );
    }
}
