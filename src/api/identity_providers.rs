//! Identity providers: `/accounts/{account_id}/access/identity_providers…`.
//! accessd signs users in with a one-time PIN by e-mail or a generic OpenID
//! Connect provider; other provider types are refused with a clear error.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::accounts::Deleted;
use super::envelope::Success;
use super::extract::{AccessJson, AccessQuery, PageLimits, PageParams};
use crate::app::AppState;
use crate::auth::Authorized;
use crate::auth::operations::{IdpsRead, IdpsWrite};
use crate::domain::idp::{IdentityProvider, IdentityUpdate, IdpConfig, OidcConfig, ScimSettings};
use crate::domain::secret::{self, SecretKind};
use crate::domain::{IdpId, Timestamp};
use crate::error::{ApiError, Family};
use crate::store::idps::IdpFilter;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/accounts/{account_id}/access/identity_providers",
            get(list_idps).post(create_idp),
        )
        .route(
            "/accounts/{account_id}/access/identity_providers/{idp_id}",
            get(get_idp).put(update_idp).delete(delete_idp),
        )
        .route(
            "/accounts/{account_id}/access/identity_providers/{idp_id}/refresh_scim_secret",
            post(refresh_scim_secret),
        )
}

/// Shown instead of an OIDC client secret; sending it back keeps the stored one.
const REDACTED: &str = "**********";

fn invalid(pointer: &str, message: impl Into<String>) -> ApiError {
    ApiError::field(pointer, message).in_family(Family::Access)
}

pub fn idp_not_found() -> ApiError {
    ApiError::access_not_found("identity provider not found")
}

#[derive(Serialize)]
pub struct IdpView {
    id: IdpId,
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    config: Value,
    scim_config: ScimView,
}

#[derive(Serialize)]
struct ScimView {
    enabled: bool,
    user_deprovision: bool,
    seat_deprovision: bool,
    identity_update_behavior: &'static str,
    scim_base_url: String,
    /// Only in the answer that turned SCIM on: it is not stored in clear.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl IdpView {
    fn new(idp: &IdentityProvider, public_url: &str, fresh_secret: Option<String>) -> Self {
        let config = match &idp.config {
            IdpConfig::OneTimePin => {
                json!({ "redirect_url": format!("{public_url}/cdn-cgi/access/callback") })
            }
            IdpConfig::Oidc(oidc) => {
                let mut shown = serde_json::to_value(oidc).unwrap_or_else(|_| json!({}));
                shown["client_secret"] = json!(REDACTED);
                shown
            }
        };
        Self {
            id: idp.id.clone(),
            name: idp.name.clone(),
            kind: idp.config.kind(),
            config,
            scim_config: ScimView {
                enabled: idp.scim.enabled,
                user_deprovision: idp.scim.user_deprovision,
                seat_deprovision: idp.scim.seat_deprovision,
                identity_update_behavior: idp.scim.identity_update.as_str(),
                scim_base_url: format!("{public_url}/scim/v2/{}", idp.id),
                secret: fresh_secret,
            },
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdpRequest {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    config: Map<String, Value>,
    #[serde(default)]
    scim_config: Option<ScimInput>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ScimInput {
    enabled: Option<bool>,
    user_deprovision: Option<bool>,
    seat_deprovision: Option<bool>,
    identity_update_behavior: Option<String>,
    #[allow(
        dead_code,
        reason = "read-only; accepted so a fetched provider can be sent back"
    )]
    scim_base_url: Option<Value>,
    #[allow(
        dead_code,
        reason = "read-only; accepted so a fetched provider can be sent back"
    )]
    secret: Option<Value>,
}

impl ScimInput {
    fn into_settings(self) -> Result<ScimSettings, ApiError> {
        let identity_update = match self.identity_update_behavior.as_deref() {
            None => IdentityUpdate::default(),
            Some(raw) => IdentityUpdate::parse(raw).ok_or_else(|| {
                invalid(
                    "/scim_config/identity_update_behavior",
                    format!("must be automatic, reauth or no_action, got {raw:?}"),
                )
            })?,
        };
        let settings = ScimSettings {
            enabled: self.enabled.unwrap_or(false),
            user_deprovision: self.user_deprovision.unwrap_or(false),
            seat_deprovision: self.seat_deprovision.unwrap_or(false),
            identity_update,
        };
        if settings.seat_deprovision && !settings.user_deprovision {
            return Err(invalid(
                "/scim_config/seat_deprovision",
                "seat_deprovision requires user_deprovision",
            ));
        }
        Ok(settings)
    }
}

fn required_url(config: &Map<String, Value>, key: &str) -> Result<String, ApiError> {
    let value = required_text(config, key)?;
    if !(value.starts_with("https://") || value.starts_with("http://")) {
        return Err(invalid(
            &format!("/config/{key}"),
            format!("{key} must be an http(s) URL"),
        ));
    }
    Ok(value)
}

