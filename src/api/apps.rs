//! Self-hosted Access applications: `/accounts/{account_id}/access/apps…`.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::accounts::Deleted;
use super::envelope::Success;
use super::extract::{AccessJson, AccessQuery, PageLimits, PageParams};
use super::policies::PolicyView;
use crate::app::AppState;
use crate::auth::Authorized;
use crate::auth::operations::{AppsRead, AppsRevoke, AppsWrite};
use crate::domain::app::{self, AccessApp, AppSettings, PolicyLink};
use crate::domain::{AccessPolicyId, AccountId, AppId, IdpId, Timestamp, duration};
use crate::error::{ApiError, Family};
use crate::store::StoreError;
use crate::store::apps::AppFilter;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/accounts/{account_id}/access/apps",
            get(list_apps).post(create_app),
        )
        .route(
            "/accounts/{account_id}/access/apps/{app_id}",
            get(get_app).put(update_app).delete(delete_app),
        )
        .route(
            "/accounts/{account_id}/access/apps/{app_id}/revoke_tokens",
            post(revoke_tokens),
        )
}

fn invalid(pointer: &str, message: impl Into<String>) -> ApiError {
    ApiError::field(pointer, message).in_family(Family::Access)
}

fn app_not_found() -> ApiError {
    ApiError::not_found(
        11021,
        "access.api.error.unknown_application: application not found",
    )
}

#[derive(Serialize)]
pub struct AppView {
    id: AppId,
    aud: String,
    name: String,
    domain: String,
    #[serde(rename = "type")]
    kind: &'static str,
    session_duration: String,
    #[serde(flatten)]
    settings: AppSettings,
    destinations: Vec<Destination>,
    policies: Vec<PolicyView>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Destination {
    #[serde(rename = "type")]
    kind: String,
    uri: String,
}

async fn view(state: &AppState, app: AccessApp) -> Result<AppView, ApiError> {
    let mut policies = Vec::with_capacity(app.policies.len());
    for (policy, precedence) in state.store.app_policies(&app).await? {
        let count = state.store.policy_app_count(&policy.id).await?;
        policies.push(PolicyView::new(policy, count).at(precedence));
    }
    let destinations = std::iter::once(&app.domain)
        .chain(&app.settings.self_hosted_domains)
        .map(|uri| Destination {
            kind: "public".into(),
            uri: uri.clone(),
        })
        .collect();
    Ok(AppView {
        id: app.id,
        aud: app.aud,
        name: app.name,
        domain: app.domain,
        kind: "self_hosted",
        session_duration: app.session_duration,
        settings: app.settings,
        destinations,
        policies,
        created_at: app.created_at,
        updated_at: app.updated_at,
    })
}

/// A policy reference: an id, or `{id, precedence}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum PolicyRef {
    Id(String),
    Linked { id: String, precedence: Option<i64> },
    Inline(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRequest {
    #[serde(rename = "type")]
    kind: String,
    domain: Option<String>,
    name: Option<String>,
    session_duration: Option<String>,
    #[serde(default)]
    allowed_idps: Vec<String>,
    auto_redirect_to_identity: Option<bool>,
    #[serde(default)]
    policies: Vec<PolicyRef>,
    app_launcher_visible: Option<bool>,
    http_only_cookie_attribute: Option<bool>,
    same_site_cookie_attribute: Option<String>,
    path_cookie_attribute: Option<bool>,
    enable_binding_cookie: Option<bool>,
    custom_deny_message: Option<String>,
    custom_deny_url: Option<String>,
    #[serde(default)]
    self_hosted_domains: Vec<String>,
    #[serde(default)]
    destinations: Vec<Destination>,
    #[serde(default)]
    tags: Vec<String>,
    #[allow(
        dead_code,
        reason = "read-only; accepted so a fetched application can be sent back"
    )]
    id: Option<Value>,
    #[allow(
        dead_code,
        reason = "read-only; accepted so a fetched application can be sent back"
    )]
    aud: Option<Value>,
    #[allow(
        dead_code,
        reason = "read-only; accepted so a fetched application can be sent back"
    )]
    created_at: Option<Value>,
    #[allow(
        dead_code,
        reason = "read-only; accepted so a fetched application can be sent back"
    )]
    updated_at: Option<Value>,
}

struct ValidApp {
    name: String,
    domain: String,
    session_duration: String,
    settings: AppSettings,
    policies: Vec<PolicyLink>,
}

