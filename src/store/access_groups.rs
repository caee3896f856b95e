use std::collections::HashSet;

use tracing::instrument;

use super::{
    Bind, Page, PageRequest, Store, StoreError, StoreResult, bind_all, corrupt, escape_like,
    like_pattern, with_pool, with_writer,
};
use crate::domain::access_group::{AccessGroup, AccessGroupId, GroupBook};
use crate::domain::policy::Rules;
use crate::domain::{AccountId, Timestamp};

#[derive(sqlx::FromRow)]
struct GroupRow {
    id: String,
    account_id: String,
    name: String,
    rules: String,
    is_default: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<GroupRow> for AccessGroup {
    type Error = StoreError;

    fn try_from(row: GroupRow) -> Result<Self, Self::Error> {
        Ok(AccessGroup {
            id: AccessGroupId::parse(&row.id).ok_or_else(|| corrupt("access group id"))?,
            account_id: AccountId::parse(&row.account_id).ok_or_else(|| corrupt("account id"))?,
            name: row.name,
            rules: serde_json::from_str(&row.rules).map_err(corrupt)?,
            is_default: row.is_default,
            created_at: Timestamp::from_micros(row.created_at),
            updated_at: Timestamp::from_micros(row.updated_at),
        })
    }
}

const COLUMNS: &str = "id, account_id, name, rules, is_default, created_at, updated_at";

/// What a listing of Access groups keeps.
#[derive(Debug, Default)]
pub struct GroupFilter {
    /// The exact name, in any case.
    pub name: Option<String>,
    /// Part of the name, in any case.
    pub search: Option<String>,
}

/// A pattern matching stored rules that hold `{"group": {"id": <id>}}`,
/// as `serde_json` writes them.
fn reference_pattern(id: &AccessGroupId) -> String {
    format!(
        "%{}%",
        escape_like(&format!(r#"{{"group":{{"id":"{id}"}}}}"#))
    )
}

impl Store {
    #[instrument(skip_all)]
    pub async fn create_access_group(&self, group: &AccessGroup) -> StoreResult<()> {
        let sql =
            format!("INSERT INTO access_groups ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)");
        let rules = serde_json::to_string(&group.rules).map_err(corrupt)?;
        with_writer!(self, |pool| {
            sqlx::query(&sql)
                .bind(group.id.as_str())
                .bind(group.account_id.as_str())
                .bind(&group.name)
                .bind(&rules)
                .bind(group.is_default)
                .bind(group.created_at.micros())
                .bind(group.updated_at.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    #[instrument(skip_all)]
    pub async fn find_access_group(
        &self,
        account: &AccountId,
        id: &AccessGroupId,
    ) -> StoreResult<Option<AccessGroup>> {
        let sql = format!("SELECT {COLUMNS} FROM access_groups WHERE id = $1 AND account_id = $2");
        let row: Option<GroupRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(id.as_str())
                .bind(account.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(AccessGroup::try_from).transpose()
    }

    #[instrument(skip_all)]
    pub async fn list_access_groups(
        &self,
        account: &AccountId,
        filter: &GroupFilter,
        page: PageRequest,
    ) -> StoreResult<Page<AccessGroup>> {
        let condition = "account_id = $1 AND ($2 IS NULL OR lower(name) = $2) \
                         AND ($3 IS NULL OR lower(name) LIKE $3 ESCAPE '\\')";
        let list_sql = format!(
            "SELECT {COLUMNS} FROM access_groups WHERE {condition} \
             ORDER BY created_at, id LIMIT $4 OFFSET $5"
        );
        let count_sql = format!("SELECT COUNT(*) FROM access_groups WHERE {condition}");
        let binds = [
            Bind::Text(account.to_string()),
            Bind::OptText(filter.name.as_deref().map(str::to_lowercase)),
            Bind::OptText(filter.search.as_deref().map(like_pattern)),
        ];
        let (rows, total_count) = self
            .fetch_page::<GroupRow>(&list_sql, &count_sql, &binds, page)
            .await?;
        Ok(Page {
            items: rows
                .into_iter()
                .map(AccessGroup::try_from)
                .collect::<StoreResult<_>>()?,
            request: page,
            total_count,
        })
    }

    #[instrument(skip_all)]
    pub async fn replace_access_group(&self, group: &AccessGroup) -> StoreResult<bool> {
        let sql = "UPDATE access_groups SET name = $3, rules = $4, is_default = $5, updated_at = $6 \
                   WHERE id = $1 AND account_id = $2";
        let rules = serde_json::to_string(&group.rules).map_err(corrupt)?;
        let affected = with_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(group.id.as_str())
                .bind(group.account_id.as_str())
                .bind(&group.name)
                .bind(&rules)
                .bind(group.is_default)
                .bind(group.updated_at.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }

    /// Deletes a group no policy and no other group names; `Conflict` when
    /// one does. The check and the delete are one statement.
    #[instrument(skip_all)]
    pub async fn delete_access_group(
        &self,
        account: &AccountId,
        id: &AccessGroupId,
    ) -> StoreResult<bool> {
        let sql = "DELETE FROM access_groups WHERE id = $1 AND account_id = $2 \
                   AND NOT EXISTS (SELECT 1 FROM access_policies p \
                       WHERE p.account_id = $2 AND p.rules LIKE $3 ESCAPE '\\') \
                   AND NOT EXISTS (SELECT 1 FROM access_groups g \
                       WHERE g.account_id = $2 AND g.id <> $1 AND g.rules LIKE $3 ESCAPE '\\')";
        let pattern = reference_pattern(id);
        let affected = with_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(id.as_str())
                .bind(account.as_str())
                .bind(&pattern)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if affected > 0 {
            return Ok(true);
        }
        if self.find_access_group(account, id).await?.is_some() {
            return Err(StoreError::Conflict(
                "the group is used by a policy or another group; remove it from them first".into(),
            ));
        }
        Ok(false)
    }

    /// Every Access group of the account with its rules, in one query:
    /// what `group` rules are checked and resolved against.
    #[instrument(skip_all)]
    pub async fn access_group_book(&self, account: &AccountId) -> StoreResult<GroupBook> {
        let rows: Vec<(String, String)> = with_pool!(self, |pool| {
            sqlx::query_as("SELECT id, rules FROM access_groups WHERE account_id = $1")
                .bind(account.as_str())
                .fetch_all(pool)
                .await?
        });
        let mut groups = Vec::with_capacity(rows.len());
        for (id, rules) in rows {
            let id = AccessGroupId::parse(&id).ok_or_else(|| corrupt("access group id"))?;
            let rules: Rules = serde_json::from_str(&rules).map_err(corrupt)?;
            groups.push((id, rules));
        }
        Ok(GroupBook::new(groups))
    }

    /// Which of `ids` (compared in lower case) name SCIM groups of the account.
    #[instrument(skip_all)]
    pub async fn scim_groups_among(
        &self,
        account: &AccountId,
        ids: &[String],
    ) -> StoreResult<HashSet<String>> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let placeholders: Vec<String> = (2..ids.len() + 2).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT lower(id) FROM scim_groups WHERE account_id = $1 AND lower(id) IN ({})",
            placeholders.join(", ")
        );
        let mut binds = vec![Bind::Text(account.to_string())];
        binds.extend(ids.iter().map(|id| Bind::Text(id.to_lowercase())));
        let found: Vec<String> = with_pool!(self, |pool| {
            bind_all!(sqlx::query_scalar(&sql), &binds)
                .fetch_all(pool)
                .await?
        });
        Ok(found.into_iter().collect())
    }
}
