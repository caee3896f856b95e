//! The account's Zero Trust organization: `/accounts/{account_id}/access/organizations`.
//!
//! The SDKs send only the fields a caller set, on `PUT` too, so updates are
//! a merge: an absent field keeps its value. `PATCH` does the same.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::envelope::Success;
use super::extract::AccessJson;
use crate::app::AppState;
use crate::auth::Authorized;
use crate::auth::operations::{IdpsRead, IdpsWrite};
use crate::domain::organization::Organization;
use crate::domain::{Timestamp, app, duration};
use crate::error::{ApiError, Family};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/accounts/{account_id}/access/organizations",
        get(get_organization)
            .post(create_organization)
            .put(update_organization)
            .patch(update_organization),
    )
}

const MAX_NAME_CHARS: usize = 350;
const MAX_TEXT_CHARS: usize = 1024;
const MAX_ZONE_NAMES: usize = 100;
/// Cloudflare's bounds on the global session: 15 minutes to a month.
const SESSION_SECONDS: std::ops::RangeInclusive<u64> = 15 * 60..=730 * 3600;

fn invalid(pointer: &str, message: impl Into<String>) -> ApiError {
    ApiError::field(pointer, message).in_family(Family::Access)
}

fn not_found() -> ApiError {
    ApiError::not_found(
        9999,
        "access.api.error.not_found: Unable to find your Access organization",
    )
}

#[derive(Deserialize, Serialize, Default, Clone, Debug)]
#[serde(deny_unknown_fields)]
struct LoginDesign {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    background_color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    footer_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    header_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    logo_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text_color: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
struct CustomPages {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    forbidden: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identity_denied: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
struct ServiceTokenInactivity {
    action: InactivityAction,
    enabled: bool,
    inactivity_threshold_days: u32,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug)]
#[serde(rename_all = "lowercase")]
enum InactivityAction {
    Disable,
    Delete,
}

/// Every field the organization takes; absent ones keep their value.
#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OrganizationRequest {
    auth_domain: Option<String>,
    name: Option<String>,
    session_duration: Option<String>,
    user_seat_expiration_inactive_time: Option<String>,
    warp_auth_session_duration: Option<String>,
    auto_redirect_to_identity: Option<bool>,
    deny_unmatched_requests: Option<bool>,
    strict_service_token_auth: Option<bool>,
    allow_authenticate_via_warp: Option<bool>,
    warp_auth_non_browser_401: Option<bool>,
    is_ui_read_only: Option<bool>,
    mfa_required_for_all_apps: Option<bool>,
    ui_read_only_toggle_reason: Option<String>,
    deny_unmatched_requests_exempted_zone_names: Option<Vec<String>>,
    login_design: Option<LoginDesign>,
    custom_pages: Option<CustomPages>,
    service_token_inactivity: Option<ServiceTokenInactivity>,
    mfa_config: Option<Map<String, Value>>,
    mfa_piv_key_requirements: Option<Map<String, Value>>,
}

fn checked_text(pointer: &str, text: &str) -> Result<(), ApiError> {
    if text.chars().count() > MAX_TEXT_CHARS || text.chars().any(char::is_control) {
        return Err(invalid(
            pointer,
            format!("must be at most {MAX_TEXT_CHARS} characters without control characters"),
        ));
    }
    Ok(())
}

fn checked_duration(
    pointer: &str,
    raw: &str,
    bounds: std::ops::RangeInclusive<u64>,
) -> Result<(), ApiError> {
    let parsed = duration::parse(raw).map_err(|why| invalid(pointer, why))?;
    if !bounds.contains(&parsed.as_secs()) {
        return Err(invalid(
            pointer,
            format!(
                "must be from {}s to {}s, such as 24h",
                bounds.start(),
                bounds.end()
            ),
        ));
    }
    Ok(())
}

/// A JSON object's size bound, for the settings accessd only stores and echoes.
fn checked_object(pointer: &str, object: &Map<String, Value>) -> Result<(), ApiError> {
    let size = serde_json::to_string(object).map_or(usize::MAX, |s| s.len());
    if size > 4 * MAX_TEXT_CHARS {
        return Err(invalid(pointer, "is too large"));
    }
    Ok(())
}

