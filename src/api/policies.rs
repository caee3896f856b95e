//! Reusable Access policies: `/accounts/{account_id}/access/policies…`.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::access_groups::check_group_references;
use super::accounts::Deleted;
use super::envelope::Success;
use super::extract::{AccessJson, AccessQuery, PageLimits, PageParams};
use crate::app::AppState;
use crate::auth::Authorized;
use crate::auth::operations::{AppsRead, AppsWrite};
use crate::domain::policy::{AccessPolicy, Decision, MAX_RULES_PER_LIST, Rule, Rules};
use crate::domain::service_token::ServiceTokenId;
use crate::domain::{AccessPolicyId, AccountId, Timestamp, duration};
use crate::error::{ApiError, Family};
use crate::store::StoreError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/accounts/{account_id}/access/policies",
            get(list_policies).post(create_policy),
        )
        .route(
            "/accounts/{account_id}/access/policies/{policy_id}",
            get(get_policy).put(update_policy).delete(delete_policy),
        )
}

fn invalid(pointer: &str, message: impl Into<String>) -> ApiError {
    ApiError::field(pointer, message).in_family(Family::Access)
}

pub fn policy_not_found() -> ApiError {
    ApiError::access_not_found("policy not found")
}

#[derive(Serialize)]
pub struct PolicyView {
    id: AccessPolicyId,
    account_id: AccountId,
    name: String,
    decision: Decision,
    include: Vec<Rule>,
    exclude: Vec<Rule>,
    require: Vec<Rule>,
    session_duration: Option<String>,
    app_count: i64,
    reusable: bool,
    approval_groups: [(); 0],
    approval_required: bool,
    isolation_required: bool,
    purpose_justification_required: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    precedence: Option<i64>,
}

impl PolicyView {
    pub fn new(policy: AccessPolicy, app_count: i64) -> Self {
        Self {
            id: policy.id,
            account_id: policy.account_id,
            name: policy.name,
            decision: policy.decision,
            include: policy.rules.include,
            exclude: policy.rules.exclude,
            require: policy.rules.require,
            session_duration: policy.session_duration,
            app_count,
            reusable: true,
            approval_groups: [],
            approval_required: false,
            isolation_required: false,
            purpose_justification_required: false,
            created_at: policy.created_at,
            updated_at: policy.updated_at,
            precedence: None,
        }
    }

    /// The policy as an application lists it, with its place in the order.
    pub fn at(mut self, precedence: i64) -> Self {
        self.precedence = Some(precedence);
        self
    }
}

/// The body of create and replace. Read-only fields of a fetched policy are
/// accepted and ignored, so a policy can be sent back as it was read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    name: String,
    decision: Decision,
    include: Vec<Rule>,
    #[serde(default)]
    exclude: Vec<Rule>,
    #[serde(default)]
    require: Vec<Rule>,
    #[serde(default)]
    session_duration: Option<String>,
    #[serde(default)]
    approval_required: Option<bool>,
    #[serde(default)]
    isolation_required: Option<bool>,
    #[serde(default)]
    purpose_justification_required: Option<bool>,
    #[serde(default)]
    approval_groups: Option<Vec<Value>>,
    #[allow(
        dead_code,
        reason = "read-only; accepted so a fetched policy can be sent back"
    )]
    #[serde(default)]
    id: Option<Value>,
    #[allow(
        dead_code,
        reason = "read-only; accepted so a fetched policy can be sent back"
    )]
    #[serde(default)]
    account_id: Option<Value>,
    #[allow(
        dead_code,
        reason = "read-only; accepted so a fetched policy can be sent back"
    )]
    #[serde(default)]
    app_count: Option<Value>,
    #[allow(
        dead_code,
        reason = "read-only; accepted so a fetched policy can be sent back"
    )]
    #[serde(default)]
    reusable: Option<Value>,
    #[allow(
        dead_code,
        reason = "read-only; accepted so a fetched policy can be sent back"
    )]
    #[serde(default)]
    created_at: Option<Value>,
    #[allow(
        dead_code,
        reason = "read-only; accepted so a fetched policy can be sent back"
    )]
    #[serde(default)]
    updated_at: Option<Value>,
}

pub struct ValidPolicy {
    pub name: String,
    pub decision: Decision,
    pub rules: Rules,
    pub session_duration: Option<String>,
}

