//! The body of token create and replace, and its validation into a
//! [`TokenSpec`]. Every refusal names the field with a JSON Pointer.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use crate::domain::permission::{SCOPE_ACCOUNT, SCOPE_ZONE, find_group};
use crate::domain::token::{
    Effect, IpCondition, ResourceGrant, StoredStatus, TokenPolicy, TokenSpec,
};
use crate::domain::{AccountId, PolicyId, Timestamp};
use crate::error::ApiError;

const MAX_NAME_CHARS: usize = 120;
const MAX_POLICIES: usize = 50;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    name: String,
    policies: Vec<PolicyInput>,
    #[serde(default)]
    condition: Option<ConditionInput>,
    #[serde(default)]
    not_before: Option<String>,
    #[serde(default)]
    expires_on: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyInput {
    #[serde(default)]
    id: Option<String>,
    effect: Effect,
    permission_groups: Vec<GroupRef>,
    resources: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupRef {
    id: String,
    #[allow(
        dead_code,
        reason = "echoed by clients that send a fetched token back; the id decides"
    )]
    #[serde(default)]
    name: Option<String>,
    #[allow(
        dead_code,
        reason = "optional descriptive data the API ignores on input"
    )]
    #[serde(default)]
    meta: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionInput {
    #[serde(default, alias = "request.ip")]
    request_ip: Option<IpRangeInput>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IpRangeInput {
    #[serde(default, rename = "in")]
    allow: Vec<String>,
    #[serde(default)]
    not_in: Vec<String>,
}

impl TokenRequest {
    /// Validates the request for a token owned by `account`.
    pub fn into_spec(self, account: &AccountId) -> Result<TokenSpec, ApiError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(ApiError::field(
                "/name",
                format!("name must be 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        if self.policies.is_empty() || self.policies.len() > MAX_POLICIES {
            return Err(ApiError::field(
                "/policies",
                format!("policies must hold 1 to {MAX_POLICIES} policies"),
            ));
        }
        let policies = self
            .policies
            .into_iter()
            .enumerate()
            .map(|(i, policy)| policy.validate(&format!("/policies/{i}"), account))
            .collect::<Result<Vec<_>, _>>()?;
        let condition = match self.condition.and_then(|c| c.request_ip) {
            None => IpCondition::default(),
            Some(range) => IpCondition {
                allow: parse_nets(&range.allow, "/condition/request_ip/in")?,
                deny: parse_nets(&range.not_in, "/condition/request_ip/not_in")?,
            },
        };
        let not_before = parse_instant(self.not_before.as_deref(), "/not_before")?;
        let expires_on = parse_instant(self.expires_on.as_deref(), "/expires_on")?;
        if let (Some(start), Some(end)) = (not_before, expires_on)
            && start >= end
        {
            return Err(ApiError::field(
                "/expires_on",
                "expires_on must be later than not_before",
            ));
        }
        let status = match self.status.as_deref() {
            None => StoredStatus::Active,
            Some("expired") => {
                return Err(ApiError::field(
                    "/status",
                    "status `expired` cannot be set; it follows from expires_on",
                ));
            }
            Some(raw) => StoredStatus::parse(raw).ok_or_else(|| {
                ApiError::field(
                    "/status",
                    format!("status must be active or disabled, got {raw:?}"),
                )
            })?,
        };
        Ok(TokenSpec {
            name: name.to_string(),
            status,
            policies,
            condition,
            not_before,
            expires_on,
        })
    }
}

impl PolicyInput {
    fn validate(self, at: &str, account: &AccountId) -> Result<TokenPolicy, ApiError> {
        if self.permission_groups.is_empty() {
            return Err(ApiError::field(
                &format!("{at}/permission_groups"),
                "permission_groups must name at least one group",
            ));
        }
        let mut groups = Vec::with_capacity(self.permission_groups.len());
        for (i, group) in self.permission_groups.iter().enumerate() {
            let id = group.id.to_ascii_lowercase();
            let known =
                find_group(&id).filter(|g| g.scope == SCOPE_ACCOUNT || g.scope == SCOPE_ZONE);
            if known.is_none() {
                return Err(ApiError::field(
                    &format!("{at}/permission_groups/{i}/id"),
                    format!(
                        "unknown permission group {:?}; list the valid ones at \
                         GET /accounts/{account}/tokens/permission_groups",
                        group.id
                    ),
                ));
            }
            groups.push(id);
        }
        if self.resources.is_empty() {
            return Err(ApiError::field(
                &format!("{at}/resources"),
                "resources must not be empty",
            ));
        }
        let mut resources = BTreeMap::new();
        for (key, value) in self.resources {
            let pointer = format!(
                "{at}/resources/{}",
                key.replace('~', "~0").replace('/', "~1")
            );
            let grant = resource_grant(&key, value, account, &pointer)?;
            resources.insert(key, grant);
        }
        let id = self
            .id
            .as_deref()
            .and_then(PolicyId::parse)
            .unwrap_or_else(PolicyId::generate);
        Ok(TokenPolicy {
            id,
            effect: self.effect,
            permission_groups: groups,
            resources,
        })
    }
}

fn is_zone_key(key: &str) -> bool {
    key.strip_prefix(SCOPE_ZONE)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|zone| zone == "*" || AccountId::parse(zone).is_some())
}

/// An account-owned token may name its own account (or every account, which
/// for such a token is the same thing) and zones.
fn resource_grant(
    key: &str,
    value: Value,
    account: &AccountId,
    pointer: &str,
) -> Result<ResourceGrant, ApiError> {
    let own_account =
        key == format!("{SCOPE_ACCOUNT}.{account}") || key == format!("{SCOPE_ACCOUNT}.*");
    let zone = is_zone_key(key);
    if !own_account && !zone {
        return Err(ApiError::field(
            pointer,
            format!(
                "resource {key:?} is not allowed here: use \"{SCOPE_ACCOUNT}.{account}\" \
                 or a zone key \"{SCOPE_ZONE}.<zone id>\""
            ),
        ));
    }
    match value {
        Value::String(star) if star == "*" => Ok(ResourceGrant::All),
        Value::Object(map) if own_account => {
            let mut zones = BTreeMap::new();
            for (zone_key, zone_value) in map {
                if !is_zone_key(&zone_key) || zone_value != Value::String("*".into()) {
                    return Err(ApiError::field(
                        pointer,
                        "a nested resource map may only hold zone keys with the value \"*\"",
                    ));
                }
                zones.insert(zone_key, "*".to_string());
            }
            Ok(ResourceGrant::Nested(zones))
        }
        _ => Err(ApiError::field(
            pointer,
            "a resource value must be \"*\" (or, under an account, a map of zone keys)",
        )),
    }
}

fn parse_nets(raw: &[String], at: &str) -> Result<Vec<IpNet>, ApiError> {
    raw.iter()
        .enumerate()
        .map(|(i, text)| {
            text.parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    ApiError::field(
                        &format!("{at}/{i}"),
                        format!("{text:?} is not an IPv4 or IPv6 CIDR such as 192.0.2.0/24"),
                    )
                })
        })
        .collect()
}

fn parse_instant(raw: Option<&str>, at: &str) -> Result<Option<Timestamp>, ApiError> {
    raw.map(|text| {
        Timestamp::parse(text).ok_or_else(|| {
            ApiError::field(
                at,
                format!("{text:?} is not an RFC 3339 date-time such as 2030-01-01T00:00:00Z"),
            )
        })
    })
    .transpose()
}
