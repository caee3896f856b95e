//! Sign-ins waiting on an OpenID provider: one row per authorization
//! request, used up by the provider's callback.

use tracing::instrument;

use super::{Store, StoreResult, with_writer};
use crate::domain::{AccountId, AppId, Timestamp};

/// What the callback needs to finish a sign-in the start page began. The
/// PKCE verifier is given and returned in clear; it is stored sealed.
#[derive(Debug, Clone)]
pub struct PendingOidcLogin {
    pub state_hash: String,
    pub account_id: AccountId,
    pub app_id: AppId,
    pub idp_id: String,
    pub nonce_hash: String,
    pub pkce_verifier: String,
    pub redirect_url: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

type PendingRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
);

fn sealed_record(state_hash: &str) -> String {
    format!("oidc_login:{state_hash}")
}

impl Store {
    #[instrument(skip_all)]
    pub async fn create_oidc_login(&self, login: &PendingOidcLogin) -> StoreResult<()> {
        let sealed = self
            .sealer()?
            .seal(&login.pkce_verifier, &sealed_record(&login.state_hash))?;
        let sql = "INSERT INTO access_oidc_logins (state_hash, account_id, app_id, idp_id, nonce_hash, \
                   sealed_verifier, redirect_url, created_at, expires_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        with_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(&login.state_hash)
                .bind(login.account_id.as_str())
                .bind(login.app_id.as_str())
                .bind(&login.idp_id)
                .bind(&login.nonce_hash)
                .bind(&sealed)
                .bind(&login.redirect_url)
                .bind(login.created_at.micros())
                .bind(login.expires_at.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// Removes and returns the unexpired sign-in with this state hash, in one
    /// statement: of two callbacks with the same state, only one gets it.
    #[instrument(skip_all)]
    pub async fn take_oidc_login(
        &self,
        state_hash: &str,
        now: Timestamp,
    ) -> StoreResult<Option<PendingOidcLogin>> {
        let sql = "DELETE FROM access_oidc_logins WHERE state_hash = $1 AND expires_at > $2 \
                   RETURNING state_hash, account_id, app_id, idp_id, nonce_hash, sealed_verifier, \
                   redirect_url, created_at, expires_at";
        let row: Option<PendingRow> = with_writer!(self, |pool| {
            sqlx::query_as(sql)
                .bind(state_hash)
                .bind(now.micros())
                .fetch_optional(pool)
                .await?
        });
        let Some(r) = row else {
            return Ok(None);
        };
        let pkce_verifier = self.sealer()?.open(&r.5, &sealed_record(&r.0))?;
        let (Some(account_id), Some(app_id)) = (AccountId::parse(&r.1), AppId::parse(&r.2)) else {
            return Ok(None);
        };
        Ok(Some(PendingOidcLogin {
            state_hash: r.0,
            account_id,
            app_id,
            idp_id: r.3,
            nonce_hash: r.4,
            pkce_verifier,
            redirect_url: r.6,
            created_at: Timestamp::from_micros(r.7),
            expires_at: Timestamp::from_micros(r.8),
        }))
    }

    #[instrument(skip_all)]
    pub async fn purge_oidc_logins(&self, before: Timestamp) -> StoreResult<u64> {
        let purged = with_writer!(self, |pool| {
            sqlx::query("DELETE FROM access_oidc_logins WHERE expires_at < $1")
                .bind(before.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(purged)
    }
}
