//! SCIM users as identity providers push them.

use serde_json::Value;
use tracing::instrument;

use super::snapshot::{ListingScope, ListingSnapshot};
use super::{Store, StoreError, StoreResult, corrupt, with_pool};
use crate::domain::secret::SecretHash;
use crate::domain::{AccountId, IdpId, Timestamp};

#[derive(Clone, Debug, PartialEq)]
pub struct ScimUserRecord {
    pub id: String,
    pub idp_id: IdpId,
    pub account_id: AccountId,
    pub user_name: String,
    /// The e-mail, lower case, that links the user to an Access user.
    pub link_email: String,
    pub external_id: Option<String>,
    pub active: bool,
    /// The resource as the provider manages it (without `id` and `meta`).
    pub resource: Value,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct ScimUserRow {
    id: String,
    idp_id: String,
    account_id: String,
    user_name: String,
    link_email: String,
    external_id: Option<String>,
    active: bool,
    resource: String,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ScimUserRow> for ScimUserRecord {
    type Error = StoreError;

    fn try_from(row: ScimUserRow) -> Result<Self, Self::Error> {
        Ok(ScimUserRecord {
            id: row.id,
            idp_id: IdpId::parse(&row.idp_id).ok_or_else(|| corrupt("identity provider id"))?,
            account_id: AccountId::parse(&row.account_id).ok_or_else(|| corrupt("account id"))?,
            user_name: row.user_name,
            link_email: row.link_email,
            external_id: row.external_id,
            active: row.active,
            resource: serde_json::from_str(&row.resource).map_err(corrupt)?,
            version: row.version,
            created_at: Timestamp::from_micros(row.created_at),
            updated_at: Timestamp::from_micros(row.updated_at),
        })
    }
}

const COLUMNS: &str = "id, idp_id, account_id, user_name, link_email, external_id, active, resource, version, created_at, updated_at";
const TAKEN: &str = "userName is already taken in this identity provider";

impl Store {
    /// The provider's SCIM bearer-secret hash, when SCIM is on for it.
    #[instrument(skip_all)]
    pub async fn scim_secret(&self, idp: &IdpId) -> StoreResult<Option<(AccountId, SecretHash)>> {
        let sql = "SELECT account_id, scim_secret_hash FROM access_identity_providers \
                   WHERE id = $1 AND scim_enabled = $2 AND scim_secret_hash IS NOT NULL";
        let row: Option<(String, String)> = with_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(idp.as_str())
                .bind(true)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.and_then(|(account, hash)| {
            Some((AccountId::parse(&account)?, SecretHash::from_stored(hash)))
        }))
    }

    #[instrument(skip_all)]
    pub async fn create_scim_user(&self, user: &ScimUserRecord) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO scim_users ({COLUMNS}, user_name_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        );
        let resource = serde_json::to_string(&user.resource).map_err(corrupt)?;
        with_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(&user.id)
                .bind(user.idp_id.as_str())
                .bind(user.account_id.as_str())
                .bind(&user.user_name)
                .bind(user.link_email.to_lowercase())
                .bind(user.external_id.as_deref())
                .bind(user.active)
                .bind(&resource)
                .bind(user.version)
                .bind(user.created_at.micros())
                .bind(user.updated_at.micros())
                .bind(user.user_name.to_lowercase())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(super::conflict_on_unique(TAKEN))?;
        Ok(())
    }

