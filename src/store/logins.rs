//! What the login flow writes: PIN challenges and the records of a login.

use tracing::instrument;

use super::{Store, StoreResult, with_pool, with_writer};
use crate::domain::activity::{Session, SessionNonce};
use crate::domain::user::AccessUser;
use crate::domain::{AccountId, AppId, Timestamp};

/// A one-time PIN on its way to a user; the code itself is never stored.
#[derive(Debug, Clone)]
pub struct OtpChallenge {
    pub id: String,
    pub account_id: AccountId,
    pub app_id: AppId,
    pub idp_id: String,
    pub email: String,
    pub salt: String,
    pub code_hash: String,
    pub redirect_url: String,
    pub attempts: i64,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub consumed: bool,
}

type ChallengeRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
);

impl Store {
    #[instrument(skip_all)]
    pub async fn create_otp_challenge(&self, c: &OtpChallenge) -> StoreResult<()> {
        let sql = "INSERT INTO access_otp_challenges (id, account_id, app_id, idp_id, email, salt, code_hash, \
                   redirect_url, attempts, created_at, expires_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
        with_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(&c.id)
                .bind(c.account_id.as_str())
                .bind(c.app_id.as_str())
                .bind(&c.idp_id)
                .bind(&c.email)
                .bind(&c.salt)
                .bind(&c.code_hash)
                .bind(&c.redirect_url)
                .bind(c.attempts)
                .bind(c.created_at.micros())
                .bind(c.expires_at.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    #[instrument(skip_all)]
    pub async fn find_otp_challenge(&self, id: &str) -> StoreResult<Option<OtpChallenge>> {
        let sql = "SELECT id, account_id, app_id, idp_id, email, salt, code_hash, redirect_url, attempts, \
                   created_at, expires_at, consumed_at FROM access_otp_challenges WHERE id = $1";
        let row: Option<ChallengeRow> = with_pool!(self, |pool| {
            sqlx::query_as(sql).bind(id).fetch_optional(pool).await?
        });
        Ok(row.and_then(|r| {
            Some(OtpChallenge {
                id: r.0,
                account_id: AccountId::parse(&r.1)?,
                app_id: AppId::parse(&r.2)?,
                idp_id: r.3,
                email: r.4,
                salt: r.5,
                code_hash: r.6,
                redirect_url: r.7,
                attempts: r.8,
                created_at: Timestamp::from_micros(r.9),
                expires_at: Timestamp::from_micros(r.10),
                consumed: r.11.is_some(),
            })
        }))
    }

    /// Counts one try at the challenge's code, unless it is used up, expired
    /// or has had `max_attempts` tries; returns the tries made, this one
    /// included, or `None` when no try is left.
    #[instrument(skip_all)]
    pub async fn claim_otp_attempt(
        &self,
        id: &str,
        max_attempts: i64,
        now: Timestamp,
    ) -> StoreResult<Option<i64>> {
        let sql = "UPDATE access_otp_challenges SET attempts = attempts + 1 \
                   WHERE id = $1 AND attempts < $2 AND consumed_at IS NULL AND expires_at > $3 \
                   RETURNING attempts";
        let attempts = with_writer!(self, |pool| {
            sqlx::query_scalar(sql)
                .bind(id)
                .bind(max_attempts)
                .bind(now.micros())
                .fetch_optional(pool)
                .await?
        });
        Ok(attempts)
    }

    /// Uses the challenge up; false when it was already used (the code is single-use).
    #[instrument(skip_all)]
    pub async fn consume_otp_challenge(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        let affected = with_writer!(self, |pool| {
            sqlx::query("UPDATE access_otp_challenges SET consumed_at = $2 WHERE id = $1 AND consumed_at IS NULL")
                .bind(id)
                .bind(now.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }

    #[instrument(skip_all)]
    pub async fn purge_otp_challenges(&self, before: Timestamp) -> StoreResult<u64> {
        let purged = with_writer!(self, |pool| {
            sqlx::query("DELETE FROM access_otp_challenges WHERE expires_at < $1")
                .bind(before.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(purged)
    }

    /// A successful login, in one transaction: the user (created on first
    /// sight) takes their Access seat and a `last_successful_login`; the
    /// session and its identity are stored, and the identity becomes the
    /// user's last seen one.
    #[instrument(skip_all)]
    pub async fn record_successful_login(
        &self,
        user: &AccessUser,
        is_new: bool,
        session: &Session,
    ) -> StoreResult<()> {
        if is_new {
            self.create_user(user).await?;
        }
        let update = "UPDATE access_users SET access_seat = $2, seat_updated_at = $3, last_successful_login = $4, \
                      updated_at = $4 WHERE id = $1 AND deleted_at IS NULL";
        let insert = "INSERT INTO access_sessions (nonce, account_id, user_id, name, issued_at, expires_at, \
                      revoked_at, apps, identity) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8)";
        let identity_upsert = "INSERT INTO access_last_identities (user_id, seen_at, identity) VALUES ($1, $2, $3) \
                               ON CONFLICT (user_id) DO UPDATE SET seen_at = excluded.seen_at, identity = excluded.identity";
        let apps = serde_json::to_string(&session.apps).map_err(super::corrupt)?;
        let identity = serde_json::to_string(&session.identity).map_err(super::corrupt)?;
        let login_at = user.last_successful_login.unwrap_or(session.issued_at);
        with_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(update)
                .bind(user.id.as_str())
                .bind(true)
                .bind(user.seat.updated_at.micros())
                .bind(login_at.micros())
                .execute(&mut *tx)
                .await?;
            sqlx::query(insert)
                .bind(session.nonce.as_str())
                .bind(session.account_id.as_str())
                .bind(session.user_id.as_str())
                .bind(&session.name)
                .bind(session.issued_at.micros())
                .bind(session.expires_at.micros())
                .bind(&apps)
                .bind(&identity)
                .execute(&mut *tx)
                .await?;
            sqlx::query(identity_upsert)
                .bind(session.user_id.as_str())
                .bind(session.issued_at.micros())
                .bind(&identity)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    #[instrument(skip_all)]
    pub async fn revoke_session(&self, nonce: &SessionNonce, now: Timestamp) -> StoreResult<bool> {
        let affected = with_writer!(self, |pool| {
            sqlx::query("UPDATE access_sessions SET revoked_at = $2 WHERE nonce = $1 AND revoked_at IS NULL")
                .bind(nonce.as_str())
                .bind(now.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }

    /// Adds `app` to a live session's applications and lets the session
    /// last until at least `until`. A compare-and-set on the stored list, so
    /// two applications joining at once both stay; false when the session
    /// is gone, revoked or expired.
    #[instrument(skip_all)]
    pub async fn join_session(
        &self,
        nonce: &SessionNonce,
        app_id: &str,
        app: &crate::domain::activity::SessionApp,
        until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let read = "SELECT apps, expires_at FROM access_sessions \
                    WHERE nonce = $1 AND revoked_at IS NULL AND expires_at > $2";
        let write = "UPDATE access_sessions SET apps = $2, expires_at = $3 \
                     WHERE nonce = $1 AND apps = $4 AND revoked_at IS NULL";
        for _ in 0..8 {
            let row: Option<(String, i64)> = with_writer!(self, |pool| {
                sqlx::query_as(read)
                    .bind(nonce.as_str())
                    .bind(now.micros())
                    .fetch_optional(pool)
                    .await?
            });
            let Some((stored, expires_at)) = row else {
                return Ok(false);
            };
            let mut apps: std::collections::BTreeMap<String, crate::domain::activity::SessionApp> =
                serde_json::from_str(&stored).map_err(super::corrupt)?;
            apps.insert(app_id.to_string(), app.clone());
            let joined = serde_json::to_string(&apps).map_err(super::corrupt)?;
            let expires_at = expires_at.max(until.micros());
            let written = with_writer!(self, |pool| {
                sqlx::query(write)
                    .bind(nonce.as_str())
                    .bind(&joined)
                    .bind(expires_at)
                    .bind(&stored)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
            if written > 0 {
                return Ok(true);
            }
        }
        Err(super::StoreError::Conflict(
            "the session changed too often to join it; try again".to_string(),
        ))
    }
}
