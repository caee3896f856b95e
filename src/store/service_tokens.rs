//! Access service tokens, and the check of a presented one.
//!
//! Every write names the version it read (`updated_at`), so of two racing
//! changes (two rotations, say) one applies and the other is told so.

use tracing::instrument;

use super::{
    Bind, Page, PageRequest, Store, StoreResult, corrupt, like_pattern, with_pool, with_writer,
};
use crate::domain::secret::SecretHash;
use crate::domain::service_token::{ServiceToken, ServiceTokenId, StoredServiceToken};
use crate::domain::{AccountId, Timestamp};

#[derive(sqlx::FromRow)]
struct ServiceTokenRow {
    id: String,
    account_id: String,
    name: String,
    client_id: String,
    duration: String,
    enabled: bool,
    expires_at: Option<i64>,
    client_secret_version: i64,
    previous_secret_expires_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    last_seen_at: Option<i64>,
}

impl TryFrom<ServiceTokenRow> for ServiceToken {
    type Error = super::StoreError;

    fn try_from(row: ServiceTokenRow) -> Result<Self, Self::Error> {
        Ok(ServiceToken {
            id: ServiceTokenId::parse(&row.id).ok_or_else(|| corrupt("service token id"))?,
            account_id: AccountId::parse(&row.account_id).ok_or_else(|| corrupt("account id"))?,
            name: row.name,
            client_id: row.client_id,
            duration: row.duration,
            enabled: row.enabled,
            expires_at: row.expires_at.map(Timestamp::from_micros),
            client_secret_version: row.client_secret_version,
            previous_client_secret_expires_at: row
                .previous_secret_expires_at
                .map(Timestamp::from_micros),
            created_at: Timestamp::from_micros(row.created_at),
            updated_at: Timestamp::from_micros(row.updated_at),
            last_seen_at: row.last_seen_at.map(Timestamp::from_micros),
        })
    }
}

#[derive(sqlx::FromRow)]
struct StoredRow {
    #[sqlx(flatten)]
    token: ServiceTokenRow,
    secret_hash: String,
    previous_secret_hash: Option<String>,
}

impl TryFrom<StoredRow> for StoredServiceToken {
    type Error = super::StoreError;

    fn try_from(row: StoredRow) -> Result<Self, Self::Error> {
        Ok(StoredServiceToken {
            token: ServiceToken::try_from(row.token)?,
            secret_hash: SecretHash::from_stored(row.secret_hash),
            previous_secret_hash: row.previous_secret_hash.map(SecretHash::from_stored),
        })
    }
}

const COLUMNS: &str = "id, account_id, name, client_id, duration, enabled, expires_at, \
                       client_secret_version, previous_secret_expires_at, created_at, \
                       updated_at, last_seen_at";

/// How often `last_seen_at` is written back: a token used many times a
/// second costs one write per interval, not one per request.
pub const LAST_SEEN_RESOLUTION_SECONDS: i64 = 30;

/// The filters of `GET /access/service_tokens`.
#[derive(Debug, Default, Clone)]
pub struct ServiceTokenFilter {
    /// The whole name, in any case.
    pub name: Option<String>,
    /// Part of the name or of the Client ID, in any case.
    pub search: Option<String>,
}

/// The `updated_at` a write stamps: now, but always after the version it
/// replaces, so a racing write that read the old version cannot match.
pub fn next_version(read: &ServiceToken, now: Timestamp) -> Timestamp {
    now.max(Timestamp::from_micros(
        read.updated_at.micros().saturating_add(1),
    ))
}

