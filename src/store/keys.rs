use tracing::instrument;

use super::sealing::is_sealed;
use super::{Store, StoreResult, with_pool, with_writer};
use crate::domain::{AccountId, Timestamp};

/// One signing key: its id, PKCS#8 PEM private key (sealed at rest) and life.
#[derive(Clone)]
pub struct StoredKey {
    pub kid: String,
    pub account_id: String,
    pub private_pem: String,
    /// A self-signed certificate of the public key, PEM.
    pub certificate_pem: String,
    /// The public modulus and exponent, base64url (no padding).
    pub public_n: String,
    pub public_e: String,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

type KeyRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
);

/// What the sealed private key of `kid` is bound to.
fn sealed_record(kid: &str) -> String {
    format!("signing key {kid}")
}

impl Store {
    fn key_from(&self, row: KeyRow) -> StoreResult<StoredKey> {
        let private_pem = self.sealer()?.open(&row.2, &sealed_record(&row.0))?;
        Ok(StoredKey {
            kid: row.0,
            account_id: row.1,
            private_pem,
            certificate_pem: row.3,
            public_n: row.4,
            public_e: row.5,
            created_at: Timestamp::from_micros(row.6),
            retired_at: row.7.map(Timestamp::from_micros),
        })
    }

    fn keys_from(&self, rows: Vec<KeyRow>) -> StoreResult<Vec<StoredKey>> {
        rows.into_iter().map(|row| self.key_from(row)).collect()
    }

    /// Seals signing keys an older version stored in clear, and checks that
    /// every sealed one opens with the loaded secret key. Returns how many
    /// keys were sealed now.
    #[instrument(skip_all)]
    pub async fn seal_signing_keys_at_rest(&self) -> StoreResult<usize> {
        let sealer = self.sealer()?;
        let rows: Vec<(String, String)> = with_pool!(self, |pool| {
            sqlx::query_as("SELECT kid, private_pem FROM access_signing_keys")
                .fetch_all(pool)
                .await?
        });
        let mut sealed_now = 0;
        for (kid, stored) in rows {
            let record = sealed_record(&kid);
            if is_sealed(&stored) {
                sealer.open(&stored, &record)?;
                continue;
            }
            let sealed = sealer.seal(&stored, &record)?;
            self.replace_if_unchanged(
                "UPDATE access_signing_keys SET private_pem = $2 WHERE kid = $1 AND private_pem = $3",
                &kid,
                &sealed,
                &stored,
            )
            .await?;
            sealed_now += 1;
        }
        Ok(sealed_now)
    }

    /// Whether any signing key is stored sealed (so a secret key must exist).
    #[instrument(skip_all)]
    pub async fn has_sealed_signing_keys(&self) -> StoreResult<bool> {
        self.any_row("SELECT COUNT(*) FROM access_signing_keys WHERE private_pem LIKE 'sealed:%'")
            .await
    }
}

const INSERT_KEY: &str = "INSERT INTO access_signing_keys (kid, account_id, private_pem, \
                          certificate_pem, public_n, public_e, created_at) \
                          VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Binds `key` to [`INSERT_KEY`], with its private key as `sealed`.
fn bind_key<'q, DB: sqlx::Database>(
    query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    key: &'q StoredKey,
    sealed: &'q str,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    query
        .bind(key.kid.as_str())
        .bind(key.account_id.as_str())
        .bind(sealed)
        .bind(key.certificate_pem.as_str())
        .bind(key.public_n.as_str())
        .bind(key.public_e.as_str())
        .bind(key.created_at.micros())
}

/// Whether an insert of a current key failed because the account has one
/// already (`access_signing_keys_one_current`); other errors pass through.
fn lost_to_another_current_key<T>(inserted: Result<T, sqlx::Error>) -> StoreResult<bool> {
    match inserted {
        Ok(_) => Ok(false),
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(true),
        Err(err) => Err(err.into()),
    }
}

/// Default days between automatic rotations (Cloudflare's six weeks).
pub const DEFAULT_ROTATION_DAYS: i64 = 42;

