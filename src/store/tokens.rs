use tracing::instrument;

use super::{
    Bind, Page, PageRequest, SortDirection, Store, StoreResult, corrupt, with_pool, with_writer,
};
use crate::domain::secret::SecretHash;
use crate::domain::token::{ApiToken, IpCondition, StoredStatus};
use crate::domain::{AccountId, Timestamp, TokenId};

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    account_id: String,
    name: String,
    status: String,
    policies: String,
    condition: String,
    not_before: Option<i64>,
    expires_on: Option<i64>,
    issued_on: i64,
    modified_on: i64,
    last_used_on: Option<i64>,
}

impl TryFrom<TokenRow> for ApiToken {
    type Error = super::StoreError;

    fn try_from(row: TokenRow) -> Result<Self, Self::Error> {
        Ok(ApiToken {
            id: TokenId::parse(&row.id).ok_or_else(|| corrupt("token id"))?,
            account_id: AccountId::parse(&row.account_id).ok_or_else(|| corrupt("account id"))?,
            name: row.name,
            status: StoredStatus::parse(&row.status).ok_or_else(|| corrupt("token status"))?,
            policies: serde_json::from_str(&row.policies).map_err(corrupt)?,
            condition: serde_json::from_str(&row.condition).map_err(corrupt)?,
            not_before: row.not_before.map(Timestamp::from_micros),
            expires_on: row.expires_on.map(Timestamp::from_micros),
            issued_on: Timestamp::from_micros(row.issued_on),
            modified_on: Timestamp::from_micros(row.modified_on),
            last_used_on: row.last_used_on.map(Timestamp::from_micros),
        })
    }
}

const COLUMNS: &str = "id, account_id, name, status, policies, condition, not_before, \
                       expires_on, issued_on, modified_on, last_used_on";

/// How often `last_used_on` is written back: a token used many times a
/// second costs one write per interval, not one per request.
pub const LAST_USED_RESOLUTION_SECONDS: i64 = 30;

fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(corrupt)
}

fn condition_json(condition: &IpCondition) -> StoreResult<String> {
    to_json(condition)
}

#[derive(Debug, Clone, Copy)]
pub struct TokenListing {
    pub direction: SortDirection,
    pub include_expired: bool,
    pub now: Timestamp,
}

