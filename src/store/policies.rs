use tracing::instrument;

use super::{
    Bind, Page, PageRequest, Store, StoreError, StoreResult, corrupt, with_pool, with_writer,
};
use crate::domain::policy::{AccessPolicy, Decision};
use crate::domain::{AccessPolicyId, AccountId, Timestamp};

#[derive(sqlx::FromRow)]
struct PolicyRow {
    id: String,
    account_id: String,
    name: String,
    decision: String,
    rules: String,
    session_duration: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<PolicyRow> for AccessPolicy {
    type Error = StoreError;

    fn try_from(row: PolicyRow) -> Result<Self, Self::Error> {
        Ok(AccessPolicy {
            id: AccessPolicyId::parse(&row.id).ok_or_else(|| corrupt("policy id"))?,
            account_id: AccountId::parse(&row.account_id).ok_or_else(|| corrupt("account id"))?,
            name: row.name,
            decision: Decision::parse(&row.decision).ok_or_else(|| corrupt("policy decision"))?,
            rules: serde_json::from_str(&row.rules).map_err(corrupt)?,
            session_duration: row.session_duration,
            created_at: Timestamp::from_micros(row.created_at),
            updated_at: Timestamp::from_micros(row.updated_at),
        })
    }
}

const COLUMNS: &str =
    "id, account_id, name, decision, rules, session_duration, created_at, updated_at";

impl Store {
    #[instrument(skip_all)]
    pub async fn create_policy(&self, policy: &AccessPolicy) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO access_policies ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        );
        let rules = serde_json::to_string(&policy.rules).map_err(corrupt)?;
        with_writer!(self, |pool| {
            sqlx::query(&sql)
                .bind(policy.id.as_str())
                .bind(policy.account_id.as_str())
                .bind(&policy.name)
                .bind(policy.decision.as_str())
                .bind(&rules)
                .bind(policy.session_duration.as_deref())
                .bind(policy.created_at.micros())
                .bind(policy.updated_at.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    #[instrument(skip_all)]
    pub async fn find_policy(
        &self,
        account: &AccountId,
        id: &AccessPolicyId,
    ) -> StoreResult<Option<AccessPolicy>> {
        let sql =
            format!("SELECT {COLUMNS} FROM access_policies WHERE id = $1 AND account_id = $2");
        let row: Option<PolicyRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(id.as_str())
                .bind(account.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(AccessPolicy::try_from).transpose()
    }

    #[instrument(skip_all)]
    pub async fn list_policies(
        &self,
        account: &AccountId,
        page: PageRequest,
    ) -> StoreResult<Page<AccessPolicy>> {
        let list_sql = format!(
            "SELECT {COLUMNS} FROM access_policies WHERE account_id = $1 \
             ORDER BY created_at, id LIMIT $2 OFFSET $3"
        );
        let count_sql = "SELECT COUNT(*) FROM access_policies WHERE account_id = $1";
        let binds = [Bind::Text(account.to_string())];
        let (rows, total_count) = self
            .fetch_page::<PolicyRow>(&list_sql, count_sql, &binds, page)
            .await?;
        Ok(Page {
            items: rows
                .into_iter()
                .map(AccessPolicy::try_from)
                .collect::<StoreResult<_>>()?,
            request: page,
            total_count,
        })
    }

    #[instrument(skip_all)]
    pub async fn replace_policy(&self, policy: &AccessPolicy) -> StoreResult<bool> {
        let sql = "UPDATE access_policies SET name = $3, decision = $4, rules = $5, \
                   session_duration = $6, updated_at = $7 WHERE id = $1 AND account_id = $2";
        let rules = serde_json::to_string(&policy.rules).map_err(corrupt)?;
        let affected = with_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(policy.id.as_str())
                .bind(policy.account_id.as_str())
                .bind(&policy.name)
                .bind(policy.decision.as_str())
                .bind(&rules)
                .bind(policy.session_duration.as_deref())
                .bind(policy.updated_at.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }

    /// How many applications use the policy.
    #[instrument(skip_all)]
    pub async fn policy_app_count(&self, id: &AccessPolicyId) -> StoreResult<i64> {
        let count = with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM access_app_policies WHERE policy_id = $1")
                .bind(id.as_str())
                .fetch_one(pool)
                .await?
        });
        Ok(count)
    }

    /// Deletes a policy no application uses; `Conflict` when one does.
    #[instrument(skip_all)]
    pub async fn delete_policy(
        &self,
        account: &AccountId,
        id: &AccessPolicyId,
    ) -> StoreResult<bool> {
        if self.policy_app_count(id).await? > 0 {
            return Err(StoreError::Conflict(
                "the policy is used by applications; remove it from them first".into(),
            ));
        }
        let affected = with_writer!(self, |pool| {
            sqlx::query("DELETE FROM access_policies WHERE id = $1 AND account_id = $2")
                .bind(id.as_str())
                .bind(account.as_str())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }
}
