//! The client secret of an OIDC identity provider is stored sealed inside
//! the provider's JSON config; everything else in the config stays readable.

use tracing::instrument;

use super::sealing::is_sealed;
use super::{Store, StoreResult, corrupt, with_pool};
use crate::domain::idp::{IdentityProvider, IdpConfig};

const SECRET_FIELD: &str = "client_secret";

fn sealed_record(idp_id: &str) -> String {
    format!("identity provider {idp_id} client secret")
}

impl Store {
    /// The provider's config as stored: JSON with the client secret sealed.
    pub(super) fn idp_config_for_storage(&self, idp: &IdentityProvider) -> StoreResult<String> {
        let mut config = idp.config.clone();
        if let IdpConfig::Oidc(oidc) = &mut config {
            oidc.client_secret = self
                .sealer()?
                .seal(&oidc.client_secret, &sealed_record(idp.id.as_str()))?;
        }
        serde_json::to_string(&config).map_err(corrupt)
    }

    /// The stored config JSON of provider `idp_id`, with its client secret opened.
    pub(super) fn idp_config_from_storage(
        &self,
        idp_id: &str,
        stored: &str,
    ) -> StoreResult<String> {
        let mut config: serde_json::Value = serde_json::from_str(stored).map_err(corrupt)?;
        if let Some(secret) = config.get_mut(SECRET_FIELD)
            && let Some(sealed) = secret.as_str().filter(|s| is_sealed(s))
        {
            *secret = self.sealer()?.open(sealed, &sealed_record(idp_id))?.into();
        }
        serde_json::to_string(&config).map_err(corrupt)
    }

    /// Seals client secrets an older version stored in clear and checks that
    /// every sealed one opens. Returns how many were sealed now.
    #[instrument(skip_all)]
    pub async fn seal_idp_secrets_at_rest(&self) -> StoreResult<usize> {
        let sealer = self.sealer()?;
        let rows: Vec<(String, String)> = with_pool!(self, |pool| {
            sqlx::query_as("SELECT id, config FROM access_identity_providers")
                .fetch_all(pool)
                .await?
        });
        let mut sealed_now = 0;
        for (id, stored) in rows {
            let mut config: serde_json::Value = serde_json::from_str(&stored).map_err(corrupt)?;
            let Some(secret) = config.get_mut(SECRET_FIELD) else {
                continue;
            };
            let Some(text) = secret.as_str().map(str::to_string) else {
                continue;
            };
            if is_sealed(&text) {
                sealer.open(&text, &sealed_record(&id))?;
                continue;
            }
            *secret = sealer.seal(&text, &sealed_record(&id))?.into();
            let resealed = serde_json::to_string(&config).map_err(corrupt)?;
            self.replace_if_unchanged(
                "UPDATE access_identity_providers SET config = $2 WHERE id = $1 AND config = $3",
                &id,
                &resealed,
                &stored,
            )
            .await?;
            sealed_now += 1;
        }
        Ok(sealed_now)
    }

    /// Whether any provider's client secret is stored sealed.
    #[instrument(skip_all)]
    pub async fn has_sealed_idp_secrets(&self) -> StoreResult<bool> {
        self.any_row(
            "SELECT COUNT(*) FROM access_identity_providers WHERE config LIKE '%\"sealed:v1:%'",
        )
        .await
    }
}