    #[instrument(skip_all)]
    pub async fn find_scim_user(
        &self,
        idp: &IdpId,
        id: &str,
    ) -> StoreResult<Option<ScimUserRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM scim_users WHERE idp_id = $1 AND id = $2 AND deleted_at IS NULL"
        );
        let row: Option<ScimUserRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(idp.as_str())
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        row.map(ScimUserRecord::try_from).transpose()
    }

    /// Every user of the provider, in creation order.
    #[instrument(skip_all)]
    pub async fn list_scim_users(&self, idp: &IdpId) -> StoreResult<Vec<ScimUserRecord>> {
        self.list_scim_users_at(idp, &ListingSnapshot::now()).await
    }

    /// The provider's users as they are now, pinned as the reference of a listing.
    #[instrument(skip_all)]
    pub async fn scim_user_snapshot(&self, idp: &IdpId) -> StoreResult<ListingSnapshot> {
        self.take_snapshot(ListingScope::ScimUsers, idp.as_str())
            .await
    }

    /// The users of `snapshot`, in creation order.
    #[instrument(skip_all)]
    pub async fn list_scim_users_at(
        &self,
        idp: &IdpId,
        snapshot: &ListingSnapshot,
    ) -> StoreResult<Vec<ScimUserRecord>> {
        let (visible, values) = snapshot.condition(2);
        let sql = format!(
            "SELECT {COLUMNS} FROM scim_users WHERE idp_id = $1 AND {visible} ORDER BY seq"
        );
        let rows: Vec<ScimUserRow> = with_pool!(self, |pool| {
            let mut query = sqlx::query_as(&sql).bind(idp.as_str());
            for value in &values {
                query = query.bind(*value);
            }
            query.fetch_all(pool).await?
        });
        rows.into_iter().map(ScimUserRecord::try_from).collect()
    }

    /// Whether a live SCIM user of another provider in the account, created
    /// no later than `until`, is linked to `email`.
    #[instrument(skip_all)]
    pub async fn scim_email_claimed_by_other(
        &self,
        account: &AccountId,
        idp: &IdpId,
        email: &str,
        until: Timestamp,
    ) -> StoreResult<bool> {
        let sql = "SELECT COUNT(*) FROM scim_users WHERE account_id = $1 AND link_email = $2 \
                   AND idp_id <> $3 AND created_at <= $4 AND deleted_at IS NULL";
        let claims: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar(sql)
                .bind(account.as_str())
                .bind(email.to_lowercase())
                .bind(idp.as_str())
                .bind(until.micros())
                .fetch_one(pool)
                .await?
        });
        Ok(claims > 0)
    }

    /// Removes tombstones of SCIM users deleted before `before`.
    #[instrument(skip_all)]
    pub async fn purge_scim_tombstones(&self, before: Timestamp) -> StoreResult<u64> {
        let purged = with_pool!(self, |pool| {
            sqlx::query("DELETE FROM scim_users WHERE deleted_at IS NOT NULL AND deleted_at < $1")
                .bind(before.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(purged)
    }

    /// Saves a changed user; false when it no longer exists.
    #[instrument(skip_all)]
    pub async fn replace_scim_user(&self, user: &ScimUserRecord) -> StoreResult<bool> {
        let sql = "UPDATE scim_users SET user_name = $3, user_name_key = $4, link_email = $10, external_id = $5, active = $6, \
                   resource = $7, version = $8, updated_at = $9 \
                   WHERE idp_id = $1 AND id = $2 AND deleted_at IS NULL";
        let resource = serde_json::to_string(&user.resource).map_err(corrupt)?;
        let affected = with_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(user.idp_id.as_str())
                .bind(&user.id)
                .bind(&user.user_name)
                .bind(user.user_name.to_lowercase())
                .bind(user.external_id.as_deref())
                .bind(user.active)
                .bind(&resource)
                .bind(user.version)
                .bind(user.updated_at.micros())
                .bind(user.link_email.to_lowercase())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(super::conflict_on_unique(TAKEN))?;
        Ok(affected > 0)
    }

    /// Deletes the user and their group memberships; the row stays a
    /// tombstone for listings under way.
    #[instrument(skip_all)]
    pub async fn delete_scim_user(
        &self,
        idp: &IdpId,
        id: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let deleted = with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let affected = sqlx::query(
                "UPDATE scim_users SET deleted_at = $3 WHERE idp_id = $1 AND id = $2 AND deleted_at IS NULL",
            )
            .bind(idp.as_str())
            .bind(id)
            .bind(now.micros())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("DELETE FROM scim_group_members WHERE user_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            affected > 0
        });
        Ok(deleted)
    }
}
