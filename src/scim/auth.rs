//! Who may call a provider's SCIM service: whoever holds its bearer secret.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;

use super::error::ScimError;
use crate::app::AppState;
use crate::domain::IdpId;
use crate::domain::idp::IdentityProvider;
use crate::domain::secret::SecretHash;

/// A request authenticated with the SCIM secret of the provider in the path.
pub struct ScimCaller {
    pub idp: IdentityProvider,
}

impl FromRequestParts<AppState> for ScimCaller {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ScimError> {
        let refused = ScimError::Unauthorized(
            "a valid SCIM bearer token for this identity provider is required",
        );
        let params = RawPathParams::from_request_parts(parts, &())
            .await
            .map_err(|_| ScimError::Unauthorized("bad path"))?;
        let idp_id = params
            .iter()
            .find(|(name, _)| *name == "idp_id")
            .and_then(|(_, value)| IdpId::parse(value))
            .ok_or(ScimError::Unauthorized("unknown SCIM endpoint"))?;
        let bearer = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let Some(bearer) = bearer else {
            return Err(refused);
        };
        let Some((account, stored)) = state.store.scim_secret(&idp_id).await? else {
            return Err(refused);
        };
        if !stored.matches(&SecretHash::of(bearer)) {
            return Err(refused);
        }
        let idp = state
            .store
            .find_idp(&account, &idp_id)
            .await?
            .ok_or(refused)?;
        Ok(Self { idp })
    }
}
