//! The permission-group catalog and the rule that decides whether a token's
//! policies open an operation on an account.
//!
//! Group ids are the stable ids Cloudflare publishes; policies are matched by
//! id because names repeat across scopes.

use super::AccountId;
use super::token::{Effect, ResourceGrant, TokenPolicy};

pub const SCOPE_ACCOUNT: &str = "com.cloudflare.api.account";
pub const SCOPE_ZONE: &str = "com.cloudflare.api.account.zone";
pub const SCOPE_USER: &str = "com.cloudflare.api.user";

#[derive(Debug, PartialEq, Eq)]
pub struct PermissionGroup {
    pub id: &'static str,
    pub name: &'static str,
    pub scope: &'static str,
    pub category: &'static str,
    pub description: &'static str,
}

const fn group(
    id: &'static str,
    name: &'static str,
    scope: &'static str,
    category: &'static str,
    description: &'static str,
) -> PermissionGroup {
    PermissionGroup {
        id,
        name,
        scope,
        category,
        description,
    }
}

const ZT: &str = "cloudflare_one_and_zero_trust";
const BILLING: &str = "account_and_billing";

pub const ACCESS_AUDIT_LOGS_READ: &str = "b05b28e839c54467a7d6cba5d3abb5a3";
pub const ZERO_TRUST_SEATS_WRITE: &str = "a1a6298e52584c8fb6313760a30c681e";
pub const ACCESS_ORGS_IDPS_GROUPS_READ: &str = "26bc23f853634eb4bff59983b9064fde";
pub const ACCESS_ORGS_IDPS_GROUPS_WRITE: &str = "bfe0d8686a584fa680f4c53b5eb0de6d";
pub const ACCESS_ORGS_IDPS_GROUPS_REVOKE: &str = "7121a0c7e9ed46e3829f9cca2bb572aa";
pub const ACCESS_APPS_POLICIES_READ: &str = "7ea222f6d5064cfa89ea366d7c1fee89";
pub const ACCESS_APPS_POLICIES_WRITE: &str = "1e13c5124ca64b72b1969a67e8829049";
pub const ACCESS_APPS_POLICIES_REVOKE: &str = "6c9d1cfcfc6840a987d1b5bfb880a841";
pub const ACCESS_SERVICE_TOKENS_READ: &str = "91f7ce32fa614d73b7e1fc8f0e78582b";
pub const ACCESS_SERVICE_TOKENS_WRITE: &str = "a1c0fec57cf94af79479a6d827fa518c";
pub const ACCOUNT_API_TOKENS_READ: &str = "eb56a6953c034b9d97dd838155666f06";
pub const ACCOUNT_API_TOKENS_WRITE: &str = "5bc3f8b21c554832afc660159ab75fa4";
pub const ACCOUNT_SETTINGS_READ: &str = "c1fde68c7bcc44588cbb6ddbc16d6480";
pub const ACCOUNT_SETTINGS_WRITE: &str = "1af1fa2adc104452b74a9a3364202f20";

