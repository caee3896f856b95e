//! SCIM groups and their members. A change of members writes only the
//! members that come and go: the rows of those who stay are not touched.

use serde_json::Value;
use tracing::instrument;

use super::{Bind, Store, StoreError, StoreResult, bind_all, corrupt, with_pool, with_writer};
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
pub(super) struct GroupRow {
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
    pub(super) fn into_record(self, members: Vec<String>) -> StoreResult<ScimGroupRecord> {
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

pub(super) const COLUMNS: &str =
    "id, idp_id, account_id, display_name, external_id, resource, version, created_at, updated_at";
const TAKEN: &str = "displayName is already taken in this identity provider";

/// Members written per statement.
const MEMBERS_PER_STATEMENT: usize = 500;

/// `$1, $2, …` from `first`, one per value, and the values as binds.
fn placeholders(first: usize, values: &[String]) -> (String, Vec<Bind>) {
    let list: Vec<String> = (0..values.len())
        .map(|i| format!("${}", first + i))
        .collect();
    (
        list.join(", "),
        values.iter().cloned().map(Bind::Text).collect(),
    )
}

/// Who joins and who leaves a group.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemberChange {
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

impl MemberChange {
    /// What turns the members `before` into `after`, each in its order.
    pub fn between(before: &[String], after: &[String]) -> Self {
        let was: std::collections::HashSet<&String> = before.iter().collect();
        let now: std::collections::HashSet<&String> = after.iter().collect();
        MemberChange {
            added: after.iter().filter(|m| !was.contains(m)).cloned().collect(),
            removed: before
                .iter()
                .filter(|m| !now.contains(m))
                .cloned()
                .collect(),
        }
    }
}

/// Removes the members leaving `$group` and adds those joining, a batch per
/// statement, inside the transaction `$tx`; a joining member who is not a
/// live user of the group's provider fails it with `UnknownReference`.
macro_rules! change_members {
    ($tx:expr, $group:expr, $change:expr) => {{
        let (group, change): (&ScimGroupRecord, &MemberChange) = ($group, $change);
        for leaving in change.removed.chunks(MEMBERS_PER_STATEMENT) {
            let (list, mut binds) = placeholders(2, leaving);
            binds.insert(0, Bind::Text(group.id.clone()));
            let sql = format!(
                "DELETE FROM scim_group_members WHERE group_id = $1 AND user_id IN ({list})"
            );
            bind_all!(sqlx::query(&sql), &binds).execute($tx).await?;
        }
        for joining in change.added.chunks(MEMBERS_PER_STATEMENT) {
            let (list, ids) = placeholders(2, joining);
            let mut binds = vec![Bind::Text(group.idp_id.to_string())];
            binds.extend(ids);
            let known_sql = format!(
                "SELECT id FROM scim_users WHERE idp_id = $1 AND deleted_at IS NULL AND id IN ({list})"
            );
            let known: std::collections::HashSet<String> =
                bind_all!(sqlx::query_scalar(&known_sql), &binds)
                    .fetch_all($tx)
                    .await?
                    .into_iter()
                    .collect();
            if let Some(unknown) = joining.iter().find(|id| !known.contains(*id)) {
                return Err(StoreError::UnknownReference(format!(
                    "member {unknown} is not a user of this identity provider"
                )));
            }
            let (list, ids) = placeholders(4, joining);
            let mut binds = vec![
                Bind::Text(group.id.clone()),
                Bind::Int(group.updated_at.micros()),
                Bind::Text(group.idp_id.to_string()),
            ];
            binds.extend(ids);
            let insert = format!(
                "INSERT INTO scim_group_members (group_id, user_id, added_at) \
                 SELECT $1, id, $2 FROM scim_users \
                 WHERE idp_id = $3 AND deleted_at IS NULL AND id IN ({list}) \
                 ON CONFLICT (group_id, user_id) DO NOTHING"
            );
            bind_all!(sqlx::query(&insert), &binds).execute($tx).await?;
        }
    }};
}

impl Store {
    /// Creates a group with its members in one transaction. Members must be
    /// live users of the same provider.
    #[instrument(skip_all)]
    pub async fn create_scim_group(&self, group: &ScimGroupRecord) -> StoreResult<()> {
        let insert = format!(
            "INSERT INTO scim_groups ({COLUMNS}, display_name_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        );
        let resource = serde_json::to_string(&group.resource).map_err(corrupt)?;
        let joining = MemberChange {
            added: group.members.clone(),
            removed: Vec::new(),
        };
        with_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(&insert)
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
                .map_err(super::conflict_on_unique(TAKEN))?;
            change_members!(&mut *tx, group, &joining);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Saves a changed group and the change of its members in one
    /// transaction; false when the group no longer exists. Joining members
    /// must be live users of the same provider.
    #[instrument(skip_all)]
    pub async fn update_scim_group(
        &self,
        group: &ScimGroupRecord,
        change: &MemberChange,
    ) -> StoreResult<bool> {
        let update = "UPDATE scim_groups SET display_name = $4, external_id = $5, resource = $6, version = $7, \
                      updated_at = $8, display_name_key = $9 WHERE id = $1 AND idp_id = $2 AND account_id = $3";
        let resource = serde_json::to_string(&group.resource).map_err(corrupt)?;
        let saved = with_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            let affected = sqlx::query(update)
                .bind(&group.id)
                .bind(group.idp_id.as_str())
                .bind(group.account_id.as_str())
                .bind(&group.display_name)
                .bind(group.external_id.as_deref())
                .bind(&resource)
                .bind(group.version)
                .bind(group.updated_at.micros())
                .bind(group.display_name.to_lowercase())
                .execute(&mut *tx)
                .await
                .map_err(super::conflict_on_unique(TAKEN))?
                .rows_affected();
            if affected > 0 {
                change_members!(&mut *tx, group, change);
            }
            tx.commit().await?;
            affected > 0
        });
        Ok(saved)
    }

    /// The group's members, in id order.
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

    #[instrument(skip_all)]
    pub async fn delete_scim_group(&self, idp: &IdpId, id: &str) -> StoreResult<bool> {
        let affected = with_writer!(self, |pool| {
            sqlx::query("DELETE FROM scim_groups WHERE idp_id = $1 AND id = $2")
                .bind(idp.as_str())
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
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
