//! The one place a request meets an application's policies: at sign-in, on
//! a global session's next application, and at every forward-auth check.

use std::net::IpAddr;

use crate::app::AppState;
use crate::domain::app::AccessApp;
use crate::domain::policy::{AccessPolicy, Requester, Verdict, denial_reason, evaluate};
use crate::domain::service_token::ServiceTokenId;
use crate::store::StoreResult;

/// Who asks to use an application: a person (`email`, the identity provider
/// they proved it with), a machine (`service_token`), or nobody yet.
#[derive(Clone, Debug, Default)]
pub struct Subject {
    pub email: Option<String>,
    pub idp_id: Option<String>,
    pub service_token: Option<ServiceTokenId>,
    pub country: Option<String>,
}

/// What the policies say of a request.
#[derive(Debug)]
pub enum Outcome {
    Admitted(AccessPolicy),
    /// Refused, and why, as a failed login's `reason`.
    Refused(&'static str),
}

impl Outcome {
    pub fn admitted(self) -> Option<AccessPolicy> {
        match self {
            Outcome::Admitted(policy) => Some(policy),
            Outcome::Refused(_) => None,
        }
    }
}

/// Whether the policies admit `subject` from `ip` to `app`.
pub async fn decide(
    state: &AppState,
    app: &AccessApp,
    subject: &Subject,
    ip: IpAddr,
) -> StoreResult<Outcome> {
    let rules = state.gate.rules(&state.store, app).await?;
    let groups = match &subject.email {
        Some(email) => state
            .gate
            .scim_groups(&state.store, &app.account_id, email)
            .await?
            .to_vec(),
        None => Vec::new(),
    };
    let requester = Requester {
        email: subject.email.clone(),
        ip,
        country: subject.country.clone(),
        idp_id: subject.idp_id.clone(),
        groups,
        service_token: subject.service_token.clone(),
    };
    // Access groups the policies name are decided once, for the whole set.
    let requester = match &rules.groups {
        Some(book) => book.resolve(requester, rules.policies.iter().map(|p| &p.rules)),
        None => requester,
    };
    let verdict = evaluate(&rules.policies, &requester);
    Ok(match verdict {
        Verdict::Allowed(policy) | Verdict::Bypassed(policy) => Outcome::Admitted(policy.clone()),
        Verdict::Denied(_) => {
            Outcome::Refused(denial_reason(&rules.policies, &requester, &verdict))
        }
    })
}