impl Store {
    #[instrument(skip_all)]
    pub async fn create_token(&self, token: &ApiToken, secret: &SecretHash) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO api_tokens ({COLUMNS}, secret_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        );
        let policies = to_json(&token.policies)?;
        let condition = condition_json(&token.condition)?;
        with_writer!(self, |pool| {
            sqlx::query(&sql)
                .bind(token.id.as_str())
                .bind(token.account_id.as_str())
                .bind(&token.name)
                .bind(token.status.as_str())
                .bind(&policies)
                .bind(&condition)
                .bind(token.not_before.map(Timestamp::micros))
                .bind(token.expires_on.map(Timestamp::micros))
                .bind(token.issued_on.micros())
                .bind(token.modified_on.micros())
                .bind(token.last_used_on.map(Timestamp::micros))
                .bind(secret.as_str())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(super::conflict_on_unique("token already exists"))?;
        Ok(())
    }

    #[instrument(skip_all)]
    pub async fn find_token(
        &self,
        account: &AccountId,
        id: &TokenId,
    ) -> StoreResult<Option<ApiToken>> {
        let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE account_id = $1 AND id = $2");
        let row: Option<TokenRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(account.as_str())
                .bind(id.as_str())
                .fetch_optional(pool)
                .await
        })?;
        row.map(ApiToken::try_from).transpose()
    }

    /// The token whose secret hashes to `hash`, compared in constant time.
    #[instrument(skip_all)]
    pub async fn find_token_by_secret(&self, hash: &SecretHash) -> StoreResult<Option<ApiToken>> {
        let sql = format!("SELECT {COLUMNS}, secret_hash FROM api_tokens WHERE secret_hash = $1");
        let row: Option<TokenRowWithHash> = with_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(hash.as_str())
                .fetch_optional(pool)
                .await?
        });
        let Some(row) = row else { return Ok(None) };
        if !SecretHash::from_stored(row.secret_hash).matches(hash) {
            return Ok(None);
        }
        ApiToken::try_from(row.token).map(Some)
    }

    #[instrument(skip_all)]
    pub async fn list_tokens(
        &self,
        account: &AccountId,
        listing: TokenListing,
        page: PageRequest,
    ) -> StoreResult<Page<ApiToken>> {
        let condition = "account_id = $1 AND ($2 OR expires_on IS NULL OR expires_on > $3)";
        let order = listing.direction.sql();
        let list_sql = format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE {condition} \
             ORDER BY issued_on {order}, id {order} LIMIT $4 OFFSET $5"
        );
        let count_sql = format!("SELECT COUNT(*) FROM api_tokens WHERE {condition}");
        let binds = [
            Bind::Text(account.to_string()),
            Bind::Bool(listing.include_expired),
            Bind::Int(listing.now.micros()),
        ];
        let (rows, total_count) = self
            .fetch_page::<TokenRow>(&list_sql, &count_sql, &binds, page)
            .await?;
        Ok(Page {
            items: rows
                .into_iter()
                .map(ApiToken::try_from)
                .collect::<StoreResult<_>>()?,
            request: page,
            total_count,
        })
    }

    /// Replaces what a client may change; false when the token does not exist.
    #[instrument(skip_all)]
    /// Replaces the token's settings if it was not modified since
    /// `unchanged_since` (the caller's permission check read that version).
    pub async fn replace_token(
        &self,
        token: &ApiToken,
        unchanged_since: Timestamp,
    ) -> StoreResult<bool> {
        let sql = "UPDATE api_tokens SET name = $3, status = $4, policies = $5, condition = $6, \
                   not_before = $7, expires_on = $8, modified_on = $9 \
                   WHERE account_id = $1 AND id = $2 AND modified_on = $10";
        let policies = to_json(&token.policies)?;
        let condition = condition_json(&token.condition)?;
        let affected = with_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(token.account_id.as_str())
                .bind(token.id.as_str())
                .bind(&token.name)
                .bind(token.status.as_str())
                .bind(&policies)
                .bind(&condition)
                .bind(token.not_before.map(Timestamp::micros))
                .bind(token.expires_on.map(Timestamp::micros))
                .bind(token.modified_on.micros())
                .bind(unchanged_since.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }

    /// Gives the token a new secret if it was not modified since
    /// `unchanged_since`; the old secret stops working with this commit.
    #[instrument(skip_all)]
    pub async fn roll_token_secret(
        &self,
        token: &ApiToken,
        unchanged_since: Timestamp,
        secret: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let sql = "UPDATE api_tokens SET secret_hash = $3, modified_on = $4 \
                   WHERE account_id = $1 AND id = $2 AND modified_on = $5";
        let affected = with_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(token.account_id.as_str())
                .bind(token.id.as_str())
                .bind(secret.as_str())
                .bind(now.micros())
                .bind(unchanged_since.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }

    /// Deletes the token if it was not modified since `unchanged_since`.
    #[instrument(skip_all)]
    pub async fn delete_token(
        &self,
        token: &ApiToken,
        unchanged_since: Timestamp,
    ) -> StoreResult<bool> {
        let sql = "DELETE FROM api_tokens WHERE account_id = $1 AND id = $2 AND modified_on = $3";
        let affected = with_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(token.account_id.as_str())
                .bind(token.id.as_str())
                .bind(unchanged_since.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }

    /// Records a use of the token, at most once per resolution interval.
    #[instrument(skip_all)]
    pub async fn touch_token(&self, token: &ApiToken, now: Timestamp) -> StoreResult<()> {
        let fresh = token
            .last_used_on
            .is_some_and(|at| now < at.plus_seconds(LAST_USED_RESOLUTION_SECONDS));
        if fresh {
            return Ok(());
        }
        with_writer!(self, |pool| {
            sqlx::query("UPDATE api_tokens SET last_used_on = $2 WHERE id = $1")
                .bind(token.id.as_str())
                .bind(now.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct TokenRowWithHash {
    #[sqlx(flatten)]
    token: TokenRow,
    secret_hash: String,
}