impl PolicyRequest {
    pub fn validate(self) -> Result<ValidPolicy, ApiError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 350 {
            return Err(invalid("/name", "name must be 1 to 350 characters"));
        }
        if self.include.is_empty() {
            return Err(invalid(
                "/include",
                "a policy needs at least one include rule",
            ));
        }
        let unsupported = [
            (
                self.approval_required == Some(true),
                "/approval_required",
                "approval workflows",
            ),
            (
                self.isolation_required == Some(true),
                "/isolation_required",
                "browser isolation",
            ),
            (
                self.purpose_justification_required == Some(true),
                "/purpose_justification_required",
                "purpose justification",
            ),
            (
                self.approval_groups.as_ref().is_some_and(|g| !g.is_empty()),
                "/approval_groups",
                "approval groups",
            ),
        ];
        if let Some((_, pointer, what)) = unsupported.iter().find(|(on, _, _)| *on) {
            return Err(invalid(
                pointer,
                format!("accessd does not offer {what}; leave it off"),
            ));
        }
        let rules = Rules {
            include: self.include,
            exclude: self.exclude,
            require: self.require,
        };
        check_rules(&rules)?;
        if self.decision != Decision::NonIdentity && rules.all().any(Rule::is_service_token_based) {
            return Err(invalid(
                "/decision",
                "service_token and any_valid_service_token rules need the non_identity decision (Service Auth)",
            ));
        }
        if self.decision == Decision::Bypass && rules.all().any(Rule::is_identity_based) {
            return Err(invalid(
                "/decision",
                "a bypass policy cannot use identity rules (email, email_domain, login_method)",
            ));
        }
        let session_duration = match self.session_duration {
            None => None,
            Some(raw) => match duration::parse(&raw) {
                Ok(d) if !d.is_zero() => Some(raw),
                Ok(_) => {
                    return Err(invalid(
                        "/session_duration",
                        "session_duration must be longer than zero, such as 30m or 24h",
                    ));
                }
                Err(why) => return Err(invalid("/session_duration", why)),
            },
        };
        Ok(ValidPolicy {
            name: name.to_string(),
            decision: self.decision,
            rules,
            session_duration,
        })
    }
}

/// Bounds each rule list and checks each rule's value, naming the first bad one.
pub fn check_rules(rules: &Rules) -> Result<(), ApiError> {
    let lists = [
        ("include", &rules.include),
        ("exclude", &rules.exclude),
        ("require", &rules.require),
    ];
    for (name, list) in lists {
        if list.len() > MAX_RULES_PER_LIST {
            return Err(invalid(
                &format!("/{name}"),
                format!("{name} may hold at most {MAX_RULES_PER_LIST} rules"),
            ));
        }
        for (i, rule) in list.iter().enumerate() {
            rule.check()
                .map_err(|why| invalid(&format!("/{name}/{i}"), why))?;
        }
    }
    Ok(())
}

/// Every `service_token` rule must name a token of the policy's account.
async fn check_service_tokens(
    state: &AppState,
    account: &AccountId,
    rules: &Rules,
) -> Result<(), ApiError> {
    let lists = [
        ("include", &rules.include),
        ("exclude", &rules.exclude),
        ("require", &rules.require),
    ];
    for (name, list) in lists {
        for (i, rule) in list.iter().enumerate() {
            let Rule::ServiceToken { token_id } = rule else {
                continue;
            };
            let pointer = format!("/{name}/{i}/service_token/token_id");
            let id = ServiceTokenId::parse(token_id)
                .ok_or_else(|| invalid(&pointer, "token_id must be the UUID of a service token"))?;
            if state
                .store
                .find_service_token(account, &id)
                .await?
                .is_none()
            {
                return Err(invalid(
                    &pointer,
                    format!("no service token {token_id} in this account"),
                ));
            }
        }
    }
    Ok(())
}

