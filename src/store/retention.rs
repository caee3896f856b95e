//! Removal of records past their retention.

use tracing::instrument;

use super::{Store, StoreResult, with_pool};
use crate::domain::Timestamp;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub sessions: u64,
    pub failed_logins: u64,
    pub deleted_users: u64,
    pub deleted_scim_users: u64,
}

impl Store {
    /// Deletes sessions that expired or were revoked before `sessions_before`,
    /// failed logins past their own expiry at `now`, and tombstones of Access
    /// and SCIM users older than `tombstones_before`.
    #[instrument(skip_all)]
    pub async fn purge_expired_records(
        &self,
        now: Timestamp,
        sessions_before: Timestamp,
        tombstones_before: Timestamp,
    ) -> StoreResult<Purged> {
        let sessions = with_pool!(self, |pool| {
            sqlx::query("DELETE FROM access_sessions WHERE expires_at < $1 OR revoked_at < $1")
                .bind(sessions_before.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        let failed_logins = with_pool!(self, |pool| {
            sqlx::query("DELETE FROM access_failed_logins WHERE expires_at <= $1")
                .bind(now.micros())
                .execute(pool)
                .await?
                .rows_affected()
        });
        let deleted_users = self.purge_deleted_users(tombstones_before).await?;
        let deleted_scim_users = self.purge_scim_tombstones(tombstones_before).await?;
        Ok(Purged {
            sessions,
            failed_logins,
            deleted_users,
            deleted_scim_users,
        })
    }
}