impl AppRequest {
    async fn validate(self, state: &AppState, account: &AccountId) -> Result<ValidApp, ApiError> {
        if self.kind != "self_hosted" {
            return Err(invalid(
                "/type",
                format!(
                    "application type {:?} is not supported; accessd protects self_hosted applications",
                    self.kind
                ),
            ));
        }
        let mut hostnames: Vec<String> = self.self_hosted_domains;
        for (i, destination) in self.destinations.iter().enumerate() {
            if destination.kind != "public" {
                return Err(invalid(
                    &format!("/destinations/{i}/type"),
                    "only public destinations are supported",
                ));
            }
            hostnames.push(destination.uri.clone());
        }
        let first = self.domain.or_else(|| hostnames.first().cloned());
        let Some(first) = first else {
            return Err(invalid(
                "/domain",
                "domain is required, such as wiki.example.com",
            ));
        };
        let domain = app::parse_domain(&first).map_err(|why| invalid("/domain", why))?;
        let mut others = Vec::new();
        for (i, raw) in hostnames.iter().enumerate() {
            let parsed = app::parse_domain(raw)
                .map_err(|why| invalid(&format!("/self_hosted_domains/{i}"), why))?;
            if parsed != domain && !others.contains(&parsed) {
                others.push(parsed);
            }
        }
        let session_duration = self.session_duration.unwrap_or_else(|| "24h".to_string());
        match duration::parse(&session_duration) {
            Ok(d) if !d.is_zero() => {}
            Ok(_) => {
                return Err(invalid(
                    "/session_duration",
                    "session_duration must be longer than zero, such as 30m or 24h",
                ));
            }
            Err(why) => return Err(invalid("/session_duration", why)),
        }
        let mut allowed_idps = Vec::new();
        for (i, raw) in self.allowed_idps.iter().enumerate() {
            let pointer = format!("/allowed_idps/{i}");
            let id = IdpId::parse(raw)
                .ok_or_else(|| invalid(&pointer, "not an identity provider id"))?;
            if state.store.find_idp(account, &id).await?.is_none() {
                return Err(invalid(
                    &pointer,
                    format!("no identity provider {raw} in this account"),
                ));
            }
            allowed_idps.push(id);
        }
        let auto_redirect = self.auto_redirect_to_identity.unwrap_or(false);
        if auto_redirect && allowed_idps.len() != 1 {
            return Err(invalid(
                "/auto_redirect_to_identity",
                "auto_redirect_to_identity needs exactly one entry in allowed_idps",
            ));
        }
        if let Some(same_site) = &self.same_site_cookie_attribute
            && !["strict", "lax", "none"].contains(&same_site.as_str())
        {
            return Err(invalid(
                "/same_site_cookie_attribute",
                "must be strict, lax or none",
            ));
        }
        let mut policies: Vec<PolicyLink> = Vec::new();
        for (i, reference) in self.policies.into_iter().enumerate() {
            let pointer = format!("/policies/{i}");
            let (raw, precedence) = match reference {
                PolicyRef::Id(id) => (id, None),
                PolicyRef::Linked { id, precedence } => (id, precedence),
                PolicyRef::Inline(_) => {
                    return Err(invalid(
                        &pointer,
                        "inline policies are not supported; create a reusable policy at \
                         /access/policies and reference it by id",
                    ));
                }
            };
            let id =
                AccessPolicyId::parse(&raw).ok_or_else(|| invalid(&pointer, "not a policy id"))?;
            if state.store.find_policy(account, &id).await?.is_none() {
                return Err(invalid(
                    &pointer,
                    format!("no policy {raw} in this account"),
                ));
            }
            if policies.iter().any(|p| p.policy_id == id) {
                return Err(invalid(&pointer, "the same policy is listed twice"));
            }
            let order = i64::try_from(i).unwrap_or(i64::MAX) + 1;
            policies.push(PolicyLink {
                policy_id: id,
                precedence: precedence.unwrap_or(order),
            });
        }
        policies.sort_by_key(|p| p.precedence);
        let name = self
            .name
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| domain.clone());
        let defaults = AppSettings::default();
        Ok(ValidApp {
            name,
            domain,
            session_duration,
            settings: AppSettings {
                allowed_idps,
                auto_redirect_to_identity: auto_redirect,
                app_launcher_visible: self
                    .app_launcher_visible
                    .unwrap_or(defaults.app_launcher_visible),
                http_only_cookie_attribute: self
                    .http_only_cookie_attribute
                    .unwrap_or(defaults.http_only_cookie_attribute),
                same_site_cookie_attribute: self.same_site_cookie_attribute,
                path_cookie_attribute: self.path_cookie_attribute.unwrap_or(false),
                enable_binding_cookie: self.enable_binding_cookie.unwrap_or(false),
                custom_deny_message: self.custom_deny_message,
                custom_deny_url: self.custom_deny_url,
                self_hosted_domains: others,
                tags: self.tags,
            },
            policies,
        })
    }
}