pub static CATALOG: &[PermissionGroup] = &[
    group(
        ACCESS_AUDIT_LOGS_READ,
        "Access: Audit Logs Read",
        SCOPE_ACCOUNT,
        ZT,
        "Read Access audit logs, users, their sessions and failed logins",
    ),
    group(
        ZERO_TRUST_SEATS_WRITE,
        "Zero Trust: Seats Write",
        SCOPE_ACCOUNT,
        ZT,
        "Manage Zero Trust seats and Access users",
    ),
    group(
        ACCESS_ORGS_IDPS_GROUPS_READ,
        "Access: Organizations, Identity Providers, and Groups Read",
        SCOPE_ACCOUNT,
        ZT,
        "Read Access organizations, identity providers and groups",
    ),
    group(
        ACCESS_ORGS_IDPS_GROUPS_WRITE,
        "Access: Organizations, Identity Providers, and Groups Write",
        SCOPE_ACCOUNT,
        ZT,
        "Manage Access organizations, identity providers and groups",
    ),
    group(
        ACCESS_ORGS_IDPS_GROUPS_REVOKE,
        "Access: Organizations, Identity Providers, and Groups Revoke",
        SCOPE_ACCOUNT,
        ZT,
        "Revoke Access organization sessions",
    ),
    group(
        ACCESS_APPS_POLICIES_READ,
        "Access: Apps and Policies Read",
        SCOPE_ACCOUNT,
        ZT,
        "Read Access applications and policies",
    ),
    group(
        "eb258a38ea634c86a0c89da6b27cb6b6",
        "Access: Apps and Policies Read",
        SCOPE_ZONE,
        ZT,
        "Read Access applications and policies of a zone",
    ),
    group(
        ACCESS_APPS_POLICIES_WRITE,
        "Access: Apps and Policies Write",
        SCOPE_ACCOUNT,
        ZT,
        "Manage Access applications and policies",
    ),
    group(
        "959972745952452f8be2452be8cbb9f2",
        "Access: Apps and Policies Write",
        SCOPE_ZONE,
        ZT,
        "Manage Access applications and policies of a zone",
    ),
    group(
        ACCESS_APPS_POLICIES_REVOKE,
        "Access: Apps and Policies Revoke",
        SCOPE_ACCOUNT,
        ZT,
        "Revoke Access application tokens",
    ),
    group(
        "6db4e222e21248ac96a3f4c2a81e3b41",
        "Access: Apps and Policies Revoke",
        SCOPE_ZONE,
        ZT,
        "Revoke Access application tokens of a zone",
    ),
    group(
        "b8b7514ce5364cd8ac0455f3eb16eb5f",
        "Access: Policy Test Read",
        SCOPE_ACCOUNT,
        ZT,
        "Read Access policy tests",
    ),
    group(
        "6d23f290472f4e6fad5c4398c057c356",
        "Access: Policy Test Write",
        SCOPE_ACCOUNT,
        ZT,
        "Run Access policy tests",
    ),
    group(
        ACCESS_SERVICE_TOKENS_READ,
        "Access: Service Tokens Read",
        SCOPE_ACCOUNT,
        ZT,
        "Read Access service tokens",
    ),
    group(
        ACCESS_SERVICE_TOKENS_WRITE,
        "Access: Service Tokens Write",
        SCOPE_ACCOUNT,
        ZT,
        "Manage Access service tokens",
    ),
    group(
        ACCOUNT_API_TOKENS_READ,
        "Account API Tokens Read",
        SCOPE_ACCOUNT,
        BILLING,
        "Read account-owned API tokens",
    ),
    group(
        ACCOUNT_API_TOKENS_WRITE,
        "Account API Tokens Write",
        SCOPE_ACCOUNT,
        BILLING,
        "Manage account-owned API tokens",
    ),
    group(
        ACCOUNT_SETTINGS_READ,
        "Account Settings Read",
        SCOPE_ACCOUNT,
        BILLING,
        "Read account settings",
    ),
    group(
        ACCOUNT_SETTINGS_WRITE,
        "Account Settings Write",
        SCOPE_ACCOUNT,
        BILLING,
        "Manage account settings",
    ),
    group(
        "3f376c8e6f764a938b848bd01c8995c4",
        "Zero Trust Read",
        SCOPE_ACCOUNT,
        ZT,
        "Read Zero Trust configuration",
    ),
    group(
        "b33f02c6f7284e05a6f20741c0bb0567",
        "Zero Trust Write",
        SCOPE_ACCOUNT,
        ZT,
        "Manage Zero Trust configuration",
    ),
    group(
        "0cc3a61731504c89b99ec1be78b77aa0",
        "API Tokens Read",
        SCOPE_USER,
        BILLING,
        "Read user API tokens",
    ),
    group(
        "686d18d5ac6c441c867cbf6771e58a0a",
        "API Tokens Write",
        SCOPE_USER,
        BILLING,
        "Manage user API tokens",
    ),
];

pub fn find_group(id: &str) -> Option<&'static PermissionGroup> {
    CATALOG.iter().find(|g| g.id == id)
}

/// Whether a set of token policies opens an operation, accepted by any of
/// `accepted` (group ids), on `account`. An explicit deny beats an allow, and
/// anything not allowed is denied. Groups only count under a resource of
/// their own scope: an account group placed under a zone map grants nothing.
pub fn policies_grant(policies: &[TokenPolicy], account: &AccountId, accepted: &[&str]) -> bool {
    let matching = |effect: Effect| {
        policies.iter().any(|policy| {
            policy.effect == effect
                && policy.covers_account(account)
                && policy.permission_groups.iter().any(|group| {
                    accepted.contains(&group.as_str())
                        && find_group(group).is_some_and(|g| g.scope == SCOPE_ACCOUNT)
                })
        })
    };
    !matching(Effect::Deny) && matching(Effect::Allow)
}

