use tracing::instrument;

use super::{Store, StoreResult, corrupt, with_pool, with_writer};
use crate::domain::secret::SecretHash;
use crate::domain::{Timestamp, TokenId};

/// The operator's credential: it passes every permission check.
#[derive(Debug, Clone)]
pub struct AdminToken {
    pub id: TokenId,
    pub hash: SecretHash,
    pub created_on: Timestamp,
}

impl Store {
    #[instrument(skip_all)]
    pub async fn find_admin_token(&self) -> StoreResult<Option<AdminToken>> {
        let sql = "SELECT id, secret_hash, created_on FROM admin_token WHERE singleton = 1";
        let row: Option<(String, String, i64)> = with_pool!(self, |pool| sqlx::query_as(sql)
            .fetch_optional(pool)
            .await?);
        row.map(|(id, hash, created_on)| {
            Ok(AdminToken {
                id: TokenId::parse(&id).ok_or_else(|| corrupt("admin token id"))?,
                hash: SecretHash::from_stored(hash),
                created_on: Timestamp::from_micros(created_on),
            })
        })
        .transpose()
    }

    /// Installs `token` as the only admin token, replacing any earlier one.
    #[instrument(skip_all)]
    pub async fn replace_admin_token(&self, token: &AdminToken) -> StoreResult<()> {
        let sql = "INSERT INTO admin_token (singleton, id, secret_hash, created_on) \
                   VALUES (1, $1, $2, $3) \
                   ON CONFLICT (singleton) DO UPDATE SET id = excluded.id, \
                   secret_hash = excluded.secret_hash, created_on = excluded.created_on";
        with_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(token.id.as_str())
                .bind(token.hash.as_str())
                .bind(token.created_on.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }
}