impl OrganizationRequest {
    /// Checks every given field; returns the team domain, normalised.
    fn validate(&self) -> Result<Option<String>, ApiError> {
        let auth_domain = match &self.auth_domain {
            None => None,
            Some(raw) => {
                let domain = app::parse_domain(raw).map_err(|why| invalid("/auth_domain", why))?;
                if domain.contains('/') {
                    return Err(invalid(
                        "/auth_domain",
                        "auth_domain is a host without a path, such as team.example.com",
                    ));
                }
                Some(domain)
            }
        };
        if let Some(name) = &self.name {
            let length = name.trim().chars().count();
            if length == 0 || length > MAX_NAME_CHARS || name.chars().any(char::is_control) {
                return Err(invalid(
                    "/name",
                    format!("name must be 1 to {MAX_NAME_CHARS} characters"),
                ));
            }
        }
        if let Some(raw) = &self.session_duration {
            checked_duration("/session_duration", raw, SESSION_SECONDS)?;
        }
        if let Some(raw) = &self.user_seat_expiration_inactive_time {
            checked_duration(
                "/user_seat_expiration_inactive_time",
                raw,
                730 * 3600..=u64::MAX,
            )?;
        }
        if let Some(raw) = &self.warp_auth_session_duration {
            checked_duration("/warp_auth_session_duration", raw, 0..=u64::MAX)?;
        }
        if let Some(reason) = &self.ui_read_only_toggle_reason {
            checked_text("/ui_read_only_toggle_reason", reason)?;
        }
        if let Some(zones) = &self.deny_unmatched_requests_exempted_zone_names {
            if zones.len() > MAX_ZONE_NAMES {
                return Err(invalid(
                    "/deny_unmatched_requests_exempted_zone_names",
                    format!("at most {MAX_ZONE_NAMES} zone names"),
                ));
            }
            for (i, zone) in zones.iter().enumerate() {
                checked_text(
                    &format!("/deny_unmatched_requests_exempted_zone_names/{i}"),
                    zone,
                )?;
            }
        }
        if let Some(design) = &self.login_design {
            for (field, value) in [
                ("background_color", &design.background_color),
                ("footer_text", &design.footer_text),
                ("header_text", &design.header_text),
                ("logo_path", &design.logo_path),
                ("text_color", &design.text_color),
            ] {
                if let Some(text) = value {
                    checked_text(&format!("/login_design/{field}"), text)?;
                }
            }
        }
        if let Some(inactivity) = &self.service_token_inactivity
            && !(30..=365).contains(&inactivity.inactivity_threshold_days)
        {
            return Err(invalid(
                "/service_token_inactivity/inactivity_threshold_days",
                "inactivity_threshold_days must be from 30 to 365",
            ));
        }
        for (pointer, object) in [
            ("/mfa_config", &self.mfa_config),
            ("/mfa_piv_key_requirements", &self.mfa_piv_key_requirements),
        ] {
            if let Some(object) = object {
                checked_object(pointer, object)?;
            }
        }
        Ok(auth_domain)
    }

    /// The settings kept as JSON: every field given, but the three that
    /// have columns of their own.
    fn settings(&self) -> Result<Map<String, Value>, ApiError> {
        let Value::Object(mut settings) = serde_json::to_value(self)
            .map_err(|e| ApiError::Internal(format!("organization fields: {e}")))?
        else {
            return Err(ApiError::Internal(
                "organization fields are no object".into(),
            ));
        };
        settings.retain(|key, value| {
            !value.is_null() && !matches!(key.as_str(), "auth_domain" | "name" | "session_duration")
        });
        Ok(settings)
    }
}

/// The organization as the SDKs read it.
fn view(org: &Organization) -> Value {
    let mut object = org.settings.clone();
    object.insert("auth_domain".into(), Value::String(org.auth_domain.clone()));
    object.insert("name".into(), Value::String(org.name.clone()));
    if let Some(duration) = &org.session_duration {
        object.insert("session_duration".into(), Value::String(duration.clone()));
    }
    object.insert("trusted_accounts".into(), Value::Array(Vec::new()));
    object.insert(
        "created_at".into(),
        serde_json::to_value(org.created_at).unwrap_or(Value::Null),
    );
    object.insert(
        "updated_at".into(),
        serde_json::to_value(org.updated_at).unwrap_or(Value::Null),
    );
    Value::Object(object)
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/organizations/methods/list/>
async fn get_organization(
    State(state): State<AppState>,
    caller: Authorized<IdpsRead>,
) -> Result<Success<Value>, ApiError> {
    let org = state
        .store
        .find_organization(&caller.account)
        .await?
        .ok_or_else(not_found)?;
    Ok(Success::ok(view(&org)))
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/organizations/methods/create/>
async fn create_organization(
    State(state): State<AppState>,
    caller: Authorized<IdpsWrite>,
    AccessJson(body): AccessJson<OrganizationRequest>,
) -> Result<Success<Value>, ApiError> {
    let Some(auth_domain) = body.validate()? else {
        return Err(invalid(
            "/auth_domain",
            "auth_domain is required, such as team.example.com",
        ));
    };
    let Some(name) = body.name.as_deref().map(str::trim) else {
        return Err(invalid("/name", "name is required"));
    };
    let now = Timestamp::now();
    let org = Organization {
        account_id: caller.account,
        auth_domain,
        name: name.to_string(),
        session_duration: body.session_duration.clone(),
        settings: body.settings()?,
        created_at: now,
        updated_at: now,
    };
    state.store.create_organization(&org).await?;
    Ok(Success::created(view(&org)))
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/organizations/methods/update/>
async fn update_organization(
    State(state): State<AppState>,
    caller: Authorized<IdpsWrite>,
    AccessJson(body): AccessJson<OrganizationRequest>,
) -> Result<Success<Value>, ApiError> {
    let auth_domain = body.validate()?;
    let mut org = state
        .store
        .find_organization(&caller.account)
        .await?
        .ok_or_else(not_found)?;
    let read_version = org.updated_at;
    if let Some(domain) = auth_domain {
        org.auth_domain = domain;
    }
    if let Some(name) = &body.name {
        org.name = name.trim().to_string();
    }
    if let Some(duration) = &body.session_duration {
        org.session_duration = Some(duration.clone());
    }
    org.settings.extend(body.settings()?);
    // Later than the version read, so the guard below sees a change even within one microsecond.
    org.updated_at = Timestamp::now().max(Timestamp::from_micros(read_version.micros() + 1));
    if !state.store.replace_organization(&org, read_version).await? {
        return Err(ApiError::conflict(
            1001,
            "the organization was changed by another request while this one ran; read it again and retry",
        ));
    }
    Ok(Success::ok(view(&org)))
}