impl Store {
    #[instrument(skip_all)]
    pub async fn create_service_token(&self, stored: &StoredServiceToken) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO access_service_tokens ({COLUMNS}, secret_hash, previous_secret_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        );
        let token = &stored.token;
        with_writer!(self, |pool| {
            sqlx::query(&sql)
                .bind(token.id.as_str())
                .bind(token.account_id.as_str())
                .bind(&token.name)
                .bind(&token.client_id)
                .bind(&token.duration)
                .bind(token.enabled)
                .bind(token.expires_at.map(Timestamp::micros))
                .bind(token.client_secret_version)
                .bind(
                    token
                        .previous_client_secret_expires_at
                        .map(Timestamp::micros),
                )
                .bind(token.created_at.micros())
                .bind(token.updated_at.micros())
                .bind(token.last_seen_at.map(Timestamp::micros))
                .bind(stored.secret_hash.as_str())
                .bind(stored.previous_secret_hash.as_ref().map(SecretHash::as_str))
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(super::conflict_on_unique("service token already exists"))?;
        Ok(())
    }

    /// The token with its secret hashes.
    #[instrument(skip_all)]
    pub async fn find_service_token(
        &self,
        account: &AccountId,
        id: &ServiceTokenId,
    ) -> StoreResult<Option<StoredServiceToken>> {
        self.find_stored("account_id = $1 AND id = $2", account, id.as_str())
            .await
    }

    async fn find_stored(
        &self,
        condition: &str,
        account: &AccountId,
        key: &str,
    ) -> StoreResult<Option<StoredServiceToken>> {
        let sql = format!(
            "SELECT {COLUMNS}, secret_hash, previous_secret_hash \
             FROM access_service_tokens WHERE {condition}"
        );
        let row: Option<StoredRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(account.as_str())
                .bind(key)
                .fetch_optional(pool)
                .await?
        });
        row.map(StoredServiceToken::try_from).transpose()
    }

    #[instrument(skip_all)]
    pub async fn list_service_tokens(
        &self,
        account: &AccountId,
        filter: &ServiceTokenFilter,
        page: PageRequest,
    ) -> StoreResult<Page<ServiceToken>> {
        let condition = "account_id = $1 AND ($2 IS NULL OR lower(name) = $2) \
             AND ($3 IS NULL OR lower(name) LIKE $3 ESCAPE '\\' \
                  OR lower(client_id) LIKE $3 ESCAPE '\\')";
        let list_sql = format!(
            "SELECT {COLUMNS} FROM access_service_tokens WHERE {condition} \
             ORDER BY created_at, id LIMIT $4 OFFSET $5"
        );
        let count_sql = format!("SELECT COUNT(*) FROM access_service_tokens WHERE {condition}");
        let binds = [
            Bind::Text(account.to_string()),
            Bind::OptText(filter.name.as_deref().map(str::to_lowercase)),
            Bind::OptText(filter.search.as_deref().map(like_pattern)),
        ];
        let (rows, total_count) = self
            .fetch_page::<ServiceTokenRow>(&list_sql, &count_sql, &binds, page)
            .await?;
        Ok(Page {
            items: rows
                .into_iter()
                .map(ServiceToken::try_from)
                .collect::<StoreResult<_>>()?,
            request: page,
            total_count,
        })
    }

    /// Saves `token` (settings, version and grace end) if it is still at
    /// version `unchanged_since`; false when it changed or is gone. With
    /// `new_secret` it is rotated: the secret it had becomes the previous one
    /// when `token` has a grace end, and is forgotten otherwise.
    #[instrument(skip_all)]
    pub async fn save_service_token(
        &self,
        token: &ServiceToken,
        unchanged_since: Timestamp,
        new_secret: Option<&SecretHash>,
    ) -> StoreResult<bool> {
        let rotation = match (new_secret, token.previous_client_secret_expires_at) {
            (None, _) => "",
            (Some(_), Some(_)) => ", previous_secret_hash = secret_hash, secret_hash = $11",
            (Some(_), None) => ", previous_secret_hash = NULL, secret_hash = $11",
        };
        // In both dialects the right-hand sides read the row as it was.
        let sql = format!(
            "UPDATE access_service_tokens SET name = $3, duration = $4, enabled = $5, \
             expires_at = $6, previous_secret_expires_at = $7, client_secret_version = $8, \
             updated_at = $9{rotation} WHERE account_id = $1 AND id = $2 AND updated_at = $10"
        );
        let affected = with_writer!(self, |pool| {
            let mut query = sqlx::query(&sql)
                .bind(token.account_id.as_str())
                .bind(token.id.as_str())
                .bind(&token.name)
                .bind(&token.duration)
                .bind(token.enabled)
                .bind(token.expires_at.map(Timestamp::micros))
                .bind(
                    token
                        .previous_client_secret_expires_at
                        .map(Timestamp::micros),
                )
                .bind(token.client_secret_version)
                .bind(token.updated_at.micros())
                .bind(unchanged_since.micros());
            if let Some(secret) = new_secret {
                query = query.bind(secret.as_str());
            }
            query.execute(pool).await?.rows_affected()
        });
        Ok(affected > 0)
    }

    #[instrument(skip_all)]
    pub async fn delete_service_token(
        &self,
        account: &AccountId,
        id: &ServiceTokenId,
    ) -> StoreResult<bool> {
        let affected = with_writer!(self, |pool| {
            sqlx::query("DELETE FROM access_service_tokens WHERE account_id = $1 AND id = $2")
                .bind(account.as_str())
                .bind(id.as_str())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }

    /// The token of `account` with this Client ID, with its secret hashes.
    #[instrument(skip_all)]
    pub async fn find_service_token_by_client_id(
        &self,
        account: &AccountId,
        client_id: &str,
    ) -> StoreResult<Option<StoredServiceToken>> {
        self.find_stored("account_id = $1 AND client_id = $2", account, client_id)
            .await
    }

    /// Records that the token was used `now`. Not a version change:
    /// settings written meanwhile stay valid.
    #[instrument(skip_all)]
    pub async fn mark_service_token_seen(
        &self,
        id: &ServiceTokenId,
        now: Timestamp,
    ) -> StoreResult<()> {
        with_writer!(self, |pool| {
            sqlx::query("UPDATE access_service_tokens SET last_seen_at = $2 WHERE id = $1")
                .bind(id.as_str())
                .bind(now.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }
}
