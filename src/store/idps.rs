use tracing::instrument;

use super::{
    Bind, Page, PageRequest, Store, StoreError, StoreResult, corrupt, with_pool, with_writer,
};
use crate::domain::idp::{IdentityProvider, IdentityUpdate, ScimSettings};
use crate::domain::secret::SecretHash;
use crate::domain::{AccountId, IdpId, Timestamp};

#[derive(sqlx::FromRow)]
struct IdpRow {
    id: String,
    account_id: String,
    name: String,
    config: String,
    scim_enabled: bool,
    scim_user_deprovision: bool,
    scim_seat_deprovision: bool,
    scim_identity_update: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<IdpRow> for IdentityProvider {
    type Error = StoreError;

    fn try_from(row: IdpRow) -> Result<Self, Self::Error> {
        Ok(IdentityProvider {
            id: IdpId::parse(&row.id).ok_or_else(|| corrupt("identity provider id"))?,
            account_id: AccountId::parse(&row.account_id).ok_or_else(|| corrupt("account id"))?,
            name: row.name,
            config: serde_json::from_str(&row.config).map_err(corrupt)?,
            scim: ScimSettings {
                enabled: row.scim_enabled,
                user_deprovision: row.scim_user_deprovision,
                seat_deprovision: row.scim_seat_deprovision,
                identity_update: IdentityUpdate::parse(&row.scim_identity_update)
                    .ok_or_else(|| corrupt("identity update behaviour"))?,
            },
            created_at: Timestamp::from_micros(row.created_at),
            updated_at: Timestamp::from_micros(row.updated_at),
        })
    }
}

const COLUMNS: &str = "id, account_id, name, config, scim_enabled, scim_user_deprovision, \
                       scim_seat_deprovision, scim_identity_update, created_at, updated_at";

#[derive(Debug, Default, Clone, Copy)]
pub struct IdpFilter {
    pub scim_enabled: Option<bool>,
}

impl Store {
    fn idp_from_row(&self, mut row: IdpRow) -> StoreResult<IdentityProvider> {
        row.config = self.idp_config_from_storage(&row.id, &row.config)?;
        IdentityProvider::try_from(row)
    }

    #[instrument(skip_all)]
    pub async fn create_idp(&self, idp: &IdentityProvider) -> StoreResult<()> {
        let sql = "INSERT INTO access_identity_providers (id, account_id, name, kind, config, \
                   scim_enabled, scim_user_deprovision, scim_seat_deprovision, scim_identity_update, \
                   created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
        let config = self.idp_config_for_storage(idp)?;
        with_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(idp.id.as_str())
                .bind(idp.account_id.as_str())
                .bind(&idp.name)
                .bind(idp.config.kind())
                .bind(&config)
                .bind(idp.scim.enabled)
                .bind(idp.scim.user_deprovision)
                .bind(idp.scim.seat_deprovision)
                .bind(idp.scim.identity_update.as_str())
                .bind(idp.created_at.micros())
                .bind(idp.updated_at.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    #[instrument(skip_all)]
    pub async fn find_idp(
        &self,
        account: &AccountId,
        id: &IdpId,
    ) -> StoreResult<Option<IdentityProvider>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM access_identity_providers WHERE id = $1 AND account_id = $2"
        );
        let row: Option<IdpRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(id.as_str())
                .bind(account.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(|row| self.idp_from_row(row)).transpose()
    }

    /// Whether the account already has a provider of `kind` (other than `except`).
    #[instrument(skip_all)]
    pub async fn idp_kind_taken(
        &self,
        account: &AccountId,
        kind: &str,
        except: Option<&IdpId>,
    ) -> StoreResult<bool> {
        let sql = "SELECT COUNT(*) FROM access_identity_providers \
                   WHERE account_id = $1 AND kind = $2 AND id <> $3";
        let count: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar(sql)
                .bind(account.as_str())
                .bind(kind)
                .bind(except.map_or("", IdpId::as_str))
                .fetch_one(pool)
                .await?
        });
        Ok(count > 0)
    }

    #[instrument(skip_all)]
    pub async fn list_idps(
        &self,
        account: &AccountId,
        filter: IdpFilter,
        page: PageRequest,
    ) -> StoreResult<Page<IdentityProvider>> {
        let condition = "account_id = $1 AND ($2 = 0 OR scim_enabled = $3)";
        let list_sql = format!(
            "SELECT {COLUMNS} FROM access_identity_providers WHERE {condition} \
             ORDER BY created_at, id LIMIT $4 OFFSET $5"
        );
        let count_sql = format!("SELECT COUNT(*) FROM access_identity_providers WHERE {condition}");
        let filtering = i64::from(filter.scim_enabled.is_some());
        let wanted = filter.scim_enabled.unwrap_or(false);
        let binds = [
            Bind::Text(account.to_string()),
            Bind::Int(filtering),
            Bind::Bool(wanted),
        ];
        let (rows, total_count) = self
            .fetch_page::<IdpRow>(&list_sql, &count_sql, &binds, page)
            .await?;
        Ok(Page {
            items: rows
                .into_iter()
                .map(|row| self.idp_from_row(row))
                .collect::<StoreResult<_>>()?,
            request: page,
            total_count,
        })
    }

    #[instrument(skip_all)]
    pub async fn replace_idp(&self, idp: &IdentityProvider) -> StoreResult<bool> {
        let sql = "UPDATE access_identity_providers SET name = $3, config = $4, scim_enabled = $5, \
                   scim_user_deprovision = $6, scim_seat_deprovision = $7, scim_identity_update = $8, \
                   updated_at = $9 WHERE id = $1 AND account_id = $2";
        let config = self.idp_config_for_storage(idp)?;
        let affected = with_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(idp.id.as_str())
                .bind(idp.account_id.as_str())
                .bind(&idp.name)
                .bind(&config)
                .bind(idp.scim.enabled)
                .bind(idp.scim.user_deprovision)
                .bind(idp.scim.seat_deprovision)
                .bind(idp.scim.identity_update.as_str())
                .bind(idp.updated_at.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }

    #[instrument(skip_all)]
    pub async fn delete_idp(&self, account: &AccountId, id: &IdpId) -> StoreResult<bool> {
        let affected = with_writer!(self, |pool| {
            sqlx::query("DELETE FROM access_identity_providers WHERE id = $1 AND account_id = $2")
                .bind(id.as_str())
                .bind(account.as_str())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }

    /// Stores the hash of a new SCIM bearer secret for the provider.
    #[instrument(skip_all)]
    pub async fn set_scim_secret(&self, id: &IdpId, hash: &SecretHash) -> StoreResult<()> {
        with_writer!(self, |pool| {
            sqlx::query("UPDATE access_identity_providers SET scim_secret_hash = $2 WHERE id = $1")
                .bind(id.as_str())
                .bind(hash.as_str())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }
}