/// Whether the holder of `policies` holds `group` on `account`, so that it may
/// hand the group on to a token it creates.
pub fn holds_group(policies: &[TokenPolicy], account: &AccountId, group: &str) -> bool {
    match find_group(group) {
        Some(g) if g.scope == SCOPE_ACCOUNT => policies_grant(policies, account, &[group]),
        Some(_) => {
            let with = |effect: Effect| {
                policies
                    .iter()
                    .any(|p| p.effect == effect && p.permission_groups.iter().any(|id| id == group))
            };
            with(Effect::Allow) && !with(Effect::Deny)
        }
        None => false,
    }
}

impl TokenPolicy {
    fn covers_account(&self, account: &AccountId) -> bool {
        let exact = format!("{SCOPE_ACCOUNT}.{account}");
        let wildcard = format!("{SCOPE_ACCOUNT}.*");
        self.resources.iter().any(|(key, grant)| {
            matches!(grant, ResourceGrant::All) && (*key == exact || *key == wildcard)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::PolicyId;

    fn account() -> AccountId {
        AccountId::generate()
    }

    fn policy(
        effect: Effect,
        groups: &[&str],
        resources: &[(String, ResourceGrant)],
    ) -> TokenPolicy {
        TokenPolicy {
            id: PolicyId::generate(),
            effect,
            permission_groups: groups.iter().map(|g| g.to_string()).collect(),
            resources: resources.iter().cloned().collect(),
        }
    }

    #[test]
    fn allow_on_the_account_grants() {
        let a = account();
        let p = policy(
            Effect::Allow,
            &[ACCESS_AUDIT_LOGS_READ],
            &[(format!("{SCOPE_ACCOUNT}.{a}"), ResourceGrant::All)],
        );
        assert!(policies_grant(
            std::slice::from_ref(&p),
            &a,
            &[ACCESS_AUDIT_LOGS_READ]
        ));
        assert!(!policies_grant(
            std::slice::from_ref(&p),
            &a,
            &[ZERO_TRUST_SEATS_WRITE]
        ));
        assert!(!policies_grant(&[p], &account(), &[ACCESS_AUDIT_LOGS_READ]));
    }

    #[test]
    fn wildcard_account_grants_and_deny_wins() {
        let a = account();
        let all = [(format!("{SCOPE_ACCOUNT}.*"), ResourceGrant::All)];
        let allow = policy(Effect::Allow, &[ACCESS_AUDIT_LOGS_READ], &all);
        assert!(policies_grant(
            std::slice::from_ref(&allow),
            &a,
            &[ACCESS_AUDIT_LOGS_READ]
        ));
        let deny = policy(
            Effect::Deny,
            &[ACCESS_AUDIT_LOGS_READ],
            &[(format!("{SCOPE_ACCOUNT}.{a}"), ResourceGrant::All)],
        );
        assert!(!policies_grant(
            &[allow, deny],
            &a,
            &[ACCESS_AUDIT_LOGS_READ]
        ));
    }

    #[test]
    fn account_group_under_zone_map_grants_nothing() {
        let a = account();
        let zones = BTreeMap::from([(format!("{SCOPE_ZONE}.*"), "*".to_string())]);
        let p = policy(
            Effect::Allow,
            &[ACCESS_AUDIT_LOGS_READ],
            &[(format!("{SCOPE_ACCOUNT}.{a}"), ResourceGrant::Nested(zones))],
        );
        assert!(!policies_grant(&[p], &a, &[ACCESS_AUDIT_LOGS_READ]));
    }

    #[test]
    fn zone_scoped_group_does_not_open_account_operations() {
        let a = account();
        let p = policy(
            Effect::Allow,
            &["959972745952452f8be2452be8cbb9f2"],
            &[(format!("{SCOPE_ACCOUNT}.{a}"), ResourceGrant::All)],
        );
        assert!(!policies_grant(
            &[p],
            &a,
            &["959972745952452f8be2452be8cbb9f2"]
        ));
    }

    #[test]
    fn catalog_ids_are_unique() {
        for (i, g) in CATALOG.iter().enumerate() {
            assert!(
                CATALOG.iter().skip(i + 1).all(|other| other.id != g.id),
                "{}",
                g.id
            );
        }
    }
}
