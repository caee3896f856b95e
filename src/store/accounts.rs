use tracing::instrument;

use super::{
    Bind, Page, PageRequest, SortDirection, Store, StoreResult, corrupt, like_pattern, with_pool,
    with_writer,
};
use crate::domain::account::{Account, AccountSettings, AccountType};
use crate::domain::{AccountId, Timestamp};

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    name: String,
    account_type: String,
    settings: String,
    created_on: i64,
}

impl TryFrom<AccountRow> for Account {
    type Error = super::StoreError;

    fn try_from(row: AccountRow) -> Result<Self, Self::Error> {
        Ok(Account {
            id: AccountId::parse(&row.id).ok_or_else(|| corrupt("account id"))?,
            name: row.name,
            account_type: AccountType::parse(&row.account_type)
                .ok_or_else(|| corrupt("account type"))?,
            settings: serde_json::from_str(&row.settings).map_err(corrupt)?,
            created_on: Timestamp::from_micros(row.created_on),
        })
    }
}

#[derive(Debug, Default)]
pub struct AccountFilter {
    /// Case-insensitive substring of the name.
    pub name: Option<String>,
}

const COLUMNS: &str = "id, name, account_type, settings, created_on";

fn settings_json(settings: &AccountSettings) -> String {
    serde_json::to_string(settings).unwrap_or_else(|_| "{}".to_string())
}

impl Store {
    #[instrument(skip_all)]
    pub async fn create_account(&self, account: &Account) -> StoreResult<()> {
        let sql = "INSERT INTO accounts (id, name, account_type, settings, created_on) \
                   VALUES ($1, $2, $3, $4, $5)";
        with_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(account.id.as_str())
                .bind(&account.name)
                .bind(account.account_type.as_str())
                .bind(settings_json(&account.settings))
                .bind(account.created_on.micros())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(super::conflict_on_unique("account already exists"))?;
        Ok(())
    }

    #[instrument(skip_all)]
    pub async fn find_account(&self, id: &AccountId) -> StoreResult<Option<Account>> {
        let sql = format!("SELECT {COLUMNS} FROM accounts WHERE id = $1");
        let row: Option<AccountRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(id.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(Account::try_from).transpose()
    }

    #[instrument(skip_all)]
    pub async fn list_accounts(
        &self,
        filter: &AccountFilter,
        direction: SortDirection,
        page: PageRequest,
    ) -> StoreResult<Page<Account>> {
        let pattern = filter.name.as_deref().map(like_pattern);
        let condition = "($1 IS NULL OR lower(name) LIKE $1 ESCAPE '\\')";
        let order = direction.sql();
        let list_sql = format!(
            "SELECT {COLUMNS} FROM accounts WHERE {condition} \
             ORDER BY name {order}, id {order} LIMIT $2 OFFSET $3"
        );
        let count_sql = format!("SELECT COUNT(*) FROM accounts WHERE {condition}");
        let binds = [Bind::OptText(pattern)];
        let (rows, total_count) = self
            .fetch_page::<AccountRow>(&list_sql, &count_sql, &binds, page)
            .await?;
        Ok(Page {
            items: rows
                .into_iter()
                .map(Account::try_from)
                .collect::<StoreResult<_>>()?,
            request: page,
            total_count,
        })
    }

    /// Replaces name, type and settings; false when the account does not exist.
    #[instrument(skip_all)]
    pub async fn update_account(&self, account: &Account) -> StoreResult<bool> {
        let sql = "UPDATE accounts SET name = $2, account_type = $3, settings = $4 WHERE id = $1";
        let result = with_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(account.id.as_str())
                .bind(&account.name)
                .bind(account.account_type.as_str())
                .bind(settings_json(&account.settings))
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(result > 0)
    }

    /// Deletes the account and, by cascade, everything it owns.
    #[instrument(skip_all)]
    pub async fn delete_account(&self, id: &AccountId) -> StoreResult<bool> {
        let affected = with_writer!(self, |pool| {
            sqlx::query("DELETE FROM accounts WHERE id = $1")
                .bind(id.as_str())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }
}