impl Store {
    /// Keys of the account still good for verifying at `now`, newest first.
    #[instrument(skip_all)]
    pub async fn signing_keys(
        &self,
        account: &AccountId,
        verify_until: Timestamp,
    ) -> StoreResult<Vec<StoredKey>> {
        let sql = "SELECT kid, account_id, private_pem, certificate_pem, public_n, public_e, created_at, retired_at FROM access_signing_keys \
                   WHERE account_id = $1 AND (retired_at IS NULL OR retired_at > $2) \
                   ORDER BY created_at DESC";
        let rows: Vec<KeyRow> = with_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(account.as_str())
                .bind(verify_until.micros())
                .fetch_all(pool)
                .await?
        });
        self.keys_from(rows)
    }

    #[instrument(skip_all)]
    pub async fn find_signing_key(&self, kid: &str) -> StoreResult<Option<StoredKey>> {
        let sql = "SELECT kid, account_id, private_pem, certificate_pem, public_n, public_e, created_at, retired_at FROM access_signing_keys WHERE kid = $1";
        let row: Option<KeyRow> = with_pool!(self, |pool| {
            sqlx::query_as(sql).bind(kid).fetch_optional(pool).await?
        });
        row.map(|row| self.key_from(row)).transpose()
    }

    /// Retires the account's current keys and installs `key` as the signing key.
    #[instrument(skip_all)]
    pub async fn install_signing_key(&self, key: &StoredKey) -> StoreResult<()> {
        self.replace_signing_key(key, Timestamp::from_micros(i64::MAX))
            .await
            .map(|_| ())
    }

    /// Installs `key` as the signing key unless the current one was itself
    /// made by a rotation after `rotated_before` (the account's first key
    /// does not count). Returns whether it was installed; checked in the
    /// same transaction, so concurrent rotations cannot all pass.
    #[instrument(skip_all)]
    pub async fn replace_signing_key(
        &self,
        key: &StoredKey,
        rotated_before: Timestamp,
    ) -> StoreResult<bool> {
        let sealed = self
            .sealer()?
            .seal(&key.private_pem, &sealed_record(&key.kid))?;
        let retire = "UPDATE access_signing_keys SET retired_at = $2 \
                      WHERE account_id = $1 AND retired_at IS NULL AND (created_at <= $3 \
                      OR NOT EXISTS (SELECT 1 FROM access_signing_keys r \
                                     WHERE r.account_id = $1 AND r.retired_at IS NOT NULL))";
        let installed = with_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            let retired = sqlx::query(retire)
                .bind(&key.account_id)
                .bind(key.created_at.micros())
                .bind(rotated_before.micros())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let current: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM access_signing_keys WHERE account_id = $1 AND retired_at IS NULL",
            )
            .bind(&key.account_id)
            .fetch_one(&mut *tx)
            .await?;
            if retired == 0 && current > 0 {
                tx.rollback().await?;
                false
            } else {
                let inserted = bind_key(sqlx::query(INSERT_KEY), key, &sealed)
                    .execute(&mut *tx)
                    .await;
                if lost_to_another_current_key(inserted)? {
                    tx.rollback().await?;
                    false
                } else {
                    tx.commit().await?;
                    true
                }
            }
        });
        Ok(installed)
    }

    /// Installs `key` as the account's first signing key unless it already
    /// has a current one (made meanwhile by another request or process);
    /// returns whether it was installed. Nothing is retired, so a lost race
    /// never counts as a rotation.
    #[instrument(skip_all)]
    pub async fn install_first_signing_key(&self, key: &StoredKey) -> StoreResult<bool> {
        let sealed = self
            .sealer()?
            .seal(&key.private_pem, &sealed_record(&key.kid))?;
        let inserted = with_writer!(self, |pool| {
            bind_key(sqlx::query(INSERT_KEY), key, &sealed)
                .execute(pool)
                .await
                .map(|_| ())
        });
        Ok(!lost_to_another_current_key(inserted)?)
    }

    /// When the account's signing key was last replaced by a rotation;
    /// `None` while it still has its first key.
    #[instrument(skip_all)]
    pub async fn last_key_rotation(&self, account: &AccountId) -> StoreResult<Option<Timestamp>> {
        let sql = "SELECT MAX(created_at) FROM access_signing_keys \
                   WHERE account_id = $1 AND retired_at IS NULL AND EXISTS \
                   (SELECT 1 FROM access_signing_keys r WHERE r.account_id = $1 AND r.retired_at IS NOT NULL)";
        let at: Option<i64> = with_pool!(self, |pool| {
            sqlx::query_scalar(sql)
                .bind(account.as_str())
                .fetch_one(pool)
                .await?
        });
        Ok(at.map(Timestamp::from_micros))
    }

    /// Deletes keys retired at or before `retired_before`; returns how many.
    #[instrument(skip_all)]
    pub async fn delete_retired_signing_keys(&self, retired_before: Timestamp) -> StoreResult<u64> {
        let deleted = with_writer!(self, |pool| {
            sqlx::query(
                "DELETE FROM access_signing_keys WHERE retired_at IS NOT NULL AND retired_at <= $1",
            )
            .bind(retired_before.micros())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(deleted)
    }

    #[instrument(skip_all)]
    pub async fn key_rotation_days(&self, account: &AccountId) -> StoreResult<i64> {
        let days: Option<i64> = with_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT rotation_interval_days FROM access_key_settings WHERE account_id = $1",
            )
            .bind(account.as_str())
            .fetch_optional(pool)
            .await?
        });
        Ok(days.unwrap_or(DEFAULT_ROTATION_DAYS))
    }

    #[instrument(skip_all)]
    pub async fn set_key_rotation_days(&self, account: &AccountId, days: i64) -> StoreResult<()> {
        let sql = "INSERT INTO access_key_settings (account_id, rotation_interval_days) VALUES ($1, $2) \
                   ON CONFLICT (account_id) DO UPDATE SET rotation_interval_days = excluded.rotation_interval_days";
        with_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(account.as_str())
                .bind(days)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// Accounts whose signing key is older than their rotation interval.
    #[instrument(skip_all)]
    pub async fn accounts_due_for_rotation(&self, now: Timestamp) -> StoreResult<Vec<String>> {
        let sql = "SELECT k.account_id FROM access_signing_keys k \
                   LEFT JOIN access_key_settings s ON s.account_id = k.account_id \
                   WHERE k.retired_at IS NULL \
                   AND k.created_at + COALESCE(s.rotation_interval_days, $2) * 86400000000 <= $1";
        let rows: Vec<String> = with_pool!(self, |pool| {
            sqlx::query_scalar(sql)
                .bind(now.micros())
                .bind(DEFAULT_ROTATION_DAYS)
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }
}
