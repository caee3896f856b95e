//! SCIM groups and their members.

use std::collections::BTreeMap;

use serde_json::Value;
use tracing::instrument;

use super::{Store, StoreError, StoreResult, corrupt, with_pool};
use crate::domain::{AccountId, IdpId, Timestamp};

#[derive(Clone, Debug, PartialEq)]
pub struct ScimGroupRecord {
    pub id: String,
    pub idp_id: IdpId,
    pub account_id: AccountId,
    pub display_name: String,
    pub external_id: Option<String>,
    /// The group's other attributes (never `members`, kept apart).
    pub resource: Value,
    pub members: Vec<String>,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct GroupRow {
    id: String,
    idp_id: String,
    account_id: String,
    display_name: String,
    external_id: Option<String>,
    resource: String,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

impl GroupRow {
    fn into_record(self, members: Vec<String>) -> StoreResult<ScimGroupRecord> {
        Ok(ScimGroupRecord {
            id: self.id,
            idp_id: IdpId::parse(&self.idp_id).ok_or_else(|| corrupt("identity provider id"))?,
            account_id: AccountId::parse(&self.account_id).ok_or_else(|| corrupt("account id"))?,
            display_name: self.display_name,
            external_id: self.external_id,
            resource: serde_json::from_str(&self.resource).map_err(corrupt)?,
            members,
            version: self.version,
            created_at: Timestamp::from_micros(self.created_at),
            updated_at: Timestamp::from_micros(self.updated_at),
        })
    }
}

const COLUMNS: &str =
    "id, idp_id, account_id, display_name, external_id, resource, version, created_at, updated_at";
const TAKEN: &str = "displayName is already taken in this identity provider";

impl Store {
    /// Creates or replaces a group and its members in one transaction.
    /// Members must be users of the same provider.
    #[instrument(skip_all)]
    pub async fn save_scim_group(
        &self,
        group: &ScimGroupRecord,
        is_new: bool,
    ) -> StoreResult<bool> {
        let insert = format!(
            "INSERT INTO scim_groups ({COLUMNS}, display_name_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        );
        let update = "UPDATE scim_groups SET display_name = $4, external_id = $5, resource = $6, version = $7, \
                      updated_at = $9, display_name_key = $10 WHERE id = $1 AND idp_id = $2 AND account_id = $3";
        let resource = serde_json::to_string(&group.resource).map_err(corrupt)?;
        let saved = with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let affected = sqlx::query(if is_new { &insert } else { update })
                .bind(&group.id)
                .bind(group.idp_id.as_str())
                .bind(group.account_id.as_str())
                .bind(&group.display_name)
                .bind(group.external_id.as_deref())
                .bind(&resource)
                .bind(group.version)
                .bind(group.created_at.micros())
                .bind(group.updated_at.micros())
                .bind(group.display_name.to_lowercase())
                .execute(&mut *tx)
                .await
                .map_err(super::conflict_on_unique(TAKEN))?
                .rows_affected();
            if affected > 0 {
                sqlx::query("DELETE FROM scim_group_members WHERE group_id = $1")
                    .bind(&group.id)
                    .execute(&mut *tx)
                    .await?;
                for member in &group.members {
                    let known: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM scim_users WHERE id = $1 AND idp_id = $2 AND deleted_at IS NULL",
                    )
                    .bind(member)
                    .bind(group.idp_id.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                    if known == 0 {
                        return Err(StoreError::UnknownReference(format!(
                            "member {member} is not a user of this identity provider"
                        )));
                    }
                    sqlx::query(
                        "INSERT INTO scim_group_members (group_id, user_id) VALUES ($1, $2)",
                    )
                    .bind(&group.id)
                    .bind(member)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
            affected > 0
        });
        Ok(saved)
    }

    async fn members_of(&self, group: &str) -> StoreResult<Vec<String>> {
        let members = with_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT user_id FROM scim_group_members WHERE group_id = $1 ORDER BY user_id",
            )
            .bind(group)
            .fetch_all(pool)
            .await?
        });
        Ok(members)
    }

    #[instrument(skip_all)]
    pub async fn find_scim_group(
        &self,
        idp: &IdpId,
        id: &str,
    ) -> StoreResult<Option<ScimGroupRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM scim_groups WHERE idp_id = $1 AND id = $2");
        let row: Option<GroupRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(idp.as_str())
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        match row {
            Some(row) => {
                let members = self.members_of(&row.id).await?;
                row.into_record(members).map(Some)
            }
            None => Ok(None),
        }
    }

    /// Every group of the provider with its members, in creation order.
    #[instrument(skip_all)]
    pub async fn list_scim_groups(&self, idp: &IdpId) -> StoreResult<Vec<ScimGroupRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM scim_groups WHERE idp_id = $1 ORDER BY seq");
        let members_sql = "SELECT m.group_id, m.user_id FROM scim_group_members m \
                           JOIN scim_groups g ON g.id = m.group_id WHERE g.idp_id = $1 ORDER BY m.user_id";
        let (rows, pairs): (Vec<GroupRow>, Vec<(String, String)>) = with_pool!(self, |pool| {
            let rows = sqlx::query_as(&sql)
                .bind(idp.as_str())
                .fetch_all(pool)
                .await?;
            let pairs = sqlx::query_as(members_sql)
                .bind(idp.as_str())
                .fetch_all(pool)
                .await?;
            (rows, pairs)
        });
        let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (group, user) in pairs {
            members.entry(group).or_default().push(user);
        }
        rows.into_iter()
            .map(|row| {
                let list = members.remove(&row.id).unwrap_or_default();
                row.into_record(list)
            })
            .collect()
    }

    #[instrument(skip_all)]
    pub async fn delete_scim_group(&self, idp: &IdpId, id: &str) -> StoreResult<bool> {
        let affected = with_pool!(self, |pool| {
            sqlx::query("DELETE FROM scim_groups WHERE idp_id = $1 AND id = $2")
                .bind(idp.as_str())
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }

    /// Groups (id, displayName) the SCIM user belongs to.
    #[instrument(skip_all)]
    pub async fn scim_groups_of_user(&self, user: &str) -> StoreResult<Vec<(String, String)>> {
        let sql = "SELECT g.id, g.display_name FROM scim_group_members m JOIN scim_groups g ON g.id = m.group_id \
                   WHERE m.user_id = $1 ORDER BY g.display_name";
        let rows = with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(user)
            .fetch_all(pool)
            .await?);
        Ok(rows)
    }

    /// Ids of the SCIM groups, in this account, of the users linked to
    /// `email`. A deactivated (`active: false`) SCIM user counts in no group.
    #[instrument(skip_all)]
    pub async fn scim_group_ids_for_email(
        &self,
        account: &AccountId,
        email: &str,
    ) -> StoreResult<Vec<String>> {
        let sql = "SELECT m.group_id FROM scim_group_members m JOIN scim_users u ON u.id = m.user_id \
                   WHERE u.account_id = $1 AND u.link_email = $2 AND u.active = $3 AND u.deleted_at IS NULL";
        let groups = with_pool!(self, |pool| {
            sqlx::query_scalar(sql)
                .bind(account.as_str())
                .bind(email.to_lowercase())
                .bind(true)
                .fetch_all(pool)
                .await?
        });
        Ok(groups)
    }
}
