//! Access policies: who may reach an application, and how a decision is made.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::service_token::ServiceTokenId;
use super::user::{Email, domain_key};
use super::{AccessPolicyId, AccountId, Timestamp};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny,
    Bypass,
    NonIdentity,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Bypass => "bypass",
            Decision::NonIdentity => "non_identity",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(raw.to_string())).ok()
    }
}

/// One selector of a policy, as Cloudflare spells it: a single-key object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    Email {
        email: String,
    },
    EmailDomain {
        domain: String,
    },
    Everyone {},
    Ip {
        ip: IpNet,
    },
    Geo {
        country_code: String,
    },
    LoginMethod {
        id: String,
    },
    /// Membership of an Access group of the account (decided by the
    /// group's own rules, see `access_group`) or else of a group an identity
    /// provider pushed over SCIM.
    Group {
        id: String,
    },
    /// A request presenting this service token, named by its `id`.
    ServiceToken {
        token_id: String,
    },
    /// A request presenting any valid service token of the account.
    AnyValidServiceToken {},
}

/// Rules one list (include, exclude or require) may hold.
pub const MAX_RULES_PER_LIST: usize = 500;
const MAX_ID_CHARS: usize = 128;

impl Rule {
    /// Why the rule's value cannot be what it names, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Rule::Email { email } => crate::domain::user::Email::parse(email)
                .map(drop)
                .map_err(str::to_string),
            Rule::EmailDomain { domain } => {
                let plausible = !domain.is_empty()
                    && domain.len() <= 253
                    && domain
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
                if plausible {
                    Ok(())
                } else {
                    Err("domain must be a domain name such as example.com".to_string())
                }
            }
            Rule::Geo { country_code } => {
                if country_code.len() == 2 && country_code.bytes().all(|b| b.is_ascii_alphabetic())
                {
                    Ok(())
                } else {
                    Err("country_code must be two letters such as US".to_string())
                }
            }
            Rule::LoginMethod { id } | Rule::Group { id } => {
                if !id.is_empty() && id.chars().count() <= MAX_ID_CHARS {
                    Ok(())
                } else {
                    Err(format!("id must be 1 to {MAX_ID_CHARS} characters"))
                }
            }
            Rule::ServiceToken { token_id } => ServiceTokenId::parse(token_id)
                .map(drop)
                .ok_or_else(|| "token_id must be the UUID of a service token".to_string()),
            Rule::Everyone {} | Rule::Ip { .. } | Rule::AnyValidServiceToken {} => Ok(()),
        }
    }

    /// Whether the rule admits only requests that present a service token
    /// (such rules need the `non_identity` decision).
    pub fn is_service_token_based(&self) -> bool {
        matches!(
            self,
            Rule::ServiceToken { .. } | Rule::AnyValidServiceToken {}
        )
    }

    /// Whether the rule is about a person; it never matches a service token.
    fn names_a_person(&self) -> bool {
        matches!(
            self,
            Rule::Email { .. }
                | Rule::EmailDomain { .. }
                | Rule::LoginMethod { .. }
                | Rule::Group { .. }
        )
    }

    /// Whether the rule needs to know who the user is (not allowed in bypass policies).
    pub fn is_identity_based(&self) -> bool {
        matches!(
            self,
            Rule::Email { .. } | Rule::EmailDomain { .. } | Rule::LoginMethod { .. }
        )
    }

    pub fn matches(&self, who: &Requester) -> bool {
        if who.service_token.is_some() && self.names_a_person() {
            return false;
        }
        match self {
            // Compared by their keys, as users are: `ÄRGER@…` is `ärger@…`.
            Rule::Email { email } => who
                .email
                .as_deref()
                .is_some_and(|e| Email::key_of(e) == Email::key_of(email)),
            Rule::EmailDomain { domain } => who.email.as_deref().is_some_and(|e| {
                e.rsplit_once('@').is_some_and(|(_, d)| {
                    domain_key(d) == domain_key(domain.trim_start_matches('@'))
                })
            }),
            Rule::Everyone {} => true,
            // An IPv4 client seen through an IPv6 socket is matched as IPv4.
            Rule::Ip { ip } => ip.contains(&who.ip.to_canonical()),
            Rule::Geo { country_code } => who
                .country
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case(country_code)),
            Rule::LoginMethod { id } => who.idp_id.as_deref() == Some(id.as_str()),
            Rule::Group { id } => who.groups.iter().any(|g| g.eq_ignore_ascii_case(id)),
            Rule::ServiceToken { token_id } => who
                .service_token
                .as_ref()
                .is_some_and(|t| t.as_str().eq_ignore_ascii_case(token_id)),
            Rule::AnyValidServiceToken {} => who.service_token.is_some(),
        }
    }
}