fn required_text(config: &Map<String, Value>, key: &str) -> Result<String, ApiError> {
    match config.get(key) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.clone()),
        _ => Err(invalid(
            &format!("/config/{key}"),
            format!("{key} is required for an oidc provider"),
        )),
    }
}

/// Builds the provider's settings from the request; `previous` keeps a
/// redacted or omitted OIDC client secret as it was.
fn parse_config(
    kind: &str,
    config: Map<String, Value>,
    previous: Option<&IdpConfig>,
) -> Result<IdpConfig, ApiError> {
    match kind {
        "onetimepin" => {
            if let Some(key) = config.keys().find(|k| *k != "redirect_url") {
                return Err(invalid(
                    &format!("/config/{key}"),
                    "a onetimepin provider takes no config settings",
                ));
            }
            Ok(IdpConfig::OneTimePin)
        }
        "oidc" => {
            const KNOWN: &[&str] = &[
                "client_id",
                "client_secret",
                "auth_url",
                "token_url",
                "certs_url",
                "scopes",
                "claims",
                "email_claim_name",
                "pkce_enabled",
            ];
            if let Some(key) = config.keys().find(|k| !KNOWN.contains(&k.as_str())) {
                return Err(invalid(
                    &format!("/config/{key}"),
                    format!("unknown oidc setting {key:?}"),
                ));
            }
            let kept_secret = match previous {
                Some(IdpConfig::Oidc(old)) => Some(old.client_secret.clone()),
                _ => None,
            };
            let client_secret = match (config.get("client_secret"), kept_secret) {
                (Some(Value::String(s)), Some(old)) if s == REDACTED => old,
                (None, Some(old)) => old,
                _ => required_text(&config, "client_secret")?,
            };
            let list = |key: &str| -> Result<Vec<String>, ApiError> {
                match config.get(key) {
                    None | Some(Value::Null) => Ok(Vec::new()),
                    Some(value) => serde_json::from_value(value.clone()).map_err(|_| {
                        invalid(
                            &format!("/config/{key}"),
                            format!("{key} must be a list of strings"),
                        )
                    }),
                }
            };
            let oidc = OidcConfig {
                client_id: required_text(&config, "client_id")?,
                client_secret,
                auth_url: required_url(&config, "auth_url")?,
                token_url: required_url(&config, "token_url")?,
                certs_url: required_url(&config, "certs_url")?,
                scopes: {
                    let scopes = list("scopes")?;
                    if scopes.is_empty() {
                        vec!["openid".into(), "email".into(), "profile".into()]
                    } else {
                        scopes
                    }
                },
                claims: list("claims")?,
                email_claim_name: match config.get("email_claim_name") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(name)) => Some(name.clone()),
                    Some(_) => {
                        return Err(invalid(
                            "/config/email_claim_name",
                            "email_claim_name must be a string",
                        ));
                    }
                },
                pkce_enabled: match config.get("pkce_enabled") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(on)) => *on,
                    Some(_) => {
                        return Err(invalid(
                            "/config/pkce_enabled",
                            "pkce_enabled must be true or false",
                        ));
                    }
                },
            };
            Ok(IdpConfig::Oidc(oidc))
        }
        other => Err(invalid(
            "/type",
            format!(
                "identity provider type {other:?} is not supported; accessd offers onetimepin and oidc"
            ),
        )),
    }
}

fn parse_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 256 {
        return Err(invalid("/name", "name must be 1 to 256 characters"));
    }
    Ok(name.to_string())
}

/// A new SCIM secret when SCIM is being turned on; stored hashed.
async fn secret_if_turned_on(
    state: &AppState,
    idp: &IdentityProvider,
    was_enabled: bool,
) -> Result<Option<String>, ApiError> {
    if !idp.scim.enabled || was_enabled {
        return Ok(None);
    }
    let minted = secret::mint(SecretKind::Scim);
    state.store.set_scim_secret(&idp.id, &minted.hash).await?;
    Ok(Some(minted.value))
}

