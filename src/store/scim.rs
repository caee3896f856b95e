//! SCIM users as identity providers push them. Each user keeps, besides its
//! resource, the keys SCIM filters look it up by (`user_name_key`,
//! `display_name_key`, `scim_user_emails`); listings are in `scim_listing`.

use serde_json::Value;
use tracing::instrument;

use super::snapshot::{HOLD_OWNER, ListingScope, NEXT_DELETION};
use super::{Bind, Store, StoreError, StoreResult, bind_all, corrupt, with_pool, with_writer};
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
pub(super) struct ScimUserRow {
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

pub(super) const COLUMNS: &str = "id, idp_id, account_id, user_name, link_email, external_id, active, resource, version, created_at, updated_at";
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
            "INSERT INTO scim_users ({COLUMNS}, user_name_key, display_name_key, keys_indexed) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        );
        let resource = serde_json::to_string(&user.resource).map_err(corrupt)?;
        let keys = SearchKeys::of(&user.resource);
        let (emails_sql, emails_binds) = keys.email_rows(&user.id, user.idp_id.as_str());
        with_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            // Creations of one provider take `seq` values in commit order.
            sqlx::query(HOLD_OWNER)
                .bind(ListingScope::ScimUsers.name())
                .bind(user.idp_id.as_str())
                .execute(&mut *tx)
                .await?;
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
                .bind(keys.display_name.as_deref())
                .bind(true)
                .execute(&mut *tx)
                .await
                .map_err(super::conflict_on_unique(TAKEN))?;
            if let Some(emails_sql) = &emails_sql {
                bind_all!(sqlx::query(emails_sql), &emails_binds)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
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
        let purged = with_writer!(self, |pool| {
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
                   resource = $7, version = $8, updated_at = $9, display_name_key = $11 \
                   WHERE idp_id = $1 AND id = $2 AND deleted_at IS NULL";
        let resource = serde_json::to_string(&user.resource).map_err(corrupt)?;
        let keys = SearchKeys::of(&user.resource);
        let (emails_sql, emails_binds) = keys.email_rows(&user.id, user.idp_id.as_str());
        let affected = with_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            let affected = sqlx::query(sql)
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
                .bind(keys.display_name.as_deref())
                .execute(&mut *tx)
                .await
                .map_err(super::conflict_on_unique(TAKEN))?
                .rows_affected();
            if affected > 0 {
                sqlx::query("DELETE FROM scim_user_emails WHERE user_id = $1")
                    .bind(&user.id)
                    .execute(&mut *tx)
                    .await?;
                if let Some(emails_sql) = &emails_sql {
                    bind_all!(sqlx::query(emails_sql), &emails_binds)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            affected
        });
        Ok(affected > 0)
    }

    /// Deletes the user and their group memberships; the row stays a
    /// tombstone, numbered for listings under way.
    #[instrument(skip_all)]
    pub async fn delete_scim_user(
        &self,
        idp: &IdpId,
        id: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let deleted = with_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            let number: i64 = sqlx::query_scalar(NEXT_DELETION)
                .bind(ListingScope::ScimUsers.name())
                .bind(idp.as_str())
                .fetch_one(&mut *tx)
                .await?;
            let affected = sqlx::query(
                "UPDATE scim_users SET deleted_at = $3, deleted_no = $4 \
                 WHERE idp_id = $1 AND id = $2 AND deleted_at IS NULL",
            )
            .bind(idp.as_str())
            .bind(id)
            .bind(now.micros())
            .bind(number)
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

    /// Fills the e-mail and display-name keys of users stored before they
    /// were kept (see migration 0013), a batch at a time; run on start.
    #[instrument(skip_all)]
    pub async fn index_scim_users_stored_unindexed(&self) -> StoreResult<u64> {
        const BATCH: i64 = 200;
        let pending = "SELECT id, idp_id, resource FROM scim_users WHERE NOT keys_indexed ORDER BY seq LIMIT $1";
        let mark = "UPDATE scim_users SET display_name_key = $2, keys_indexed = $3 WHERE id = $1";
        let mut indexed = 0;
        loop {
            let rows: Vec<(String, String, String)> = with_writer!(self, |pool| {
                sqlx::query_as(pending).bind(BATCH).fetch_all(pool).await?
            });
            if rows.is_empty() {
                return Ok(indexed);
            }
            with_writer!(self, |pool| {
                let mut tx = pool.begin().await?;
                for (id, idp, resource) in &rows {
                    // A resource that does not parse matches no key, as in memory.
                    let resource = serde_json::from_str(resource).unwrap_or(Value::Null);
                    let keys = SearchKeys::of(&resource);
                    let (emails_sql, emails_binds) = keys.email_rows(id, idp);
                    sqlx::query("DELETE FROM scim_user_emails WHERE user_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    if let Some(emails_sql) = &emails_sql {
                        bind_all!(sqlx::query(emails_sql), &emails_binds)
                            .execute(&mut *tx)
                            .await?;
                    }
                    sqlx::query(mark)
                        .bind(id)
                        .bind(keys.display_name.as_deref())
                        .bind(true)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            });
            indexed += rows.len() as u64;
        }
    }
}

/// What SCIM filters look a user up by, besides the columns: each e-mail
/// and the display name, lower case as the in-memory filter compares them.
struct SearchKeys {
    emails: Vec<String>,
    display_name: Option<String>,
}

/// A member of a JSON object by name, whatever its case.
fn member<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    object
        .as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

impl SearchKeys {
    fn of(resource: &Value) -> Self {
        let mut emails: Vec<String> = member(resource, "emails")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|email| member(email, "value").and_then(Value::as_str))
            .map(str::to_lowercase)
            .collect();
        emails.sort();
        emails.dedup();
        SearchKeys {
            emails,
            display_name: member(resource, "displayName")
                .and_then(Value::as_str)
                .map(str::to_lowercase),
        }
    }

    /// The statement inserting the e-mail rows, if any, and its binds.
    fn email_rows(&self, user: &str, idp: &str) -> (Option<String>, Vec<Bind>) {
        if self.emails.is_empty() {
            return (None, Vec::new());
        }
        let mut binds = vec![Bind::Text(user.to_string()), Bind::Text(idp.to_string())];
        let mut rows = Vec::with_capacity(self.emails.len());
        for email in &self.emails {
            binds.push(Bind::Text(email.clone()));
            rows.push(format!("($1, $2, ${})", binds.len()));
        }
        let sql = format!(
            "INSERT INTO scim_user_emails (user_id, idp_id, email_key) VALUES {}",
            rows.join(", ")
        );
        (Some(sql), binds)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn search_keys_fold_case_and_repeat_no_e_mail() {
        let keys = SearchKeys::of(&json!({
            "displayName": "Ann LÉE",
            "emails": [{"value": "Ann@Example.com"}, {"VALUE": "ann@example.COM"}, {"type": "work"}]
        }));
        assert_eq!(keys.emails, ["ann@example.com"]);
        assert_eq!(keys.display_name.as_deref(), Some("ann lée"));
        let none = SearchKeys::of(&json!({"userName": "a"}));
        assert!(none.emails.is_empty() && none.display_name.is_none());
        assert_eq!(none.email_rows("u", "i").0, None);
    }
}
