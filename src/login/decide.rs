//! The one place a request meets an application's policies: at sign-in, on
//! a global session's next application, and at every forward-auth check.

use std::net::IpAddr;

use crate::app::AppState;
use crate::domain::access_group;
use crate::domain::app::AccessApp;
use crate::domain::policy::{AccessPolicy, Requester, Verdict, evaluate};
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

/// The policy that admits `subject` from `ip` to `app`, or `None`.
pub async fn decide(
    state: &AppState,
    app: &AccessApp,
    subject: &Subject,
    ip: IpAddr,
) -> StoreResult<Option<AccessPolicy>> {
    let policies: Vec<AccessPolicy> = state
        .store
        .app_policies(app)
        .await?
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    let groups = match &subject.email {
        Some(email) => {
            state
                .store
                .scim_group_ids_for_email(&app.account_id, email)
                .await?
        }
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
    // Access groups the policies name are decided once, all read in one query.
    let names_groups = policies
        .iter()
        .any(|p| access_group::named_ids(&p.rules).next().is_some());
    let requester = if names_groups {
        state
            .store
            .access_group_book(&app.account_id)
            .await?
            .resolve(requester, policies.iter().map(|p| &p.rules))
    } else {
        requester
    };
    Ok(match evaluate(&policies, &requester) {
        Verdict::Allowed(policy) | Verdict::Bypassed(policy) => Some(policy.clone()),
        Verdict::Denied(_) => None,
    })
}