fn one_pin_provider_only() -> ApiError {
    ApiError::conflict(
        12131,
        "access.api.error.conflict: this account already has a onetimepin identity provider",
    )
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/identity_providers/methods/create/>
async fn create_idp(
    State(state): State<AppState>,
    caller: Authorized<IdpsWrite>,
    AccessJson(body): AccessJson<IdpRequest>,
) -> Result<Success<IdpView>, ApiError> {
    let config = parse_config(&body.kind, body.config, None)?;
    let scim = body.scim_config.unwrap_or_default().into_settings()?;
    if config == IdpConfig::OneTimePin
        && state
            .store
            .idp_kind_taken(&caller.account, "onetimepin", None)
            .await?
    {
        return Err(one_pin_provider_only());
    }
    let now = Timestamp::now();
    let idp = IdentityProvider {
        id: IdpId::generate(),
        account_id: caller.account,
        name: parse_name(&body.name)?,
        config,
        scim,
        created_at: now,
        updated_at: now,
    };
    state.store.create_idp(&idp).await?;
    let secret = secret_if_turned_on(&state, &idp, false).await?;
    Ok(Success::created(IdpView::new(
        &idp,
        &state.public_url,
        secret,
    )))
}

#[derive(Deserialize)]
pub struct IdpListQuery {
    scim_enabled: Option<String>,
}

const IDP_PAGES: PageLimits = PageLimits {
    min_per_page: 1,
    max_per_page: 1000,
    default_per_page: 200,
};

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/identity_providers/methods/list/>
async fn list_idps(
    State(state): State<AppState>,
    caller: Authorized<IdpsRead>,
    AccessQuery(query): AccessQuery<IdpListQuery>,
    AccessQuery(pages): AccessQuery<PageParams>,
) -> Result<Success<Vec<IdpView>>, ApiError> {
    let page = pages
        .resolve(&IDP_PAGES)
        .map_err(|e| e.in_family(Family::Access))?;
    let scim_enabled = match query.scim_enabled.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(ApiError::invalid(
                None,
                format!("query parameter `scim_enabled` must be true or false, got {other:?}"),
            )
            .in_family(Family::Access));
        }
    };
    let idps = state
        .store
        .list_idps(&caller.account, IdpFilter { scim_enabled }, page)
        .await?;
    Ok(Success::page(
        idps.map(|idp| IdpView::new(&idp, &state.public_url, None)),
    ))
}

#[derive(Deserialize)]
pub struct IdpPath {
    #[allow(dead_code, reason = "validated by the Authorized extractor")]
    account_id: String,
    idp_id: String,
}

impl IdpPath {
    pub fn idp_id(&self) -> &str {
        &self.idp_id
    }
}

pub async fn load_idp(
    state: &AppState,
    account: &crate::domain::AccountId,
    raw: &str,
) -> Result<IdentityProvider, ApiError> {
    let id = IdpId::parse(raw).ok_or_else(idp_not_found)?;
    state
        .store
        .find_idp(account, &id)
        .await?
        .ok_or_else(idp_not_found)
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/identity_providers/methods/get/>
async fn get_idp(
    State(state): State<AppState>,
    caller: Authorized<IdpsRead>,
    Path(path): Path<IdpPath>,
) -> Result<Success<IdpView>, ApiError> {
    let idp = load_idp(&state, &caller.account, &path.idp_id).await?;
    Ok(Success::ok(IdpView::new(&idp, &state.public_url, None)))
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/identity_providers/methods/update/>
///
/// A full replacement. The type cannot change; an OIDC client secret sent
/// back redacted (or left out) stays as it was.
async fn update_idp(
    State(state): State<AppState>,
    caller: Authorized<IdpsWrite>,
    Path(path): Path<IdpPath>,
    AccessJson(body): AccessJson<IdpRequest>,
) -> Result<Success<IdpView>, ApiError> {
    let mut idp = load_idp(&state, &caller.account, &path.idp_id).await?;
    if body.kind != idp.config.kind() {
        return Err(invalid(
            "/type",
            format!(
                "the type of a provider cannot change (it is {}); create a new provider",
                idp.config.kind()
            ),
        ));
    }
    let was_enabled = idp.scim.enabled;
    idp.config = parse_config(&body.kind, body.config, Some(&idp.config))?;
    idp.scim = body.scim_config.unwrap_or_default().into_settings()?;
    idp.name = parse_name(&body.name)?;
    idp.updated_at = Timestamp::now();
    if !state.store.replace_idp(&idp).await? {
        return Err(idp_not_found());
    }
    let secret = secret_if_turned_on(&state, &idp, was_enabled).await?;
    Ok(Success::ok(IdpView::new(&idp, &state.public_url, secret)))
}

/// <https://developers.cloudflare.com/api/resources/zero_trust/subresources/identity_providers/methods/delete/>
async fn delete_idp(
    State(state): State<AppState>,
    caller: Authorized<IdpsWrite>,
    Path(path): Path<IdpPath>,
) -> Result<Success<Deleted<IdpId>>, ApiError> {
    let id = IdpId::parse(&path.idp_id).ok_or_else(idp_not_found)?;
    if !state.store.delete_idp(&caller.account, &id).await? {
        return Err(idp_not_found());
    }
    Ok(Success::accepted(Deleted { id }))
}

/// `POST …/identity_providers/{idp_id}/refresh_scim_secret`: a new SCIM
/// secret, shown once in the answer; the old one stops working at once.
async fn refresh_scim_secret(
    State(state): State<AppState>,
    caller: Authorized<IdpsWrite>,
    Path(path): Path<IdpPath>,
) -> Result<Success<IdpView>, ApiError> {
    let idp = load_idp(&state, &caller.account, &path.idp_id).await?;
    if !idp.scim.enabled {
        return Err(invalid(
            "/scim_config/enabled",
            "SCIM is not enabled for this identity provider",
        ));
    }
    let minted = secret::mint(SecretKind::Scim);
    state.store.set_scim_secret(&idp.id, &minted.hash).await?;
    Ok(Success::ok(IdpView::new(
        &idp,
        &state.public_url,
        Some(minted.value),
    )))
}