async fn view(state: &AppState, policy: AccessPolicy) -> Result<PolicyView, ApiError> {
    let count = state.store.policy_app_count(&policy.id).await?;
    Ok(PolicyView::new(policy, count))
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/policies/methods/create/>
async fn create_policy(
    State(state): State<AppState>,
    caller: Authorized<AppsWrite>,
    AccessJson(body): AccessJson<PolicyRequest>,
) -> Result<Success<PolicyView>, ApiError> {
    let mut valid = body.validate()?;
    check_service_tokens(&state, &caller.account, &valid.rules).await?;
    check_group_references(&state, &caller.account, &mut valid.rules).await?;
    let now = Timestamp::now();
    let policy = AccessPolicy {
        id: AccessPolicyId::generate(),
        account_id: caller.account,
        name: valid.name,
        decision: valid.decision,
        rules: valid.rules,
        session_duration: valid.session_duration,
        created_at: now,
        updated_at: now,
    };
    state.store.create_policy(&policy).await?;
    Ok(Success::created(PolicyView::new(policy, 0)))
}

const POLICY_PAGES: PageLimits = PageLimits {
    min_per_page: 1,
    max_per_page: 1000,
    default_per_page: 100,
};

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/policies/methods/list/>
async fn list_policies(
    State(state): State<AppState>,
    caller: Authorized<AppsRead>,
    AccessQuery(pages): AccessQuery<PageParams>,
) -> Result<Success<Vec<PolicyView>>, ApiError> {
    let page = pages
        .resolve(&POLICY_PAGES)
        .map_err(|e| e.in_family(Family::Access))?;
    let policies = state.store.list_policies(&caller.account, page).await?;
    let mut views = Vec::with_capacity(policies.items.len());
    for policy in policies.items {
        views.push(view(&state, policy).await?);
    }
    Ok(Success::page(crate::store::Page {
        items: views,
        request: policies.request,
        total_count: policies.total_count,
    }))
}

#[derive(Deserialize)]
pub struct PolicyPath {
    #[allow(dead_code, reason = "validated by the Authorized extractor")]
    account_id: String,
    policy_id: String,
}

async fn load(state: &AppState, account: &AccountId, raw: &str) -> Result<AccessPolicy, ApiError> {
    let id = AccessPolicyId::parse(raw).ok_or_else(policy_not_found)?;
    state
        .store
        .find_policy(account, &id)
        .await?
        .ok_or_else(policy_not_found)
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/policies/methods/get/>
async fn get_policy(
    State(state): State<AppState>,
    caller: Authorized<AppsRead>,
    Path(path): Path<PolicyPath>,
) -> Result<Success<PolicyView>, ApiError> {
    let policy = load(&state, &caller.account, &path.policy_id).await?;
    Ok(Success::ok(view(&state, policy).await?))
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/policies/methods/update/>
async fn update_policy(
    State(state): State<AppState>,
    caller: Authorized<AppsWrite>,
    Path(path): Path<PolicyPath>,
    AccessJson(body): AccessJson<PolicyRequest>,
) -> Result<Success<PolicyView>, ApiError> {
    let mut policy = load(&state, &caller.account, &path.policy_id).await?;
    let mut valid = body.validate()?;
    check_service_tokens(&state, &caller.account, &valid.rules).await?;
    check_group_references(&state, &caller.account, &mut valid.rules).await?;
    policy.name = valid.name;
    policy.decision = valid.decision;
    policy.rules = valid.rules;
    policy.session_duration = valid.session_duration;
    policy.updated_at = Timestamp::now();
    if !state.store.replace_policy(&policy).await? {
        return Err(policy_not_found());
    }
    Ok(Success::ok(view(&state, policy).await?))
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/policies/methods/delete/>
///
/// A policy still used by an application is not deleted (409).
async fn delete_policy(
    State(state): State<AppState>,
    caller: Authorized<AppsWrite>,
    Path(path): Path<PolicyPath>,
) -> Result<Success<Deleted<AccessPolicyId>>, ApiError> {
    let id = AccessPolicyId::parse(&path.policy_id).ok_or_else(policy_not_found)?;
    match state.store.delete_policy(&caller.account, &id).await {
        Ok(true) => Ok(Success::accepted(Deleted { id })),
        Ok(false) => Err(policy_not_found()),
        Err(err) => Err(still_in_use(err)),
    }
}

/// A store conflict on deleting an Access object something still uses, in
/// the Access wording (409, 12131); any other error as usual.
pub fn still_in_use(err: StoreError) -> ApiError {
    match err {
        StoreError::Conflict(why) => {
            ApiError::conflict(12131, format!("access.api.error.conflict: {why}"))
        }
        other => other.into(),
    }
}