/// What is known about the one asking for access.
#[derive(Clone, Debug)]
pub struct Requester {
    pub email: Option<String>,
    pub ip: IpAddr,
    pub country: Option<String>,
    pub idp_id: Option<String>,
    /// SCIM groups the user belongs to and, once resolved by
    /// `GroupBook::resolve`, the Access groups the policies name that admit them.
    pub groups: Vec<String>,
    /// The service token the request presented, authenticated for the
    /// account whose policies are evaluated; `None` for a person.
    pub service_token: Option<ServiceTokenId>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    pub include: Vec<Rule>,
    #[serde(default)]
    pub exclude: Vec<Rule>,
    #[serde(default)]
    pub require: Vec<Rule>,
}

impl Rules {
    /// At least one include, every require, and no exclude.
    pub fn match_requester(&self, who: &Requester) -> bool {
        self.include.iter().any(|r| r.matches(who))
            && self.require.iter().all(|r| r.matches(who))
            && !self.exclude.iter().any(|r| r.matches(who))
    }

    pub fn all(&self) -> impl Iterator<Item = &Rule> {
        self.include
            .iter()
            .chain(&self.exclude)
            .chain(&self.require)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessPolicy {
    pub id: AccessPolicyId,
    pub account_id: AccountId,
    pub name: String,
    pub decision: Decision,
    pub rules: Rules,
    /// Overrides the application's session duration when set (Go-style).
    pub session_duration: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The outcome of evaluating an application's policies for one requester.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    Allowed(&'a AccessPolicy),
    Bypassed(&'a AccessPolicy),
    Denied(Option<&'a AccessPolicy>),
}

/// Cloudflare's order: bypass and service-auth (`non_identity`) policies
/// first, then allow and deny policies in precedence order; the first match
/// decides, and no match is a denial. `policies` must already be in
/// precedence order.
///
/// A request with a service token is admitted only by a bypass or a
/// service-auth policy: allow and deny policies are about people. Service
/// auth admits nobody else, as accessd offers no other non-identity proof
/// (such as client certificates).
/// Why `who` was refused, for the failed-login record: a Deny policy
/// matched (`policy_denied`), an Allow policy included them but an exclude
/// rule matched (`rule_excluded`) or a require rule did not
/// (`rule_required`), or no policy included them (`no_policy_matched`).
pub fn denial_reason(
    policies: &[AccessPolicy],
    who: &Requester,
    verdict: &Verdict<'_>,
) -> &'static str {
    if let Verdict::Denied(Some(_)) = verdict {
        return "policy_denied";
    }
    let wanted = if who.service_token.is_some() {
        Decision::NonIdentity
    } else {
        Decision::Allow
    };
    let included = policies
        .iter()
        .filter(|p| p.decision == wanted)
        .find(|p| p.rules.include.iter().any(|r| r.matches(who)));
    match included {
        Some(p) if p.rules.exclude.iter().any(|r| r.matches(who)) => "rule_excluded",
        Some(_) => "rule_required",
        None => "no_policy_matched",
    }
}

pub fn evaluate<'a>(policies: &'a [AccessPolicy], who: &Requester) -> Verdict<'a> {
    if let Some(bypass) = policies
        .iter()
        .find(|p| p.decision == Decision::Bypass && p.rules.match_requester(who))
    {
        return Verdict::Bypassed(bypass);
    }
    if who.service_token.is_some() {
        return policies
            .iter()
            .find(|p| p.decision == Decision::NonIdentity && p.rules.match_requester(who))
            .map_or(Verdict::Denied(None), Verdict::Allowed);
    }
    for policy in policies {
        if !policy.rules.match_requester(who) {
            continue;
        }
        match policy.decision {
            Decision::Allow => return Verdict::Allowed(policy),
            Decision::Deny => return Verdict::Denied(Some(policy)),
            Decision::Bypass | Decision::NonIdentity => {}
        }
    }
    Verdict::Denied(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(email: &str, ip: &str) -> Requester {
        Requester {
            email: Some(email.to_string()),
            ip: ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            country: Some("DE".into()),
            idp_id: Some("idp-1".into()),
            groups: vec!["eng".into()],
            service_token: None,
        }
    }

    fn policy(decision: Decision, rules: Rules) -> AccessPolicy {
        AccessPolicy {
            id: AccessPolicyId::generate(),
            account_id: AccountId::generate(),
            name: "p".into(),
            decision,
            rules,
            session_duration: None,
            created_at: Timestamp::from_micros(0),
            updated_at: Timestamp::from_micros(0),
        }
    }

    fn rules(include: Vec<Rule>, exclude: Vec<Rule>, require: Vec<Rule>) -> Rules {
        Rules {
            include,
            exclude,
            require,
        }
    }

    #[test]
    fn rules_parse_as_cloudflare_spells_them() {
        let parsed: Vec<Rule> = serde_json::from_str(
            r#"[{"email":{"email":"a@b.c"}},{"email_domain":{"domain":"example.com"}},{"everyone":{}},{"ip":{"ip":"10.0.0.0/8"}},{"geo":{"country_code":"US"}},{"login_method":{"id":"x"}}]"#,
        )
        .unwrap_or_default();
        assert_eq!(parsed.len(), 6);
        assert!(serde_json::from_str::<Rule>(r#"{"okta":{"name":"x"}}"#).is_err());
        assert!(serde_json::from_str::<Rule>(r#"{"ip":{"ip":"10.0.0.0/33"}}"#).is_err());
    }

    #[test]
    fn group_membership() {
        let r = rules(vec![Rule::Group { id: "eng".into() }], vec![], vec![]);
        assert!(r.match_requester(&who("a@example.com", "10.0.0.1")));
        let mut outsider = who("a@example.com", "10.0.0.1");
        outsider.groups.clear();
        assert!(!r.match_requester(&outsider));
    }

    #[test]
    fn include_require_exclude() {
        let r = rules(
            vec![Rule::EmailDomain {
                domain: "example.com".into(),
            }],
            vec![Rule::Email {
                email: "mallory@example.com".into(),
            }],
            vec![Rule::Ip {
                ip: "10.0.0.0/8".parse().unwrap_or_default(),
            }],
        );
        assert!(r.match_requester(&who("Alice@Example.com", "10.1.1.1")));
        assert!(
            !r.match_requester(&who("alice@example.com", "192.168.1.1")),
            "require fails"
        );
        assert!(
            !r.match_requester(&who("mallory@example.com", "10.1.1.1")),
            "excluded"
        );
        assert!(
            !r.match_requester(&who("alice@example.org", "10.1.1.1")),
            "not included"
        );
    }

    #[test]
    fn bypass_first_then_first_matching_allow_or_deny() {
        let deny_mallory = policy(
            Decision::Deny,
            rules(
                vec![Rule::Email {
                    email: "mallory@example.com".into(),
                }],
                vec![],
                vec![],
            ),
        );
        let allow_all = policy(
            Decision::Allow,
            rules(vec![Rule::Everyone {}], vec![], vec![]),
        );
        let bypass_office = policy(
            Decision::Bypass,
            rules(
                vec![Rule::Ip {
                    ip: "192.0.2.0/24".parse().unwrap_or_default(),
                }],
                vec![],
                vec![],
            ),
        );
        let ordered = [
            deny_mallory.clone(),
            allow_all.clone(),
            bypass_office.clone(),
        ];
        assert_eq!(
            evaluate(&ordered, &who("mallory@example.com", "203.0.113.1")),
            Verdict::Denied(Some(&ordered[0]))
        );
        assert_eq!(
            evaluate(&ordered, &who("alice@example.com", "203.0.113.1")),
            Verdict::Allowed(&ordered[1])
        );
        assert_eq!(
            evaluate(&ordered, &who("mallory@example.com", "192.0.2.7")),
            Verdict::Bypassed(&ordered[2])
        );
        assert_eq!(
            evaluate(&[], &who("alice@example.com", "203.0.113.1")),
            Verdict::Denied(None)
        );
    }

    fn machine(token: &ServiceTokenId) -> Requester {
        Requester {
            email: None,
            ip: IpAddr::from([10, 0, 0, 1]),
            country: Some("DE".into()),
            idp_id: None,
            groups: Vec::new(),
            service_token: Some(token.clone()),
        }
    }

    #[test]
    fn service_token_rules_parse_as_cloudflare_spells_them() {
        let id = ServiceTokenId::generate();
        let parsed: Vec<Rule> = serde_json::from_value(serde_json::json!([
            {"service_token": {"token_id": id.as_str()}},
            {"any_valid_service_token": {}},
        ]))
        .unwrap_or_default();
        assert_eq!(
            parsed,
            [
                Rule::ServiceToken {
                    token_id: id.to_string()
                },
                Rule::AnyValidServiceToken {}
            ]
        );
        assert!(parsed.iter().all(|r| r.check().is_ok()));
        let bad = Rule::ServiceToken {
            token_id: "abc".into(),
        };
        assert!(bad.check().is_err());
    }

    #[test]
    fn service_token_rules_match_machines_and_identity_rules_match_people() {
        let token = ServiceTokenId::generate();
        let other = ServiceTokenId::generate();
        let named = Rule::ServiceToken {
            token_id: token.as_str().to_uppercase(),
        };
        assert!(named.matches(&machine(&token)));
        assert!(!named.matches(&machine(&other)));
        assert!(!named.matches(&who("a@example.com", "10.0.0.1")));
        assert!(Rule::AnyValidServiceToken {}.matches(&machine(&other)));
        assert!(!Rule::AnyValidServiceToken {}.matches(&who("a@example.com", "10.0.0.1")));

        // A machine that also claims a person's attributes still matches no identity rule.
        let mut pretender = machine(&token);
        pretender.email = Some("a@example.com".into());
        pretender.groups = vec!["eng".into()];
        pretender.idp_id = Some("idp-1".into());
        for rule in [
            Rule::Email {
                email: "a@example.com".into(),
            },
            Rule::EmailDomain {
                domain: "example.com".into(),
            },
            Rule::Group { id: "eng".into() },
            Rule::LoginMethod { id: "idp-1".into() },
        ] {
            assert!(!rule.matches(&pretender), "{rule:?}");
        }
        assert!(
            Rule::Ip {
                ip: "10.0.0.0/8".parse().unwrap_or_default()
            }
            .matches(&pretender),
            "non-identity rules still apply"
        );
    }

    #[test]
    fn machines_pass_only_service_auth_and_people_never_do() {
        let token = ServiceTokenId::generate();
        let allow_all = policy(
            Decision::Allow,
            rules(vec![Rule::Everyone {}], vec![], vec![]),
        );
        let deny_all = policy(
            Decision::Deny,
            rules(vec![Rule::Everyone {}], vec![], vec![]),
        );
        let service_auth = policy(
            Decision::NonIdentity,
            rules(
                vec![Rule::ServiceToken {
                    token_id: token.to_string(),
                }],
                vec![],
                vec![],
            ),
        );
        let ordered = [deny_all.clone(), allow_all.clone(), service_auth.clone()];
        assert_eq!(
            evaluate(&ordered, &machine(&token)),
            Verdict::Allowed(&ordered[2]),
            "service auth comes before deny"
        );
        assert_eq!(
            evaluate(&ordered, &machine(&ServiceTokenId::generate())),
            Verdict::Denied(None),
            "another token is not named, and allow is for people"
        );
        let people_only = [allow_all.clone()];
        assert_eq!(
            evaluate(&people_only, &machine(&token)),
            Verdict::Denied(None)
        );
        let any_token = policy(
            Decision::NonIdentity,
            rules(vec![Rule::AnyValidServiceToken {}], vec![], vec![]),
        );
        let machines_only = [any_token];
        assert_eq!(
            evaluate(&machines_only, &who("a@example.com", "10.0.0.1")),
            Verdict::Denied(None)
        );
        assert_eq!(
            evaluate(&machines_only, &machine(&token)),
            Verdict::Allowed(&machines_only[0])
        );
    }

    mod properties {
        use std::net::{IpAddr, Ipv4Addr};

        use proptest::prelude::*;

        use super::*;

        fn requester(ip: IpAddr) -> Requester {
            Requester {
                email: None,
                ip,
                country: None,
                idp_id: None,
                groups: Vec::new(),
                service_token: None,
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// An IPv4 client matches the same `ip` rules whether it arrives
            /// as IPv4 or as `::ffff:a.b.c.d` on an IPv6 socket.
            #[test]
            fn mapped_ipv4_matches_like_ipv4(addr in any::<u32>(), net in any::<u32>(), prefix in 0u8..=32) {
                let v4 = Ipv4Addr::from(addr);
                let rule = Rule::Ip {
                    ip: IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(net), prefix).unwrap_or_default()),
                };
                let plain = rule.matches(&requester(IpAddr::V4(v4)));
                let mapped = rule.matches(&requester(IpAddr::V6(v4.to_ipv6_mapped())));
                prop_assert_eq!(plain, mapped);
            }

            /// Any text as an `ip` rule parses to a network or is refused.
            #[test]
            fn any_ip_rule_text_parses_or_is_refused(raw in prop_oneof![
                any::<String>(),
                "[0-9a-fA-F:./]{0,50}",
            ]) {
                let json = serde_json::json!({"ip": {"ip": raw}}).to_string();
                if let Ok(Rule::Ip { ip }) = serde_json::from_str::<Rule>(&json) {
                    prop_assert!(ip.prefix_len() <= ip.max_prefix_len());
                }
            }
        }
    }

    #[test]
    fn refusals_name_their_reason() {
        let domain = || Rule::EmailDomain {
            domain: "example.com".into(),
        };
        let allow = policy(
            Decision::Allow,
            rules(
                vec![domain()],
                vec![Rule::Email {
                    email: "mallory@example.com".into(),
                }],
                vec![Rule::Ip {
                    ip: "10.0.0.0/8".parse().unwrap_or_default(),
                }],
            ),
        );
        let deny = policy(
            Decision::Deny,
            rules(
                vec![Rule::Email {
                    email: "eve@example.com".into(),
                }],
                vec![],
                vec![],
            ),
        );
        let policies = [deny, allow];
        let reason = |email: &str, ip: &str| {
            let who = who(email, ip);
            let verdict = evaluate(&policies, &who);
            assert!(matches!(verdict, Verdict::Denied(_)), "{email} {ip}");
            denial_reason(&policies, &who, &verdict)
        };
        assert_eq!(reason("eve@example.com", "10.0.0.1"), "policy_denied");
        assert_eq!(reason("mallory@example.com", "10.0.0.1"), "rule_excluded");
        assert_eq!(reason("alice@example.com", "192.0.2.1"), "rule_required");
        assert_eq!(
            reason("alice@elsewhere.org", "10.0.0.1"),
            "no_policy_matched"
        );
    }
}
