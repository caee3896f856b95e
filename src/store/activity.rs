//! Sessions, last seen identities and failed logins.

use tracing::instrument;

use super::{Store, StoreError, StoreResult, corrupt, with_pool, with_writer};
use crate::domain::activity::{FailedLogin, Identity, Session, SessionNonce};
use crate::domain::user::UserId;
use crate::domain::{AccountId, Timestamp};

#[derive(sqlx::FromRow)]
struct SessionRow {
    nonce: String,
    account_id: String,
    user_id: String,
    name: String,
    issued_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    apps: String,
    identity: String,
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;

    fn try_from(row: SessionRow) -> Result<Self, Self::Error> {
        Ok(Session {
            nonce: SessionNonce::parse(&row.nonce).ok_or_else(|| corrupt("session nonce"))?,
            account_id: AccountId::parse(&row.account_id).ok_or_else(|| corrupt("account id"))?,
            user_id: UserId::parse(&row.user_id).ok_or_else(|| corrupt("user id"))?,
            name: row.name,
            issued_at: Timestamp::from_micros(row.issued_at),
            expires_at: Timestamp::from_micros(row.expires_at),
            revoked_at: row.revoked_at.map(Timestamp::from_micros),
            apps: serde_json::from_str(&row.apps).map_err(corrupt)?,
            identity: serde_json::from_str(&row.identity).map_err(corrupt)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct FailedLoginRow {
    account_id: String,
    user_id: String,
    occurred_at: i64,
    expires_at: i64,
    metadata: String,
}

impl TryFrom<FailedLoginRow> for FailedLogin {
    type Error = StoreError;

    fn try_from(row: FailedLoginRow) -> Result<Self, Self::Error> {
        Ok(FailedLogin {
            account_id: AccountId::parse(&row.account_id).ok_or_else(|| corrupt("account id"))?,
            user_id: UserId::parse(&row.user_id).ok_or_else(|| corrupt("user id"))?,
            occurred_at: Timestamp::from_micros(row.occurred_at),
            expires_at: Timestamp::from_micros(row.expires_at),
            metadata: serde_json::from_str(&row.metadata).map_err(corrupt)?,
        })
    }
}

const SESSION_COLUMNS: &str =
    "nonce, account_id, user_id, name, issued_at, expires_at, revoked_at, apps, identity";

fn json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(corrupt)
}

impl Store {
    #[instrument(skip_all)]
    pub async fn record_session(&self, session: &Session) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO access_sessions ({SESSION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        );
        let apps = json(&session.apps)?;
        let identity = json(&session.identity)?;
        with_writer!(self, |pool| {
            sqlx::query(&sql)
                .bind(session.nonce.as_str())
                .bind(session.account_id.as_str())
                .bind(session.user_id.as_str())
                .bind(&session.name)
                .bind(session.issued_at.micros())
                .bind(session.expires_at.micros())
                .bind(session.revoked_at.map(Timestamp::micros))
                .bind(&apps)
                .bind(&identity)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(super::conflict_on_unique(
            "a session with this nonce already exists",
        ))?;
        Ok(())
    }

    /// A session of `user` by nonce, active or not, while its record exists.
    #[instrument(skip_all)]
    pub async fn find_session(
        &self,
        account: &AccountId,
        user: &UserId,
        nonce: &SessionNonce,
    ) -> StoreResult<Option<Session>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM access_sessions \
             WHERE nonce = $1 AND user_id = $2 AND account_id = $3"
        );
        let row: Option<SessionRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(nonce.as_str())
                .bind(user.as_str())
                .bind(account.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(Session::try_from).transpose()
    }

    /// A session by its nonce alone (the nonce is in the token).
    #[instrument(skip_all)]
    pub async fn find_session_by_nonce(
        &self,
        nonce: &SessionNonce,
    ) -> StoreResult<Option<Session>> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM access_sessions WHERE nonce = $1");
        let row: Option<SessionRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(nonce.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(Session::try_from).transpose()
    }

    /// Unexpired, unrevoked sessions of `user`, newest first.
    #[instrument(skip_all)]
    pub async fn list_active_sessions(
        &self,
        account: &AccountId,
        user: &UserId,
        now: Timestamp,
    ) -> StoreResult<Vec<Session>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM access_sessions \
             WHERE user_id = $1 AND account_id = $2 AND revoked_at IS NULL AND expires_at > $3 \
             ORDER BY issued_at DESC, nonce"
        );
        let rows: Vec<SessionRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(user.as_str())
                .bind(account.as_str())
                .bind(now.micros())
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(Session::try_from).collect()
    }

    #[instrument(skip_all)]
    pub async fn record_last_identity(
        &self,
        user: &UserId,
        seen_at: Timestamp,
        identity: &Identity,
    ) -> StoreResult<()> {
        let sql = "INSERT INTO access_last_identities (user_id, seen_at, identity) VALUES ($1, $2, $3) \
                   ON CONFLICT (user_id) DO UPDATE SET seen_at = excluded.seen_at, \
                   identity = excluded.identity";
        let identity = json(identity)?;
        with_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(user.as_str())
                .bind(seen_at.micros())
                .bind(&identity)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    #[instrument(skip_all)]
    pub async fn find_last_identity(
        &self,
        account: &AccountId,
        user: &UserId,
    ) -> StoreResult<Option<Identity>> {
        let sql = "SELECT i.identity FROM access_last_identities i \
                   JOIN access_users u ON u.id = i.user_id \
                   WHERE i.user_id = $1 AND u.account_id = $2";
        let raw: Option<String> = with_pool!(self, |pool| {
            sqlx::query_scalar(sql)
                .bind(user.as_str())
                .bind(account.as_str())
                .fetch_optional(pool)
                .await?
        });
        raw.map(|text| serde_json::from_str(&text).map_err(corrupt))
            .transpose()
    }

    #[instrument(skip_all)]
    pub async fn record_failed_login(&self, failure: &FailedLogin) -> StoreResult<()> {
        let sql = "INSERT INTO access_failed_logins (account_id, user_id, occurred_at, expires_at, metadata) \
                   VALUES ($1, $2, $3, $4, $5)";
        let metadata = json(&failure.metadata)?;
        with_writer!(self, |pool| {
            sqlx::query(sql)
                .bind(failure.account_id.as_str())
                .bind(failure.user_id.as_str())
                .bind(failure.occurred_at.micros())
                .bind(failure.expires_at.micros())
                .bind(&metadata)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// Failed logins of `user` not yet past their expiry, newest first.
    #[instrument(skip_all)]
    pub async fn list_failed_logins(
        &self,
        account: &AccountId,
        user: &UserId,
        now: Timestamp,
    ) -> StoreResult<Vec<FailedLogin>> {
        let sql = "SELECT account_id, user_id, occurred_at, expires_at, metadata \
                   FROM access_failed_logins \
                   WHERE user_id = $1 AND account_id = $2 AND expires_at > $3 \
                   ORDER BY occurred_at DESC, seq DESC";
        let rows: Vec<FailedLoginRow> = with_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(user.as_str())
                .bind(account.as_str())
                .bind(now.micros())
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(FailedLogin::try_from).collect()
    }
}