/// A domain another application (in any account) already claims.
fn domain_taken(err: StoreError) -> ApiError {
    match err {
        StoreError::Conflict(message) => ApiError::conflict(11010, message),
        other => other.into(),
    }
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/applications/methods/create/>
async fn create_app(
    State(state): State<AppState>,
    caller: Authorized<AppsWrite>,
    AccessJson(body): AccessJson<AppRequest>,
) -> Result<Success<AppView>, ApiError> {
    let valid = body.validate(&state, &caller.account).await?;
    let now = Timestamp::now();
    let app = AccessApp {
        id: AppId::generate(),
        account_id: caller.account,
        aud: app::new_aud(),
        name: valid.name,
        domain: valid.domain,
        session_duration: valid.session_duration,
        settings: valid.settings,
        policies: valid.policies,
        created_at: now,
        updated_at: now,
    };
    state
        .store
        .save_app(&app, true)
        .await
        .map_err(domain_taken)?;
    Ok(Success::created(view(&state, app).await?))
}

#[derive(Deserialize)]
pub struct AppListQuery {
    name: Option<String>,
    domain: Option<String>,
    aud: Option<String>,
    search: Option<String>,
    exact: Option<bool>,
}

const APP_PAGES: PageLimits = PageLimits {
    min_per_page: 1,
    max_per_page: 1000,
    default_per_page: 100,
};

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/applications/methods/list/>
async fn list_apps(
    State(state): State<AppState>,
    caller: Authorized<AppsRead>,
    AccessQuery(query): AccessQuery<AppListQuery>,
    AccessQuery(pages): AccessQuery<PageParams>,
) -> Result<Success<Vec<AppView>>, ApiError> {
    let page = pages
        .resolve(&APP_PAGES)
        .map_err(|e| e.in_family(Family::Access))?;
    let filter = AppFilter {
        name: query.name,
        domain: query.domain,
        aud: query.aud,
        search: query.search,
        exact: query.exact.unwrap_or(false),
    };
    let apps = state
        .store
        .list_apps(&caller.account, &filter, page)
        .await?;
    let mut views = Vec::with_capacity(apps.items.len());
    for app in apps.items {
        views.push(view(&state, app).await?);
    }
    Ok(Success::page(crate::store::Page {
        items: views,
        request: apps.request,
        total_count: apps.total_count,
    }))
}

#[derive(Deserialize)]
pub struct AppPath {
    #[allow(dead_code, reason = "validated by the Authorized extractor")]
    account_id: String,
    app_id: String,
}

async fn load(state: &AppState, account: &AccountId, raw: &str) -> Result<AccessApp, ApiError> {
    let id = AppId::parse(raw).ok_or_else(app_not_found)?;
    state
        .store
        .find_app(account, &id)
        .await?
        .ok_or_else(app_not_found)
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/applications/methods/get/>
async fn get_app(
    State(state): State<AppState>,
    caller: Authorized<AppsRead>,
    Path(path): Path<AppPath>,
) -> Result<Success<AppView>, ApiError> {
    let app = load(&state, &caller.account, &path.app_id).await?;
    Ok(Success::ok(view(&state, app).await?))
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/applications/methods/update/>
///
/// A full replacement; the id and `aud` stay.
async fn update_app(
    State(state): State<AppState>,
    caller: Authorized<AppsWrite>,
    Path(path): Path<AppPath>,
    AccessJson(body): AccessJson<AppRequest>,
) -> Result<Success<AppView>, ApiError> {
    let mut app = load(&state, &caller.account, &path.app_id).await?;
    let valid = body.validate(&state, &caller.account).await?;
    app.name = valid.name;
    app.domain = valid.domain;
    app.session_duration = valid.session_duration;
    app.settings = valid.settings;
    app.policies = valid.policies;
    app.updated_at = Timestamp::now();
    if !state
        .store
        .save_app(&app, false)
        .await
        .map_err(domain_taken)?
    {
        return Err(app_not_found());
    }
    Ok(Success::ok(view(&state, app).await?))
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/applications/methods/delete/>
async fn delete_app(
    State(state): State<AppState>,
    caller: Authorized<AppsWrite>,
    Path(path): Path<AppPath>,
) -> Result<Success<Deleted<AppId>>, ApiError> {
    let id = AppId::parse(&path.app_id).ok_or_else(app_not_found)?;
    if !state.store.delete_app(&caller.account, &id).await? {
        return Err(app_not_found());
    }
    Ok(Success::accepted(Deleted { id }))
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/applications/methods/revoke_tokens/>
///
/// Every application token issued so far for this application stops being
/// accepted; users keep their global session and get a new token by signing in.
async fn revoke_tokens(
    State(state): State<AppState>,
    caller: Authorized<AppsRevoke>,
    Path(path): Path<AppPath>,
) -> Result<Success<Deleted<AppId>>, ApiError> {
    let app = load(&state, &caller.account, &path.app_id).await?;
    state
        .store
        .revoke_app_tokens(&app.id, Timestamp::now())
        .await?;
    Ok(Success::ok(Deleted { id: app.id }))
}
