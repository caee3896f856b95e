//! How tokens look on the wire.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::permission::find_group;
use crate::domain::token::{
    ApiToken, Effect, IpCondition, ResourceGrant, TokenPolicy, TokenStatus,
};
use crate::domain::{PolicyId, Timestamp, TokenId};

#[derive(Serialize)]
pub struct TokenView {
    id: TokenId,
    name: String,
    status: TokenStatus,
    policies: Vec<PolicyView>,
    condition: ConditionView,
    issued_on: Timestamp,
    modified_on: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_on: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_before: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_on: Option<Timestamp>,
    /// The secret: only in the answer to create.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
}

#[derive(Serialize)]
struct PolicyView {
    id: PolicyId,
    effect: Effect,
    permission_groups: Vec<GroupView>,
    resources: BTreeMap<String, ResourceGrant>,
}

#[derive(Serialize)]
struct GroupView {
    id: String,
    name: &'static str,
}

#[derive(Serialize, Default)]
struct ConditionView {
    #[serde(skip_serializing_if = "Option::is_none")]
    request_ip: Option<IpRangeView>,
}

#[derive(Serialize)]
struct IpRangeView {
    #[serde(rename = "in")]
    allow: Vec<String>,
    not_in: Vec<String>,
}

impl From<&TokenPolicy> for PolicyView {
    fn from(policy: &TokenPolicy) -> Self {
        Self {
            id: policy.id.clone(),
            effect: policy.effect,
            permission_groups: policy
                .permission_groups
                .iter()
                .map(|id| GroupView {
                    id: id.clone(),
                    name: find_group(id).map_or("", |g| g.name),
                })
                .collect(),
            resources: policy.resources.clone(),
        }
    }
}

impl From<&IpCondition> for ConditionView {
    fn from(condition: &IpCondition) -> Self {
        if condition.is_empty() {
            return Self::default();
        }
        let texts = |nets: &[ipnet::IpNet]| nets.iter().map(ToString::to_string).collect();
        Self {
            request_ip: Some(IpRangeView {
                allow: texts(&condition.allow),
                not_in: texts(&condition.deny),
            }),
        }
    }
}

impl TokenView {
    pub fn new(token: &ApiToken, now: Timestamp) -> Self {
        Self {
            id: token.id.clone(),
            name: token.name.clone(),
            status: token.status_at(now),
            policies: token.policies.iter().map(PolicyView::from).collect(),
            condition: ConditionView::from(&token.condition),
            issued_on: token.issued_on,
            modified_on: token.modified_on,
            last_used_on: token.last_used_on,
            not_before: token.not_before,
            expires_on: token.expires_on,
            value: None,
        }
    }

    pub fn with_value(token: &ApiToken, now: Timestamp, value: String) -> Self {
        Self {
            value: Some(value),
            ..Self::new(token, now)
        }
    }
}

#[derive(Serialize)]
pub struct VerifyView {
    id: TokenId,
    status: TokenStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_before: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_on: Option<Timestamp>,
}

impl VerifyView {
    pub fn new(token: &ApiToken, now: Timestamp) -> Self {
        Self {
            id: token.id.clone(),
            status: token.status_at(now),
            not_before: token.not_before,
            expires_on: token.expires_on,
        }
    }

    pub fn admin(id: TokenId) -> Self {
        Self {
            id,
            status: TokenStatus::Active,
            not_before: None,
            expires_on: None,
        }
    }
}
